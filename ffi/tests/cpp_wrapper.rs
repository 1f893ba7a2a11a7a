//! The C++ wrapper (`include/loupe.hpp`) and its OpenCV helpers (`include/loupe_opencv.hpp`) from a C++ program:
//! `ffi/tests/cpp/wrapper_check.cpp`, compiled with `-std=c++17 -Wall -Wextra -Werror -pedantic` against both
//! headers, OpenCV and the built library, runs on the parity fixture, and its output is checked against the Rust
//! API: every `cv::Mat` type `loupe::view_of` maps (8UC1, 8UC3 BGR and RGB, 8UC4 BGRA and RGBA, 16UC1 at 12 and 16
//! bits, ROIs with padded steps) gives the score, mask and maps of the same pixels in packed RGB8 / GRAY8, and the
//! others are refused naming their type; per-call options equal re-thresholding and an engine configured with
//! them; a batch with a corrupt view gives a status for it and results for the others, and call-level failures
//! throw; the log callback receives the backend choice; `to_json` is the CLI's document; `Engine::info` and
//! `Engine::create_default` say what the engines hold.
//!
//! Needs g++, `cc` and Debian's `libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev`; without them the
//! tests skip loudly, unless `REQUIRE_CPP=1` (CI sets it), when they fail.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;
mod linking;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use linking::{OPENCV_HEADER, build_library, build_vision_cell, cpp_toolchain_present, run, workspace_root};
use loupe_sdk::{Detection, LoupeConfig, OwnedImage, PixelFormat};

/// The check program, compiled once per test binary (next to the library it links).
fn check_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let lib_dir = build_library();
        let program = lib_dir.join("cpp_wrapper_check");
        let root = workspace_root();
        // OPENCV_HEADER is <include>/opencv2/imgcodecs.hpp.
        let opencv_include = Path::new(OPENCV_HEADER).parent().and_then(Path::parent).unwrap();
        let mut rpath = OsString::from("-Wl,-rpath,");
        rpath.push(&lib_dir);
        run(Command::new(std::env::var("CXX").unwrap_or_else(|_| "g++".into()))
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-I"])
            .arg(root.join("include"))
            .arg("-isystem")
            .arg(opencv_include)
            .arg(root.join("ffi/tests/cpp/wrapper_check.cpp"))
            .arg("-o")
            .arg(&program)
            .arg("-L")
            .arg(&lib_dir)
            .args(["-lloupe", "-lopencv_imgcodecs", "-lopencv_imgproc", "-lopencv_core"])
            .arg(rpath));
        program
    })
}

/// One output line of the check program: `KIND\tkey=value\t...`.
#[derive(Debug)]
struct Record {
    kind: String,
    fields: HashMap<String, String>,
}

impl Record {
    #[track_caller]
    fn get(&self, key: &str) -> &str {
        self.fields.get(key).unwrap_or_else(|| panic!("no `{key}` in {self:?}"))
    }

    /// A `%.9g` float: reads back as the exact f32 printed.
    #[track_caller]
    fn f32(&self, key: &str) -> f32 {
        self.get(key).parse().unwrap_or_else(|e| panic!("`{key}` of {self:?}: {e}"))
    }

    #[track_caller]
    fn usize(&self, key: &str) -> usize {
        self.get(key).parse().unwrap_or_else(|e| panic!("`{key}` of {self:?}: {e}"))
    }
}

/// Runs the check program with `args` and parses its output.
fn check<I, S>(args: I) -> Vec<Record>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = run(Command::new(check_program()).args(args));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.split('\t');
            let kind = parts.next().unwrap().to_string();
            let fields = parts
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("not key=value: `{kv}` in `{line}`"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            Record { kind, fields }
        })
        .collect()
}

fn of<'a>(records: &'a [Record], kind: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.kind == kind).collect()
}

/// FNV-1a 64 as 16 hex digits, as the check program prints it.
fn fnv(bytes: impl IntoIterator<Item = u8>) -> String {
    let h = bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

fn label(d: &Detection) -> &'static str {
    if d.is_anomalous { "anomalous" } else { "normal" }
}

/// Writes the fixture configuration with `extra` into `dir`; returns its path.
fn write_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, config_toml(extra)).unwrap();
    path
}

/// `head` followed by the image paths.
fn with_images(head: &[OsString], images: &[PathBuf]) -> Vec<OsString> {
    head.iter().cloned().chain(images.iter().map(|p| p.clone().into_os_string())).collect()
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// Thresholds that give both labels and several regions on the fixture (as cpp_example.rs uses).
const CELL: &str = "[postprocess]\nimage_threshold = 0.046\npixel_threshold = 3.2\n";

#[test]
fn every_supported_mat_inspects_as_the_same_pixels_in_packed_rgb8_or_gray8() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "cell.toml", CELL);
    let images = fixture_images();
    let records = check(with_images(&["formats".into(), config.into()], &images));
    let engine = rust_engine(CELL);
    let color_variants = ["rgb8-view", "bgr", "rgb", "bgra", "rgba", "bgr-roi", "bgra-roi"];
    let gray_variants = ["gray8-view", "gray", "gray16-12bits", "gray16-16bits", "gray-roi", "gray16-12bits-roi"];
    // variant: (cv::Mat type, LOUPE_FORMAT_*, bytes per pixel)
    let expected_mat: HashMap<&str, (&str, u32, usize)> = HashMap::from([
        ("rgb8-view", ("none", 2, 3)),
        ("bgr", ("CV_8UC3", 3, 3)),
        ("rgb", ("CV_8UC3", 2, 3)),
        ("bgra", ("CV_8UC4", 5, 4)),
        ("rgba", ("CV_8UC4", 4, 4)),
        ("bgr-roi", ("CV_8UC3", 3, 3)),
        ("bgra-roi", ("CV_8UC4", 5, 4)),
        ("gray8-view", ("none", 1, 1)),
        ("gray", ("CV_8UC1", 1, 1)),
        ("gray16-12bits", ("CV_16UC1", 9, 2)),
        ("gray16-16bits", ("CV_16UC1", 11, 2)),
        ("gray-roi", ("CV_8UC1", 1, 1)),
        ("gray16-12bits-roi", ("CV_16UC1", 9, 2)),
    ]);
    let mut regions = 0;
    for path in &images {
        let name = file_name(path);
        let rgb = OwnedImage::open(path).unwrap().view().to_rgb();
        let (width, height) = rgb.dimensions();
        // The check program's gray image is the green channel.
        let green: Vec<u8> = rgb.pixels().map(|p| p.0[1]).collect();
        let color = OwnedImage { data: rgb.into_raw(), width, height, format: PixelFormat::Rgb8 };
        let gray = OwnedImage { data: green, width, height, format: PixelFormat::Gray8 };
        for (family, image, variants) in [("color", &color, &color_variants[..]), ("gray", &gray, &gray_variants[..])] {
            let d = engine.inspect_one(&image.view()).unwrap();
            regions += d.regions.len();
            let lines: Vec<&Record> = of(&records, "format")
                .into_iter()
                .filter(|r| r.get("image") == name && r.get("family") == family)
                .collect();
            let printed: Vec<&str> = lines.iter().map(|r| r.get("variant")).collect();
            assert_eq!(printed, variants, "{name} {family}");
            for r in lines {
                let what = format!("{name}, {family}, {}", r.get("variant"));
                assert_eq!(r.f32("score"), d.score, "{what}: score");
                assert_eq!(r.get("mask"), fnv(d.mask.iter().copied()), "{what}: mask");
                assert_eq!(r.usize("regions"), d.regions.len(), "{what}: regions");
                let (mat, format, bytes) = expected_mat[r.get("variant")];
                assert_eq!((r.get("mat"), r.usize("format") as u32), (mat, format), "{what}: type and format");
                let packed = width as usize * bytes;
                let step = r.usize("step");
                if r.get("variant").ends_with("-roi") {
                    // The ROI keeps its parent's row stride: 11 more pixels per row.
                    assert_eq!(step, packed + 11 * bytes, "{what}: ROI step");
                } else {
                    assert!(step == packed || (mat == "none" && step == 0), "{what}: step {step}");
                }
            }
            let maps = of(&records, "maps");
            let maps = maps.iter().find(|r| r.get("image") == name && r.get("family") == family).unwrap();
            assert_eq!((maps.get("anomaly_type"), maps.get("type_type")), ("CV_32FC1", "CV_16UC1"));
            assert_eq!((maps.usize("width"), maps.usize("height")), (d.anomaly_map.width, d.anomaly_map.height));
            let anomaly = fnv(d.anomaly_map.data.iter().flat_map(|v| v.to_ne_bytes()));
            assert_eq!(maps.get("anomaly"), anomaly, "{name} {family}: the anomaly map as a CV_32FC1 Mat");
            assert_eq!(maps.get("types"), fnv(d.type_map.iter().flat_map(|v| v.to_ne_bytes())), "{name}: type map");
            assert_eq!(maps.get("borrowed"), "1", "the Mats wrap the result's memory");
        }
    }
    assert!(regions > images.len(), "masks with regions exercised: {regions}");

    // Mats Loupe has no format for: loupe::Error(LOUPE_STATUS_IMAGE) naming the type and what is supported.
    let refused = of(&records, "refused");
    let cases: Vec<&str> = refused.iter().map(|r| r.get("case")).collect();
    assert_eq!(cases, ["CV_32FC1", "CV_8UC2", "CV_16UC3", "bits=11", "3-dims", "empty"]);
    for r in refused {
        let message = r.get("message");
        assert_eq!(r.get("status"), "LOUPE_STATUS_IMAGE", "{message}");
        assert!(message.contains("supported: CV_8UC1 (gray), CV_8UC3 (BGR or RGB), CV_8UC4"), "{message}");
        let case = r.get("case");
        let named = match case {
            "bits=11" => "cv::Mat of type CV_16UC1 (8x8): bits must be 10, 12, 14 or 16, found 11".to_string(),
            "3-dims" => "cv::Mat of type CV_8UC1 (3 dims): expected a 2-dimensional Mat".to_string(),
            "empty" => "cv::Mat of type CV_8UC1 (empty): the Mat is empty".to_string(),
            _ => format!("cv::Mat of type {case} (8x8): no Loupe pixel format for this type"),
        };
        assert!(message.contains(&named), "{case}: {message}");
    }
}

#[test]
fn per_call_options_equal_rethresholding_and_a_configured_engine() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "plain.toml", "");
    let images = fixture_images();
    let decoded = fixture_owned_images();
    let plain_engine = rust_engine("");
    let plain: Vec<Detection> = decoded.iter().map(|i| plain_engine.inspect_one(&i.view()).unwrap()).collect();
    // A pixel threshold at the first map's median; an image threshold under every score (all anomalous, so the
    // segment rule lets every image have a mask); regions of at least 3 pixels.
    let mut values = plain[0].anomaly_map.data.clone();
    values.sort_by(f32::total_cmp);
    let pixel = values[values.len() / 2];
    let image = plain.iter().map(|d| d.score).fold(f32::INFINITY, f32::min) - 1e-4;
    let area = 3u32;
    let head: [OsString; 5] = [
        "options".into(),
        config.into(),
        format!("{image:?}").into(),
        format!("{pixel:?}").into(),
        area.to_string().into(),
    ];
    let records = check(with_images(&head, &images));
    let configured = rust_engine(&format!(
        "[postprocess]\nimage_threshold = {image:?}\npixel_threshold = {pixel:?}\nmin_region_area = {area}\n"
    ));
    let lines = of(&records, "options");
    assert_eq!(lines.len(), images.len());
    let mut changed = 0;
    for ((r, img), d) in lines.iter().zip(&decoded).zip(&plain) {
        let name = r.get("image");
        let expected = configured.inspect_one(&img.view()).unwrap();
        for (prefix, want) in [("plain_", d), ("none_", d), ("call_", &expected), ("re_", &expected)] {
            let what = format!("{name}: {prefix}");
            assert_eq!(r.f32(&format!("{prefix}score")), want.score, "{what}score");
            assert_eq!(r.get(&format!("{prefix}label")), label(want), "{what}label");
            assert_eq!(r.get(&format!("{prefix}mask")), fnv(want.mask.iter().copied()), "{what}mask");
            assert_eq!(r.usize(&format!("{prefix}regions")), want.regions.len(), "{what}regions");
            let t = format!("{prefix}thresholds");
            let (ti, tp) = r.get(&t).split_once(',').unwrap();
            assert_eq!(
                (ti.parse::<f32>().unwrap(), tp.parse::<f32>().unwrap()),
                (want.thresholds.image, want.thresholds.pixel)
            );
        }
        changed += usize::from(r.get("call_mask") != r.get("plain_mask"));
    }
    assert!(changed > 0, "the options must change some masks, or the test proves nothing");

    // With a profile for the call: options and re-thresholding agree on the golden scale too.
    let golden = of(&records, "profile_options");
    assert_eq!(golden.len(), images.len());
    let mut golden_regions = 0;
    for r in golden {
        assert_eq!(r.get("mode"), "golden");
        for key in ["score", "label", "mask", "regions", "thresholds"] {
            assert_eq!(r.get(&format!("call_{key}")), r.get(&format!("re_{key}")), "{}: {key}", r.get("image"));
        }
        assert_eq!(r.get("call_thresholds"), "0,0.449999988");
        golden_regions += r.usize("call_regions");
    }
    assert!(golden_regions > 0);

    // Skipped maps are refused, not dangling; mask, score and regions stay.
    let skip = &of(&records, "skip")[0];
    assert!(skip.get("anomaly_map").starts_with("LOUPE_STATUS_INVALID_ARGUMENT:"), "{skip:?}");
    assert!(skip.get("anomaly_map").contains("LOUPE_SKIP_ANOMALY_MAP"), "{skip:?}");
    assert!(skip.get("type_map").contains("LOUPE_SKIP_TYPE_MAP"), "{skip:?}");
    assert!(skip.get("rethreshold").starts_with("LOUPE_STATUS_MISMATCH:"), "{skip:?}");
    assert_eq!((skip.get("same_mask"), skip.get("same_score")), ("1", "1"));

    // A vocabulary subset per call = an engine with that vocabulary; re-thresholding cannot change it.
    let narrow_config =
        LoupeConfig::from_text(&format!("{}defects = [\"scratch\"]\n", config_toml("")), loupe_sdk::ConfigFormat::Toml)
            .unwrap();
    let narrow = loupe_dapo::build_engine(&narrow_config).unwrap();
    let classes = of(&records, "classes");
    assert_eq!(classes.len(), images.len());
    for (r, img) in classes.iter().zip(&decoded) {
        let d = narrow.inspect_one(&img.view()).unwrap();
        assert_eq!(r.get("classes"), "normal,scratch");
        assert_eq!((r.f32("score"), r.get("type")), (d.score, d.image_type.as_str()), "{}", r.get("image"));
        assert_eq!(r.get("mask"), fnv(d.mask.iter().copied()));
    }
    let refused = &of(&records, "classes_refused")[0];
    assert!(refused.get("rethreshold").starts_with("LOUPE_STATUS_INVALID_ARGUMENT:"), "{refused:?}");
    assert!(refused.get("rethreshold").contains("LOUPE_OPTION_CLASSES"), "{refused:?}");
    assert!(refused.get("unknown").starts_with("LOUPE_STATUS_VOCABULARY:"), "{refused:?}");
    assert!(refused.get("unknown").contains("no-such-defect"), "{refused:?}");
}

#[test]
fn a_batch_reports_a_corrupt_view_per_image_and_throws_only_for_the_call() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "plain.toml", "");
    let images = fixture_images();
    let records = check(with_images(&["batch".into(), config.into()], &images));
    let engine = rust_engine("");
    let batch = of(&records, "batch");
    assert_eq!(batch.len(), images.len());
    for (i, (r, img)) in batch.iter().zip(fixture_owned_images()).enumerate() {
        assert_eq!(r.usize("index"), i);
        if i == 1 {
            assert_eq!((r.get("status"), r.get("ok"), r.get("has_result")), ("LOUPE_STATUS_IMAGE", "0", "0"));
            let error = r.get("error");
            assert!(
                error.starts_with("`images[1].format`: expected a LOUPE_FORMAT_* value") && error.ends_with("found 0"),
                "{error}"
            );
        } else {
            assert_eq!(
                (r.get("status"), r.get("ok"), r.get("has_result"), r.get("error")),
                ("LOUPE_STATUS_OK", "1", "1", "")
            );
            // Batch and single inspections agree within the bound loupe.h documents.
            let d = engine.inspect_one(&img.view()).unwrap();
            assert!((r.f32("score") - d.score).abs() <= 1e-6, "image {i}: {} vs {}", r.f32("score"), d.score);
        }
    }
    // Every view refused, with one status or two: per image, no throw.
    let all_bad = of(&records, "batch_all_bad");
    let statuses: Vec<(&str, &str, &str)> =
        all_bad.iter().map(|r| (r.get("case"), r.get("threw"), r.get("statuses"))).collect();
    assert_eq!(
        statuses,
        [
            ("format", "0", "LOUPE_STATUS_IMAGE,LOUPE_STATUS_IMAGE,LOUPE_STATUS_IMAGE,LOUPE_STATUS_IMAGE"),
            (
                "null-data",
                "0",
                "LOUPE_STATUS_NULL_ARGUMENT,LOUPE_STATUS_IMAGE,LOUPE_STATUS_NULL_ARGUMENT,LOUPE_STATUS_NULL_ARGUMENT"
            ),
            ("mixed", "0", "LOUPE_STATUS_IMAGE,LOUPE_STATUS_IMAGE,LOUPE_STATUS_IMAGE,LOUPE_STATUS_NULL_ARGUMENT"),
        ]
    );
    assert!(all_bad[0].get("error0").starts_with("`images[0].format`"), "{:?}", all_bad[0]);
    assert!(all_bad[1].get("error0") == "`images[0].data` is NULL", "{:?}", all_bad[1]);
    // Options reach every image of the batch.
    let options = of(&records, "batch_options");
    assert_eq!(options.len(), images.len());
    assert!(options.iter().all(|r| r.get("status") == "LOUPE_STATUS_OK" && r.f32("image_threshold") == 1.0));
    // Failures of the call itself throw loupe::Error.
    let throws: HashMap<&str, &str> =
        of(&records, "batch_throw").iter().map(|r| (r.get("case"), r.get("status"))).collect();
    assert!(
        throws["unknown-word"].starts_with("LOUPE_STATUS_VOCABULARY:")
            && throws["unknown-word"].contains("no-such-defect")
    );
    assert!(
        throws["mutual-too-small"].starts_with("LOUPE_STATUS_MISMATCH:")
            && throws["mutual-too-small"].contains("mutual_min_pool")
    );
    assert!(
        throws["moved-from"].starts_with("LOUPE_STATUS_NULL_ARGUMENT:") && throws["moved-from"].contains("`session`")
    );
    assert_eq!(of(&records, "batch_plain")[0].usize("results"), images.len(), "inspect_batch(views) unchanged");
}

#[test]
fn the_log_callback_receives_the_backend_choice_and_survives_a_throwing_handler() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "cpu.toml", "[postprocess]\nbackend = 'cpu'\n");
    let records = check([OsString::from("log"), config.into()]);
    let info = of(&records, "log");
    let choice =
        info.iter().find(|r| r.get("message").contains("post-processing on the CPU (postprocess.backend = cpu)"));
    let choice = choice.unwrap_or_else(|| panic!("the backend choice was not logged: {info:?}"));
    assert_eq!((choice.get("phase"), choice.get("level")), ("info", "info"));
    assert!(choice.get("target").starts_with("loupe_dapo"), "{choice:?}");
    let counts: HashMap<&str, &Record> = of(&records, "log_count").into_iter().map(|r| (r.get("phase"), r)).collect();
    assert_eq!(counts["warn"].usize("more_verbose_than_warn"), 0, "warn level filters info out");
    let thrown = &of(&records, "log_throw")[0];
    assert!(thrown.usize("thrown") >= 1 && thrown.get("engine_built") == "1", "{thrown:?}");
    assert_eq!(counts["cleared"].usize("delivered"), 0, "clear_log_callback and an empty handler remove it");
    let levels = &of(&records, "log_levels")[0];
    assert_eq!((levels.get("parsed"), levels.get("unknown")), ("1", "1"));
}

#[test]
fn to_json_is_the_result_document() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "cell.toml", CELL);
    // rgba.png: read by OpenCV as CV_8UC4 (BGRA), by the Rust API as RGBA.
    let path = fixture_dir().join("images/rgba.png");
    let records = check([OsString::from("json"), config.into(), tmp.path().into(), path.clone().into()]);
    let d = rust_engine(CELL).inspect_one(&OwnedImage::open(&path).unwrap().view()).unwrap();
    let line = &of(&records, "json")[0];
    assert_eq!((line.f32("score"), line.get("nul_free")), (d.score, "1"));
    let text = std::fs::read_to_string(tmp.path().join("rgba.png.json")).unwrap();
    assert_eq!(text.len(), line.usize("length"));
    assert!(text.contains("\"score\""), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["image"], "rgba.png");
    assert_eq!(v["score"].as_f64().unwrap() as f32, d.score);
    assert_eq!(v["label"], label(&d));
    assert_eq!(v["image_type"], d.image_type.as_str());
    assert_eq!(v["regions"].as_array().unwrap().len(), d.regions.len());
    assert!(!d.regions.is_empty());
    let unnamed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("unnamed.json")).unwrap()).unwrap();
    assert_eq!(unnamed["image"], "", "to_json() without a name");
    assert_eq!(unnamed["score"], v["score"]);
}

#[test]
fn engine_info_and_the_default_engine_say_what_they_hold() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let extra = "[postprocess]\nimage_threshold = 0.25\nmin_region_area = 4\nsegment = 'all'\n";
    let config = write_config(tmp.path(), "info.toml", extra);
    let path = fixture_dir().join("images/gray.png");
    let records = check([OsString::from("info"), config.into(), path.clone().into()]);
    let info = |engine: &str| -> HashMap<String, String> {
        of(&records, "info")
            .into_iter()
            .filter(|r| r.get("engine") == engine)
            .map(|r| (r.get("key").to_string(), r.get("value").to_string()))
            .collect()
    };
    let fixture = rust_engine(extra);
    let [model, bank, post] = fixture.components();
    let g = fixture.backbone().geometry().clone();
    let expected: HashMap<String, String> = [
        ("model_name", model.name),
        ("model_id", model.id),
        ("bank_name", bank.name),
        ("bank_id", bank.id),
        ("postprocessor", post.kind),
        ("input", format!("{}x{}", g.input_size[1], g.input_size[0])),
        ("layers", g.layers.to_string()),
        ("feature_dim", g.feature_dim.to_string()),
        ("min_region_area", "4".into()),
        ("segment", "all".into()),
        ("class_count", (1 + fixture.vocabulary().len()).to_string()),
        ("has_default_profile", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut printed = info("fixture");
    // Floats are printed with %.9g: compared as numbers (the pixel threshold defaults to half the layers).
    for (key, value) in [("image_threshold", 0.25f32), ("pixel_threshold", 0.5 * g.layers as f32)] {
        assert_eq!(printed.remove(key).unwrap().parse::<f32>().unwrap(), value, "{key}");
    }
    assert_eq!(printed, expected, "Engine::info of the fixture engine");

    // Engine::create_default: the embedded model, as the Rust API builds it from the default configuration.
    let embedded = loupe_dapo::build_engine(&LoupeConfig::default()).unwrap();
    let printed = info("default");
    assert_eq!(printed["model_id"], embedded.backbone().info().id);
    assert_eq!(printed["segment"], "anomalous");
    assert_eq!(printed["class_count"].parse::<usize>().unwrap(), 1 + embedded.vocabulary().len());
    let classes = &of(&records, "default_classes")[0];
    assert_eq!(classes.get("count"), classes.get("info_count"));
    let line = &of(&records, "default")[0];
    let d = embedded.inspect_one(&OwnedImage::open(&path).unwrap().view()).unwrap();
    assert_eq!((line.get("mat"), line.f32("score")), ("CV_8UC1", d.score), "the default engine on a gray Mat");
}

/// `key=value` of a vision-cell output line.
fn cell_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no `{key}=` in `{line}`"))
}

#[test]
fn the_vision_cell_applies_options_per_call_rethresholds_logs_and_runs_the_default_engine() {
    if !cpp_toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let program = build_vision_cell(tmp.path());
    let config = write_config(tmp.path(), "cell.toml", CELL);
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let images = fixture_images();
    let (pixel, again) = (3.3f32, 3.5f32);
    let out = run(Command::new(&program)
        .arg(&config)
        .arg(&out_dir)
        .args(["--pixel-threshold", &pixel.to_string(), "--min-area", "3", "--rethreshold", &again.to_string()])
        .args(["--json", "--log-level", "info"])
        .args(&images));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    // Loupe's messages at info level, prefixed; the engine's identity from Engine::info.
    assert!(stderr.contains("loupe: info loupe_dapo::postprocess::backend: post-processing on the "), "{stderr}");
    assert!(stderr.contains("loupe: info vision_cell: engine model=tiny-random-seed0 "), "{stderr}");
    let per_call = |pixel: f32| {
        rust_engine(&format!(
            "[postprocess]\nimage_threshold = 0.046\npixel_threshold = {pixel:?}\nmin_region_area = 3\n"
        ))
    };
    let (engine, rethresholded) = (per_call(pixel), per_call(again));
    let verdicts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("image ")).collect();
    let rethresholds: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  rethreshold ")).collect();
    assert_eq!((verdicts.len(), rethresholds.len()), (images.len(), images.len()), "{stdout}");
    let mut differ = 0;
    for ((path, verdict), re) in images.iter().zip(verdicts).zip(rethresholds) {
        let image = OwnedImage::open(path).unwrap();
        let d = engine.inspect_one(&image.view()).unwrap();
        assert_eq!(cell_field(verdict, "score").parse::<f32>().unwrap(), d.score, "{verdict}");
        assert_eq!(cell_field(verdict, "regions").parse::<usize>().unwrap(), d.regions.len(), "{verdict}");
        let r = rethresholded.inspect_one(&image.view()).unwrap();
        assert_eq!(cell_field(re, "pixel_threshold").parse::<f32>().unwrap(), again);
        assert_eq!(cell_field(re, "label"), label(&r), "{re}");
        assert_eq!(cell_field(re, "regions").parse::<usize>().unwrap(), r.regions.len(), "{re}");
        let mask_pixels = r.mask.iter().filter(|&&m| m != 0).count();
        assert_eq!(cell_field(re, "mask_pixels").parse::<usize>().unwrap(), mask_pixels, "{re}");
        differ += usize::from(r.regions.len() != d.regions.len());
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join(format!("{stem}.json"))).unwrap()).unwrap();
        assert_eq!(
            (json["image"].as_str(), json["score"].as_f64().map(|s| s as f32)),
            (Some(file_name(path)), Some(d.score))
        );
    }
    assert!(differ > 0, "re-thresholding changed no region count: the test proves nothing");

    // `-`: the embedded default model, no configuration file; warn level (the default) keeps info messages out.
    let out = run(Command::new(&program).arg("-").arg(&out_dir).arg(&images[0]));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let embedded = loupe_dapo::build_engine(&LoupeConfig::default()).unwrap();
    let classes =
        std::iter::once("normal".to_string()).chain(embedded.vocabulary().iter().cloned()).collect::<Vec<_>>();
    assert!(
        stdout.starts_with(&format!("loupe {}, classes: {}\n", env!("CARGO_PKG_VERSION"), classes.join(" "))),
        "{stdout}"
    );
    let d = embedded.inspect_one(&OwnedImage::open(&images[0]).unwrap().view()).unwrap();
    let verdict = stdout.lines().find(|l| l.starts_with("image ")).unwrap();
    assert_eq!(cell_field(verdict, "score").parse::<f32>().unwrap(), d.score);
    assert!(!stderr.contains("loupe: info"), "{stderr}");
    // Bad values of the new flags: usage errors, status 2.
    for bad in [["--log-level", "loud"], ["--pixel-threshold", "x"], ["--min-area", "0"], ["--segment", "some"]] {
        let out = Command::new(&program).arg("-").arg(&out_dir).args(bad).arg(&images[0]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("error: {} expects", bad[0])), "{bad:?}");
    }
}

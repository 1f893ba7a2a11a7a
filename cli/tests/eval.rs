//! End-to-end tests of `loupe eval` on the committed 13-image MVTec-layout fixture (`tests/fixtures/mvtec-mini`,
//! downscaled Magnetic-Tile images) with the tiny random-weight fixture model: the three kinds of output exist and
//! agree with each other and with the data set, filters and the MVTec `test/` layout work, unreadable images
//! are reported and counted, and the training-free baseline is reported beside the model (or not, with
//! `--no-baseline`).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use loupe_eval::baseline::LocalContrast;
use loupe_sdk::OwnedImage;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mini() -> PathBuf {
    repo().join("tests/fixtures/mvtec-mini")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `loupe eval DATASET --model --prompts ...extra`.
fn eval(dataset: &Path, out: &Path, extra: &[&str]) -> Output {
    let parity = repo().join("tests/fixtures/parity");
    let model = parity.join("model");
    let bank = parity.join("bank.safetensors");
    let mut args = vec!["eval", path(dataset), "--model", path(&model), "--prompts", path(&bank), "--out", path(out)];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_loupe")).args(&args).env_remove("LOUPE_LOG").output().expect("loupe runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The data set's images by folder, as found on disk (not hard-coded).
fn images_on_disk(root: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() && name != "ground_truth" {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|f| f.extension().is_some_and(|x| x == "png"))
                .collect();
            files.sort();
            out.insert(name, files);
        }
    }
    out
}

/// Mann-Whitney AUROC of the per-image scores (`key`) written in the report, for a consistency check.
fn auroc(images: &[Value], key: &str) -> f64 {
    let pairs: Vec<(f64, bool)> =
        images.iter().map(|i| (i[key].as_f64().unwrap(), i["folder"].as_str().unwrap() != "good")).collect();
    let (mut wins, mut n) = (0.0, 0.0);
    for &(sp, lp) in &pairs {
        for &(sn, ln) in &pairs {
            if lp && !ln {
                n += 1.0;
                wins += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    wins / n
}

fn in_unit(v: &Value, what: &str) {
    if let Some(x) = v.as_f64() {
        assert!((0.0..=1.0).contains(&x), "{what} = {x}");
    } else {
        assert!(v.is_null(), "{what} is {v}");
    }
}

#[test]
fn eval_writes_consistent_json_markdown_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = eval(&mini(), &out, &["--defects", "blowhole,crack,uneven"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let disk = images_on_disk(&mini());
    let total: usize = disk.values().map(Vec::len).sum();
    assert!(stdout.contains(&format!("evaluated {total} of {total} images (0 failed)")), "{stdout}");

    let r = read_json(&out.join("report.json"));
    assert_eq!(r["counts"]["evaluated"], total);
    assert_eq!(r["counts"]["failed"], 0);
    assert_eq!(r["dataset"]["layout"], "flat");
    for (folder, files) in &disk {
        assert_eq!(r["dataset"]["by_folder"][folder], files.len(), "{folder}");
    }
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), total);
    let pixels: u64 = images.iter().map(|i| i["size"][0].as_u64().unwrap() * i["size"][1].as_u64().unwrap()).sum();
    for i in images {
        assert!(i["inference_ms"].as_f64().unwrap() > 0.0, "timing recorded per image");
        in_unit(&i["score"], "image score");
    }

    // Metrics: in [0, 1] or null with a reason; the image AUROC agrees with the scores the report lists.
    let overall = &r["overall"];
    for key in ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"] {
        in_unit(&overall[key], key);
        assert!(!overall[key].is_null() || overall["undefined"][key].is_string(), "{key} null without a reason");
    }
    let expected = auroc(images, "score");
    assert!((overall["image_auroc"].as_f64().unwrap() - expected).abs() < 1e-9, "image AUROC vs scores");
    assert_eq!(overall["images"], total);
    assert_eq!(overall["pixels"], pixels, "every pixel of every image counted once");
    let defects: usize = disk.iter().filter(|(f, _)| *f != "good").map(|(_, v)| v.len()).sum();
    assert_eq!(overall["defective"], defects);
    for (folder, files) in disk.iter().filter(|(f, _)| *f != "good") {
        let set = &r["per_type"][folder];
        assert_eq!(set["images"], files.len() + disk["good"].len(), "{folder}: good + its images");
        for key in ["image_auroc", "pixel_auroc", "aupro"] {
            in_unit(&set[key], &format!("{folder}.{key}"));
        }
    }
    assert!(overall["bounds"]["pixel_auroc"].as_f64().unwrap() >= 0.0);

    // Defect types: the vocabulary is the folders; every image is in the image confusion matrix, every pixel in
    // the pixel one.
    let mt = &r["multitype"];
    assert_eq!(mt["vocabulary"], serde_json::json!(["blowhole", "crack", "uneven"]));
    for folder in ["blowhole", "crack", "uneven"] {
        assert_eq!(mt["mapping"][folder], folder);
    }
    let sum = |m: &Value| -> u64 {
        m["counts"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum()
    };
    assert_eq!(sum(&mt["image_confusion"]) as usize, total);
    assert_eq!(sum(&mt["pixel_confusion"]), pixels);
    // "Pixels typed right" of a type = its diagonal cell over its ground-truth row of the pixel confusion.
    let labels: Vec<&str> =
        mt["pixel_confusion"]["rows"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let counts = mt["pixel_confusion"]["counts"].as_array().unwrap();
    for t in mt["per_type"].as_array().unwrap() {
        let k = labels.iter().position(|l| *l == t["word"].as_str().unwrap()).expect("type in the confusion labels");
        let row: Vec<u64> = counts[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let expected = row[k] as f64 / row.iter().sum::<u64>() as f64;
        assert!((t["typed_right"].as_f64().unwrap() - expected).abs() < 1e-12, "{t}");
    }
    for key in ["macro_ovr_auroc", "macro_ovr_ap", "macro_f1", "image_type_accuracy"] {
        in_unit(&mt[key], key);
    }

    // Markdown: the tables, the same numbers as the JSON, the plots it links.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let all_row = md.lines().find(|l| l.starts_with("| **all** |")).expect("overall row");
    assert!(all_row.contains(&format!("{:.4}", overall["image_auroc"].as_f64().unwrap())), "{all_row}");
    for folder in disk.keys().filter(|f| *f != "good") {
        assert!(md.lines().any(|l| l.starts_with(&format!("| {folder} |"))), "row of {folder}");
    }
    assert!(md.contains("docs/eval.md"));
    check_baseline(&r, &md, &disk);
    let outputs: Vec<&str> = r["outputs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for png in ["roc.png", "pr.png", "pro.png", "per_type.png", "worst_cases.png"] {
        assert!(outputs.contains(&png), "{png} listed");
        assert!(md.contains(&format!("]({png})")), "{png} linked from report.md");
        let img = image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(img.width() >= 200 && img.height() >= 150, "{png} is {}x{}", img.width(), img.height());
    }
}

/// The baseline's part of a default run: present, in [0, 1], per type for the folders on disk, agreeing with the
/// per-image baseline scores and with the SDK's baseline recomputed here, and beside the model in `report.md`.
fn check_baseline(r: &Value, md: &str, disk: &BTreeMap<String, Vec<PathBuf>>) {
    let b = &r["baseline"];
    assert_eq!(b["method"], "local contrast");
    assert_eq!(b["window"], LocalContrast::DEFAULT_WINDOW);
    let keys = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"];
    for key in keys {
        // The fixture has good and defective images and defect regions: every metric is defined.
        assert!(b["overall"][key].is_number(), "baseline {key}: {}", b["overall"]);
        in_unit(&b["overall"][key], &format!("baseline {key}"));
    }
    let folders: Vec<&String> = disk.keys().filter(|f| *f != "good").collect();
    let typed: Vec<&String> = b["per_type"].as_object().unwrap().keys().collect();
    assert_eq!(typed, folders, "one baseline set per defect folder on disk");
    for folder in folders {
        let set = &b["per_type"][folder];
        assert_eq!(set["images"], r["per_type"][folder]["images"], "{folder}: same images as the model's set");
        for key in keys {
            in_unit(&set[key], &format!("baseline {folder}.{key}"));
        }
    }
    // Same pixels as the model, every one counted once; the image AUROC agrees with the scores listed.
    assert_eq!(b["overall"]["pixels"], r["overall"]["pixels"]);
    assert_eq!(b["overall"]["regions"], r["overall"]["regions"]);
    let images = r["images"].as_array().unwrap();
    let expected = auroc(images, "baseline_score");
    assert!((b["overall"]["image_auroc"].as_f64().unwrap() - expected).abs() < 1e-9, "baseline AUROC vs scores");
    // Each listed score is the SDK baseline's score of that image's pixels.
    for i in images {
        let image = OwnedImage::open(Path::new(i["image"].as_str().unwrap())).unwrap();
        let map = LocalContrast::default().anomaly_map(&image.view());
        let score = f64::from(LocalContrast::image_score(&map));
        assert!((i["baseline_score"].as_f64().unwrap() - score).abs() < 1e-6, "{}: {score}", i["image"]);
        in_unit(&i["baseline_score"], "baseline image score");
    }
    assert!(r["timing"]["baseline_mean_ms"].as_f64().unwrap() > 0.0);
    // report.md: the comparison table, the model's and the baseline's numbers in the overall row.
    let section = md.split("### Model beside a training-free baseline").nth(1).expect("baseline section");
    let row = section.lines().find(|l| l.starts_with("| **all** |")).expect("overall row beside the baseline");
    for (who, set) in [("model", &r["overall"]), ("baseline", &b["overall"])] {
        for key in ["image_auroc", "pixel_auroc", "aupro"] {
            assert!(row.contains(&format!("{:.4}", set[key].as_f64().unwrap())), "{who} {key} in {row}");
        }
    }
    assert!(md.contains("no defect types"), "type metrics are said to be the model's only");
}

#[test]
fn no_baseline_leaves_it_out_and_a_bad_window_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = eval(&mini(), &out, &["--include", "exp6*", "--worst", "0", "--no-baseline"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("baseline"));
    let r = read_json(&out.join("report.json"));
    assert!(r.get("baseline").is_none(), "no baseline section");
    assert!(r["timing"].get("baseline_mean_ms").is_none());
    assert!(r["images"].as_array().unwrap().iter().all(|i| i.get("baseline_score").is_none()));
    assert!(r["overall"]["image_auroc"].is_number(), "the model's metrics are still there");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!md.contains("baseline"), "no baseline in report.md");

    let o = eval(&mini(), &out, &["--baseline-window", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--baseline-window") && stderr(&o).contains("odd"), "{}", stderr(&o));
    // `--baseline-window` reaches the baseline: the scores are those of that window.
    let o = eval(&mini(), &out, &["--include", "exp6*", "--worst", "0", "--baseline-window", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["baseline"]["window"], 5);
    let lc = LocalContrast::new(5, LocalContrast::DEFAULT_SMOOTHING).unwrap();
    for i in r["images"].as_array().unwrap() {
        let image = OwnedImage::open(Path::new(i["image"].as_str().unwrap())).unwrap();
        let score = f64::from(LocalContrast::image_score(&lc.anomaly_map(&image.view())));
        assert!((i["baseline_score"].as_f64().unwrap() - score).abs() < 1e-6, "{}", i["image"]);
    }
}

/// Copies the fixture as MVTec AD lays a category out: `CAT/test/<type>/`, `CAT/ground_truth/<type>/`.
fn mvtec_copy(root: &Path) -> PathBuf {
    let cat = root.join("tile");
    for (folder, files) in images_on_disk(&mini()) {
        let dir = cat.join("test").join(&folder);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    for e in std::fs::read_dir(mini().join("ground_truth")).unwrap() {
        let src = e.unwrap().path();
        let dst = cat.join("ground_truth").join(src.file_name().unwrap());
        std::fs::create_dir_all(&dst).unwrap();
        for m in std::fs::read_dir(&src).unwrap() {
            let m = m.unwrap().path();
            std::fs::copy(&m, dst.join(m.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(cat.join("train/good")).unwrap();
    cat
}

#[test]
fn category_layout_stem_filter_and_unmapped_folders() {
    let tmp = tempfile::tempdir().unwrap();
    mvtec_copy(tmp.path());
    let out = tmp.path().join("out");
    let o = eval(tmp.path(), &out, &["--category", "tile", "--include", "exp5*,exp6*", "--defects", "blowhole,crack"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("folder `uneven` is not a word of the vocabulary"), "{}", stderr(&o));
    let r = read_json(&out.join("report.json"));
    let disk = images_on_disk(&mini());
    let kept: usize = disk
        .values()
        .flatten()
        .filter(|p| {
            let s = p.file_stem().unwrap().to_string_lossy();
            s.starts_with("exp5") || s.starts_with("exp6")
        })
        .count();
    let all: usize = disk.values().map(Vec::len).sum();
    assert!(kept < all, "the fixture has images outside the test runs");
    assert_eq!(r["dataset"]["layout"], "mvtec");
    assert_eq!(r["counts"]["evaluated"], kept);
    assert_eq!(r["dataset"]["filtered_out"], all - kept);
    assert!(r["images"].as_array().unwrap().iter().all(|i| {
        let f = i["image"].as_str().unwrap();
        f.contains("/exp5") || f.contains("/exp6")
    }));
    assert!(r["multitype"]["mapping"]["uneven"].is_null());
    let words: Vec<&str> =
        r["multitype"]["per_type"].as_array().unwrap().iter().map(|t| t["word"].as_str().unwrap()).collect();
    assert_eq!(words, vec!["blowhole", "crack"]);
    // Images of an unmapped folder still count for the anomaly metrics.
    assert!(r["per_type"]["uneven"]["images"].as_u64().unwrap() > 0);
}

#[test]
fn default_vocabulary_is_the_type_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = eval(&mini(), &out, &["--include", "exp6*", "--worst", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_json(&out.join("report.json"));
    let folders: Vec<String> = images_on_disk(&mini()).into_keys().filter(|f| f != "good").collect();
    assert_eq!(r["multitype"]["vocabulary"], serde_json::json!(folders));
    assert!(!out.join("worst_cases.png").exists(), "--worst 0 draws no gallery");
    assert!(out.join("roc.png").exists());
}

#[test]
fn unreadable_images_and_missing_masks_are_reported_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let cat = mvtec_copy(&root);
    std::fs::write(cat.join("test/good/broken.png"), b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let any_crack = images_on_disk(&mini())["crack"][0].clone();
    std::fs::copy(any_crack, cat.join("test/crack/no_mask.png")).unwrap();
    let out = tmp.path().join("out");
    let o = eval(&cat, &out, &["--defects", "blowhole,crack,uneven"]);
    assert_eq!(o.status.code(), Some(1), "some images failed: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("broken.png") && err.contains("no_mask_mask.png"), "{err}");
    let r = read_json(&out.join("report.json"));
    let total: usize = images_on_disk(&mini()).values().map(Vec::len).sum();
    assert_eq!(r["counts"]["evaluated"], total);
    assert_eq!(r["counts"]["failed"], 2);
    assert_eq!(r["counts"]["selected"], total + 2);
    let stages: Vec<&str> = r["failures"].as_array().unwrap().iter().map(|f| f["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, vec!["read mask", "read image"], "crack/ sorts before good/");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Failed images") && md.contains("broken.png"));
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = eval(&tmp.path().join("nowhere"), &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nowhere") && stderr(&o).contains("no such data set folder"), "{}", stderr(&o));
    let o = eval(&mini(), &out, &["--category", "bottle"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no category folder `bottle`"), "{}", stderr(&o));
    let o = eval(&mini(), &out, &["--include", "exp[5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--include"), "{}", stderr(&o));
    let o = eval(&mini(), &out, &["--include", "nothing*"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no images selected"), "{}", stderr(&o));
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = eval(&empty, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no type folder"), "{}", stderr(&o));
    let o = eval(&mini(), &out, &["--fpr-limit", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--fpr-limit"), "{}", stderr(&o));
    assert!(!out.join("report.json").exists(), "nothing written when nothing could run");
}

//! The `loupe` command with reference evidence, on the committed mini data set and the tiny fixture model:
//! `eval --references / --mutual` beside text only, image-label-only data sets, `profile create / show`,
//! `calibrate`, `inspect --profile / --mutual`, and the refusals (shots, overlaps, unreadable references,
//! profiles for another model, corrupt profiles).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mini() -> PathBuf {
    repo().join("tests/fixtures/mvtec-mini")
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `loupe ARGS --model --prompts` of the tiny fixture model, CPU post-processing.
fn loupe(args: &[String]) -> Output {
    let parity = repo().join("tests/fixtures/parity");
    let mut all: Vec<String> = args.to_vec();
    all.extend(["--model".into(), s(&parity.join("model")), "--prompts".into(), s(&parity.join("bank.safetensors"))]);
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(&all)
        .env("LOUPE_POSTPROCESS__BACKEND", "cpu")
        .env_remove("LOUPE_LOG")
        .output()
        .unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Two good images used as references; evaluations leave them out with [`NOT_REFERENCES`].
fn references() -> Vec<String> {
    vec![s(&mini().join("good/exp4*")), s(&mini().join("good/exp6_num_2697.png"))]
}

/// `--exclude` globs of the reference images.
const NOT_REFERENCES: &str = "exp4*,exp6_num_2697";

/// `bytes` with the first occurrence of `from` replaced by `to` (same length).
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn eval_with_golden_samples_reports_the_mode_beside_text_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("golden");
    let mut a = args(&["eval"]);
    a.extend([s(&mini()), "--exclude".into(), "exp4*".into(), "--out".into(), s(&out)]);
    a.extend(["--references".into(), s(&mini().join("good")), "--shots".into(), "2".into()]);
    // Both good exp4 images are references only if the evaluated set leaves them out: refused otherwise.
    let o = loupe(&a);
    assert!(!o.status.success());
    assert!(text(&o).contains("--references") && text(&o).contains("shared image"), "{}", text(&o));

    let mut a = args(&["eval"]);
    a.extend([s(&mini()), "--exclude".into(), NOT_REFERENCES.into(), "--out".into(), s(&out), "--no-baseline".into()]);
    a.push("--references".into());
    a.extend(references());
    let o = loupe(&a);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("text only (same run)"), "{}", text(&o));
    let r = json(&out.join("report.json"));
    assert_eq!(r["mode"]["mode"], "golden");
    assert_eq!(r["mode"]["settings"]["reference_images"].as_array().unwrap().len(), 2);
    assert!(r["text_only"]["overall"]["image_auroc"].is_number());
    let images = r["images"].as_array().unwrap();
    assert!(images.iter().all(|i| i["mode"] == "golden" && i["text_score"].is_number()));
    assert!(images.iter().all(|i| i["reference_score"].as_f64().unwrap() >= 0.0));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("golden scoring beside text only") && md.contains("| text only |"), "{md}");
}

#[test]
fn eval_with_mutual_scoring_streams_through_a_window() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mutual");
    let mut a = args(&["eval"]);
    a.extend([s(&mini()), "--out".into(), s(&out), "--mutual".into(), "--mutual-window".into(), "6".into()]);
    let o = loupe(&a);
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&out.join("report.json"));
    assert_eq!(r["mode"]["mode"], "mutual");
    assert_eq!(r["mode"]["settings"]["mutual_window"], 6);
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 13, "priming images are not counted twice");
    assert!(images.iter().all(|i| i["mode"] == "mutual"), "the primed window is full for every counted image");
    // A window larger than the data set shrinks to the other images; too few images is an error.
    let mut a = args(&["eval"]);
    a.extend([s(&mini()), "--out".into(), s(&out), "--mutual".into(), "--include".into(), "exp4*".into()]);
    let o = loupe(&a);
    assert!(!o.status.success());
    assert!(text(&o).contains("mutual_min_pool"), "{}", text(&o));
}

#[test]
fn image_labels_only_give_image_metrics_and_undefined_pixel_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("labels-only");
    for folder in ["good", "crack"] {
        std::fs::create_dir_all(data.join(folder)).unwrap();
        for e in std::fs::read_dir(mini().join(folder)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, data.join(folder).join(p.file_name().unwrap())).unwrap();
        }
    }
    let out = tmp.path().join("out");
    let o = loupe(&[args(&["eval"]), vec![s(&data), "--out".into(), s(&out)]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("image level only"), "{}", text(&o));
    let r = json(&out.join("report.json"));
    assert_eq!(r["counts"]["failed"], 0);
    assert!(r["overall"]["image_auroc"].is_number());
    assert!(r["overall"]["pixel_auroc"].is_null());
    let why = r["overall"]["undefined"]["pixel_auroc"].as_str().unwrap();
    assert!(why.contains("crack") && why.contains("image labels only"), "{why}");
}

#[test]
fn reference_refusals_name_what_was_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let out = s(&tmp.path().join("out"));
    let base =
        [args(&["eval"]), vec![s(&mini()), "--out".into(), out.clone(), "--exclude".into(), NOT_REFERENCES.into()]]
            .concat();
    let o =
        loupe(&[base.clone(), vec!["--references".into()], references(), vec!["--shots".into(), "5".into()]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--shots") && text(&o).contains("1 to 2"), "{}", text(&o));
    let o = loupe(&[base.clone(), vec!["--references".into(), s(&tmp.path().join("nowhere*"))]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("nowhere") && text(&o).contains("no image files"), "{}", text(&o));
    let broken = tmp.path().join("refs");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(mini().join("good/exp4_num_52715.png"), broken.join("a.png")).unwrap();
    std::fs::write(broken.join("b.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let o = loupe(&[base, vec!["--references".into(), s(&broken)]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("b.png"), "an unreadable reference is named: {}", text(&o));
}

#[test]
fn profiles_are_created_shown_calibrated_and_used_by_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("customer-a.safetensors");
    let create = [
        args(&["profile", "create", "--references"]),
        references(),
        vec!["--defects".into(), "crack,burr".into(), "--out".into(), s(&profile)],
    ]
    .concat();
    let o = loupe(&create);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 reference images"), "{}", text(&o));
    let shown = Command::new(env!("CARGO_BIN_EXE_loupe")).args(["profile", "show", &s(&profile)]).output().unwrap();
    let meta: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(meta["name"], "customer-a");
    assert_eq!(meta["vocabulary"], serde_json::json!(["crack", "burr"]));
    assert!(meta["calibration"].is_null() && meta["memory_bytes"].as_u64().unwrap() > 0);

    // Calibrate on good images that are not references, with defective images and their masks.
    let cal = [
        args(&["calibrate", "--profile"]),
        vec![s(&profile), "--good".into(), s(&mini().join("good/exp5*")), s(&mini().join("good/exp6_num_37675.png"))],
        vec!["--fpr".into(), "0.2".into()],
        vec!["--defective".into(), s(&mini().join("crack")), s(&mini().join("blowhole"))],
    ]
    .concat();
    let o = loupe(&cal);
    assert!(o.status.success(), "{}", text(&o));
    let shown = Command::new(env!("CARGO_BIN_EXE_loupe")).args(["profile", "show", &s(&profile)]).output().unwrap();
    let meta: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let c = &meta["calibration"];
    assert_eq!(c["mode"], "golden");
    assert_eq!(c["method"], "f1");
    assert_eq!((c["good_images"].as_u64(), c["defective_images"].as_u64()), (Some(3), Some(6)));
    assert!(c["measured"]["pixel_f1"].is_number(), "masks were found by the MVTec convention: {c}");
    let (image_t, pixel_t) = (c["image_threshold"].as_f64().unwrap(), c["pixel_threshold"].as_f64().unwrap());
    // Calibrating with a reference among the good images is refused.
    let o = loupe(&[args(&["calibrate", "--profile"]), vec![s(&profile), "--good".into()], references()].concat());
    assert!(!o.status.success() && text(&o).contains("shared image"), "{}", text(&o));

    // inspect --profile: the calibrated thresholds and the golden evidence are in every result.
    let out = tmp.path().join("inspected");
    let o = loupe(
        &[args(&["inspect"]), vec![s(&mini().join("crack")), "--profile".into(), s(&profile), "--out".into(), s(&out)]]
            .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&out.join("exp5_num_249786.json"));
    assert!((r["thresholds"]["image"].as_f64().unwrap() - image_t).abs() < 1e-6);
    assert!((r["thresholds"]["pixel"].as_f64().unwrap() - pixel_t).abs() < 1e-6);
    assert_eq!(r["evidence"]["mode"], "golden");
    assert_eq!(r["evidence"]["profile"], "customer-a");
    assert_eq!(r["map_range"], serde_json::json!([0.0, 1.0]));
    let n = r["normalized_score"].as_f64().unwrap();
    assert_eq!(n > 0.5, r["label"] == "anomalous", "{r}");

    // A profile of another model and a corrupt profile are refused, naming the file.
    let bytes = std::fs::read(&profile).unwrap();
    let other = tmp.path().join("other.safetensors");
    let id = meta["model_id"].as_str().unwrap();
    std::fs::write(&other, replace_bytes(&bytes, id.as_bytes(), b"ffffffffffffffff")).unwrap();
    let o = loupe(
        &[args(&["inspect"]), vec![s(&mini().join("crack")), "--profile".into(), s(&other), "--out".into(), s(&out)]]
            .concat(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("other.safetensors") && text(&o).contains("another backbone"), "{}", text(&o));
    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    let o = loupe(
        &[args(&["inspect"]), vec![s(&mini().join("crack")), "--profile".into(), s(&corrupt), "--out".into(), s(&out)]]
            .concat(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("corrupt.safetensors"), "{}", text(&o));
}

#[test]
fn inspect_with_mutual_scoring_fills_the_window_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let folders: Vec<String> = ["good", "blowhole", "crack", "uneven"].iter().map(|f| s(&mini().join(f))).collect();
    let o = loupe(&[args(&["inspect"]), folders, vec!["--mutual".into(), "--out".into(), s(&out)]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let mut results: Vec<Value> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| json(&p))
        .collect();
    results.sort_by_key(|r| r["evidence"]["pool"].as_u64());
    let filling = results.iter().filter(|r| r["evidence"]["window_filling"] == true).count();
    assert_eq!(filling, 4, "reference.mutual_min_pool images are scored with text alone");
    assert_eq!(results.len(), 13);
    assert_eq!(results.iter().filter(|r| r["evidence"]["mode"] == "mutual").count(), 13 - 4);
}

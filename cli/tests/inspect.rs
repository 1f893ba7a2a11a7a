//! End-to-end tests of `loupe inspect` and `loupe schema` on the committed tiny fixture model and on the embedded
//! default model, including the bad inputs an inspection cell meets: corrupt images, missing or malformed model
//! files, a prompt bank made for another backbone or dimension, a malformed configuration.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/parity")
}

fn loupe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loupe")).args(args).env_remove("LOUPE_LOG").output().expect("loupe runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A copy of the fixture model directory that a test may damage.
fn model_copy(tmp: &Path) -> PathBuf {
    let dst = tmp.join("model");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixtures().join("model")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// The fixture bank with some metadata fields replaced.
fn bank_with(tmp: &Path, changes: &[(&str, &str)]) -> PathBuf {
    let bytes = std::fs::read(fixtures().join("bank.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: HashMap<String, String> = header.metadata().clone().unwrap();
    for (k, v) in changes {
        meta.insert((*k).into(), (*v).into());
    }
    let out = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    let p = tmp.join("bank.safetensors");
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn inspect_writes_four_outputs_per_image() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let model = fixtures().join("model");
    let bank = fixtures().join("bank.safetensors");
    let images = fixtures().join("images");
    let o = loupe(&["inspect", path(&images), "--model", path(&model), "--prompts", path(&bank), "--out", path(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stems: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(stems.len() >= 3);
    for s in &stems {
        for suffix in ["_heatmap.png", "_mask.png", "_overlay.png"] {
            let f = out.join(format!("{s}{suffix}"));
            let img = image::open(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!((img.width(), img.height()), (64, 64), "{} has the input's size", f.display());
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("{s}.json"))).unwrap()).unwrap();
        let score = json["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(json["label"], if score > 0.5 { "anomalous" } else { "normal" });
        assert_eq!(json["thresholds"]["image"], 0.5);
        assert_eq!(json["thresholds"]["pixel"], 2.0, "default pixel threshold = half of 4 layers");
        assert!(json["regions"].is_array());
        assert!(json["components"]["backbone"]["id"].as_str().unwrap().len() >= 8);
        let probs = json["class_probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 4, "normal + the bank's three words");
    }
}

#[test]
fn defects_option_adds_a_new_word_and_restricts_the_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let image = fixtures().join("images").join("gray.png");
    let model = fixtures().join("model");
    let bank = fixtures().join("bank.safetensors");
    let o = loupe(&[
        "inspect",
        path(&image),
        "--model",
        path(&model),
        "--prompts",
        path(&bank),
        "--out",
        path(tmp.path()),
        "--defects",
        "hole,burr",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("gray.json")).unwrap()).unwrap();
    let mut classes: Vec<&str> = json["class_probabilities"].as_object().unwrap().keys().map(String::as_str).collect();
    classes.sort();
    assert_eq!(classes, ["burr", "hole", "normal"]);
}

#[test]
fn corrupt_image_is_named_and_the_others_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(fixtures().join("images/gray.png"), inputs.join("a_good.png")).unwrap();
    std::fs::write(inputs.join("b_corrupt.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtruncated").unwrap();
    let out = tmp.path().join("out");
    let o = loupe(&[
        "inspect",
        path(&inputs),
        "--model",
        path(&fixtures().join("model")),
        "--prompts",
        path(&fixtures().join("bank.safetensors")),
        "--out",
        path(&out),
    ]);
    assert_eq!(o.status.code(), Some(1), "a failed image makes the exit status 1");
    assert!(stderr(&o).contains("b_corrupt.png"), "{}", stderr(&o));
    assert!(out.join("a_good.json").is_file() && out.join("a_good_overlay.png").is_file());
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 failed"));
}

fn inspect_with(model: &Path, bank: &Path, extra: &[&str]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let image = fixtures().join("images/gray.png");
    let mut args = vec!["inspect", path(&image), "--model", path(model), "--prompts", path(bank), "--out"];
    let out = tmp.path().join("out");
    args.push(path(&out));
    args.extend_from_slice(extra);
    loupe(&args)
}

#[test]
fn missing_or_malformed_model_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_copy(tmp.path());
    std::fs::remove_file(model.join("text_encoder.onnx")).unwrap();
    let o = inspect_with(&model, &fixtures().join("bank.safetensors"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("text_encoder.onnx") && stderr(&o).contains("missing"), "{}", stderr(&o));

    let model = model_copy(&tmp.path().join("second"));
    std::fs::write(model.join("image_encoder.onnx"), b"this is not protobuf").unwrap();
    let o = inspect_with(&model, &fixtures().join("bank.safetensors"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("image_encoder.onnx"), "{}", stderr(&o));

    let model = model_copy(&tmp.path().join("third"));
    let meta = std::fs::read_to_string(model.join("loupe-model.json")).unwrap();
    std::fs::write(model.join("loupe-model.json"), meta.replace("\"patch_size\": 8", "\"patch_size\": 7")).unwrap();
    let o = inspect_with(&model, &fixtures().join("bank.safetensors"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("loupe-model.json") && stderr(&o).contains("image.grid"), "{}", stderr(&o));
}

#[test]
fn bank_for_another_backbone_or_dimension_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bank = bank_with(tmp.path(), &[("model_id", "0000000000000000")]);
    let o = inspect_with(&fixtures().join("model"), &bank, &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("bank.safetensors") && e.contains("another backbone") && e.contains("0000000000000000"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    let bank = bank_with(tmp.path(), &[("embed_dim", "768")]);
    let o = inspect_with(&fixtures().join("model"), &bank, &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("bank.safetensors") && e.contains("embed_dim") && e.contains("768"), "{e}");
}

#[test]
fn malformed_configuration_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("loupe.toml");
    std::fs::write(&cfg, "[postprocess]\nimage_threshold = 1.5\n").unwrap();
    let o = inspect_with(&fixtures().join("model"), &fixtures().join("bank.safetensors"), &["--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("loupe.toml") && e.contains("postprocess.image_threshold") && e.contains("1.5"), "{e}");
}

/// `loupe inspect` on `inputs` with `extra` options, no model or bank from the environment; outputs in `out`.
fn inspect_into(inputs: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["inspect", path(inputs), "--out", path(out)];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(&args)
        .env_remove("LOUPE_LOG")
        .env_remove("LOUPE_MODEL__DIR")
        .env_remove("LOUPE_PROMPTS__BANK")
        .output()
        .expect("loupe runs")
}

/// The committed files of the embedded default model (`plugins/default-model/`).
fn default_model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/default-model")
}

#[test]
fn inspect_with_no_model_options_runs_the_embedded_default_model() {
    let tmp = tempfile::tempdir().unwrap();
    let images = fixtures().join("images");
    let (embedded, on_disk) = (tmp.path().join("embedded"), tmp.path().join("on-disk"));
    let o = inspect_into(&images, &embedded, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.matches("model: embedded default (").count(), 1, "announced once: {e}");
    assert!(e.contains("prompt bank: embedded default"), "{e}");

    // The same model and bank read from the committed files: the outputs must be the same bytes, so what the
    // binary embeds is what `plugins/default-model/` holds, loaded through the same code.
    let model = default_model_dir().join("model");
    let bank = default_model_dir().join("bank.safetensors");
    let o = inspect_into(&images, &on_disk, &["--model", path(&model), "--prompts", path(&bank)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("model: {} (", model.display())), "{}", stderr(&o));

    let mut compared = 0;
    for entry in std::fs::read_dir(&images).unwrap() {
        let stem = entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(embedded.join(format!("{stem}.json"))).unwrap()).unwrap();
        assert!((0.0..=1.0).contains(&json["score"].as_f64().unwrap()), "{stem}: {json}");
        let mask = image::open(embedded.join(format!("{stem}_mask.png"))).unwrap();
        assert!(mask.width() > 0 && mask.height() > 0);
        for suffix in [".json", "_mask.png", "_heatmap.png", "_overlay.png"] {
            let name = format!("{stem}{suffix}");
            assert_eq!(
                std::fs::read(embedded.join(&name)).unwrap(),
                std::fs::read(on_disk.join(&name)).unwrap(),
                "{name} differs between the embedded model and plugins/default-model/"
            );
            compared += 1;
        }
    }
    assert!(compared >= 12, "at least three images compared");
}

/// The acceptance check: on Magnetic-Tile test-split images (capture runs exp5/exp6, never trained on),
/// the embedded default model's mask overlaps the ground truth.
#[test]
fn the_default_model_finds_real_defects_on_magnetic_tile_test_images() {
    let mini = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mvtec-mini");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for folder in ["blowhole", "crack"] {
        let o = inspect_into(&mini.join(folder), tmp.path(), &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        for entry in std::fs::read_dir(mini.join(folder)).unwrap() {
            let stem = entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned();
            if !(stem.starts_with("exp5") || stem.starts_with("exp6")) {
                continue;
            }
            let found = image::open(tmp.path().join(format!("{stem}_mask.png"))).unwrap().to_luma8();
            let truth = image::open(mini.join(format!("ground_truth/{folder}/{stem}_mask.png"))).unwrap().to_luma8();
            assert_eq!(found.dimensions(), truth.dimensions(), "{stem}: mask at the image's size");
            let overlap = found.pixels().zip(truth.pixels()).filter(|(f, t)| f.0[0] > 0 && t.0[0] > 0).count();
            checked.push((format!("{folder}/{stem}"), overlap));
        }
    }
    assert!(checked.len() >= 6, "{checked:?}");
    let hits = checked.iter().filter(|(_, overlap)| *overlap > 0).count();
    assert!(hits * 3 >= checked.len() * 2, "masks overlapping the ground truth (name, pixels): {checked:?}");
}

#[test]
fn a_model_without_a_bank_is_still_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o =
        inspect_into(&fixtures().join("images/gray.png"), tmp.path(), &["--model", path(&fixtures().join("model"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("prompts.bank"), "{}", stderr(&o));
}

#[test]
fn help_names_the_embedded_default() {
    let o = loupe(&["inspect", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--model") && help.contains("embedded default model"), "{help}");
}

#[test]
fn schema_is_json_with_the_configuration_fields() {
    let o = loupe(&["schema"]);
    assert!(o.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).expect("schema is JSON");
    let text = schema.to_string();
    assert!(text.contains("smoothing_sigma") && text.contains("pixel_threshold"));
}

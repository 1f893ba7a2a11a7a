//! `loupe bench`: runs with the embedded default model when no model is given, and reports its timings as JSON.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn bench_runs_the_embedded_default_model_without_model_options() {
    let image =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mvtec-mini/blowhole/exp5_num_40480.png");
    let o = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["bench", image.to_str().unwrap(), "--repeat", "2", "--warmup", "0"])
        .env_remove("LOUPE_MODEL__DIR")
        .env_remove("LOUPE_PROMPTS__BANK")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let embedded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/default-model/model/loupe-model.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["model"], embedded["name"], "{report}");
    assert_eq!(report["pipeline"]["runs"], 2, "{report}");
}

fn bench(extra: &[&str]) -> std::process::Output {
    let image =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mvtec-mini/blowhole/exp5_num_40480.png");
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["bench", image.to_str().unwrap(), "--repeat", "2", "--warmup", "0"])
        .args(extra)
        .env_remove("LOUPE_MODEL__DIR")
        .env_remove("LOUPE_PROMPTS__BANK")
        .output()
        .unwrap()
}

#[test]
fn bench_times_a_second_backbone_alternately_and_reports_batches_threads_and_memory() {
    let o = bench(&["--batch", "2", "--threads", "1", "--versus", "dapo-clip-onnx"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((r["batch"].as_u64(), r["threads"].as_u64()), (Some(2), Some(1)), "{r}");
    assert_eq!(r["versus"]["backbone_component"], "dapo-clip-onnx", "{r}");
    assert_eq!(r["versus"]["backbone"]["runs"], 2, "{r}");
    let ratio = r["versus"]["ratio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{r}");
    for stage in ["backbone", "postprocess", "pipeline", "end_to_end"] {
        assert!(r[stage]["median_ms"].as_f64().unwrap() > 0.0, "{stage}: {r}");
    }
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0, "{r}");
    if cfg!(target_os = "linux") {
        assert!(r["peak_rss_mb"].as_f64().unwrap() > 1.0, "{r}");
    }
}

#[test]
fn bench_refuses_int8_on_a_model_without_an_int8_encoder_naming_the_field() {
    let o = bench(&["--precision", "int8"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model.precision") && err.contains("image_encoder_int8"), "{err}");
}

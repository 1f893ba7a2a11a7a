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

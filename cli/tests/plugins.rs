//! `loupe plugins` shows the DAPO set loaded from its shared library (via `LOUPE_PLUGIN_PATH`), and names a
//! plugin file that cannot be loaded.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::process::Command;

use loupe_tests::{build_cdylibs, shared_lib};

#[test]
fn plugins_lists_the_dapo_set_from_its_shared_library() {
    let lib = shared_lib(&build_cdylibs(&["loupe-dapo-plugin"]), "loupe_dapo_plugin");
    let out = Command::new(env!("CARGO_BIN_EXE_loupe")).arg("plugins").env("LOUPE_PLUGIN_PATH", &lib).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plugin libraries: 1") && text.contains(lib.to_str().unwrap()), "{text}");
    for name in ["dapo-clip-onnx", "dapo-prompt-bank", "dapo-postprocess"] {
        let line = text.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(line.contains("plugin dapo") && line.trim_start().starts_with('*'), "{line}");
    }

    let json = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["plugins", "--json"])
        .env("LOUPE_PLUGIN_PATH", &lib)
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["plugins"][0]["name"], "dapo");
    assert_eq!(value["components"].as_array().unwrap().len(), 3);
}

#[test]
fn a_bad_plugin_path_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["plugins", "--plugin", "/nonexistent/libvendor.so"])
        .env_remove("LOUPE_PLUGIN_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/libvendor.so") && err.contains("no such file or folder"), "{err}");
}

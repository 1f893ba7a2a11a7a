//! Configuration and model errors through the C ABI: a status, and a message naming the file and field (or the
//! model file) that was wrong.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::ffi::CString;
use std::path::Path;

use common::*;
use loupe::*;

/// Creates an engine from `path`, returning the status and message; the output must be NULL on failure.
fn from_file(path: &Path) -> (LoupeStatus, String) {
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let mut engine = std::ptr::dangling_mut::<u8>().cast::<LoupeEngine>();
    let status = unsafe { loupe_engine_create_from_file(c_path.as_ptr(), &mut engine) };
    let message = last_error();
    if status == LoupeStatus::Ok {
        unsafe { ok(loupe_engine_destroy(engine)) };
    } else {
        assert!(engine.is_null(), "a failed create clears its output");
    }
    (status, message)
}

fn from_string(text: &str, format: u32) -> (LoupeStatus, String) {
    let text = CString::new(text).unwrap();
    let mut engine = std::ptr::null_mut();
    let status = unsafe { loupe_engine_create_from_string(text.as_ptr(), format, &mut engine) };
    let message = last_error();
    if status == LoupeStatus::Ok {
        unsafe { ok(loupe_engine_destroy(engine)) };
    }
    (status, message)
}

#[test]
fn an_invalid_value_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cell-3.toml");
    std::fs::write(&path, config_toml("[postprocess]\nsmoothing_sigma = -1\n")).unwrap();
    let (status, message) = from_file(&path);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("cell-3.toml") && message.contains("postprocess.smoothing_sigma"), "{message}");
    assert!(message.contains("-1"), "the found value is shown: {message}");
}

#[test]
fn an_unknown_field_and_bad_syntax_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("line.yaml");
    std::fs::write(&path, "postprocess:\n  smoothing: 4\n").unwrap();
    let (status, message) = from_file(&path);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("line.yaml") && message.contains("postprocess.smoothing"), "{message}");
    assert!(message.contains("smoothing_sigma"), "the known fields are listed: {message}");

    let (status, message) = from_string("{\"engine\": {\"batch_size\": \"many\"}}", LOUPE_CONFIG_JSON);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("configuration string (JSON)") && message.contains("engine.batch_size"), "{message}");
    let (status, message) = from_string("[model\n", LOUPE_CONFIG_TOML);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("configuration string (TOML)"), "{message}");
}

#[test]
fn no_model_runs_the_embedded_default_and_a_missing_bank_field_is_attributed_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // No model configured: the embedded default model and its bank (loupe-dapo's `default-model` feature).
    let path = dir.path().join("no-model.json");
    std::fs::write(&path, "{\"prompts\": {\"defects\": [\"hole\"]}}").unwrap();
    let (status, message) = from_file(&path);
    assert_eq!(status, LoupeStatus::Ok, "{message}");

    // A model directory but no bank: the embedded bank serves only the embedded model.
    let path = dir.path().join("no-bank.toml");
    let model = fixture_dir().canonicalize().unwrap().join("model");
    std::fs::write(&path, format!("[model]\ndir = '{}'\n", model.display())).unwrap();
    let (status, message) = from_file(&path);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("no-bank.toml") && message.contains("prompts.bank"), "{message}");
}

#[test]
fn missing_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (status, message) = from_file(&dir.path().join("absent.toml"));
    assert_eq!(status, LoupeStatus::Io, "{message}");
    assert!(message.contains("absent.toml"), "{message}");

    let wrong_ext = dir.path().join("loupe.ini");
    std::fs::write(&wrong_ext, "").unwrap();
    let (status, message) = from_file(&wrong_ext);
    assert_eq!(status, LoupeStatus::Config, "{message}");
    assert!(message.contains("loupe.ini") && message.contains(".toml"), "{message}");

    // A model directory that does not exist: relative to the configuration file, and named in the message.
    let path = dir.path().join("loupe.toml");
    std::fs::write(&path, "[model]\ndir = 'models/absent'\n[prompts]\nbank = 'bank.safetensors'\n").unwrap();
    let (status, message) = from_file(&path);
    assert!(matches!(status, LoupeStatus::Model | LoupeStatus::Io), "{status:?}: {message}");
    assert!(message.contains(&dir.path().join("models/absent").display().to_string()), "{message}");
}

#[test]
fn a_duplicate_section_and_a_bad_vocabulary_are_reported() {
    let (status, message) = from_string(&config_toml("[prompts]\n"), LOUPE_CONFIG_TOML);
    // `[prompts]` twice is a TOML error: the message comes from the parser, with the status.
    assert_eq!(status, LoupeStatus::Config, "{message}");
    let (status, message) = from_string(
        &config_toml("").replace("[prompts]\n", "[prompts]\ndefects = ['hole', 'hole']\n"),
        LOUPE_CONFIG_TOML,
    );
    assert_eq!(status, LoupeStatus::Vocabulary, "{message}");
    assert!(message.contains("`hole` appears twice"), "{message}");
}

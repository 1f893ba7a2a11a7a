//! The embedded default model (feature `default-model`): a configuration with no model builds an engine from it,
//! the bytes load through the same loaders as a directory, and damaged bytes give errors naming the file.

#![cfg(feature = "default-model")]
#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::borrow::Cow;
use std::path::PathBuf;

use loupe_dapo::model_dir::{EMBEDDED_LABEL, MemoryFile, ModelSource, memory_label};
use loupe_dapo::{ClipOnnxBackbone, DapoPromptBank, ModelDir, build_engine};
use loupe_sdk::{LoupeConfig, LoupeError, OwnedImage, PromptBank};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity")
}

/// `model_id` and `name` as the embedded `loupe-model.json` states them.
fn embedded_metadata() -> (String, String) {
    let file = loupe_default_model::model_file("loupe-model.json").unwrap();
    let meta: serde_json::Value = serde_json::from_slice(file.bytes).unwrap();
    (meta["model_id"].as_str().unwrap().to_string(), meta["name"].as_str().unwrap().to_string())
}

/// The embedded model's files, with `change` applied to file `name`.
fn embedded_with(name: &str, change: impl Fn(&[u8]) -> Vec<u8>) -> ModelSource {
    let files = loupe_default_model::model_files()
        .iter()
        .map(|f| MemoryFile {
            name: f.name.to_string(),
            bytes: if f.name == name { Cow::Owned(change(f.bytes)) } else { Cow::Borrowed(f.bytes) },
        })
        .collect();
    ModelSource::Memory { label: EMBEDDED_LABEL.to_string(), files }
}

fn truncated(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

#[test]
fn a_default_configuration_builds_an_engine_on_the_embedded_model() {
    let cfg = LoupeConfig::default();
    assert!(cfg.model.dir.is_none() && cfg.prompts.bank.is_none());
    let engine = build_engine(&cfg).expect("engine from the default configuration");
    let (model_id, name) = embedded_metadata();
    let [backbone, bank, _] = engine.components();
    assert_eq!(backbone.id, model_id);
    assert_eq!(backbone.name, name);
    assert_eq!(bank.id, model_id, "the embedded bank is made for the embedded model");

    let image = OwnedImage::open(&fixtures().join("images/gray_hole.png")).unwrap();
    let d = engine.inspect_one(&image.view()).unwrap();
    assert!((0.0..=1.0).contains(&d.score));
    assert_eq!(
        (d.anomaly_map.width, d.anomaly_map.height),
        (image.view().width() as usize, image.view().height() as usize)
    );
    assert_eq!(d.mask.len(), d.anomaly_map.width * d.anomaly_map.height);
}

#[test]
fn the_embedded_model_names_its_files_by_label() {
    let model = ModelDir::embedded().unwrap();
    assert_eq!(model.source.describe(), EMBEDDED_LABEL);
    assert_eq!(model.image_encoder(), PathBuf::from("<embedded default model>/image_encoder.onnx"));
    assert_eq!(model.meta.model_id, embedded_metadata().0);
    let bank = DapoPromptBank::embedded(&model).unwrap();
    assert_eq!(bank.path(), memory_label(EMBEDDED_LABEL, "bank.safetensors"));
    assert!(bank.can_add_words(), "the embedded bank has the model's text encoder");
}

#[test]
fn a_model_directory_without_a_bank_is_still_an_error() {
    let mut cfg = LoupeConfig::default();
    cfg.model.dir = Some(fixtures().join("model"));
    let e = build_engine(&cfg).err().expect("a configured model needs a configured bank");
    assert!(matches!(&e, LoupeError::Config { field, .. } if field == "prompts.bank"), "{e}");
}

#[test]
fn truncated_onnx_bytes_are_an_error_naming_the_file() {
    let model = ModelDir::from_source(embedded_with("image_encoder.onnx", truncated)).unwrap();
    let e = ClipOnnxBackbone::from_model_dir(&model).err().expect("truncated ONNX refused");
    assert!(matches!(e, LoupeError::Model { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("<embedded default model>/image_encoder.onnx"), "{text}");
    assert!(text.contains("not a readable ONNX model"), "{text}");

    let model = ModelDir::from_source(embedded_with("text_encoder.onnx", truncated)).unwrap();
    let e = DapoPromptBank::embedded(&model).err().expect("truncated text encoder refused");
    assert!(e.to_string().contains("<embedded default model>/text_encoder.onnx"), "{e}");
}

#[test]
fn damaged_tables_banks_and_metadata_are_errors_naming_the_file() {
    let model = ModelDir::from_source(embedded_with("token_embedding.safetensors", truncated)).unwrap();
    let e = DapoPromptBank::embedded(&model).err().expect("truncated token table refused");
    let text = e.to_string();
    assert!(text.contains("<embedded default model>/token_embedding.safetensors"), "{text}");

    let model = ModelDir::embedded().unwrap();
    let origin = memory_label(EMBEDDED_LABEL, "bank.safetensors");
    let e = DapoPromptBank::from_bytes(&truncated(loupe_default_model::bank().bytes), &origin, &model)
        .err()
        .expect("truncated bank refused");
    assert!(matches!(e, LoupeError::PromptBank { .. }), "{e}");
    assert!(e.to_string().contains("<embedded default model>/bank.safetensors"), "{e}");

    let e = ModelDir::from_source(embedded_with("loupe-model.json", truncated)).expect_err("bad metadata refused");
    let text = e.to_string();
    assert!(text.contains("<embedded default model>/loupe-model.json") && text.contains("malformed"), "{text}");
}

#[test]
fn a_file_missing_from_memory_is_named() {
    let ModelSource::Memory { label, mut files } = ModelSource::embedded() else { unreachable!() };
    files.retain(|f| f.name != "text_encoder.onnx");
    let e = ModelDir::from_source(ModelSource::Memory { label, files }).expect_err("missing file refused");
    let text = e.to_string();
    assert!(text.contains("<embedded default model>/text_encoder.onnx") && text.contains("missing"), "{text}");
}

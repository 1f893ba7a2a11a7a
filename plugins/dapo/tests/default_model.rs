//! The embedded default model (feature `default-model`): a configuration with no model builds an engine from it,
//! the bytes load through the same loaders as a directory, and damaged bytes give errors naming the file.

#![cfg(feature = "default-model")]
#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::borrow::Cow;
use std::path::PathBuf;

use loupe_dapo::model_dir::{EMBEDDED_LABEL, MemoryFile, ModelSource, memory_label};
use loupe_dapo::{ClipOnnxBackbone, DapoPromptBank, ModelDir, build_engine};
use loupe_sdk::{Limits, LoupeConfig, LoupeError, OwnedImage, PromptBank};

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

/// `bytes` (a safetensors file) with value `index` of tensor `name` overwritten by `value`.
fn with_value(bytes: &[u8], name: &str, index: usize, value: f32) -> Vec<u8> {
    let (header_len, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let at = 8 + header_len + header.info(name).unwrap().data_offsets.0 + 4 * index;
    let mut out = bytes.to_vec();
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    out
}

#[test]
fn non_finite_values_in_banks_and_tables_are_refused_naming_the_tensor() {
    let model = ModelDir::embedded().unwrap();
    let origin = memory_label(EMBEDDED_LABEL, "bank.safetensors");
    let bank = loupe_default_model::bank().bytes;
    // A NaN in the cached text matrix (found by the prompt_bank fuzz target: it was served as a NaN row), and an
    // infinity in a learned context.
    let dim = model.meta.embed_dim;
    for (tensor, index, value, position) in
        [("text_features", dim + 1, f32::NAN, "[1, 1]"), ("normal_context", 0, f32::INFINITY, "[0, 0, 0]")]
    {
        let e = DapoPromptBank::from_bytes(&with_value(bank, tensor, index, value), &origin, &model)
            .err()
            .unwrap_or_else(|| panic!("a {value} in `{tensor}` refused"));
        let text = e.to_string();
        assert!(matches!(e, LoupeError::PromptBank { .. }), "{e}");
        assert!(
            text.contains("bank.safetensors")
                && text.contains(&format!("tensor `{tensor}`"))
                && text.contains(position),
            "{text}"
        );
        assert!(text.contains("expected finite values"), "{text}");
    }
    // The model's token table goes through the same check.
    let model = ModelDir::from_source(embedded_with("token_embedding.safetensors", |b| {
        with_value(b, "token_embedding", 5, f32::NEG_INFINITY)
    }))
    .unwrap();
    let e = DapoPromptBank::embedded(&model).err().expect("an infinite token embedding refused");
    let text = e.to_string();
    assert!(text.contains("token_embedding.safetensors") && text.contains("-inf"), "{text}");
}

#[test]
fn a_file_missing_from_memory_is_named() {
    let ModelSource::Memory { label, mut files } = ModelSource::embedded() else { unreachable!() };
    files.retain(|f| f.name != "text_encoder.onnx");
    let e = ModelDir::from_source(ModelSource::Memory { label, files }).expect_err("missing file refused");
    let text = e.to_string();
    assert!(text.contains("<embedded default model>/text_encoder.onnx") && text.contains("missing"), "{text}");
}

/// The embedded metadata with `edit` applied to its JSON.
fn metadata_with(edit: impl Fn(&mut serde_json::Value)) -> ModelSource {
    embedded_with("loupe-model.json", |bytes| {
        let mut meta: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        edit(&mut meta);
        serde_json::to_vec(&meta).unwrap()
    })
}

#[test]
fn declared_sizes_over_the_limits_are_refused_before_any_runtime_sees_them() {
    // 100000 x 100000 with the model's 8-pixel patches: tract spent 24 s analysing such a graph before failing.
    let source = metadata_with(|m| {
        m["image"]["input_size"] = serde_json::json!([100_000, 100_000]);
        m["image"]["grid"] = serde_json::json!([12500, 12500]);
    });
    let started = std::time::Instant::now();
    let e = ModelDir::from_source(source).expect_err("huge input refused");
    assert!(started.elapsed().as_secs() < 1, "refused from the metadata alone");
    assert!(matches!(e, LoupeError::Limit { limit: "max_model_input", value: 100_000, max: 2048, .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("loupe-model.json") && text.contains("image.input_size"), "{text}");

    // The grid limit is its own: 1024 px with 4-pixel patches is 65536 cells.
    let source = metadata_with(|m| {
        m["image"]["input_size"] = serde_json::json!([1024, 1024]);
        m["image"]["patch_size"] = serde_json::json!(4);
        m["image"]["grid"] = serde_json::json!([256, 256]);
    });
    let e = ModelDir::from_source(source.clone()).expect_err("huge grid refused");
    assert!(matches!(e, LoupeError::Limit { limit: "max_grid_cells", value: 65536, .. }), "{e}");
    // Raised in the configuration, the same metadata passes the limits (and fails later, at the real files).
    let raised = Limits { max_grid_cells: 65536, ..Limits::default() };
    assert!(ModelDir::from_source_with_limits(source, &raised).is_ok());

    // Sizes no CLIP comes near are structural errors, named by field.
    for (field, value) in [("layers", 100_000), ("width", 1 << 20), ("heads", 0)] {
        let e = ModelDir::from_source(metadata_with(|m| m["image"][field] = serde_json::json!(value)))
            .expect_err("absurd size refused");
        assert!(e.to_string().contains(&format!("image.{field}")), "{e}");
    }
    let e = ModelDir::from_source(metadata_with(|m| m["text"]["context_length"] = serde_json::json!(1 << 30)))
        .expect_err("absurd context refused");
    assert!(e.to_string().contains("text.context_length"), "{e}");
}

#[test]
fn configured_limits_reach_the_model_and_its_files() {
    let mut cfg = LoupeConfig::default();
    cfg.limits.max_model_input = 100;
    let e = build_engine(&cfg).err().expect("the embedded model's 160 px input is over 100");
    assert!(matches!(e, LoupeError::Limit { limit: "max_model_input", value: 160, max: 100, .. }), "{e}");

    let dir = fixtures().join("model");
    let limits = Limits { max_file_bytes: 5000, ..Limits::default() };
    let model = ModelDir::open_with_limits(&dir, &limits).expect("the metadata file is small");
    let e = ClipOnnxBackbone::from_model_dir(&model).err().expect("the encoder file is over 5000 bytes");
    assert!(matches!(e, LoupeError::Limit { limit: "max_file_bytes", .. }), "{e}");
    assert!(e.to_string().contains("image_encoder.onnx"), "{e}");
}

//! The embedded files form a valid pair: the metadata names the embedded files, its `model_id` is their content
//! hash (`docs/model-format.md`), the bank was made for that model, and the whole stays within the size budget.
//! These catch a replacement done by hand that forgot one file.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::collections::HashMap;

use loupe_default_model::{METADATA_FILE, bank, model_file, model_files, total_bytes};
use sha2::{Digest, Sha256};

/// The ceiling for what is committed and compiled in.
const MAX_BYTES: usize = 40 * 1024 * 1024;

fn metadata() -> serde_json::Value {
    serde_json::from_slice(model_file(METADATA_FILE).unwrap().bytes).expect("loupe-model.json is JSON")
}

#[test]
fn metadata_names_the_embedded_files_and_nothing_else() {
    let meta = metadata();
    let files = meta["files"].as_object().expect("`files` object");
    let mut named: Vec<&str> = files.values().map(|v| v.as_str().unwrap()).collect();
    named.push(METADATA_FILE);
    named.sort();
    let mut embedded: Vec<&str> = model_files().iter().map(|f| f.name).collect();
    embedded.sort();
    assert_eq!(named, embedded);
    assert_eq!(model_files()[0].name, METADATA_FILE);
    assert!(model_files().iter().all(|f| !f.bytes.is_empty()), "no empty file");
}

#[test]
fn model_id_is_the_hash_of_the_weight_files() {
    let meta = metadata();
    let mut hash = Sha256::new();
    for key in ["image_encoder", "text_encoder", "token_embedding"] {
        let name = meta["files"][key].as_str().unwrap();
        hash.update(model_file(name).unwrap().bytes);
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(meta["model_id"].as_str().unwrap(), &hex[..16]);
}

#[test]
fn bank_is_made_for_the_embedded_model() {
    let (_, header) = safetensors::SafeTensors::read_metadata(bank().bytes).unwrap();
    let bank_meta: HashMap<String, String> = header.metadata().clone().unwrap();
    assert_eq!(bank_meta["format"], "loupe-prompt-bank");
    assert_eq!(bank_meta["model_id"], metadata()["model_id"].as_str().unwrap());
    assert_eq!(bank_meta["embed_dim"], metadata()["embed_dim"].to_string());
}

#[test]
fn everything_fits_the_size_budget() {
    let total = total_bytes();
    assert_eq!(total, model_files().iter().map(|f| f.bytes.len()).sum::<usize>() + bank().bytes.len());
    assert!(total <= MAX_BYTES, "{total} bytes embedded, at most {MAX_BYTES}");
}

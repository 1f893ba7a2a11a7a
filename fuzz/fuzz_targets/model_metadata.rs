//! Fuzz target `model_metadata`: the input is the `loupe-model.json` of an in-memory model
//! ([`ModelSource::Memory`]) whose other files are tiny dummies named as the fixture model names them; it goes
//! to [`ModelDir::from_source`], which parses the JSON, checks every field and checks that the files it names
//! exist. No ONNX file is loaded (tract never runs).
//!
//! Checks: nothing panics (overflow included); an `Ok` model satisfies what `check` promises (format, version,
//! grid = input_size / patch_size, feature layers within the blocks, positive std, tokens inside the vocabulary,
//! room for the prompt), names files that exist, and its geometry, labels and file reads work.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use loupe_dapo::model_dir::{METADATA_FILE, MemoryFile, ModelDir, ModelSource};

/// Dummy files under the names the fixture model (and most inputs derived from it) uses.
const DUMMIES: [&str; 3] = ["image_encoder.onnx", "text_encoder.onnx", "token_embedding.safetensors"];

fuzz_target!(|data: &[u8]| {
    let mut files = vec![MemoryFile { name: METADATA_FILE.to_string(), bytes: Cow::Owned(data.to_vec()) }];
    files.extend(DUMMIES.iter().map(|n| MemoryFile { name: n.to_string(), bytes: Cow::Borrowed(b"dummy") }));
    let source = ModelSource::Memory { label: "fuzz model".into(), files };
    let Ok(model) = ModelDir::from_source(source) else { return };
    let m = &model.meta;
    assert_eq!(m.format, "loupe-model");
    assert_eq!(m.format_version, 1);
    let i = &m.image;
    assert!(i.patch_size > 0);
    assert_eq!(i.grid, [(i.input_size[0] / i.patch_size) as usize, (i.input_size[1] / i.patch_size) as usize]);
    assert!(!i.feature_layers.is_empty() && i.feature_layers.iter().all(|&l| l >= 1 && l <= i.layers));
    assert!(i.std.iter().all(|&s| s > 0.0));
    assert!(m.embed_dim > 0);
    let t = &m.text;
    assert!((t.sot_token as usize) < t.vocab_size && (t.eot_token as usize) < t.vocab_size);
    assert!(t.deep_prompts.checked_add(2).is_some_and(|n| t.context_length > n), "no room for a prompt: {t:?}");
    let g = model.geometry();
    assert_eq!((g.grid, g.feature_dim, g.layers), (i.grid, m.embed_dim, i.feature_layers.len()));
    for name in [&m.files.image_encoder, &m.files.text_encoder, &m.files.token_embedding] {
        assert!(model.read(name).is_ok(), "named file {name:?} accepted but unreadable");
    }
    let _ = (model.image_encoder(), model.text_encoder(), model.token_embedding());
});

//! Fuzz target `profile_file`: the input is a product-profile file (safetensors: memory tensors and JSON
//! metadata, `docs/reference.md`) as `--profile`, `profile = ...` in a configuration and `loupe calibrate` read
//! it. The profile parser (`sdk/src/profile/file.rs`) has no public bytes entry point, so each input is written
//! to one temporary file per process and read with [`Profile::load`].
//!
//! Checks: nothing panics (overflow included) or allocates without bound; an `Ok` profile is consistent (layers
//! and dim > 0, a memory exactly when references are recorded, one memory layer per feature layer with
//! `rows_per_layer` rows of `dim` finite values and owners naming recorded reference images) and round-trips:
//! [`Profile::save`] then [`Profile::load`] gives the same metadata and bit-identical memory (what
//! `loupe calibrate` does when it updates a profile's thresholds).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use loupe_sdk::{Profile, ScoringMode};

/// This process's input file and round-trip file, in the temporary folder.
static FILES: LazyLock<(PathBuf, PathBuf)> = LazyLock::new(|| {
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    (
        dir.join(format!("loupe-fuzz-profile-{pid}.safetensors")),
        dir.join(format!("loupe-fuzz-profile-{pid}-saved.safetensors")),
    )
});

fn memory_bits(p: &Profile) -> Option<Vec<(Vec<u32>, Vec<u32>)>> {
    p.memory.as_ref().map(|m| {
        m.layers().iter().map(|l| (l.rows().iter().map(|v| v.to_bits()).collect(), l.owners().to_vec())).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let (input, saved) = &*FILES;
    std::fs::write(input, data).expect("temporary profile file written");
    let Ok(profile) = Profile::load(input) else { return };
    let meta = &profile.meta;
    assert!(meta.layers > 0 && meta.dim > 0);
    match (&profile.memory, &meta.references) {
        (None, None) => {}
        (Some(memory), Some(refs)) => {
            assert_eq!(memory.dim(), meta.dim);
            assert_eq!(memory.layers().len(), meta.layers);
            assert_eq!(refs.rows_per_layer.len(), meta.layers);
            for (layer, &n) in memory.layers().iter().zip(&refs.rows_per_layer) {
                assert_eq!(layer.len(), n);
                assert_eq!(layer.rows().len(), n * meta.dim);
                assert!(layer.rows().iter().all(|v| v.is_finite()));
                assert!(layer.owners().iter().all(|&o| (o as usize) < refs.images.len()));
            }
            assert!(refs.scale.is_finite() && refs.scale > 0.0);
        }
        (memory, refs) => panic!("memory present: {}, references recorded: {}", memory.is_some(), refs.is_some()),
    }
    let _ = profile.memory_bytes();
    for mode in [ScoringMode::Text, ScoringMode::Golden, ScoringMode::Mutual] {
        let _ = profile.thresholds_for(mode);
    }
    if let Err(e) = profile.save(saved) {
        panic!("a loaded profile cannot be saved: {e}");
    }
    let back = match Profile::load(saved) {
        Ok(back) => back,
        Err(e) => panic!("a loaded profile, saved again, does not load: {e}"),
    };
    assert_eq!(back.meta, profile.meta, "metadata changed through save + load");
    assert!(memory_bits(&back) == memory_bits(&profile), "memory changed through save + load");
});

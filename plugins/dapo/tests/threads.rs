//! `engine.threads`: tract's backbone gives bit-identical features on any number of threads, for one image and for
//! a batch, with either plan shape, on the embedded default model and on a fixture with visual deep prompts.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::PathBuf;

use loupe_dapo::backbone::PlanShape;
use loupe_dapo::{ClipOnnxBackbone, ModelDir};
use loupe_sdk::config::Precision;
use loupe_sdk::{Backbone, OwnedImage};

fn images(dir: &str) -> Vec<OwnedImage> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    paths.iter().take(3).map(|p| OwnedImage::open(p).unwrap()).collect()
}

fn check(model: &ModelDir, imgs: &[OwnedImage]) {
    let views: Vec<_> = imgs.iter().map(OwnedImage::view).collect();
    for shape in [PlanShape::Batch, PlanShape::PerImage] {
        let one = ClipOnnxBackbone::with_plan(model, Precision::Fp32, 1, shape).unwrap();
        let reference = one.encode(&views).unwrap();
        for threads in [2, 3] {
            let many = ClipOnnxBackbone::with_plan(model, Precision::Fp32, threads, shape).unwrap();
            let batch = many.encode(&views).unwrap();
            assert_eq!(batch.len(), views.len());
            for (i, (a, b)) in batch.iter().zip(&reference).enumerate() {
                assert!(
                    a.global == b.global && a.patches == b.patches,
                    "{shape:?}, image {i}: {threads} threads differ from 1"
                );
            }
            let single = many.encode(&views[1..2]).unwrap();
            assert!(single[0].patches == reference[1].patches, "{shape:?}: one image alone on {threads} threads");
        }
    }
}

#[cfg(feature = "default-model")]
#[test]
fn the_default_model_gives_the_same_bits_on_any_thread_count() {
    check(&ModelDir::embedded().unwrap(), &images("mvtec-mini/crack"));
}

#[test]
fn a_fixture_with_deep_prompts_gives_the_same_bits_on_any_thread_count() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity-trained");
    check(&ModelDir::open(&dir.join("model")).unwrap(), &images("parity-trained/images"));
}

//! Numerical parity of the Rust pipeline with the PyTorch reference (`tools/loupe_tools/reference.py`) on the same
//! weights: image features, text features (trained and never-trained words), image scores, per-class maps and
//! anomaly maps, within 1e-4.
//!
//! By default it reads the committed tiny fixtures: `tests/fixtures/parity` (random weights) and
//! `tests/fixtures/parity-trained` (adapters, deep prompts and hybrid prompts trained by
//! `loupe_tools.train`). `LOUPE_PARITY_DIR=<dir>` points it instead at the same layout made for a large export
//! (`tools/parity_large.sh`), e.g. ViT-B/16 or ViT-L/14-336.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_dapo::{ClipOnnxBackbone, DapoPostProcessor, DapoPromptBank, ModelDir};
use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::{Backbone, Engine, LoupeConfig, OwnedImage, PromptBank};
use loupe_tests::{Expected, assert_close};

/// The committed fixtures, or `LOUPE_PARITY_DIR` alone when it is set.
fn fixture_dirs() -> Vec<PathBuf> {
    match std::env::var_os("LOUPE_PARITY_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => ["fixtures/parity", "fixtures/parity-trained"]
            .iter()
            .map(|f| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(f))
            .collect(),
    }
}

struct Pipeline {
    backbone: Arc<ClipOnnxBackbone>,
    bank: Arc<DapoPromptBank>,
}

fn pipeline(dir: &Path) -> Pipeline {
    let model = ModelDir::open(&dir.join("model")).expect("model directory opens");
    let backbone = Arc::new(ClipOnnxBackbone::from_model_dir(&model).expect("backbone loads"));
    let bank = Arc::new(DapoPromptBank::load(&dir.join("bank.safetensors"), &model).expect("bank loads"));
    Pipeline { backbone, bank }
}

fn engine(p: &Pipeline, words: &[String], sigma: f32) -> Engine {
    let mut cfg = LoupeConfig::default();
    cfg.prompts.defects = Some(words.to_vec());
    cfg.postprocess = PostprocessConfig { smoothing_sigma: sigma, keep_class_maps: true, ..Default::default() };
    let post = Arc::new(DapoPostProcessor::new(cfg.postprocess.clone()));
    Engine::new(p.backbone.clone(), p.bank.clone(), post, &cfg).expect("engine builds")
}

#[test]
fn text_features_match_the_reference_for_trained_and_new_words() {
    for dir in fixture_dirs() {
        text_features_match(&dir);
    }
}

fn text_features_match(dir: &Path) {
    eprintln!("fixture {}", dir.display()); // shown with a failure: says which fixture
    let exp = Expected::load(dir);
    let p = pipeline(dir);
    let words = exp.list("words");
    let t = p.bank.text_features(&words).unwrap();
    assert_close("text_features", &t.rows, exp.get("text_features"));
    let extended = exp.list("extended_words");
    assert!(extended.len() > words.len(), "the fixture must add a word the bank never trained");
    assert!(!p.bank.trained_words().contains(extended.last().unwrap()));
    let t = p.bank.text_features(&extended).unwrap();
    assert_close("text_features_extended", &t.rows, exp.get("text_features_extended"));
}

#[test]
fn image_features_scores_and_maps_match_the_reference() {
    for dir in fixture_dirs() {
        outputs_match(&dir);
    }
}

fn outputs_match(dir: &Path) {
    eprintln!("fixture {}", dir.display()); // shown with a failure: says which fixture
    let exp = Expected::load(dir);
    let p = pipeline(dir);
    let words = exp.list("words");
    let sigma: f32 = exp.meta["smoothing_sigma"].parse().expect("smoothing_sigma");
    let plain = engine(&p, &words, 0.0);
    let smoothed = engine(&p, &words, sigma);
    let stems = exp.list("images");
    assert!(!stems.is_empty());
    let images: Vec<OwnedImage> = stems
        .iter()
        .map(|s| OwnedImage::open(&dir.join("images").join(format!("{s}.png"))).expect("fixture image decodes"))
        .collect();
    let views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    // The whole batch in one backbone call.
    let features = p.backbone.encode(&views).unwrap();
    let detections = plain.inspect(&views).unwrap();
    for (i, s) in stems.iter().enumerate() {
        assert_close(&format!("{s}/global"), &features[i].global, exp.get(&format!("{s}/global")));
        assert_close(&format!("{s}/patch_tokens"), &features[i].patches, exp.get(&format!("{s}/patch_tokens")));
        let d = &detections[i];
        assert_close(&format!("{s}/image_score"), &[d.score], exp.get(&format!("{s}/image_score")));
        assert_close(&format!("{s}/image_probs"), &d.class_probabilities, exp.get(&format!("{s}/image_probs")));
        let class_maps: Vec<f32> = d.class_maps.iter().flat_map(|m| m.data.iter().copied()).collect();
        assert_close(&format!("{s}/class_maps"), &class_maps, exp.get(&format!("{s}/class_maps")));
        assert_close(&format!("{s}/anomaly_map"), &d.anomaly_map.data, exp.get(&format!("{s}/anomaly_map")));
        let ds = smoothed.inspect_one(&views[i]).unwrap();
        assert_close(
            &format!("{s}/anomaly_map_smoothed"),
            &ds.anomaly_map.data,
            exp.get(&format!("{s}/anomaly_map_smoothed")),
        );
    }
}

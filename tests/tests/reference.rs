//! Reference scoring through the engine, on the tiny fixture model: golden samples of a profile, mutual scoring
//! of a batch and of a session's window, profiles on disk (round trip, refusals), calibrated thresholds, and that
//! with no references and mutual scoring off nothing changes.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_sdk::config::PostprocessBackend;
use loupe_sdk::profile::{Augmentation, Calibration, Profile, ProfileOptions, ReferenceImage, create};
use loupe_sdk::{Engine, FusionRule, LoupeConfig, LoupeError, OwnedImage, PostProcessor, ScoringMode, Session};
use loupe_tests::{parity_fixture, repo_root};

fn config() -> LoupeConfig {
    let dir = parity_fixture();
    let mut cfg = LoupeConfig::default();
    cfg.model.dir = Some(dir.join("model"));
    cfg.prompts.bank = Some(dir.join("bank.safetensors"));
    cfg.postprocess.backend = PostprocessBackend::Cpu;
    cfg
}

fn engine(cfg: &LoupeConfig) -> Engine {
    loupe_dapo::build_engine(cfg).unwrap()
}

/// The good tiles of the committed mini data set (real Magnetic-Tile images).
fn good_images() -> Vec<(PathBuf, OwnedImage)> {
    let dir = repo_root().join("tests/fixtures/mvtec-mini/good");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.into_iter().map(|p| (p.clone(), OwnedImage::open(&p).unwrap())).collect()
}

/// `image` with a bright square painted at its centre: a defect the references never show.
fn with_defect(image: &OwnedImage) -> OwnedImage {
    let mut out = image.clone();
    let c = out.format.bytes_per_pixel();
    let (w, h) = (out.width as usize, out.height as usize);
    for y in h / 2 - h / 6..h / 2 + h / 6 {
        for x in w / 2 - w / 6..w / 2 + w / 6 {
            for k in 0..c {
                out.data[(y * w + x) * c + k] = if (x + y) % 2 == 0 { 255 } else { 0 };
            }
        }
    }
    out
}

fn profile_of(engine: &Engine, images: &[(PathBuf, OwnedImage)], options: &ProfileOptions) -> Profile {
    let names: Vec<String> = images.iter().map(|(p, _)| p.display().to_string()).collect();
    let refs: Vec<ReferenceImage<'_>> =
        images.iter().zip(&names).map(|((_, img), name)| ReferenceImage { name, image: img.view() }).collect();
    create(engine, &refs, options).unwrap()
}

#[test]
fn without_references_or_mutual_scoring_results_are_the_text_ones() {
    let cfg = config();
    let engine = Arc::new(engine(&cfg));
    let post = loupe_dapo::DapoPostProcessor::new(cfg.postprocess.clone());
    let mut session = Session::new(engine.clone()).unwrap();
    for (_, image) in good_images() {
        let view = image.view();
        let a = engine.inspect_one(&view).unwrap();
        let b = session.inspect(&view).unwrap();
        let features = engine.encode(&[view]).unwrap();
        let c = post.process(&features[0], engine.text_features(), engine.output_size(&view)).unwrap();
        for d in [&a, &b] {
            assert_eq!(d.score, c.score);
            assert_eq!(d.anomaly_map.data, c.anomaly_map.data);
            assert_eq!(d.mask, c.mask);
            assert_eq!(d.evidence.mode, ScoringMode::Text);
            assert_eq!(d.map_range, engine.backbone().geometry().layers as f32);
        }
    }
}

#[test]
fn golden_samples_flag_what_the_references_never_show() {
    let engine = engine(&config());
    let images = good_images();
    let (refs, rest) = images.split_at(3);
    let profile = engine.bind_profile(profile_of(&engine, refs, &ProfileOptions::default())).unwrap();
    let info = profile.profile().meta.references.clone().unwrap();
    assert_eq!(info.images.len(), 3);
    assert!(info.scale > 0.0);
    let g = engine.backbone().geometry();
    assert_eq!(info.rows_per_layer, vec![3 * g.grid[0] * g.grid[1]; g.layers]);
    let normal = &rest[0].1;
    let defect = with_defect(normal);
    let d = engine.inspect_with(&[normal.view(), defect.view()], Some(&profile)).unwrap();
    assert!(d.iter().all(|d| d.evidence.mode == ScoringMode::Golden && d.evidence.pool == 3 && d.map_range == 1.0));
    let (clean, bad) = (d[0].evidence.reference_score.unwrap(), d[1].evidence.reference_score.unwrap());
    assert!(bad > clean, "a painted defect raises the reference evidence: {bad} vs {clean}");
    // A reference scored against a memory holding it is as normal as it gets.
    let own = engine.inspect_with(&[refs[0].1.view()], Some(&profile)).unwrap();
    assert!(own[0].evidence.reference_score.unwrap() < 1e-3, "{:?}", own[0].evidence);
    // The fused score is the documented mean of the two image scores; 0.5 normalised at the threshold.
    let e = &d[1].evidence;
    assert!((d[1].score - (0.5 * e.text_score + 0.5 * e.reference_score.unwrap())).abs() < 1e-6);
    assert!((d[1].normalized_score > 0.5) == d[1].is_anomalous);
}

#[test]
fn a_profile_survives_the_file_and_a_coreset_keeps_a_share() {
    let engine = engine(&config());
    let images = good_images();
    let options = ProfileOptions {
        name: "customer-a".into(),
        vocabulary: Some(vec!["hole".into(), "burr".into()]),
        augmentation: Augmentation::Flips,
        ..ProfileOptions::default()
    };
    let profile = profile_of(&engine, &images[..3], &options);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.safetensors");
    profile.save(&path).unwrap();
    let loaded = engine.load_profile(&path).unwrap();
    assert_eq!(loaded.profile().meta, profile.meta);
    assert!(loaded.profile().memory == profile.memory, "the memory comes back bit for bit");
    assert_eq!(loaded.text().words, vec!["hole", "burr"], "the profile's vocabulary");
    let rows = profile.meta.references.as_ref().unwrap().rows_per_layer[0];
    let g = engine.backbone().geometry();
    assert_eq!(rows, 3 * 4 * g.grid[0] * g.grid[1], "3 references x 4 flipped views");
    let query = with_defect(&images[4].1);
    let a = engine.inspect_with(&[query.view()], Some(&engine.bind_profile(profile.clone()).unwrap())).unwrap();
    let b = engine.inspect_with(&[query.view()], Some(&loaded)).unwrap();
    assert_eq!(a[0].anomaly_map.data, b[0].anomaly_map.data, "same results from the file");
    assert_eq!(a[0].classes, vec!["normal", "hole", "burr"]);

    let small = profile_of(&engine, &images[..3], &ProfileOptions { coreset_fraction: 0.25, ..options });
    let kept = small.meta.references.as_ref().unwrap().rows_per_layer[0];
    assert_eq!(kept, rows.div_ceil(4));
    assert!(small.memory_bytes() * 3 < profile.memory_bytes());
}

#[test]
fn bad_profiles_are_refused_naming_the_file() {
    let engine = engine(&config());
    let images = good_images();
    let profile = profile_of(&engine, &images[..2], &ProfileOptions::default());
    let dir = tempfile::tempdir().unwrap();
    // Another model: the metadata's model_id changed.
    let mut other = profile.clone();
    other.meta.model_id = "0123456789abcdef".into();
    let path = dir.path().join("other-model.safetensors");
    other.save(&path).unwrap();
    let err = engine.load_profile(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoupeError::Profile { .. }), "{msg}");
    assert!(msg.contains("other-model.safetensors") && msg.contains("another backbone"), "{msg}");
    // Truncated and corrupt files.
    let good = dir.path().join("good.safetensors");
    profile.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for (name, data) in [("truncated", bytes[..bytes.len() / 2].to_vec()), ("corrupt", b"not a profile".to_vec())] {
        let p = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&p, data).unwrap();
        let msg = engine.load_profile(&p).unwrap_err().to_string();
        assert!(msg.contains(&format!("{name}.safetensors")) && msg.contains("profile"), "{msg}");
    }
    let missing = engine.load_profile(Path::new("/nonexistent/p.safetensors")).unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/p.safetensors"), "{missing}");
    // One reference is not enough to measure normal variation.
    let refs = [ReferenceImage { name: "one", image: images[0].1.view() }];
    let err = create(&engine, &refs, &ProfileOptions::default()).unwrap_err().to_string();
    assert!(err.contains("at least 2"), "{err}");
}

#[test]
fn mutual_scoring_of_a_batch_and_of_a_stream_window() {
    let mut cfg = config();
    cfg.reference.mutual = true;
    cfg.reference.mutual_min_pool = 2;
    let engine = Arc::new(engine(&cfg));
    let images = good_images();
    let views: Vec<_> = images.iter().map(|(_, i)| i.view()).collect();
    let err = engine.inspect(&views[..2]).unwrap_err().to_string();
    assert!(err.contains("mutual_min_pool") && err.contains("at least 3"), "{err}");
    let batch = engine.inspect(&views).unwrap();
    assert!(batch.iter().all(|d| d.evidence.mode == ScoringMode::Mutual && d.evidence.pool == views.len() - 1));

    let mut session = Session::new(engine.clone()).unwrap();
    let modes: Vec<(ScoringMode, bool, usize)> = views
        .iter()
        .map(|v| {
            let d = session.inspect(v).unwrap();
            (d.evidence.mode, d.evidence.window_filling, d.evidence.pool)
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            (ScoringMode::Text, true, 0),
            (ScoringMode::Text, true, 0),
            (ScoringMode::Mutual, false, 2),
            (ScoringMode::Mutual, false, 3),
            (ScoringMode::Mutual, false, 4),
        ]
    );
    assert_eq!(session.window_len(), 5);
    session.set_mutual(false);
    assert_eq!(session.inspect(&views[0]).unwrap().evidence.mode, ScoringMode::Text);
    // A golden profile takes precedence over mutual scoring; switching profiles clears the window.
    session.set_mutual(true);
    let golden = engine.bind_profile(profile_of(&engine, &images[..2], &ProfileOptions::default())).unwrap();
    session.set_profile(Some(golden)).unwrap();
    assert_eq!(session.window_len(), 0);
    assert_eq!(session.inspect(&views[3]).unwrap().evidence.mode, ScoringMode::Golden);
}

#[test]
fn a_profile_bound_by_another_engine_with_another_vocabulary_is_refused() {
    let a = Arc::new(engine(&config()));
    let mut cfg = config();
    cfg.prompts.defects = Some(vec!["hole".into()]);
    let b = Arc::new(engine(&cfg));
    let images = good_images();
    let profile = a.bind_profile(profile_of(&a, &images[..2], &ProfileOptions::default())).unwrap();
    let mut session = Session::new(b.clone()).unwrap();
    let err = session.set_profile(Some(profile.clone())).unwrap_err().to_string();
    assert!(err.contains("prompt bank") && err.contains("bind it to this engine"), "{err}");
    let rebound = b.bind_profile(profile.profile().clone()).unwrap();
    session.set_profile(Some(rebound)).unwrap();
    assert_eq!(session.inspect(&images[3].1.view()).unwrap().classes, vec!["normal", "hole"]);
}

#[test]
fn calibrated_thresholds_apply_in_their_mode_only() {
    let engine = engine(&config());
    let images = good_images();
    let mut profile = profile_of(&engine, &images[..2], &ProfileOptions::default());
    profile.meta.calibration = Some(Calibration {
        mode: ScoringMode::Golden,
        image_threshold: 0.123,
        pixel_threshold: 0.456,
        method: "fpr".into(),
        fpr: Some(0.01),
        good_images: 3,
        defective_images: 0,
        measured: Default::default(),
    });
    let golden = engine.bind_profile(profile.clone()).unwrap();
    let d = engine.inspect_with(&[images[3].1.view()], Some(&golden)).unwrap();
    assert_eq!((d[0].thresholds.image, d[0].thresholds.pixel), (0.123, 0.456));
    assert_eq!(d[0].is_anomalous, d[0].score > 0.123);
    // The same profile without its memory is a text-mode profile: its golden thresholds do not apply.
    let text_only = engine.bind_profile(Profile { memory: None, meta: profile.meta.clone() }).unwrap();
    let t = engine.inspect_with(&[images[3].1.view()], Some(&text_only)).unwrap();
    assert_eq!(t[0].evidence.mode, ScoringMode::Text);
    assert_eq!(t[0].thresholds.image, 0.5);
}

#[test]
fn fusion_rules_change_the_map_and_reference_alone_ignores_the_text() {
    let images = good_images();
    let q = with_defect(&images[4].1);
    let mut results = Vec::new();
    for rule in [FusionRule::Reference, FusionRule::Mean, FusionRule::Harmonic] {
        let mut cfg = config();
        cfg.reference.fusion = rule;
        let engine = engine(&cfg);
        let profile = engine.bind_profile(profile_of(&engine, &images[..3], &ProfileOptions::default())).unwrap();
        results.push(engine.inspect_with(&[q.view()], Some(&profile)).unwrap().remove(0));
    }
    let (reference, mean, harmonic) = (&results[0], &results[1], &results[2]);
    assert_eq!(reference.score, reference.evidence.reference_score.unwrap());
    assert_eq!(reference.evidence, mean.evidence, "the evidence does not depend on the rule");
    assert_ne!(mean.anomaly_map.data, harmonic.anomaly_map.data);
    assert!(mean.anomaly_map.data.iter().chain(&harmonic.anomaly_map.data).all(|v| (0.0..=1.0).contains(v)));
}

//! Faults inside components loaded as plugins: a backbone that, in the middle of a batch, panics, returns an error
//! or returns features of the wrong count, shape or value (`plugins/fixture-panicking`, `fault-backbone`), and a C++
//! post-processor that throws (`plugins/fixture-panicking/cpp/throwing_postprocessor.cpp`). Each fails that call
//! with an error naming the component and what was wrong, and the same engine then inspects the next images
//! exactly as a clean engine does.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::PathBuf;

use loupe_sdk::{Detection, Engine, LoupeConfig, LoupeError, OwnedImage, PixelFormat};
use loupe_tests::{build_cdylibs, compile_plugin, parity_fixture, repo_root, shared_lib};

/// The marker of `fault-backbone` (see `plugins/fixture-panicking/src/lib.rs`): pixel (0, 0) and the code's pixel.
const MAGIC: [u8; 3] = [0xFA, 0x17, 0x7E];

fn config(batch_size: usize) -> LoupeConfig {
    let mut cfg = LoupeConfig::default();
    cfg.model.dir = Some(parity_fixture().join("model"));
    cfg.prompts.bank = Some(parity_fixture().join("bank.safetensors"));
    cfg.plugins.use_env = false;
    cfg.postprocess.backend = loupe_sdk::config::PostprocessBackend::Cpu;
    cfg.engine.batch_size = batch_size;
    cfg
}

fn fault_plugin() -> PathBuf {
    shared_lib(&build_cdylibs(&["loupe-fixture-panicking"]), "loupe_fixture_panicking")
}

/// An engine whose backbone is `fault-backbone`, loaded from the fixture's shared library.
fn faulty_engine(batch_size: usize) -> Engine {
    let mut cfg = config(batch_size);
    cfg.plugins.paths = vec![fault_plugin()];
    cfg.components.backbone = "fault-backbone".into();
    loupe_dapo::build_engine(&cfg).unwrap()
}

/// The four parity images, sorted by name (two gray, RGB, RGBA).
fn images() -> Vec<OwnedImage> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(parity_fixture().join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| OwnedImage::open(p).unwrap()).collect()
}

/// `image` as packed RGB with the marker asking for fault `code`.
fn marked(image: &OwnedImage, code: u8) -> OwnedImage {
    let mut rgb = image.view().to_rgb();
    rgb.put_pixel(0, 0, image::Rgb(MAGIC));
    rgb.put_pixel(1, 0, image::Rgb([code, 0, 0]));
    let (width, height) = rgb.dimensions();
    OwnedImage { data: rgb.into_raw(), width, height, format: PixelFormat::Rgb8 }
}

fn inspect(engine: &Engine, images: &[OwnedImage]) -> Result<Vec<Detection>, LoupeError> {
    let views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    engine.inspect(&views)
}

/// Everything a detection holds, bit for bit.
#[track_caller]
fn assert_same(what: &str, a: &Detection, b: &Detection) {
    assert_eq!(a.score.to_bits(), b.score.to_bits(), "{what}: score");
    assert_eq!(a.normalized_score.to_bits(), b.normalized_score.to_bits(), "{what}: normalized score");
    assert_eq!(a.is_anomalous, b.is_anomalous, "{what}: label");
    assert_eq!((&a.classes, &a.class_probabilities), (&b.classes, &b.class_probabilities), "{what}: classes");
    assert_eq!(a.image_type, b.image_type, "{what}: image type");
    assert_eq!(a.anomaly_map, b.anomaly_map, "{what}: anomaly map");
    assert_eq!((a.map_range, a.score_range), (b.map_range, b.score_range), "{what}: ranges");
    assert_eq!(a.mask, b.mask, "{what}: mask");
    assert_eq!(a.type_map, b.type_map, "{what}: type map");
    assert_eq!(a.pixel_types, b.pixel_types, "{what}: pixel types");
    assert_eq!(a.regions, b.regions, "{what}: regions");
    assert_eq!(a.thresholds, b.thresholds, "{what}: thresholds");
    assert_eq!(a.evidence, b.evidence, "{what}: evidence");
}

#[track_caller]
fn assert_all_same(what: &str, a: &[Detection], b: &[Detection]) {
    assert_eq!(a.len(), b.len(), "{what}: result count");
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        assert_same(&format!("{what}, image {i}"), a, b);
    }
}

/// Each fault code of `fault-backbone` with what its error must say (after `component fault-backbone: encode: `).
fn backbone_faults(geometry: &loupe_sdk::InputGeometry) -> Vec<(u8, &'static str, Vec<String>)> {
    let (layers, [gh, gw], dim) = (geometry.layers, geometry.grid, geometry.feature_dim);
    let shape = |l: usize, h: usize, w: usize, d: usize| format!("{l} layers x {h}x{w} grid x dim {d}");
    let declared = shape(layers, gh, gw, dim);
    let wrong_shape = |found: String| {
        vec![
            "image 2 of a batch of 4: feature shape (the backbone's geometry)".to_string(),
            format!("expected {declared}, found {found}"),
        ]
    };
    let count = |found: usize| {
        vec![format!("feature sets returned by the backbone for a batch of images: expected 4, found {found}")]
    };
    vec![
        (1, "panic", vec!["panicked: injected panic at image 2 of 4".into()]),
        (2, "error", vec!["inference in fault-backbone: injected error at image 2 of 4".into()]),
        (3, "one feature set missing", count(3)),
        (4, "one feature set too many", count(5)),
        (5, "another grid, same size", wrong_shape(shape(layers, gh / 2, gw * 2, dim))),
        (6, "another dimension", wrong_shape(shape(layers, gh, gw, dim + 1))),
        (7, "a layer missing", wrong_shape(shape(layers - 1, gh, gw, dim))),
        (8, "NaN", vec!["image 2 of a batch of 4: its patch features hold NaN at layer 1, patch 5, channel 3".into()]),
        (9, "infinity", vec!["image 2 of a batch of 4: its global feature holds inf at channel 0".into()]),
    ]
}

#[test]
fn a_backbone_fault_in_a_batch_fails_that_call_and_the_engine_goes_on_exactly() {
    let faulty = faulty_engine(4);
    let clean = loupe_dapo::build_engine(&config(4)).unwrap();
    let images = images();
    // Unmarked images: the fixture is the DAPO backbone, bit for bit.
    let expected = inspect(&clean, &images).unwrap();
    assert_all_same("before any fault", &inspect(&faulty, &images).unwrap(), &expected);
    let singles: Vec<Detection> = images.iter().map(|i| clean.inspect_one(&i.view()).unwrap()).collect();

    for (code, what, says) in backbone_faults(faulty.backbone().geometry()) {
        let mut batch = images.clone();
        batch[2] = marked(&images[2], code);
        let err = inspect(&faulty, &batch).unwrap_err();
        assert!(matches!(err, LoupeError::Component { .. }), "{what}: {err:?}");
        let message = err.to_string();
        assert!(message.starts_with("component fault-backbone: encode: "), "{what}: {message}");
        for s in &says {
            assert!(message.contains(s.as_str()), "{what}: `{message}` should contain `{s}`");
        }
        // The same engine, right after: the clean engine's results, as a batch and one by one.
        assert_all_same(&format!("after {what}"), &inspect(&faulty, &images).unwrap(), &expected);
        for (i, (image, single)) in images.iter().zip(&singles).enumerate() {
            assert_same(&format!("after {what}, image {i} alone"), &faulty.inspect_one(&image.view()).unwrap(), single);
        }
    }
}

/// With `engine.batch_size` 2, a fault in the second backbone batch of a call fails the whole call (the first
/// batch's results are not returned half-done), names the image within its backbone batch, and leaves nothing
/// behind.
#[test]
fn a_fault_in_a_later_backbone_batch_fails_the_whole_call() {
    let faulty = faulty_engine(2);
    let clean = loupe_dapo::build_engine(&config(2)).unwrap();
    let images = images();
    let expected = inspect(&clean, &images).unwrap();
    let mut batch = images.clone();
    batch[3] = marked(&images[3], 8);
    let message = inspect(&faulty, &batch).unwrap_err().to_string();
    assert!(message.contains("component fault-backbone: encode: image 1 of a batch of 2: "), "{message}");
    assert_all_same("after the fault", &inspect(&faulty, &images).unwrap(), &expected);
    // Sessions (a stream's window) see the error too and keep working.
    let mut session = loupe_sdk::Session::new(std::sync::Arc::new(faulty)).unwrap();
    assert!(session.inspect(&batch[3].view()).is_err());
    for (i, image) in images.iter().enumerate() {
        assert_same(
            &format!("session image {i}"),
            &session.inspect(&image.view()).unwrap(),
            &expected_one(&clean, image),
        );
    }
}

fn expected_one(engine: &Engine, image: &OwnedImage) -> Detection {
    engine.inspect_one(&image.view()).unwrap()
}

/// `image` resized to `width` columns (as packed RGB).
fn widened(image: &OwnedImage, width: u32) -> OwnedImage {
    let rgb = image.view().to_rgb();
    let crop = image::imageops::resize(&rgb, width, rgb.height(), image::imageops::FilterType::Triangle);
    OwnedImage { data: crop.into_raw(), width, height: image.height, format: PixelFormat::Rgb8 }
}

#[test]
fn a_cpp_exception_inside_a_postprocessor_is_an_error_and_the_engine_goes_on_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_root().join("plugins/fixture-panicking/cpp/throwing_postprocessor.cpp");
    let Some(lib) = compile_plugin("g++", &src, &shared_lib(tmp.path(), "fault_hysteresis")) else { return };
    let mut cfg = config(4);
    cfg.plugins.paths = vec![lib];
    cfg.components.postprocessor = "fault-hysteresis".into();
    let engine = loupe_dapo::build_engine(&cfg).unwrap();
    let fresh = || loupe_dapo::build_engine(&cfg).unwrap();
    let images = images();
    let expected = inspect(&fresh(), &images).unwrap();
    assert_all_same("before any fault", &inspect(&engine, &images).unwrap(), &expected);
    let cases = [
        (61, "fault-hysteresis: injected fault: a 61-pixel-wide map"),
        (67, "fault-hysteresis: unknown C++ exception"),
    ];
    for (width, says) in cases {
        let mut batch = images.clone();
        batch[2] = widened(&images[2], width);
        let err = inspect(&engine, &batch).unwrap_err();
        assert!(matches!(err, LoupeError::Component { .. }), "{width}: {err:?}");
        let message = err.to_string();
        assert!(message.starts_with("component fault-hysteresis: process: "), "{message}");
        assert!(message.contains(says), "`{message}` should contain `{says}`");
        assert_all_same(&format!("after the {width}-wide throw"), &inspect(&engine, &images).unwrap(), &expected);
    }
    // Images of other widths are post-processed, not refused: the trigger is the width, not any odd size.
    let odd = [widened(&images[2], 60)];
    assert_all_same("a 60-wide image", &inspect(&engine, &odd).unwrap(), &inspect(&fresh(), &odd).unwrap());
}

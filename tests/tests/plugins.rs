//! Plugins as shared libraries: the DAPO set loaded from its cdylib gives the in-process output bit for bit; a
//! C++ vendor post-processor joins a pipeline with the DAPO backbone; every refusal names the file and the reason;
//! a panic or C++ exception inside a plugin becomes an error.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};

use loupe_sdk::plugin::{Origin, Registry};
use loupe_sdk::{Detection, Engine, LoupeConfig, OwnedImage};
use loupe_tests::{build_cdylibs, compile_plugin, parity_fixture, repo_root, shared_lib};

fn fixture_config() -> LoupeConfig {
    let mut cfg = LoupeConfig::default();
    cfg.model.dir = Some(parity_fixture().join("model"));
    cfg.prompts.bank = Some(parity_fixture().join("bank.safetensors"));
    cfg.plugins.use_env = false;
    cfg
}

fn dapo_plugin() -> PathBuf {
    shared_lib(&build_cdylibs(&["loupe-dapo-plugin"]), "loupe_dapo_plugin")
}

fn images() -> Vec<OwnedImage> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(parity_fixture().join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| OwnedImage::open(p).unwrap()).collect()
}

fn run(engine: &Engine) -> Vec<Detection> {
    let images = images();
    let views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    engine.inspect(&views).unwrap()
}

fn c_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = repo_root().join(format!("tests/fixtures/plugins/{name}.c"));
    compile_plugin("cc", &src, &shared_lib(dir, name)).expect("a C compiler (cc) is needed for the plugin tests")
}

#[test]
fn dapo_shared_library_gives_the_in_process_output_exactly() {
    let cfg = fixture_config();
    let mut registry = Registry::new();
    let info = registry.load_plugin(&dapo_plugin()).unwrap();
    assert_eq!(info.name, "dapo");
    assert!(registry.listing().iter().all(|l| matches!(l.origin, Origin::Plugin(_))));
    let from_plugin = run(&registry.build_engine(&cfg).unwrap());
    let in_process = run(&loupe_dapo::build_engine(&cfg).unwrap());
    assert_eq!(from_plugin.len(), in_process.len());
    for (a, b) in from_plugin.iter().zip(&in_process) {
        assert_eq!(a.score, b.score);
        assert_eq!(a.class_probabilities, b.class_probabilities);
        assert_eq!(a.image_type, b.image_type);
        assert_eq!(a.anomaly_map, b.anomaly_map);
        assert_eq!(a.mask, b.mask);
        assert_eq!(a.type_map, b.type_map);
        assert_eq!(a.regions, b.regions);
        assert_eq!(a.thresholds, b.thresholds);
    }
}

#[test]
fn formats_plugin_abi_1_lacks_reach_a_plugin_backbone_as_rgb8() {
    use loupe_sdk::{ImageView, PixelFormat};
    let cfg = fixture_config();
    let mut registry = Registry::new();
    registry.load_plugin(&dapo_plugin()).unwrap();
    let plugin = registry.build_engine(&cfg).unwrap();
    let in_process = loupe_dapo::build_engine(&cfg).unwrap();
    for image in images().iter().take(2) {
        let rgb = image.view().to_rgb();
        let (w, h) = rgb.dimensions();
        let bgra: Vec<u8> = rgb.pixels().flat_map(|p| [p.0[2], p.0[1], p.0[0], 255]).collect();
        let view = ImageView::packed(&bgra, w, h, PixelFormat::Bgra8).unwrap();
        let expected =
            in_process.inspect_one(&ImageView::packed(rgb.as_raw(), w, h, PixelFormat::Rgb8).unwrap()).unwrap();
        let got = plugin.inspect_one(&view).unwrap();
        assert_eq!((got.score, got.anomaly_map), (expected.score, expected.anomaly_map), "BGRA8");
        let gray = image::DynamicImage::ImageRgb8(rgb).to_luma8();
        let words: Vec<u8> = gray.as_raw().iter().flat_map(|&g| (u16::from(g) << 4).to_ne_bytes()).collect();
        let view = ImageView::packed(&words, w, h, PixelFormat::Gray16 { bits: 12 }).unwrap();
        let expected =
            in_process.inspect_one(&ImageView::packed(gray.as_raw(), w, h, PixelFormat::Gray8).unwrap()).unwrap();
        let got = plugin.inspect_one(&view).unwrap();
        assert_eq!((got.score, got.anomaly_map), (expected.score, expected.anomaly_map), "GRAY12");
    }
}

#[test]
fn a_loaded_plugin_replaces_builtins_but_not_another_plugin() {
    let mut cfg = fixture_config();
    cfg.plugins.paths = vec![dapo_plugin()];
    let registry = loupe_dapo::registry(&cfg).unwrap();
    let listing = registry.listing();
    assert_eq!(listing.len(), 3);
    assert!(listing.iter().all(|l| matches!(&l.origin, Origin::Plugin(p) if p.name == "dapo")), "{listing:?}");

    let mut registry = Registry::new();
    registry.load_plugin(&dapo_plugin()).unwrap();
    let err = registry.load_plugin(&dapo_plugin()).unwrap_err().to_string();
    assert!(err.contains("libloupe_dapo_plugin") && err.contains("duplicate component name"), "{err}");
    assert_eq!(registry.plugins().len(), 1, "the refused plugin registered nothing");
}

#[test]
fn plugin_folders_load_every_library_in_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dapo_plugin(), tmp.path().join("libloupe_dapo_plugin.so")).unwrap();
    std::fs::write(tmp.path().join("README.txt"), "not a library, ignored").unwrap();
    let mut cfg = fixture_config();
    cfg.plugins.paths = vec![tmp.path().to_path_buf()];
    let registry = loupe_dapo::registry(&cfg).unwrap();
    assert_eq!(registry.plugins().len(), 1);
    cfg.plugins.paths = vec![tmp.path().join("missing-folder")];
    let err = loupe_dapo::registry(&cfg).err().unwrap().to_string();
    assert!(err.contains("missing-folder") && err.contains("no such file or folder"), "{err}");
}

#[test]
fn each_refusal_names_the_file_and_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("not_a_plugin", "not a Loupe plugin"),
        ("abi_v99", "plugin ABI version 99"),
        ("sdk_mismatch", "built for Loupe SDK 9.0.0"),
        ("register_fails", "registration failed: licence check failed: dongle not found"),
        ("duplicate_names", "duplicate component name: post-processor `twice`"),
    ];
    for (name, reason) in cases {
        let lib = c_fixture(name, tmp.path());
        let mut registry = Registry::new();
        let err = registry.load_plugin(&lib).unwrap_err().to_string();
        assert!(err.contains(&format!("lib{name}")) && err.contains(reason), "{name}: {err}");
        assert!(registry.listing().is_empty(), "{name}: a refused plugin registers nothing");
    }
}

#[test]
fn a_panicking_plugin_gives_errors_not_an_abort() {
    let dir = build_cdylibs(&["loupe-fixture-panicking", "loupe-dapo-plugin"]);
    let mut registry = Registry::new();
    registry.load_plugin(&shared_lib(&dir, "loupe_fixture_panicking")).unwrap();
    registry.load_plugin(&shared_lib(&dir, "loupe_dapo_plugin")).unwrap();
    let mut cfg = fixture_config();
    cfg.components.backbone = "panicking-backbone".into();

    cfg.components.options = Some(serde_json::from_str(r#"{"panic": "create"}"#).unwrap());
    let err = registry.build_engine(&cfg).err().unwrap().to_string();
    assert!(err.contains("panicking-backbone") && err.contains("panicked: create exploded on purpose"), "{err}");

    cfg.components.options = None;
    let backbone = registry.backbone(&cfg).unwrap();
    let images = images();
    let err = backbone.encode(&[images[0].view()]).unwrap_err().to_string();
    assert!(err.contains("panicked: encode exploded on purpose"), "{err}");
    // The plugin is still usable after a panic: the next call fails the same way instead of aborting.
    assert!(backbone.encode(&[images[0].view()]).is_err());
}

#[test]
fn a_cpp_vendor_postprocessor_runs_with_the_dapo_backbone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_root().join("plugins/vendor-hysteresis/hysteresis_postprocessor.cpp");
    let Some(vendor) = compile_plugin("g++", &src, &shared_lib(tmp.path(), "vendor_hysteresis")) else { return };
    let mut cfg = fixture_config();
    cfg.plugins.paths = vec![dapo_plugin(), vendor];
    cfg.components.postprocessor = "vendor-hysteresis".into();
    let registry = loupe_dapo::registry(&cfg).unwrap();
    let vendor_results = run(&registry.build_engine(&cfg).unwrap());
    let dapo_results = run(&loupe_dapo::build_engine(&fixture_config()).unwrap());
    let layers = 4.0;
    for (v, d) in vendor_results.iter().zip(&dapo_results) {
        assert!((v.score - d.score).abs() < 1e-5);
        let diff = v.anomaly_map.data.iter().zip(&d.anomaly_map.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "same DAPO maps in C++: max difference {diff}");
        assert_eq!(v.thresholds.pixel, d.thresholds.pixel, "high threshold = DAPO's default");
        for (i, (&vm, &dm)) in v.mask.iter().zip(&d.mask).enumerate() {
            assert!(dm == 0 || vm != 0, "every DAPO mask pixel is a hysteresis seed");
            assert!(vm == 0 || v.anomaly_map.data[i] > 0.35 * layers, "grown pixels exceed the low threshold");
        }
    }

    // A C++ exception (invalid options) comes back as an error naming the problem.
    cfg.components.options = Some(serde_json::from_str(r#"{"hysteresis_low": 0.9, "hysteresis_high": 0.5}"#).unwrap());
    let err = registry.build_engine(&cfg).err().unwrap().to_string();
    assert!(err.contains("vendor-hysteresis") && err.contains("hysteresis_low"), "{err}");
}

//! The ONNX Runtime backbone (`plugins/ort-backbone`), loaded as a shared-library plugin like any vendor's: its
//! features and results equal tract's within 1e-4 on the parity fixtures; a wrong provider name, a missing or
//! foreign or too old library and a model ONNX Runtime cannot run are each a clear error, and a provider this
//! ONNX Runtime lacks is a logged fallback to the CPU.
//!
//! Needs an ONNX Runtime shared library: `LOUPE_ORT_LIBRARY=<path>` (the `libonnxruntime.so.*` of a pip-installed
//! `onnxruntime`; `tools/test-all.sh` sets it from the tools venv). Without it the tests that need it skip loudly,
//! and fail when `REQUIRE_ORT=1` (CI).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use loupe_sdk::plugin::Registry;
use loupe_sdk::{Detection, Engine, ImageFeatures, LoupeConfig, OwnedImage};
use loupe_tests::{assert_close, build_cdylibs, compile_plugin, parity_fixture, repo_root, shared_lib};

/// The ONNX Runtime library, or `None` (after saying so) when none is configured and it is not required.
fn ort_library() -> Option<PathBuf> {
    match std::env::var_os("LOUPE_ORT_LIBRARY").filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("REQUIRE_ORT").as_deref() != Ok("1"),
                "REQUIRE_ORT=1 but LOUPE_ORT_LIBRARY is not set (the libonnxruntime.so.* of a pip-installed onnxruntime)"
            );
            eprintln!("SKIPPED: LOUPE_ORT_LIBRARY is not set; set it (and REQUIRE_ORT=1 to make this a failure)");
            None
        }
    }
}

fn ort_plugin() -> PathBuf {
    shared_lib(&build_cdylibs(&["loupe-ort-backbone"]), "loupe_ort_backbone")
}

/// The fixtures whose model both backbones run: generated weights, trained DAPO parts, the authors' convention.
fn fixtures() -> Vec<PathBuf> {
    let root = repo_root().join("tests/fixtures");
    vec![parity_fixture(), root.join("parity-trained"), root.join("authors-parity")]
}

fn config(fixture: &Path, options: serde_json::Value) -> LoupeConfig {
    let mut cfg = LoupeConfig::default();
    cfg.model.dir = Some(fixture.join("model"));
    cfg.prompts.bank = Some(fixture.join("bank.safetensors"));
    cfg.plugins.use_env = false;
    cfg.engine.threads = 1;
    cfg.components.backbone = "ort-clip-onnx".into();
    let mut map = serde_json::Map::new();
    map.insert("ort-clip-onnx".into(), options);
    cfg.components.options = Some(map);
    cfg
}

fn ort_engine(cfg: &LoupeConfig) -> loupe_sdk::Result<Engine> {
    let mut registry = Registry::new();
    loupe_dapo::register_builtins(&mut registry).unwrap();
    registry.load_plugin(&ort_plugin()).unwrap();
    registry.build_engine(cfg)
}

fn images(fixture: &Path) -> Vec<OwnedImage> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(fixture.join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| OwnedImage::open(p).unwrap()).collect()
}

fn features(engine: &Engine, images: &[OwnedImage]) -> Vec<ImageFeatures> {
    let views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    engine.encode(&views).unwrap()
}

fn detections(engine: &Engine, images: &[OwnedImage]) -> Vec<Detection> {
    let views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    engine.inspect(&views).unwrap()
}

#[test]
fn features_and_results_equal_tracts_within_1e4_on_the_parity_fixtures() {
    let Some(lib) = ort_library() else { return };
    for fixture in fixtures() {
        let cfg = config(&fixture, serde_json::json!({ "library": lib }));
        let ort = ort_engine(&cfg).unwrap();
        assert_eq!(ort.components()[0].kind, "ort-clip-onnx");
        let mut tract_cfg = cfg.clone();
        tract_cfg.components = LoupeConfig::default().components;
        let tract = loupe_dapo::build_engine(&tract_cfg).unwrap();
        let imgs = images(&fixture);
        let name = fixture.file_name().unwrap().to_string_lossy().to_string();
        for (i, (a, b)) in features(&ort, &imgs).iter().zip(features(&tract, &imgs)).enumerate() {
            assert_close(&format!("{name} image {i}: global"), &a.global, &b.global);
            assert_close(&format!("{name} image {i}: patches"), &a.patches, &b.patches);
        }
        for (i, (a, b)) in detections(&ort, &imgs).iter().zip(detections(&tract, &imgs)).enumerate() {
            assert_close(&format!("{name} image {i}: score"), &[a.score], &[b.score]);
            assert_close(&format!("{name} image {i}: anomaly map"), &a.anomaly_map.data, &b.anomaly_map.data);
        }
    }
}

#[test]
fn a_wrong_provider_name_is_an_error_naming_the_field_and_the_choices() {
    let Some(lib) = ort_library() else { return };
    let cfg = config(&parity_fixture(), serde_json::json!({ "library": lib, "provider": "cudaa" }));
    let err = ort_engine(&cfg).err().expect("refused").to_string();
    assert!(err.contains("components.options.ort-clip-onnx.provider") && err.contains("\"cudaa\""), "{err}");
    assert!(err.contains("cpu, cuda, tensorrt"), "{err}");
}

/// Log records this test binary received (plugins write through the host's logger).
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LOGS.lock().unwrap().push(format!("{} {}: {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_provider_this_onnx_runtime_lacks_falls_back_to_the_cpu_with_a_warning() {
    let Some(lib) = ort_library() else { return };
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let fixture = parity_fixture();
    // PyPI's onnxruntime wheel has the CPU provider only; with a GPU build this test has nothing to show.
    let cuda = ort_engine(&config(&fixture, serde_json::json!({ "library": lib, "provider": "tensorrt" }))).unwrap();
    let cpu = ort_engine(&config(&fixture, serde_json::json!({ "library": lib }))).unwrap();
    let logs = LOGS.lock().unwrap().clone();
    let warning = logs.iter().find(|l| l.contains("`tensorrt`"));
    let Some(warning) = warning else {
        panic!("no fallback warning was logged (a TensorRT build of ONNX Runtime?); logs: {logs:?}");
    };
    assert!(
        warning.starts_with("WARN") && warning.contains("running on the CPU") && warning.contains("cpu"),
        "{warning}"
    );
    let imgs = images(&fixture);
    for (a, b) in features(&cuda, &imgs).iter().zip(features(&cpu, &imgs)) {
        assert_eq!(a.patches, b.patches);
    }
}

#[test]
fn a_missing_foreign_or_too_old_library_is_refused_naming_path_and_version() {
    let fixture = parity_fixture();
    let missing = Path::new("/nonexistent/libonnxruntime.so.1.32.0");
    let err = ort_engine(&config(&fixture, serde_json::json!({ "library": missing }))).err().unwrap().to_string();
    assert!(err.contains(&missing.display().to_string()) && err.contains("no such file"), "{err}");
    // A shared library that is not ONNX Runtime: the DAPO plugin.
    let foreign = shared_lib(&build_cdylibs(&["loupe-dapo-plugin"]), "loupe_dapo_plugin");
    let err = ort_engine(&config(&fixture, serde_json::json!({ "library": foreign }))).err().unwrap().to_string();
    assert!(err.contains(&foreign.display().to_string()) && err.contains("exports no `OrtGetApiBase`"), "{err}");
    // One that says it is ONNX Runtime 1.2.0.
    let dir = tempfile::tempdir().unwrap();
    let src = repo_root().join("tests/fixtures/plugins/fake_onnxruntime.c");
    let Some(old) = compile_plugin("cc", &src, &dir.path().join("libonnxruntime.so.1.2.0")) else { return };
    let err = ort_engine(&config(&fixture, serde_json::json!({ "library": old }))).err().unwrap().to_string();
    assert!(
        err.contains(&old.display().to_string()) && err.contains("\"1.2.0\" found") && err.contains("or newer"),
        "{err}"
    );
}

/// The parity fixture's model copied, with its image encoder replaced by `bytes`.
fn model_with_encoder(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(parity_fixture().join("model")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, model.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(model.join("image_encoder.onnx"), bytes).unwrap();
    (tmp, model)
}

#[test]
fn a_model_onnx_runtime_cannot_run_is_an_error_naming_the_file() {
    let Some(lib) = ort_library() else { return };
    let text_encoder = std::fs::read(parity_fixture().join("model/text_encoder.onnx")).unwrap();
    for (bytes, why) in [(&b"not an ONNX model"[..], "cannot run it"), (&text_encoder[..], "input `image` missing")] {
        let (_tmp, model) = model_with_encoder(bytes);
        let mut cfg = config(&parity_fixture(), serde_json::json!({ "library": lib }));
        cfg.model.dir = Some(model.clone());
        let err = ort_engine(&cfg).err().expect("refused").to_string();
        assert!(err.contains(&model.join("image_encoder.onnx").display().to_string()) && err.contains(why), "{err}");
    }
}

#[test]
fn the_int8_encoder_is_refused_naming_the_field_when_the_model_has_none() {
    let Some(lib) = ort_library() else { return };
    let mut cfg = config(&parity_fixture(), serde_json::json!({ "library": lib }));
    cfg.model.precision = loupe_sdk::config::Precision::Int8;
    let err = ort_engine(&cfg).err().expect("refused").to_string();
    assert!(err.contains("model.precision") && err.contains("image_encoder_int8"), "{err}");
}

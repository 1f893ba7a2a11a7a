//! Parity with the DAPO authors' own code (`boschresearch/defect-aware-prompt-optimization`): a checkpoint saved
//! in their `train.py` format, imported by `loupe_tools.import_dapo`, gives in Loupe the image scores, per-class
//! maps, anomaly maps and per-pixel defect types their `test.py` / `test_multi_defect.py` computed, within 1e-4.
//!
//! `tests/fixtures/authors-parity` holds their outputs (generated weights, tiny CLIP; provenance in its README),
//! made by `python -m loupe_tools.authors_parity`; their code is not needed here. `LOUPE_AUTHORS_PARITY_DIR=<dir>`
//! points the test at another run of that command (e.g. ViT-L/14-336 at 518); `--nocapture` prints the largest
//! differences.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_dapo::{ClipOnnxBackbone, DapoPostProcessor, DapoPromptBank, ModelDir};
use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::{Engine, LoupeConfig, OwnedImage, PromptBank};
use loupe_tests::{Expected, TOLERANCE, assert_close};

fn fixture_dir() -> PathBuf {
    std::env::var_os("LOUPE_AUTHORS_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/authors-parity"))
}

fn outputs(dir: &Path) -> Expected {
    Expected::load_file(&dir.join("authors_outputs.safetensors"))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_imported_model_declares_the_authors_convention() {
    let dir = fixture_dir();
    let model = ModelDir::open(&dir.join("model")).unwrap();
    assert_eq!(model.meta.text.prompt_convention, loupe_dapo::PromptConvention::DapoAuthors);
    assert!(model.meta.source.contains("sha256"), "the source names the checkpoint's hash: {}", model.meta.source);
}

#[test]
fn text_features_equal_the_authors_code_also_when_recomputed() {
    let dir = fixture_dir();
    let exp = outputs(&dir);
    let model = ModelDir::open(&dir.join("model")).unwrap();
    let bank = DapoPromptBank::load(&dir.join("bank.safetensors"), &model).unwrap();
    let words = exp.list("words");
    let theirs = exp.get("text_features");
    let cached = bank.text_features(&words).unwrap();
    assert_close("text_features (cache)", &cached.rows, theirs);
    // Another order misses the cache: Loupe's text encoder runs their computation.
    let reversed: Vec<String> = words.iter().rev().cloned().collect();
    let encoded = bank.text_features(&reversed).unwrap();
    let d = encoded.dim;
    let mut want = theirs[..d].to_vec();
    for k in (1..=words.len()).rev() {
        want.extend_from_slice(&theirs[k * d..(k + 1) * d]);
    }
    eprintln!("text_features (encoded): max abs difference {:.2e}", max_diff(&encoded.rows, &want));
    assert_close("text_features (encoded)", &encoded.rows, &want);
}

#[test]
fn scores_maps_and_defect_types_equal_the_authors_code() {
    let dir = fixture_dir();
    let exp = outputs(&dir);
    let model = ModelDir::open(&dir.join("model")).unwrap();
    let backbone = Arc::new(ClipOnnxBackbone::from_model_dir(&model).unwrap());
    let bank = Arc::new(DapoPromptBank::load(&dir.join("bank.safetensors"), &model).unwrap());
    let words = exp.list("words");
    let mut cfg = LoupeConfig::default();
    cfg.prompts.defects = Some(words.clone());
    // Their test.py does not smooth; the per-class maps are kept to compare them.
    cfg.postprocess = PostprocessConfig { smoothing_sigma: 0.0, keep_class_maps: true, ..Default::default() };
    let post = Arc::new(DapoPostProcessor::new(cfg.postprocess.clone()));
    let engine = Engine::new(backbone, bank, post, &cfg).unwrap();
    let stems = exp.list("images");
    assert!(!stems.is_empty());
    let (mut worst_score, mut worst_class, mut worst_anomaly) = (0.0f32, 0.0f32, 0.0f32);
    let (mut clear, mut total) = (0usize, 0usize);
    for s in &stems {
        let image = OwnedImage::open(&dir.join("images").join(format!("{s}.png"))).unwrap();
        let d = engine.inspect_one(&image.view()).unwrap();
        let theirs_score = exp.get(&format!("{s}/image_score"));
        assert_close(&format!("{s}/image_score"), &[d.score], theirs_score);
        worst_score = worst_score.max((d.score - theirs_score[0]).abs());
        let class_maps: Vec<f32> = d.class_maps.iter().flat_map(|m| m.data.iter().copied()).collect();
        let theirs_classes = exp.get(&format!("{s}/class_maps"));
        assert_close(&format!("{s}/class_maps"), &class_maps, theirs_classes);
        worst_class = worst_class.max(max_diff(&class_maps, theirs_classes));
        let theirs_anomaly = exp.get(&format!("{s}/anomaly_map"));
        assert_close(&format!("{s}/anomaly_map"), &d.anomaly_map.data, theirs_anomaly);
        worst_anomaly = worst_anomaly.max(max_diff(&d.anomaly_map.data, theirs_anomaly));

        // Per-pixel defect type (their test_multi_defect.py: argmax over normal + defects). Where their two best
        // classes are closer than the tolerance allowed above, either answer is right.
        let theirs_type = exp.get(&format!("{s}/type_map"));
        let pixels = theirs_type.len();
        let classes = d.class_maps.len();
        assert_eq!(classes, 1 + words.len());
        for p in 0..pixels {
            let values: Vec<f32> = (0..classes).map(|k| theirs_classes[k * pixels + p]).collect();
            let mut sorted = values.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            total += 1;
            if sorted[0] - sorted[1] <= 2.0 * TOLERANCE {
                continue;
            }
            clear += 1;
            let ours =
                (0..classes).max_by(|&a, &b| d.class_maps[a].data[p].total_cmp(&d.class_maps[b].data[p])).unwrap();
            assert_eq!(ours as f32, theirs_type[p], "{s}: defect type at pixel {p} (their class values {values:?})");
        }
    }
    eprintln!(
        "largest differences vs the authors' code: image score {worst_score:.2e}, class maps {worst_class:.2e}, \
         anomaly map {worst_anomaly:.2e}; defect type equal on all {clear} of {total} pixels whose top two classes \
         differ by more than {:.0e}",
        2.0 * TOLERANCE
    );
    assert!(
        clear * 10 >= total * 9,
        "only {clear} of {total} pixels have a clear defect type: the fixture is too flat"
    );
}

/// The fixture's model directory copied to a temporary folder, with `edit` applied to its `text` section.
fn edited_model(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_dir().join("model");
    let dst = tmp.path().join("model");
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dst.join(path.file_name().unwrap())).unwrap();
    }
    let json_path = dst.join("loupe-model.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    edit(&mut json["text"]);
    std::fs::write(&json_path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    (tmp, dst)
}

#[test]
fn a_bad_convention_or_depth_in_the_model_is_refused_naming_the_field() {
    let layers = ModelDir::open(&fixture_dir().join("model")).unwrap().meta.text.layers;
    let (_tmp, dir) = edited_model(|t| t["deep_prompt_layers"] = (layers + 1).into());
    let err = ModelDir::open(&dir).unwrap_err().to_string();
    let range = format!("1 to text.layers ({layers})");
    assert!(
        err.contains("text.deep_prompt_layers") && err.contains(&range) && err.contains(&(layers + 1).to_string()),
        "{err}"
    );
    let (_tmp, dir) = edited_model(|t| t["prompt_convention"] = "theirs".into());
    let err = ModelDir::open(&dir).unwrap_err().to_string();
    assert!(err.contains("theirs") && err.contains("dapo-authors"), "{err}");
}

#[test]
fn a_bank_laid_out_for_the_other_convention_is_refused() {
    let dir = fixture_dir();
    let bytes = std::fs::read(dir.join("bank.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    assert_eq!(meta.remove("prompt_convention").as_deref(), Some("dapo-authors"));
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    let rewritten = safetensors::serialize(tensors, Some(meta)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("loupe-convention.safetensors");
    std::fs::write(&path, rewritten).unwrap();
    let model = ModelDir::open(&dir.join("model")).unwrap();
    let err = DapoPromptBank::load(&path, &model).err().expect("refused").to_string();
    assert!(
        err.contains("prompt_convention") && err.contains("\"dapo-authors\"") && err.contains("\"loupe\""),
        "{err}"
    );
}

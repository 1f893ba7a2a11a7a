//! # DAPO reference plugins for Loupe
//!
//! - [`ClipOnnxBackbone`]: the CLIP image encoder exported to ONNX, run with tract;
//! - [`DapoPromptBank`]: DAPO's hybrid prompts (learned context + an anchor word), encoded with the model's text
//!   encoder, so customers can add defect words that were never trained;
//! - [`DapoPostProcessor`]: per-pixel scores and defect types on the CPU (`postprocess/mod.rs`).
//!
//! [`build_engine`] assembles the three from a [`LoupeConfig`]. Formats: `docs/model-format.md`.

pub mod backbone;
pub mod model_dir;
pub mod onnx;
pub mod postprocess;
pub mod preprocess;
pub mod prompt_bank;
pub mod text_encoder;
pub mod tokenizer;

use std::path::PathBuf;
use std::sync::Arc;

pub use backbone::ClipOnnxBackbone;
use loupe_sdk::{Engine, LoupeConfig, LoupeError, Result};
pub use model_dir::ModelDir;
pub use postprocess::DapoPostProcessor;
pub use prompt_bank::DapoPromptBank;

/// Builds an engine from the configuration's model directory, prompt bank and post-processing settings.
pub fn build_engine(config: &LoupeConfig) -> Result<Engine> {
    let dir = config.model.dir.clone().ok_or_else(|| LoupeError::Config {
        file: None,
        field: "model.dir".into(),
        expected: "a Loupe model directory (--model DIR, or model.dir in the configuration)".into(),
        found: "nothing".into(),
    })?;
    let model = ModelDir::open(&dir)?;
    let bank_path: PathBuf = config.prompts.bank.clone().ok_or_else(|| LoupeError::Config {
        file: None,
        field: "prompts.bank".into(),
        expected: "a prompt bank file (--prompts FILE, or prompts.bank in the configuration)".into(),
        found: "nothing".into(),
    })?;
    let backbone = Arc::new(ClipOnnxBackbone::from_model_dir(&model)?);
    let bank = Arc::new(DapoPromptBank::load(&bank_path, &model)?);
    let post = Arc::new(DapoPostProcessor::new(config.postprocess.clone()));
    Engine::new(backbone, bank, post, config)
}

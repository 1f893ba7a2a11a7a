//! # DAPO reference plugins for Loupe
//!
//! - [`ClipOnnxBackbone`]: the CLIP image encoder exported to ONNX, run with tract;
//! - [`DapoPromptBank`]: DAPO's hybrid prompts (learned context + an anchor word), encoded with the model's text
//!   encoder, so customers can add defect words that were never trained;
//! - [`DapoPostProcessor`]: per-pixel scores and defect types on the CPU (`postprocess/mod.rs`), the reference;
//!   with the `gpu` feature (default) the same on the GPU through wgpu (`postprocess/gpu/`), as
//!   `postprocess.backend` chooses (`docs/gpu.md`).
//!
//! [`build_engine`] assembles an engine from a [`LoupeConfig`](loupe_sdk::LoupeConfig): the three are registered as built-in components
//! (`components.rs`), plugins named by the configuration or `LOUPE_PLUGIN_PATH` are loaded, and the configured
//! names are looked up. The same components build as a shared-library plugin (`plugins/dapo-plugin`).
//! Formats: `docs/model-format.md`.

pub mod backbone;
pub mod components;
pub mod fused_attention;
pub mod model_dir;
pub mod onnx;
pub mod postprocess;
pub mod preprocess;
pub mod prompt_bank;
pub mod row_softmax;
pub mod text_encoder;
pub mod tokenizer;

pub use backbone::ClipOnnxBackbone;
pub use components::{build_engine, register_builtins, register_plugin, registry};
pub use model_dir::{ModelDir, PromptConvention};
pub use postprocess::DapoPostProcessor;
pub use prompt_bank::DapoPromptBank;

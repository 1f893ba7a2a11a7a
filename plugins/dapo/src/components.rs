//! The DAPO components under their registry names, for the in-process registry and for the shared-library
//! plugin alike: one factory per role, reading what it needs from the configuration.

use std::ffi::CStr;
use std::sync::Arc;

use loupe_sdk::plugin::guest::Registrar;
use loupe_sdk::plugin::{Origin, Registry};
use loupe_sdk::{Backbone, Engine, LoupeConfig, LoupeError, PostProcessor, PromptBank, Result};

use crate::{ClipOnnxBackbone, DapoPromptBank, ModelDir};

/// Registry name of the CLIP ONNX backbone (the plugin ABI takes C strings).
pub const BACKBONE: &CStr = c"dapo-clip-onnx";
/// Registry name of the DAPO prompt bank.
pub const PROMPT_BANK: &CStr = c"dapo-prompt-bank";
/// Registry name of the DAPO post-processor.
pub const POSTPROCESSOR: &CStr = c"dapo-postprocess";

fn name(c: &CStr) -> &str {
    c.to_str().unwrap_or_default()
}

/// The model of `model.dir`, or the embedded default model when it is not configured (feature `default-model`).
pub fn configured_model(cfg: &LoupeConfig) -> Result<ModelDir> {
    match &cfg.model.dir {
        Some(dir) => ModelDir::open_with_limits(dir, &cfg.limits),
        None => default_model(cfg),
    }
}

#[cfg(feature = "default-model")]
fn default_model(cfg: &LoupeConfig) -> Result<ModelDir> {
    ModelDir::from_source_with_limits(crate::model_dir::ModelSource::embedded(), &cfg.limits)
}

#[cfg(not(feature = "default-model"))]
fn default_model(_cfg: &LoupeConfig) -> Result<ModelDir> {
    Err(LoupeError::Config {
        file: None,
        field: "model.dir".into(),
        expected: "a Loupe model directory (--model DIR, or model.dir in the configuration)".into(),
        found: "nothing".into(),
    })
}

/// `prompts.bank` is required when `model.dir` is: the embedded bank serves only the embedded model.
fn missing_bank() -> LoupeError {
    LoupeError::Config {
        file: None,
        field: "prompts.bank".into(),
        expected: "a prompt bank file (--prompts FILE, or prompts.bank in the configuration)".into(),
        found: "nothing".into(),
    }
}

/// Builds the CLIP ONNX backbone of `model.dir`, or of the embedded default model when it is not configured.
pub fn backbone_factory(cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
    let threads = cfg.engine.thread_count();
    Ok(Arc::new(ClipOnnxBackbone::with_settings(&configured_model(cfg)?, cfg.model.precision, threads)?))
}

/// Builds the prompt bank `prompts.bank` for the configured model. With neither `prompts.bank` nor `model.dir`
/// configured, the embedded default bank; with `model.dir` but no `prompts.bank`, an error.
pub fn prompt_bank_factory(cfg: &LoupeConfig) -> Result<Arc<dyn PromptBank>> {
    let model = configured_model(cfg)?;
    let bank = match (&cfg.prompts.bank, &cfg.model.dir) {
        (Some(bank), _) => DapoPromptBank::load(bank, &model)?,
        (None, None) => default_bank(&model)?,
        (None, Some(_)) => return Err(missing_bank()),
    };
    Ok(Arc::new(bank))
}

#[cfg(feature = "default-model")]
fn default_bank(model: &ModelDir) -> Result<DapoPromptBank> {
    DapoPromptBank::embedded(model)
}

#[cfg(not(feature = "default-model"))]
fn default_bank(_model: &ModelDir) -> Result<DapoPromptBank> {
    Err(missing_bank())
}

/// Builds the post-processor with the `postprocess` settings, on the backend `postprocess.backend` chooses
/// (CPU, GPU, or the GPU on a hardware adapter; logged once).
pub fn postprocessor_factory(cfg: &LoupeConfig) -> Result<Arc<dyn PostProcessor>> {
    crate::postprocess::backend::build_postprocessor(&cfg.postprocess)
}

/// Registers the DAPO components as built-ins.
pub fn register_builtins(registry: &mut Registry) -> Result<()> {
    registry.add_backbone(name(BACKBONE), Origin::BuiltIn, Arc::new(backbone_factory))?;
    registry.add_prompt_bank(name(PROMPT_BANK), Origin::BuiltIn, Arc::new(prompt_bank_factory))?;
    registry.add_postprocessor(name(POSTPROCESSOR), Origin::BuiltIn, Arc::new(postprocessor_factory))
}

/// Registers the DAPO components from inside the shared-library plugin.
pub fn register_plugin(r: &mut Registrar) -> Result<()> {
    r.backbone(BACKBONE, backbone_factory)?;
    r.prompt_bank(PROMPT_BANK, prompt_bank_factory)?;
    r.postprocessor(POSTPROCESSOR, postprocessor_factory)
}

/// The built-in components plus the plugins the configuration (and `LOUPE_PLUGIN_PATH`) names.
pub fn registry(cfg: &LoupeConfig) -> Result<Registry> {
    let mut registry = Registry::new();
    register_builtins(&mut registry)?;
    registry.load_configured(cfg)?;
    Ok(registry)
}

/// Builds the engine the configuration describes (components chosen by `components.*`).
pub fn build_engine(cfg: &LoupeConfig) -> Result<Engine> {
    registry(cfg)?.build_engine(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_register_once_and_match_the_default_configuration() {
        let defaults = LoupeConfig::default().components;
        assert_eq!(
            (name(BACKBONE), name(PROMPT_BANK), name(POSTPROCESSOR)),
            (defaults.backbone.as_str(), defaults.prompt_bank.as_str(), defaults.postprocessor.as_str())
        );
        let mut r = Registry::new();
        register_builtins(&mut r).unwrap();
        assert_eq!(r.listing().len(), 3);
        assert!(register_builtins(&mut r).unwrap_err().to_string().contains("duplicate"));
    }

    #[cfg(not(feature = "default-model"))]
    #[test]
    fn without_the_default_model_no_model_is_a_configuration_error() {
        let cfg = LoupeConfig::default();
        for e in [backbone_factory(&cfg).err().unwrap(), prompt_bank_factory(&cfg).err().unwrap()] {
            assert!(matches!(&e, LoupeError::Config { field, .. } if field == "model.dir"), "{e}");
        }
    }
}

//! Options shared by the subcommands that build an engine, and the rule for combining them with the
//! configuration: file, then `LOUPE_*` environment, then flags, then one schema validation of the result.

use std::path::{Path, PathBuf};

use clap::Args;
use loupe_sdk::{Engine, LoupeConfig, LoupeError};

/// `--model`, `--prompts`, `--config`.
#[derive(Args)]
pub struct EngineOptions {
    /// Model directory (overrides `model.dir`). Default: the embedded default model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt bank file (overrides `prompts.bank`). Default: the embedded default bank, when no model is given.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Configuration file (TOML, JSON or YAML); `LOUPE_SECTION__FIELD` variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl EngineOptions {
    /// The configuration file and environment, with `--model` and `--prompts` applied (not yet re-validated).
    pub fn load(&self) -> Result<LoupeConfig, LoupeError> {
        let mut cfg = LoupeConfig::load(self.config.as_deref())?;
        if let Some(m) = &self.model {
            cfg.model.dir = Some(m.clone());
        }
        if let Some(p) = &self.prompts {
            cfg.prompts.bank = Some(p.clone());
        }
        Ok(cfg)
    }

    /// Validates a configuration that flags have changed against the schema, naming the file if any.
    pub fn validate(&self, cfg: &LoupeConfig) -> Result<LoupeConfig, LoupeError> {
        revalidate(cfg, self.config.as_deref())
    }
}

/// One line saying which model (and prompt bank) `engine` runs, e.g.
/// `model: embedded default (tiny-random-seed0, id 30086d39fc3f2401); prompt bank: embedded default`.
pub fn model_line(cfg: &LoupeConfig, engine: &Engine) -> String {
    let [backbone, bank, _] = engine.components();
    // The DAPO backbone reads the embedded model exactly when no model directory is configured.
    let embedded = cfg.model.dir.is_none() && backbone.kind.as_bytes() == loupe_dapo::components::BACKBONE.to_bytes();
    let model = match &cfg.model.dir {
        Some(dir) => dir.display().to_string(),
        None if embedded => "embedded default".to_string(),
        None => format!("backbone `{}`", cfg.components.backbone),
    };
    let bank_source = match &cfg.prompts.bank {
        Some(file) => file.display().to_string(),
        None if embedded => "embedded default".to_string(),
        None => format!("`{}`", cfg.components.prompt_bank),
    };
    format!("model: {model} ({}, id {}); prompt bank: {bank_source} ({})", backbone.name, backbone.id, bank.name)
}

fn revalidate(cfg: &LoupeConfig, file: Option<&Path>) -> Result<LoupeConfig, LoupeError> {
    let value =
        serde_json::to_value(cfg).map_err(|e| LoupeError::ConfigSyntax { file: None, message: e.to_string() })?;
    LoupeConfig::from_value(&value, file)
}

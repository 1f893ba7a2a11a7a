//! Options shared by the subcommands that build an engine, and the rule for combining them with the
//! configuration: file, then `LOUPE_*` environment, then flags, then one schema validation of the result.

use std::path::{Path, PathBuf};

use clap::Args;
use loupe_sdk::{LoupeConfig, LoupeError};

/// `--model`, `--prompts`, `--config`.
#[derive(Args)]
pub struct EngineOptions {
    /// Model directory (overrides `model.dir`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt bank file (overrides `prompts.bank`).
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

fn revalidate(cfg: &LoupeConfig, file: Option<&Path>) -> Result<LoupeConfig, LoupeError> {
    let value =
        serde_json::to_value(cfg).map_err(|e| LoupeError::ConfigSyntax { file: None, message: e.to_string() })?;
    LoupeConfig::from_value(&value, file)
}

//! `loupe plugins`: which plugin libraries are loaded and which component fills each role.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use loupe_sdk::LoupeConfig;
use loupe_sdk::plugin::{Origin, Role};

/// Arguments of `loupe plugins`.
#[derive(Args)]
pub struct PluginsArgs {
    /// Configuration file (its `plugins.paths` are loaded, as is `LOUPE_PLUGIN_PATH`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Extra plugin files or folders to load.
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `loupe plugins`.
pub fn run(args: &PluginsArgs) -> ExitCode {
    let result = LoupeConfig::load(args.config.as_deref()).and_then(|mut cfg| {
        cfg.plugins.paths.extend(args.plugins.iter().cloned());
        loupe_dapo::registry(&cfg).map(|r| (cfg, r))
    });
    let (cfg, registry) = match result {
        Ok(v) => v,
        Err(e) => {
            crate::print_error("", &e);
            return ExitCode::from(2);
        }
    };
    let selected = |role: Role| match role {
        Role::Backbone => &cfg.components.backbone,
        Role::PromptBank => &cfg.components.prompt_bank,
        Role::PostProcessor => &cfg.components.postprocessor,
    };
    if args.json {
        let value = serde_json::json!({
            "plugins": registry.plugins(),
            "components": registry.listing(),
            "selected": cfg.components,
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!("plugin libraries: {}", registry.plugins().len());
    for p in registry.plugins() {
        println!("  {} {} (built for SDK {})  {}", p.name, p.version, p.sdk_version, p.file.display());
    }
    println!("components (* = selected by the configuration):");
    for l in registry.listing() {
        let origin = match &l.origin {
            Origin::BuiltIn => "built in".to_string(),
            Origin::Plugin(p) => format!("plugin {} ({})", p.name, p.file.display()),
        };
        let mark = if selected(l.role) == &l.name { "*" } else { " " };
        println!("  {mark} {:<15} {:<22} {origin}", l.role.to_string(), l.name);
    }
    ExitCode::SUCCESS
}

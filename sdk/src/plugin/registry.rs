//! The component registry: named factories for each role, built in or loaded from plugins, and the assembly of
//! an [`Engine`] from the names the configuration chooses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::LoupeConfig;
use crate::engine::Engine;
use crate::error::{LoupeError, Result};
use crate::traits::{Backbone, PostProcessor, PromptBank};

/// Builds a backbone from the configuration.
pub type BackboneFactory = Arc<dyn Fn(&LoupeConfig) -> Result<Arc<dyn Backbone>> + Send + Sync>;
/// Builds a prompt bank from the configuration.
pub type PromptBankFactory = Arc<dyn Fn(&LoupeConfig) -> Result<Arc<dyn PromptBank>> + Send + Sync>;
/// Builds a post-processor from the configuration.
pub type PostProcessorFactory = Arc<dyn Fn(&LoupeConfig) -> Result<Arc<dyn PostProcessor>> + Send + Sync>;

/// The three roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Image encoder.
    Backbone,
    /// Text matrix provider.
    PromptBank,
    /// Maps, scores and masks.
    PostProcessor,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Backbone => "backbone",
            Self::PromptBank => "prompt bank",
            Self::PostProcessor => "post-processor",
        })
    }
}

/// A loaded plugin library.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// The library file.
    pub file: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The SDK version it was built against.
    pub sdk_version: String,
}

/// Where a component comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Linked into this program.
    BuiltIn,
    /// Registered by a plugin library.
    Plugin(Arc<PluginInfo>),
}

/// One registered component, as `loupe plugins` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listing {
    /// Its role.
    pub role: Role,
    /// Its name.
    pub name: String,
    /// Where it comes from.
    pub origin: Origin,
}

struct Entry<F> {
    factory: F,
    origin: Origin,
}

/// Named component factories.
#[derive(Default)]
pub struct Registry {
    backbones: BTreeMap<String, Entry<BackboneFactory>>,
    banks: BTreeMap<String, Entry<PromptBankFactory>>,
    posts: BTreeMap<String, Entry<PostProcessorFactory>>,
    plugins: Vec<Arc<PluginInfo>>,
}

/// Inserts with the duplicate rule: a plugin may replace a built-in component of the same name (an explicit load
/// overrides a default), but two plugins, or the same plugin twice, may not provide the same name.
fn insert<F>(map: &mut BTreeMap<String, Entry<F>>, role: Role, name: &str, entry: Entry<F>) -> Result<()> {
    if let Some(old) = map.get(name) {
        match (&old.origin, &entry.origin) {
            (Origin::BuiltIn, Origin::Plugin(p)) => {
                log::info!("{role} `{name}` from plugin {} replaces the built-in one", p.file.display());
            }
            (old_origin, new_origin) => {
                let describe = |o: &Origin| match o {
                    Origin::BuiltIn => "built in".to_string(),
                    Origin::Plugin(p) => format!("from {}", p.file.display()),
                };
                return Err(LoupeError::Vocabulary(format!(
                    "duplicate {role} name `{name}`: already registered ({}), registered again ({})",
                    describe(old_origin),
                    describe(new_origin)
                )));
            }
        }
    }
    map.insert(name.to_string(), entry);
    Ok(())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a backbone factory.
    pub fn add_backbone(&mut self, name: &str, origin: Origin, factory: BackboneFactory) -> Result<()> {
        insert(&mut self.backbones, Role::Backbone, name, Entry { factory, origin })
    }

    /// Registers a prompt-bank factory.
    pub fn add_prompt_bank(&mut self, name: &str, origin: Origin, factory: PromptBankFactory) -> Result<()> {
        insert(&mut self.banks, Role::PromptBank, name, Entry { factory, origin })
    }

    /// Registers a post-processor factory.
    pub fn add_postprocessor(&mut self, name: &str, origin: Origin, factory: PostProcessorFactory) -> Result<()> {
        insert(&mut self.posts, Role::PostProcessor, name, Entry { factory, origin })
    }

    /// Moves every component of `other` in, with the duplicate rule of [`Registry::add_backbone`].
    pub(crate) fn merge(&mut self, other: Registry) -> Result<()> {
        let Registry { backbones, banks, posts, .. } = other;
        for (name, e) in backbones {
            self.add_backbone(&name, e.origin, e.factory)?;
        }
        for (name, e) in banks {
            self.add_prompt_bank(&name, e.origin, e.factory)?;
        }
        for (name, e) in posts {
            self.add_postprocessor(&name, e.origin, e.factory)?;
        }
        Ok(())
    }

    pub(crate) fn add_plugin(&mut self, info: Arc<PluginInfo>) {
        self.plugins.push(info);
    }

    /// Whether `role` has a component called `name`.
    pub fn contains(&self, role: Role, name: &str) -> bool {
        match role {
            Role::Backbone => self.backbones.contains_key(name),
            Role::PromptBank => self.banks.contains_key(name),
            Role::PostProcessor => self.posts.contains_key(name),
        }
    }

    /// The loaded plugin libraries.
    pub fn plugins(&self) -> &[Arc<PluginInfo>] {
        &self.plugins
    }

    /// Every registered component.
    pub fn listing(&self) -> Vec<Listing> {
        let mut out = Vec::new();
        let mut add = |role, name: &String, origin: &Origin| {
            out.push(Listing { role, name: name.clone(), origin: origin.clone() })
        };
        self.backbones.iter().for_each(|(n, e)| add(Role::Backbone, n, &e.origin));
        self.banks.iter().for_each(|(n, e)| add(Role::PromptBank, n, &e.origin));
        self.posts.iter().for_each(|(n, e)| add(Role::PostProcessor, n, &e.origin));
        out
    }

    fn lookup<'a, F>(map: &'a BTreeMap<String, Entry<F>>, role: Role, name: &str) -> Result<&'a F> {
        map.get(name).map(|e| &e.factory).ok_or_else(|| LoupeError::Config {
            file: None,
            field: match role {
                Role::Backbone => "components.backbone",
                Role::PromptBank => "components.prompt_bank",
                Role::PostProcessor => "components.postprocessor",
            }
            .into(),
            expected: format!("a registered {role} ({})", map.keys().cloned().collect::<Vec<_>>().join(", ")),
            found: format!("`{name}`"),
        })
    }

    /// Builds the backbone `components.backbone` names.
    pub fn backbone(&self, cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
        Self::lookup(&self.backbones, Role::Backbone, &cfg.components.backbone)?(cfg)
    }

    /// Builds the prompt bank `components.prompt_bank` names.
    pub fn prompt_bank(&self, cfg: &LoupeConfig) -> Result<Arc<dyn PromptBank>> {
        Self::lookup(&self.banks, Role::PromptBank, &cfg.components.prompt_bank)?(cfg)
    }

    /// Builds the post-processor `components.postprocessor` names.
    pub fn postprocessor(&self, cfg: &LoupeConfig) -> Result<Arc<dyn PostProcessor>> {
        Self::lookup(&self.posts, Role::PostProcessor, &cfg.components.postprocessor)?(cfg)
    }

    /// Builds the engine the configuration describes from the registered components.
    pub fn build_engine(&self, cfg: &LoupeConfig) -> Result<Engine> {
        Engine::new(self.backbone(cfg)?, self.prompt_bank(cfg)?, self.postprocessor(cfg)?, cfg)
    }
}

//! The SDK's error type: every failure names what was wrong and where (file, field, expected vs found).

use std::path::PathBuf;

/// Result alias used across the SDK and its plugins.
pub type Result<T, E = LoupeError> = std::result::Result<T, E>;

/// Everything that can go wrong in Loupe. Variants carry the file or field involved so that a message alone is
/// enough to find the problem.
#[derive(Debug, thiserror::Error)]
pub enum LoupeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An image could not be decoded, or has a layout the SDK does not accept.
    #[error("image {path}: {reason}")]
    Image {
        /// File name, or `<memory>` for an in-memory view.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A configuration value is invalid.
    #[error("configuration {}: field `{field}`: expected {expected}, found {found}", display_path(file))]
    Config {
        /// The configuration file, if the value came from one.
        file: Option<PathBuf>,
        /// Dotted path of the field (`postprocess.smoothing_sigma`).
        field: String,
        /// What the field must hold.
        expected: String,
        /// What it held.
        found: String,
    },

    /// A configuration file could not be read or parsed at all.
    #[error("configuration {}: {message}", display_path(file))]
    ConfigSyntax {
        /// The configuration file, if any.
        file: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },

    /// A model file is missing, malformed or inconsistent.
    #[error("model {path}: {reason}")]
    Model {
        /// The file (or directory) involved.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A prompt bank is missing, malformed, or was made for another backbone.
    #[error("prompt bank {path}: {reason}")]
    PromptBank {
        /// The bank file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A product profile is missing, malformed, or was made for another backbone.
    #[error("profile {path}: {reason}")]
    Profile {
        /// The profile file (or the name it was given).
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// Two components that must agree do not (sizes, dimensions, class counts).
    #[error("{what}: expected {expected}, found {found}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// Expected value.
        expected: String,
        /// Found value.
        found: String,
    },

    /// A defect vocabulary cannot be served.
    #[error("defect vocabulary: {0}")]
    Vocabulary(String),

    /// Model inference failed at run time.
    #[error("inference in {stage}: {message}")]
    Inference {
        /// The stage (`image encoder`, `text encoder`, ...).
        stage: String,
        /// The runtime's message.
        message: String,
    },

    /// A shared-library plugin was refused or failed to register.
    #[error("plugin {file}: {reason}")]
    Plugin {
        /// The library file.
        file: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// An input is over one of the configured resource limits ([`crate::limits::Limits`]); nothing was done.
    #[error(
        "{what}: found {value}, over the limit `limits.{limit}` = {max} (raise it in the configuration's \
         [limits] section, or with the environment variable {})",
        crate::limits::env_name(limit)
    )]
    Limit {
        /// The input measured (file, image, batch, vocabulary).
        what: String,
        /// The limit's field name in `[limits]`.
        limit: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        max: u64,
    },

    /// A component (plugin) failed or panicked.
    #[error("component {component}: {message}")]
    Component {
        /// The component's name.
        component: String,
        /// What happened.
        message: String,
    },
}

fn display_path(file: &Option<PathBuf>) -> String {
    match file {
        Some(p) => p.display().to_string(),
        None => "(defaults and environment)".to_string(),
    }
}

impl LoupeError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A size or dimension mismatch.
    pub fn mismatch(what: impl Into<String>, expected: impl ToString, found: impl ToString) -> Self {
        Self::Mismatch { what: what.into(), expected: expected.to_string(), found: found.to_string() }
    }

    /// A model error on `path`.
    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Model { path: path.into(), reason: reason.into() }
    }

    /// A prompt-bank error on `path`.
    pub fn bank(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::PromptBank { path: path.into(), reason: reason.into() }
    }

    /// A profile error on `path`.
    pub fn profile(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Profile { path: path.into(), reason: reason.into() }
    }

    /// A plugin error on `file`.
    pub fn plugin(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Plugin { file: file.into(), reason: reason.into() }
    }

    /// An inference error in `stage`.
    pub fn inference(stage: impl Into<String>, message: impl ToString) -> Self {
        Self::Inference { stage: stage.into(), message: message.to_string() }
    }
}

impl From<loupe_reference::ReferenceError> for LoupeError {
    fn from(err: loupe_reference::ReferenceError) -> Self {
        match err {
            loupe_reference::ReferenceError::Shape { what, expected, found }
            | loupe_reference::ReferenceError::Invalid { what, expected, found } => {
                Self::Mismatch { what: format!("reference scoring: {what}"), expected, found }
            }
        }
    }
}

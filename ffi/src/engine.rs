//! Engines: built from a configuration file or string with `loupe_dapo::build_engine`, shared by every thread.

use std::ffi::{CString, c_char};
use std::path::Path;
use std::sync::Arc;

use loupe_sdk::{ConfigFormat, Engine, LoupeConfig, LoupeError};

use crate::args;
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::status::{FfiError, LoupeStatus};

/// Configuration text format: TOML.
pub const LOUPE_CONFIG_TOML: u32 = 1;
/// Configuration text format: JSON.
pub const LOUPE_CONFIG_JSON: u32 = 2;
/// Configuration text format: YAML.
pub const LOUPE_CONFIG_YAML: u32 = 3;

/// An inspection engine (model, prompt bank, post-processor). Opaque; create with
/// `loupe_engine_create_from_file` or `loupe_engine_create_from_string`, destroy with `loupe_engine_destroy`.
pub struct LoupeEngine {
    _private: [u8; 0],
}

/// What an engine handle refers to.
pub(crate) struct EngineData {
    /// Shared with every `loupe_sdk::Session` made on it.
    pub(crate) engine: Arc<Engine>,
    /// Class names (`normal`, then the defect words) as C strings.
    class_names: Vec<CString>,
}

impl EngineData {
    fn new(engine: Engine) -> Self {
        let class_names = std::iter::once(loupe_sdk::features::NORMAL_CLASS)
            .chain(engine.vocabulary().iter().map(String::as_str))
            .map(c_string)
            .collect();
        Self { engine: Arc::new(engine), class_names }
    }
}

/// A C copy of `s` (an interior NUL, which no class name should hold, is shown as `\0`).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Where a configuration came from, to name it in errors.
enum Source<'a> {
    /// A file.
    File(&'a Path),
    /// A string; the format's name (`TOML`).
    Text(&'a str),
}

/// Builds an engine with the DAPO assembly (`loupe_dapo::build_engine`, which also loads configured plugins).
/// Configuration errors that the builder reports without a file are attributed to the source.
fn build(config: &LoupeConfig, source: &Source<'_>) -> Result<EngineData, FfiError> {
    let engine = loupe_dapo::build_engine(config).map_err(|e| attribute(e, source))?;
    Ok(EngineData::new(engine))
}

fn attribute(err: LoupeError, source: &Source<'_>) -> FfiError {
    match (err, source) {
        (LoupeError::Config { file: None, field, expected, found }, Source::File(path)) => {
            LoupeError::Config { file: Some(path.to_path_buf()), field, expected, found }.into()
        }
        (LoupeError::ConfigSyntax { file: None, message }, Source::File(path)) => {
            LoupeError::ConfigSyntax { file: Some(path.to_path_buf()), message }.into()
        }
        (LoupeError::Config { file: None, field, expected, found }, Source::Text(format)) => FfiError::new(
            LoupeStatus::Config,
            format!("configuration string ({format}): field `{field}`: expected {expected}, found {found}"),
        ),
        (LoupeError::ConfigSyntax { file: None, message }, Source::Text(format)) => {
            FfiError::new(LoupeStatus::Config, format!("configuration string ({format}): {message}"))
        }
        (other, _) => other.into(),
    }
}

fn config_format(format: u32) -> Result<(ConfigFormat, &'static str), FfiError> {
    match format {
        LOUPE_CONFIG_TOML => Ok((ConfigFormat::Toml, "TOML")),
        LOUPE_CONFIG_JSON => Ok((ConfigFormat::Json, "JSON")),
        LOUPE_CONFIG_YAML => Ok((ConfigFormat::Yaml, "YAML")),
        other => Err(FfiError::new(
            LoupeStatus::InvalidArgument,
            format!(
                "`format`: expected LOUPE_CONFIG_TOML (1), LOUPE_CONFIG_JSON (2) or LOUPE_CONFIG_YAML (3), \
                 found {other}"
            ),
        )),
    }
}

/// Creates an engine from a configuration file (`.toml`, `.json`, `.yaml`/`.yml`); relative paths in it are
/// relative to the file, and `LOUPE_SECTION__FIELD` environment variables override its values. Loads the model
/// and prompt bank, which can take seconds for large models.
///
/// On success `*out_engine` receives a new handle, to be released with `loupe_engine_destroy`; on failure it is
/// set to NULL and `loupe_last_error()` names the file and field (or model file) that was wrong.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_engine` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_create_from_file(
    path: *const c_char,
    out_engine: *mut *mut LoupeEngine,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_engine, "out_engine", std::ptr::null_mut()) }?;
        // SAFETY: as above.
        let path = unsafe { args::path(path, "path") }?;
        let config = LoupeConfig::load(Some(&path)).map_err(|e| attribute(e, &Source::File(&path)))?;
        let data = build(&config, &Source::File(&path))?;
        *out = handles::insert(Object::Engine(data.into()));
        Ok(())
    })
}

/// Creates an engine from configuration text in `format` (`LOUPE_CONFIG_TOML`, `LOUPE_CONFIG_JSON`,
/// `LOUPE_CONFIG_YAML`). Relative paths in it are relative to the process's working directory; environment
/// variables are not applied.
///
/// On success `*out_engine` receives a new handle, to be released with `loupe_engine_destroy`; on failure it is
/// set to NULL and `loupe_last_error()` names the field that was wrong.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string; `out_engine` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_create_from_string(
    text: *const c_char,
    format: u32,
    out_engine: *mut *mut LoupeEngine,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_engine, "out_engine", std::ptr::null_mut()) }?;
        // SAFETY: as above.
        let text = unsafe { args::text(text, "text") }?;
        let (format, name) = config_format(format)?;
        let source = Source::Text(name);
        let config = LoupeConfig::from_text(text, format).map_err(|e| attribute(e, &source))?;
        let data = build(&config, &source)?;
        *out = handles::insert(Object::Engine(data.into()));
        Ok(())
    })
}

/// Destroys an engine handle. Sessions created from it keep working (they hold the engine until they are
/// destroyed), and so do profiles bound to it (they hold their own data). NULL is accepted and does nothing; a
/// handle that is not a live engine gives `LOUPE_STATUS_INVALID_HANDLE`.
///
/// Thread-safety: safe from any thread; a call racing with it on the same handle either completes normally or
/// gets `LOUPE_STATUS_INVALID_HANDLE`.
///
/// # Safety
/// None beyond passing a value received from Loupe (any value is checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_destroy(engine: *mut LoupeEngine) -> LoupeStatus {
    guard(|| handles::remove(engine, "engine", handles::engine))
}

/// The number of classes of the engine's vocabulary: `normal` plus each defect word.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_count` is NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_class_count(engine: *const LoupeEngine, out_count: *mut usize) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_count, "out_count", 0) }?;
        *out = handles::engine(engine, "engine")?.class_names.len();
        Ok(())
    })
}

/// The name of class `index` (0 is `normal`, then the defect words in order). The string is owned by the engine:
/// do not free it; it stays valid until the engine and every session made from it are destroyed.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_class_name(
    engine: *const LoupeEngine,
    index: usize,
    out_name: *mut *const c_char,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_name, "out_name", std::ptr::null()) }?;
        let data = handles::engine(engine, "engine")?;
        let i = args::index(index, data.class_names.len(), "index")?;
        // The engine data lives in the registry (and in sessions) beyond this call: the pointer stays valid.
        *out = data.class_names[i].as_ptr();
        Ok(())
    })
}

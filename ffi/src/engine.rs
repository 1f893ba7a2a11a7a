//! Engines: built from a configuration file or string with `loupe_dapo::build_engine`, shared by every thread.

use std::ffi::{CString, c_char};
use std::path::Path;
use std::sync::Arc;

use loupe_sdk::{ComponentInfo, ConfigFormat, Engine, LoupeConfig, LoupeError, ScoringMode};

use crate::args;
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::options::segment_code;
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
    /// Backbone, prompt bank and post-processor identities (kept by each result for its JSON).
    pub(crate) components: [ComponentInfo; 3],
    /// Their names and ids as C strings, in `LoupeEngineInfo` order: model name, model id, bank name, bank id,
    /// post-processor kind.
    identity: [CString; 5],
}

impl EngineData {
    fn new(engine: Engine) -> Self {
        let class_names = std::iter::once(loupe_sdk::features::NORMAL_CLASS)
            .chain(engine.vocabulary().iter().map(String::as_str))
            .map(c_string)
            .collect();
        let components = engine.components();
        let [model, bank, post] = &components;
        let identity = [&model.name, &model.id, &bank.name, &bank.id, &post.kind].map(|s| c_string(s));
        Self { engine: Arc::new(engine), class_names, components, identity }
    }
}

/// What an engine holds, copied out by `loupe_engine_info`. Set `struct_size` to `sizeof(LoupeEngineInfo)` before
/// the call (fields may be appended in later versions). Strings are owned by the engine: valid until the engine and
/// every session made from it are destroyed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeEngineInfo {
    /// Set by the caller to `sizeof(LoupeEngineInfo)`; never written by Loupe.
    pub struct_size: u32,
    /// The backbone model's name.
    pub model_name: *const c_char,
    /// The backbone model's content id (`model_id` of its metadata; profiles and banks record it).
    pub model_id: *const c_char,
    /// The prompt bank's name.
    pub bank_name: *const c_char,
    /// The prompt bank's content id (hash).
    pub bank_id: *const c_char,
    /// The post-processor's kind (`dapo-postprocess-cpu`, `dapo-postprocess-gpu`, or a plugin's).
    pub postprocessor: *const c_char,
    /// Model input width in pixels (images of other sizes are resized to it).
    pub input_width: u32,
    /// Model input height in pixels.
    pub input_height: u32,
    /// Patch-feature layers (the top of a text-only anomaly map's range).
    pub layers: u32,
    /// Feature dimension.
    pub feature_dim: u32,
    /// Image threshold of text-only results without a profile (`postprocess.image_threshold`).
    pub image_threshold: f32,
    /// Pixel threshold of text-only results without a profile (`postprocess.pixel_threshold`, or half the layers).
    pub pixel_threshold: f32,
    /// `postprocess.min_region_area`.
    pub min_region_area: u32,
    /// `postprocess.segment`: `LOUPE_SEGMENT_ANOMALOUS` or `LOUPE_SEGMENT_ALL`.
    pub segment: u32,
    /// Number of classes (`normal` plus the defect words); names through `loupe_engine_class_name`.
    pub class_count: u32,
    /// Whether the engine has a default profile (the configuration's `profile`).
    pub has_default_profile: bool,
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

/// Creates an engine with Loupe's embedded default model and prompt bank and the default settings (no
/// configuration file, no environment variables): what `loupe inspect` uses without options. The same as
/// `loupe_engine_create_from_string("", LOUPE_CONFIG_TOML, out_engine)`.
///
/// On success `*out_engine` receives a new handle, to be released with `loupe_engine_destroy`; on failure it is
/// set to NULL.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_engine` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_create_default(out_engine: *mut *mut LoupeEngine) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_engine, "out_engine", std::ptr::null_mut()) }?;
        let data = build(&LoupeConfig::default(), &Source::Text("default"))?;
        *out = handles::insert(Object::Engine(data.into()));
        Ok(())
    })
}

/// Copies what the engine holds into `*out_info`: model and bank identity, post-processor, input size, the
/// configured thresholds, minimum region area and segment rule, the number of classes. The caller sets
/// `out_info->struct_size` to `sizeof(LoupeEngineInfo)`; a smaller value than this version's struct is refused with
/// `LOUPE_STATUS_INVALID_ARGUMENT` and nothing is written.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_info` is NULL or points to a `LoupeEngineInfo` whose `struct_size` is readable and which is valid for
/// writing `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_engine_info(engine: *const LoupeEngine, out_info: *mut LoupeEngineInfo) -> LoupeStatus {
    guard(|| {
        if out_info.is_null() {
            return Err(FfiError::null("out_info"));
        }
        // SAFETY: non-NULL, `struct_size` readable by the contract.
        let size = unsafe { std::ptr::addr_of!((*out_info).struct_size).read() } as usize;
        if size < size_of::<LoupeEngineInfo>() {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                format!(
                    "`out_info->struct_size`: expected sizeof(LoupeEngineInfo) (at least {}), found {size}",
                    size_of::<LoupeEngineInfo>()
                ),
            ));
        }
        let data = handles::engine(engine, "engine")?;
        let e = &data.engine;
        let g = e.backbone().geometry();
        let decision = e.decision(ScoringMode::Text, None);
        let [model_name, model_id, bank_name, bank_id, post] = &data.identity;
        let info = LoupeEngineInfo {
            struct_size: size as u32,
            model_name: model_name.as_ptr(),
            model_id: model_id.as_ptr(),
            bank_name: bank_name.as_ptr(),
            bank_id: bank_id.as_ptr(),
            postprocessor: post.as_ptr(),
            input_width: g.input_size[1],
            input_height: g.input_size[0],
            layers: u32::try_from(g.layers).unwrap_or(u32::MAX),
            feature_dim: u32::try_from(g.feature_dim).unwrap_or(u32::MAX),
            image_threshold: decision.thresholds.image,
            pixel_threshold: decision.thresholds.pixel,
            min_region_area: decision.min_region_area,
            segment: segment_code(decision.segment),
            class_count: u32::try_from(data.class_names.len()).unwrap_or(u32::MAX),
            has_default_profile: e.default_profile().is_some(),
        };
        // SAFETY: the whole struct of this version fits in `struct_size` bytes (checked above); `struct_size`
        // is written back unchanged.
        unsafe { out_info.write_unaligned(info) };
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

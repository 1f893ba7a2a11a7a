//! The plugin ABI: plain C structs and function tables, so a plugin can be written in Rust, C or C++ and built
//! with any compiler. `include/loupe_plugin.h` is generated from this file (cbindgen).
//!
//! A plugin is a shared library exporting one symbol, [`LOUPE_PLUGIN_ENTRY`]
//! (`const LoupePluginDeclaration *loupe_plugin_declare(void)`). The host reads `abi_version` first and trusts
//! nothing else until it matches, then checks `struct_size`, the SDK version and the name, then calls `register`
//! once. Tables carry their own `struct_size` so fields can be appended in later ABI versions.
//!
//! Rules for plugin authors (also in the header):
//! - every function returns `LOUPE_PLUGIN_OK` (0) or another status and, on failure, writes a message into the
//!   `LoupeErrorBuf` it was given; no panic or C++ exception may leave a function;
//! - component instances are called from several threads at once: they must be thread-safe;
//! - strings and arrays a plugin returns stay valid until the instance is destroyed; buffers the host passes
//!   in are owned by the host; each side frees only its own memory.

use std::ffi::{c_char, c_void};

/// ABI version of this SDK. A plugin declaring another is refused.
pub const LOUPE_PLUGIN_ABI_VERSION: u32 = 1;

/// Name of the symbol every plugin exports.
pub const LOUPE_PLUGIN_ENTRY: &str = "loupe_plugin_declare";

/// Success.
pub const LOUPE_PLUGIN_OK: i32 = 0;
/// Failure; the error buffer says why.
pub const LOUPE_PLUGIN_ERROR: i32 = 1;

/// Pixel formats of [`LoupePluginImage::format`].
pub const LOUPE_PLUGIN_FORMAT_GRAY8: u32 = 0;
/// Three bytes per pixel, R G B.
pub const LOUPE_PLUGIN_FORMAT_RGB8: u32 = 1;
/// Three bytes per pixel, B G R.
pub const LOUPE_PLUGIN_FORMAT_BGR8: u32 = 2;
/// Four bytes per pixel, R G B A.
pub const LOUPE_PLUGIN_FORMAT_RGBA8: u32 = 3;

/// A caller-owned buffer a plugin writes a NUL-terminated error message into (truncated to `capacity`).
#[repr(C)]
pub struct LoupeErrorBuf {
    /// Start of the buffer.
    pub message: *mut c_char,
    /// Its size in bytes, NUL included.
    pub capacity: usize,
}

/// What a plugin exports: read field by field, `abi_version` first.
#[repr(C)]
pub struct LoupePluginDeclaration {
    /// Must equal [`LOUPE_PLUGIN_ABI_VERSION`].
    pub abi_version: u32,
    /// `sizeof(LoupePluginDeclaration)` as the plugin was compiled.
    pub struct_size: u32,
    /// The SDK version the plugin was built against (`"0.1.0"`).
    pub sdk_version: *const c_char,
    /// Plugin name (`"dapo"`).
    pub name: *const c_char,
    /// Plugin's own version.
    pub plugin_version: *const c_char,
    /// Registers the plugin's components through `host`; returns a status.
    pub register: Option<unsafe extern "C" fn(host: *const LoupeHostApi, err: *mut LoupeErrorBuf) -> i32>,
}

/// Functions the host gives a plugin during `register`.
#[repr(C)]
pub struct LoupeHostApi {
    /// `sizeof(LoupeHostApi)`.
    pub struct_size: u32,
    /// Host-private context; pass it back unchanged.
    pub context: *mut c_void,
    /// Registers a backbone factory; the table is copied. Returns a status (duplicate names fail).
    pub register_backbone: Option<
        unsafe extern "C" fn(context: *mut c_void, table: *const LoupeBackboneTable, err: *mut LoupeErrorBuf) -> i32,
    >,
    /// Registers a prompt-bank factory.
    pub register_prompt_bank: Option<
        unsafe extern "C" fn(context: *mut c_void, table: *const LoupePromptBankTable, err: *mut LoupeErrorBuf) -> i32,
    >,
    /// Registers a post-processor factory.
    pub register_postprocessor: Option<
        unsafe extern "C" fn(
            context: *mut c_void,
            table: *const LoupePostProcessorTable,
            err: *mut LoupeErrorBuf,
        ) -> i32,
    >,
    /// Writes a log record through the host's logger, so a plugin's warnings (a fallback, say) reach the user.
    /// Appended after the first release: present only when `struct_size` covers it. `level` is one of the
    /// `LOUPE_PLUGIN_LOG_*` values; `target` (e.g. the plugin's name) and `message` are NUL-terminated UTF-8.
    /// Callable from any thread, during and after `register`, for as long as the process lives.
    pub log: Option<unsafe extern "C" fn(level: i32, target: *const c_char, message: *const c_char)>,
}

/// Log levels of [`LoupeHostApi::log`]: an error.
pub const LOUPE_PLUGIN_LOG_ERROR: i32 = 1;
/// A warning.
pub const LOUPE_PLUGIN_LOG_WARN: i32 = 2;
/// Information.
pub const LOUPE_PLUGIN_LOG_INFO: i32 = 3;
/// Debugging detail.
pub const LOUPE_PLUGIN_LOG_DEBUG: i32 = 4;
/// Tracing detail.
pub const LOUPE_PLUGIN_LOG_TRACE: i32 = 5;

/// Creates an instance from the whole configuration as JSON (a component reads the fields it needs, e.g.
/// `model.dir`, and its own options under `components.options`).
pub type LoupeCreateFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        config_json: *const c_char,
        instance: *mut *mut c_void,
        err: *mut LoupeErrorBuf,
    ) -> i32,
>;

/// Destroys an instance.
pub type LoupeDestroyFn = Option<unsafe extern "C" fn(instance: *mut c_void)>;

/// An 8-bit image view (`height` rows of `stride` bytes).
#[repr(C)]
pub struct LoupePluginImage {
    /// First byte of row 0.
    pub data: *const u8,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// One of the `LOUPE_PLUGIN_FORMAT_*` values.
    pub format: u32,
}

/// A backbone's geometry and identity. Strings stay valid while the instance lives.
#[repr(C)]
pub struct LoupeBackboneGeometry {
    /// Input height in pixels.
    pub input_height: u32,
    /// Input width in pixels.
    pub input_width: u32,
    /// Per-channel mean (RGB).
    pub mean: [f32; 3],
    /// Per-channel std.
    pub std: [f32; 3],
    /// Patch grid height.
    pub grid_height: u32,
    /// Patch grid width.
    pub grid_width: u32,
    /// Feature dimension.
    pub feature_dim: u32,
    /// Number of patch-feature layers.
    pub layers: u32,
    /// Model identity (prompt banks record it).
    pub model_id: *const c_char,
    /// Model name.
    pub model_name: *const c_char,
}

/// Backbone factory and instance functions.
#[repr(C)]
pub struct LoupeBackboneTable {
    /// `sizeof(LoupeBackboneTable)`.
    pub struct_size: u32,
    /// Component name (unique in a host).
    pub name: *const c_char,
    /// Passed to `create`.
    pub user_data: *mut c_void,
    /// Creates an instance.
    pub create: LoupeCreateFn,
    /// Destroys an instance.
    pub destroy: LoupeDestroyFn,
    /// Fills the geometry.
    pub geometry: Option<
        unsafe extern "C" fn(instance: *mut c_void, out: *mut LoupeBackboneGeometry, err: *mut LoupeErrorBuf) -> i32,
    >,
    /// Encodes `count` images into `global` (`count x feature_dim`) and `patches`
    /// (`count x layers x grid_h*grid_w x feature_dim`), buffers owned by the host.
    pub encode: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            images: *const LoupePluginImage,
            count: usize,
            global: *mut f32,
            patches: *mut f32,
            err: *mut LoupeErrorBuf,
        ) -> i32,
    >,
}

/// A prompt bank's identity and trained vocabulary. Pointers stay valid while the instance lives.
#[repr(C)]
pub struct LoupePromptBankInfo {
    /// Bank name.
    pub name: *const c_char,
    /// Model id of the backbone it was made for.
    pub backbone_id: *const c_char,
    /// Text feature dimension.
    pub dim: u32,
    /// Number of trained words.
    pub word_count: u32,
    /// The trained words.
    pub words: *const *const c_char,
    /// Non-zero when it can encode words it was not trained on.
    pub can_add_words: u8,
}

/// Prompt-bank factory and instance functions.
#[repr(C)]
pub struct LoupePromptBankTable {
    /// `sizeof(LoupePromptBankTable)`.
    pub struct_size: u32,
    /// Component name.
    pub name: *const c_char,
    /// Passed to `create`.
    pub user_data: *mut c_void,
    /// Creates an instance.
    pub create: LoupeCreateFn,
    /// Destroys an instance.
    pub destroy: LoupeDestroyFn,
    /// Fills the description.
    pub describe: Option<
        unsafe extern "C" fn(instance: *mut c_void, out: *mut LoupePromptBankInfo, err: *mut LoupeErrorBuf) -> i32,
    >,
    /// Writes the L2-normalised text matrix of `normal` + `words` into `out` (`(1 + count) x dim`, host-owned).
    pub text_features: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            words: *const *const c_char,
            count: usize,
            out: *mut f32,
            err: *mut LoupeErrorBuf,
        ) -> i32,
    >,
}

/// One image's features, as the host passes them to a post-processor.
#[repr(C)]
pub struct LoupePluginFeatures {
    /// `[dim]`.
    pub global: *const f32,
    /// `[layers, grid_h * grid_w, dim]`.
    pub patches: *const f32,
    /// Number of layers.
    pub layers: u32,
    /// Grid height.
    pub grid_height: u32,
    /// Grid width.
    pub grid_width: u32,
    /// Feature dimension.
    pub dim: u32,
}

/// The text matrix: row 0 normal, then the defect words.
#[repr(C)]
pub struct LoupePluginText {
    /// `[classes, dim]`, rows L2-normalised.
    pub rows: *const f32,
    /// Number of rows (1 + defect words).
    pub classes: u32,
    /// Feature dimension.
    pub dim: u32,
    /// Class names (`classes` of them).
    pub class_names: *const *const c_char,
}

/// Host-owned outputs a post-processor fills, all of `width x height` pixels where they are maps.
#[repr(C)]
pub struct LoupePluginDetection {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Image anomaly score in [0, 1].
    pub score: f32,
    /// Image threshold used.
    pub image_threshold: f32,
    /// Pixel threshold used.
    pub pixel_threshold: f32,
    /// Most probable defect type (index into the classes, >= 1).
    pub image_type: u32,
    /// `[classes]` image-level class probabilities.
    pub class_probabilities: *mut f32,
    /// `[height, width]` anomaly map.
    pub anomaly_map: *mut f32,
    /// `[height, width]` mask, 0 or 255.
    pub mask: *mut u8,
    /// `[height, width]` per-pixel type (0 outside the mask).
    pub type_map: *mut u16,
}

/// Post-processor factory and instance functions.
#[repr(C)]
pub struct LoupePostProcessorTable {
    /// `sizeof(LoupePostProcessorTable)`.
    pub struct_size: u32,
    /// Component name.
    pub name: *const c_char,
    /// Passed to `create`.
    pub user_data: *mut c_void,
    /// Creates an instance.
    pub create: LoupeCreateFn,
    /// Destroys an instance.
    pub destroy: LoupeDestroyFn,
    /// Post-processes one image into `out` (whose buffers and size the host set).
    pub process: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            features: *const LoupePluginFeatures,
            text: *const LoupePluginText,
            out: *mut LoupePluginDetection,
            err: *mut LoupeErrorBuf,
        ) -> i32,
    >,
}

/// The exported entry point's type.
pub type LoupePluginDeclareFn = unsafe extern "C" fn() -> *const LoupePluginDeclaration;

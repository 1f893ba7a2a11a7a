//! Plugin side, for plugins written in Rust: turns [`Backbone`], [`PromptBank`] and [`PostProcessor`]
//! factories into the C tables of the ABI, catching every panic at the boundary. Use [`crate::export_plugin!`].

use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::abi::*;
use super::error_buf::{HostErrorBuf, read_str, write_error};
use crate::config::LoupeConfig;
use crate::error::{LoupeError, Result};
use crate::features::{ImageFeatures, TextFeatures};
use crate::image_input::{ImageView, PixelFormat};
use crate::traits::{Backbone, InputGeometry, OutputSize, PostProcessor, PromptBank};

/// Builds a backbone from the configuration.
pub type BackboneFactory = fn(&LoupeConfig) -> Result<Arc<dyn Backbone>>;
/// Builds a prompt bank from the configuration.
pub type PromptBankFactory = fn(&LoupeConfig) -> Result<Arc<dyn PromptBank>>;
/// Builds a post-processor from the configuration.
pub type PostProcessorFactory = fn(&LoupeConfig) -> Result<Arc<dyn PostProcessor>>;

/// Runs `f`, turning an error or a panic into a status and a message: nothing unwinds into the host.
pub(crate) fn guard(err: *mut LoupeErrorBuf, f: impl FnOnce() -> Result<()>) -> i32 {
    let message = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return LOUPE_PLUGIN_OK,
        Ok(Err(e)) => e.to_string(),
        Err(panic) => {
            let what =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            format!("panicked: {}", what.unwrap_or_else(|| "(no message)".into()))
        }
    };
    // SAFETY: the host passes a valid buffer or null.
    unsafe { write_error(err, &message) };
    LOUPE_PLUGIN_ERROR
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn bad(what: &str) -> LoupeError {
    LoupeError::Component { component: "plugin".into(), message: what.into() }
}

/// # Safety
/// `json` is null or a valid C string.
unsafe fn parse_config(json: *const c_char) -> Result<LoupeConfig> {
    // SAFETY: forwarded contract.
    let text = unsafe { read_str(json) }.ok_or_else(|| bad("configuration JSON is null or not UTF-8"))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(&format!("configuration JSON does not parse: {e}")))?;
    LoupeConfig::from_value(&value, None)
}

/// # Safety
/// `instance` is a pointer this module created with `Box::into_raw` of a `T`.
unsafe fn instance<'a, T>(instance: *mut c_void) -> Result<&'a T> {
    // SAFETY: forwarded contract.
    unsafe { instance.cast::<T>().as_ref() }.ok_or_else(|| bad("null instance"))
}

/// # Safety
/// `out` is null or valid for writes.
unsafe fn store<T>(out: *mut *mut c_void, value: T) -> Result<()> {
    if out.is_null() {
        return Err(bad("null output pointer"));
    }
    // SAFETY: checked non-null; valid per contract.
    unsafe { *out = Box::into_raw(Box::new(value)).cast() };
    Ok(())
}

unsafe extern "C" fn destroy<T>(instance: *mut c_void) {
    if !instance.is_null() {
        // Dropping user code may panic: never let it unwind into the host.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: created by `store::<T>`; the host destroys each instance once.
            drop(unsafe { Box::from_raw(instance.cast::<T>()) })
        }));
    }
}

/// Registration handle given to a Rust plugin's register function.
pub struct Registrar {
    host: *const LoupeHostApi,
}

impl Registrar {
    fn host(&self) -> Result<&LoupeHostApi> {
        // SAFETY: the host passes a valid table for the duration of `register`.
        let host = unsafe { self.host.as_ref() }.ok_or_else(|| bad("null host API"))?;
        // The registration functions are what every host has; `log` was appended later (see `forward_logs`).
        if (host.struct_size as usize) < std::mem::offset_of!(LoupeHostApi, log) {
            return Err(bad("host API table too small: host is older than this plugin"));
        }
        Ok(host)
    }

    fn call<T>(
        &self,
        name: &str,
        f: Option<unsafe extern "C" fn(*mut c_void, *const T, *mut LoupeErrorBuf) -> i32>,
        table: &T,
    ) -> Result<()> {
        let host = self.host()?;
        let f = f.ok_or_else(|| bad("host API lacks a registration function"))?;
        let mut err = HostErrorBuf::default();
        let mut raw = err.raw();
        // SAFETY: the table outlives the call (the host copies it); context is the host's own.
        let status = unsafe { f(host.context, table, &mut raw) };
        if status == LOUPE_PLUGIN_OK {
            Ok(())
        } else {
            Err(LoupeError::Component { component: name.into(), message: err.message() })
        }
    }

    /// Registers a backbone under `name`.
    pub fn backbone(&mut self, name: &'static std::ffi::CStr, factory: BackboneFactory) -> Result<()> {
        let table = LoupeBackboneTable {
            struct_size: std::mem::size_of::<LoupeBackboneTable>() as u32,
            name: name.as_ptr(),
            user_data: factory as *const () as *mut c_void,
            create: Some(backbone_create),
            destroy: Some(destroy::<GuestBackbone>),
            geometry: Some(backbone_geometry),
            encode: Some(backbone_encode),
        };
        self.call(&name.to_string_lossy(), self.host()?.register_backbone, &table)
    }

    /// Registers a prompt bank under `name`.
    pub fn prompt_bank(&mut self, name: &'static std::ffi::CStr, factory: PromptBankFactory) -> Result<()> {
        let table = LoupePromptBankTable {
            struct_size: std::mem::size_of::<LoupePromptBankTable>() as u32,
            name: name.as_ptr(),
            user_data: factory as *const () as *mut c_void,
            create: Some(bank_create),
            destroy: Some(destroy::<GuestBank>),
            describe: Some(bank_describe),
            text_features: Some(bank_text_features),
        };
        self.call(&name.to_string_lossy(), self.host()?.register_prompt_bank, &table)
    }

    /// Registers a post-processor under `name`.
    pub fn postprocessor(&mut self, name: &'static std::ffi::CStr, factory: PostProcessorFactory) -> Result<()> {
        let table = LoupePostProcessorTable {
            struct_size: std::mem::size_of::<LoupePostProcessorTable>() as u32,
            name: name.as_ptr(),
            user_data: factory as *const () as *mut c_void,
            create: Some(post_create),
            destroy: Some(destroy::<GuestPost>),
            process: Some(post_process),
        };
        self.call(&name.to_string_lossy(), self.host()?.register_postprocessor, &table)
    }
}

/// Runs a Rust plugin's register function behind the C entry point (used by [`crate::export_plugin!`]).
///
/// # Safety
/// `host` and `err` are what the host passed to the plugin's `register`.
pub unsafe fn run_register(
    host: *const LoupeHostApi,
    err: *mut LoupeErrorBuf,
    register: fn(&mut Registrar) -> Result<()>,
) -> i32 {
    guard(err, || {
        // SAFETY: the host passes a valid table for the duration of `register`.
        if let Some(host) = unsafe { host.as_ref() } {
            forward_logs(host);
        }
        register(&mut Registrar { host })
    })
}

/// The plugin's `log` records, written through the host's [`LoupeHostApi::log`].
struct HostLogger(unsafe extern "C" fn(level: i32, target: *const c_char, message: *const c_char));

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true // the host's logger filters further
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => LOUPE_PLUGIN_LOG_ERROR,
            log::Level::Warn => LOUPE_PLUGIN_LOG_WARN,
            log::Level::Info => LOUPE_PLUGIN_LOG_INFO,
            log::Level::Debug => LOUPE_PLUGIN_LOG_DEBUG,
            log::Level::Trace => LOUPE_PLUGIN_LOG_TRACE,
        };
        let (target, message) = (cstring(record.target()), cstring(&record.args().to_string()));
        // SAFETY: the host's function, valid for the process's lifetime (ABI); both strings outlive the call.
        unsafe { (self.0)(level, target.as_ptr(), message.as_ptr()) };
    }

    fn flush(&self) {}
}

/// Sends this plugin's `log` records to the host when the host offers a log function. The plugin has its own copy
/// of the `log` crate's logger slot; a second registration (a host loading the plugin again) keeps the first.
fn forward_logs(host: &LoupeHostApi) {
    let end = std::mem::offset_of!(LoupeHostApi, log) + std::mem::size_of::<usize>();
    if (host.struct_size as usize) < end {
        return;
    }
    static LOGGER: std::sync::OnceLock<HostLogger> = std::sync::OnceLock::new();
    if let Some(f) = host.log
        && log::set_logger(LOGGER.get_or_init(|| HostLogger(f))).is_ok()
    {
        // Info and above: below that, libraries in the plugin (tract logs every node it runs at trace level) would
        // format records on their hot paths only for the host to drop them.
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// A `'static` declaration with raw pointers, shareable because it is never written.
pub struct StaticDeclaration(pub LoupePluginDeclaration);

// SAFETY: the declaration only holds pointers to static strings and a function pointer; it is read-only.
unsafe impl Sync for StaticDeclaration {}

/// Exports `loupe_plugin_declare` for a Rust plugin.
///
/// ```ignore
/// fn register(r: &mut loupe_sdk::plugin::guest::Registrar) -> loupe_sdk::Result<()> {
///     r.backbone(c"my-backbone", |cfg| Ok(std::sync::Arc::new(MyBackbone::new(cfg)?)))
/// }
/// loupe_sdk::export_plugin!(name: "my-plugin", version: "1.0.0", register: register);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, register: $register:path) => {
        unsafe extern "C" fn __loupe_plugin_register(
            host: *const $crate::plugin::abi::LoupeHostApi,
            err: *mut $crate::plugin::abi::LoupeErrorBuf,
        ) -> i32 {
            // SAFETY: forwarded from the host's call.
            unsafe { $crate::plugin::guest::run_register(host, err, $register) }
        }

        /// The plugin's entry point (see `include/loupe_plugin.h`).
        #[unsafe(no_mangle)]
        pub extern "C" fn loupe_plugin_declare() -> *const $crate::plugin::abi::LoupePluginDeclaration {
            static DECLARATION: $crate::plugin::guest::StaticDeclaration =
                $crate::plugin::guest::StaticDeclaration($crate::plugin::abi::LoupePluginDeclaration {
                    abi_version: $crate::plugin::abi::LOUPE_PLUGIN_ABI_VERSION,
                    struct_size: ::std::mem::size_of::<$crate::plugin::abi::LoupePluginDeclaration>() as u32,
                    sdk_version: $crate::plugin::SDK_VERSION_C.as_ptr(),
                    name: concat!($name, "\0").as_ptr().cast(),
                    plugin_version: concat!($version, "\0").as_ptr().cast(),
                    register: Some(__loupe_plugin_register),
                });
            &DECLARATION.0
        }
    };
}

struct GuestBackbone {
    inner: Arc<dyn Backbone>,
    model_id: CString,
    model_name: CString,
}

unsafe extern "C" fn backbone_create(
    user_data: *mut c_void,
    config_json: *const c_char,
    out: *mut *mut c_void,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: `user_data` is the `BackboneFactory` stored by `Registrar::backbone`.
        let factory: BackboneFactory = unsafe { std::mem::transmute::<*mut c_void, BackboneFactory>(user_data) };
        // SAFETY: the host passes a C string.
        let inner = factory(&unsafe { parse_config(config_json) }?)?;
        let info = inner.info();
        // SAFETY: `out` is the host's out-pointer.
        unsafe { store(out, GuestBackbone { model_id: cstring(&info.id), model_name: cstring(&info.name), inner }) }
    })
}

unsafe extern "C" fn backbone_geometry(
    instance: *mut c_void,
    out: *mut LoupeBackboneGeometry,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: created by `backbone_create`.
        let b: &GuestBackbone = unsafe { self::instance(instance) }?;
        let g = b.inner.geometry();
        // SAFETY: the host passes a writable struct.
        let out = unsafe { out.as_mut() }.ok_or_else(|| bad("null geometry output"))?;
        *out = LoupeBackboneGeometry {
            input_height: g.input_size[0],
            input_width: g.input_size[1],
            mean: g.mean,
            std: g.std,
            grid_height: g.grid[0] as u32,
            grid_width: g.grid[1] as u32,
            feature_dim: g.feature_dim as u32,
            layers: g.layers as u32,
            model_id: b.model_id.as_ptr(),
            model_name: b.model_name.as_ptr(),
        };
        Ok(())
    })
}

/// Format integer of the ABI -> pixel format.
pub fn pixel_format(format: u32) -> Result<PixelFormat> {
    match format {
        LOUPE_PLUGIN_FORMAT_GRAY8 => Ok(PixelFormat::Gray8),
        LOUPE_PLUGIN_FORMAT_RGB8 => Ok(PixelFormat::Rgb8),
        LOUPE_PLUGIN_FORMAT_BGR8 => Ok(PixelFormat::Bgr8),
        LOUPE_PLUGIN_FORMAT_RGBA8 => Ok(PixelFormat::Rgba8),
        other => Err(LoupeError::mismatch("image format", "0 (gray8), 1 (rgb8), 2 (bgr8) or 3 (rgba8)", other)),
    }
}

/// Pixel format -> format integer of the ABI; `None` for formats plugin ABI 1 does not know (the host converts
/// those images to RGB8 before a plugin sees them).
pub fn format_code(format: PixelFormat) -> Option<u32> {
    match format {
        PixelFormat::Gray8 => Some(LOUPE_PLUGIN_FORMAT_GRAY8),
        PixelFormat::Rgb8 => Some(LOUPE_PLUGIN_FORMAT_RGB8),
        PixelFormat::Bgr8 => Some(LOUPE_PLUGIN_FORMAT_BGR8),
        PixelFormat::Rgba8 => Some(LOUPE_PLUGIN_FORMAT_RGBA8),
        PixelFormat::Bgra8 | PixelFormat::Bgrx8 | PixelFormat::Rgbx8 | PixelFormat::Gray16 { .. } => None,
    }
}

/// # Safety
/// `image.data` points to `stride * (height - 1) + width * channels` readable bytes.
unsafe fn view<'a>(image: &LoupePluginImage) -> Result<ImageView<'a>> {
    let format = pixel_format(image.format)?;
    if image.data.is_null() || image.width == 0 || image.height == 0 {
        return Err(bad("image with null data or zero size"));
    }
    let len = image.stride * (image.height as usize - 1) + image.width as usize * format.bytes_per_pixel();
    // SAFETY: length per the contract.
    let data = unsafe { std::slice::from_raw_parts(image.data, len) };
    ImageView::new(data, image.width, image.height, image.stride, format)
}

unsafe extern "C" fn backbone_encode(
    instance: *mut c_void,
    images: *const LoupePluginImage,
    count: usize,
    global: *mut f32,
    patches: *mut f32,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: created by `backbone_create`.
        let b: &GuestBackbone = unsafe { self::instance(instance) }?;
        if count == 0 {
            return Ok(());
        }
        if images.is_null() || global.is_null() || patches.is_null() {
            return Err(bad("null image or output buffer"));
        }
        // SAFETY: the host passes `count` images.
        let raw = unsafe { std::slice::from_raw_parts(images, count) };
        // SAFETY: each image view follows the ABI contract.
        let views = raw.iter().map(|i| unsafe { view(i) }).collect::<Result<Vec<_>>>()?;
        let features = b.inner.encode(&views)?;
        let g = b.inner.geometry();
        let (d, per) = (g.feature_dim, g.layers * g.grid[0] * g.grid[1] * g.feature_dim);
        check_features(&features, count, g)?;
        // SAFETY: the host allocated `count * d` and `count * per` floats.
        let (gout, pout) = unsafe {
            (std::slice::from_raw_parts_mut(global, count * d), std::slice::from_raw_parts_mut(patches, count * per))
        };
        for (i, f) in features.iter().enumerate() {
            gout[i * d..(i + 1) * d].copy_from_slice(&f.global);
            pout[i * per..(i + 1) * per].copy_from_slice(&f.patches);
        }
        Ok(())
    })
}

/// Checks a backbone's answer against its own geometry before it is copied into the host's buffers: one feature
/// set per image, each of the declared layers, grid and dimension (the host reads the buffers with that shape, so
/// features of another shape with the same number of values would be silently misread), buffers of that size.
fn check_features(features: &[ImageFeatures], count: usize, g: &InputGeometry) -> Result<()> {
    if features.len() != count {
        return Err(LoupeError::mismatch(
            "feature sets returned by the backbone for a batch of images",
            count,
            features.len(),
        ));
    }
    for (i, f) in features.iter().enumerate() {
        let shape = |layers, [h, w]: [usize; 2], dim| format!("{layers} layers x {h}x{w} grid x dim {dim}");
        let declared = shape(g.layers, g.grid, g.feature_dim);
        let found = shape(f.layers, [f.grid_h, f.grid_w], f.dim);
        if declared != found {
            return Err(LoupeError::mismatch(
                format!("image {i} of a batch of {count}: feature shape (the backbone's geometry)"),
                declared,
                found,
            ));
        }
        if let Err(e) = f.validate() {
            return Err(match e {
                LoupeError::Mismatch { what, expected, found } => {
                    LoupeError::Mismatch { what: format!("image {i} of a batch of {count}: {what}"), expected, found }
                }
                other => other,
            });
        }
    }
    Ok(())
}

struct GuestBank {
    inner: Arc<dyn PromptBank>,
    name: CString,
    backbone_id: CString,
    /// Owns the strings `word_ptrs` points into.
    _words: Vec<CString>,
    word_ptrs: Vec<*const c_char>,
}

unsafe extern "C" fn bank_create(
    user_data: *mut c_void,
    config_json: *const c_char,
    out: *mut *mut c_void,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: `user_data` is the `PromptBankFactory` stored by `Registrar::prompt_bank`.
        let factory: PromptBankFactory = unsafe { std::mem::transmute::<*mut c_void, PromptBankFactory>(user_data) };
        // SAFETY: the host passes a C string.
        let inner = factory(&unsafe { parse_config(config_json) }?)?;
        let words: Vec<CString> = inner.trained_words().iter().map(|w| cstring(w)).collect();
        let word_ptrs = words.iter().map(|w| w.as_ptr()).collect();
        let bank = GuestBank {
            name: cstring(&inner.info().name),
            backbone_id: cstring(inner.backbone_id()),
            _words: words,
            word_ptrs,
            inner,
        };
        // SAFETY: `out` is the host's out-pointer.
        unsafe { store(out, bank) }
    })
}

unsafe extern "C" fn bank_describe(
    instance: *mut c_void,
    out: *mut LoupePromptBankInfo,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: created by `bank_create`.
        let b: &GuestBank = unsafe { self::instance(instance) }?;
        // SAFETY: the host passes a writable struct.
        let out = unsafe { out.as_mut() }.ok_or_else(|| bad("null description output"))?;
        *out = LoupePromptBankInfo {
            name: b.name.as_ptr(),
            backbone_id: b.backbone_id.as_ptr(),
            dim: b.inner.dim() as u32,
            word_count: b.word_ptrs.len() as u32,
            words: b.word_ptrs.as_ptr(),
            can_add_words: u8::from(b.inner.can_add_words()),
        };
        Ok(())
    })
}

/// # Safety
/// `ptrs` holds `count` valid C strings (or is null with `count == 0`).
unsafe fn strings(ptrs: *const *const c_char, count: usize) -> Result<Vec<String>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptrs.is_null() {
        return Err(bad("null string array"));
    }
    // SAFETY: `count` pointers per the contract.
    let raw = unsafe { std::slice::from_raw_parts(ptrs, count) };
    // SAFETY: each is a C string per the contract.
    raw.iter()
        .map(|&p| unsafe { read_str(p) }.map(str::to_string).ok_or_else(|| bad("null or non-UTF-8 string")))
        .collect()
}

unsafe extern "C" fn bank_text_features(
    instance: *mut c_void,
    words: *const *const c_char,
    count: usize,
    out: *mut f32,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: created by `bank_create`.
        let b: &GuestBank = unsafe { self::instance(instance) }?;
        // SAFETY: the host passes `count` strings.
        let words = unsafe { strings(words, count) }?;
        let t = b.inner.text_features(&words)?;
        if out.is_null() {
            return Err(bad("null output buffer"));
        }
        let n = (1 + count) * b.inner.dim();
        if t.rows.len() != n {
            return Err(LoupeError::mismatch("text matrix size", n, t.rows.len()));
        }
        // SAFETY: the host allocated `(1 + count) * dim` floats.
        unsafe { std::slice::from_raw_parts_mut(out, n) }.copy_from_slice(&t.rows);
        Ok(())
    })
}

struct GuestPost {
    inner: Arc<dyn PostProcessor>,
}

unsafe extern "C" fn post_create(
    user_data: *mut c_void,
    config_json: *const c_char,
    out: *mut *mut c_void,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: `user_data` is the `PostProcessorFactory` stored by `Registrar::postprocessor`.
        let factory: PostProcessorFactory =
            unsafe { std::mem::transmute::<*mut c_void, PostProcessorFactory>(user_data) };
        // SAFETY: the host passes a C string.
        let inner = factory(&unsafe { parse_config(config_json) }?)?;
        // SAFETY: `out` is the host's out-pointer.
        unsafe { store(out, GuestPost { inner }) }
    })
}

unsafe extern "C" fn post_process(
    instance: *mut c_void,
    features: *const LoupePluginFeatures,
    text: *const LoupePluginText,
    out: *mut LoupePluginDetection,
    err: *mut LoupeErrorBuf,
) -> i32 {
    guard(err, || {
        // SAFETY: created by `post_create`.
        let p: &GuestPost = unsafe { self::instance(instance) }?;
        // SAFETY: the host passes valid structs or null.
        let (f, t, out) = unsafe { (features.as_ref(), text.as_ref(), out.as_mut()) };
        let (f, t, out) = (
            f.ok_or_else(|| bad("null features"))?,
            t.ok_or_else(|| bad("null text"))?,
            out.ok_or_else(|| bad("null output"))?,
        );
        let (d, cells) = (f.dim as usize, (f.grid_height * f.grid_width) as usize);
        if f.global.is_null() || f.patches.is_null() || t.rows.is_null() || t.classes == 0 {
            return Err(bad("null feature or text buffers"));
        }
        // SAFETY: sizes per the ABI (features `[layers, cells, dim]`, text `[classes, dim]`).
        let features = unsafe {
            ImageFeatures {
                global: std::slice::from_raw_parts(f.global, d).to_vec(),
                patches: std::slice::from_raw_parts(f.patches, f.layers as usize * cells * d).to_vec(),
                layers: f.layers as usize,
                grid_h: f.grid_height as usize,
                grid_w: f.grid_width as usize,
                dim: d,
            }
        };
        // SAFETY: `classes` names per the ABI.
        let names = unsafe { strings(t.class_names, t.classes as usize) }?;
        let text = TextFeatures {
            words: names[1..].to_vec(),
            dim: t.dim as usize,
            // SAFETY: `[classes, dim]` per the ABI.
            rows: unsafe { std::slice::from_raw_parts(t.rows, (t.classes * t.dim) as usize) }.to_vec(),
        };
        let (w, h) = (out.width as usize, out.height as usize);
        let det = p.inner.process(&features, &text, OutputSize { width: w, height: h })?;
        if det.anomaly_map.data.len() != w * h || det.class_probabilities.len() != t.classes as usize {
            return Err(LoupeError::mismatch("post-processor output size", w * h, det.anomaly_map.data.len()));
        }
        out.score = det.score;
        out.image_threshold = det.thresholds.image;
        out.pixel_threshold = det.thresholds.pixel;
        out.image_type = det.classes.iter().position(|c| *c == det.image_type).unwrap_or(0) as u32;
        if out.class_probabilities.is_null()
            || out.anomaly_map.is_null()
            || out.mask.is_null()
            || out.type_map.is_null()
        {
            return Err(bad("null output buffers"));
        }
        // SAFETY: the host allocated these with the sizes it set.
        unsafe {
            std::slice::from_raw_parts_mut(out.class_probabilities, t.classes as usize)
                .copy_from_slice(&det.class_probabilities);
            std::slice::from_raw_parts_mut(out.anomaly_map, w * h).copy_from_slice(&det.anomaly_map.data);
            std::slice::from_raw_parts_mut(out.mask, w * h).copy_from_slice(&det.mask);
            std::slice::from_raw_parts_mut(out.type_map, w * h).copy_from_slice(&det.type_map);
        }
        Ok(())
    })
}

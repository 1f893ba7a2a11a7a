//! # Loupe C ABI
//!
//! The C interface of the Loupe SDK, for C and C++ inspection software: `libloupe.so` (cdylib) or `libloupe.a`
//! (staticlib) with the header `include/loupe.h` (generated from this crate by cbindgen, checked by
//! `ffi/tests/header_drift.rs`) and the C++17 wrapper `include/loupe.hpp`. Guide: `docs/c-api.md`.
//!
//! - Handles (engines, sessions, results, profiles) are opaque tokens held in a registry (`handles.rs`): NULL,
//!   destroyed, foreign or wrong-kind handles are refused with `LOUPE_STATUS_INVALID_HANDLE`, never dereferenced.
//! - Every entry point runs in `guard::guard`: panics become `LOUPE_STATUS_PANIC`, errors a
//!   [`LoupeStatus`] plus a thread-local message (`loupe_last_error`).
//! - Enumerations coming *from* C (pixel and configuration formats, augmentation) are plain integers, converted and
//!   checked here: an out-of-range value in a Rust `#[repr(C)]` enum would be undefined behaviour.
//! - Structs that may grow (`LoupeProfileOptions`, `LoupeEvidence`, `LoupeInspectOptions`, `LoupeEngineInfo`)
//!   start with `struct_size`, checked before any other field is touched.
//! - Loupe writes nothing to stdout or stderr; its log messages go to the host's callback
//!   (`loupe_set_log_callback`).
//!
//! The Rust functions are the C functions; Rust programs should use `loupe-sdk` directly.

mod args;
mod engine;
mod guard;
mod handles;
mod image;
mod log;
mod options;
mod profile;
mod result;
mod session;
mod status;

use std::ffi::c_char;

pub use engine::{
    LOUPE_CONFIG_JSON, LOUPE_CONFIG_TOML, LOUPE_CONFIG_YAML, LoupeEngine, LoupeEngineInfo, loupe_engine_class_count,
    loupe_engine_class_name, loupe_engine_create_default, loupe_engine_create_from_file,
    loupe_engine_create_from_string, loupe_engine_destroy, loupe_engine_info,
};
pub use guard::loupe_last_error;
pub use image::{
    LOUPE_FORMAT_BGR8, LOUPE_FORMAT_BGRA8, LOUPE_FORMAT_BGRX8, LOUPE_FORMAT_GRAY8, LOUPE_FORMAT_GRAY10,
    LOUPE_FORMAT_GRAY12, LOUPE_FORMAT_GRAY14, LOUPE_FORMAT_GRAY16, LOUPE_FORMAT_RGB8, LOUPE_FORMAT_RGBA8,
    LOUPE_FORMAT_RGBX8, LoupeImageView,
};
pub use log::{
    LOUPE_LOG_DEBUG, LOUPE_LOG_ERROR, LOUPE_LOG_INFO, LOUPE_LOG_OFF, LOUPE_LOG_TRACE, LOUPE_LOG_WARN, LoupeLogFn,
    loupe_set_log_callback,
};
pub use options::{
    LOUPE_OPTION_CLASSES, LOUPE_OPTION_IMAGE_THRESHOLD, LOUPE_OPTION_MIN_REGION_AREA, LOUPE_OPTION_PIXEL_THRESHOLD,
    LOUPE_OPTION_SEGMENT, LOUPE_SEGMENT_ALL, LOUPE_SEGMENT_ANOMALOUS, LOUPE_SKIP_ANOMALY_MAP, LOUPE_SKIP_TYPE_MAP,
    LoupeInspectOptions,
};
pub use profile::{
    LOUPE_AUGMENTATION_FLIPS, LOUPE_AUGMENTATION_NONE, LOUPE_AUGMENTATION_ROTATIONS, LoupeProfile, LoupeProfileOptions,
    loupe_profile_create, loupe_profile_destroy, loupe_profile_has_references, loupe_profile_load, loupe_profile_name,
    loupe_profile_save,
};
pub use result::{
    LOUPE_MODE_GOLDEN, LOUPE_MODE_MUTUAL, LOUPE_MODE_TEXT, LoupeEvidence, LoupeRegion, LoupeResult,
    loupe_result_anomaly_map, loupe_result_class_count, loupe_result_class_name, loupe_result_class_probability,
    loupe_result_destroy, loupe_result_evidence, loupe_result_image_type, loupe_result_is_anomalous,
    loupe_result_map_range, loupe_result_mask, loupe_result_normalized_score, loupe_result_region,
    loupe_result_region_count, loupe_result_rethreshold, loupe_result_score, loupe_result_thresholds,
    loupe_result_to_json, loupe_result_type_map, loupe_result_write_overlay,
};
pub use session::{
    LoupeSession, loupe_session_create, loupe_session_destroy, loupe_session_inspect, loupe_session_inspect_batch,
    loupe_session_inspect_batch_ex, loupe_session_inspect_ex, loupe_session_inspect_with_profile,
    loupe_session_inspect_with_profile_ex, loupe_session_set_mutual, loupe_session_set_profile,
    loupe_session_window_len,
};
pub use status::{LoupeStatus, loupe_status_name};

/// Version of the C interface described by this header. It changes when declarations change (version 2: profiles,
/// mutual scoring, result evidence, `LOUPE_STATUS_PROFILE`; version 3: per-call options and re-thresholding, batch
/// statuses, BGRA/BGRX/RGBX and 10-16-bit gray views, the log callback, engine queries, result JSON, the segment
/// rule); compare it with `loupe_c_api_version()` to detect a header/library mismatch. The shared library's SONAME
/// carries it (`libloupe.so.3`).
pub const LOUPE_C_API_VERSION: u32 = 3;

/// The `LOUPE_C_API_VERSION` the library was built with.
///
/// Thread-safety: safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn loupe_c_api_version() -> u32 {
    LOUPE_C_API_VERSION
}

/// The SDK's version (`"0.1.0"`), a static string: never free it.
///
/// Thread-safety: safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn loupe_version() -> *const c_char {
    const VERSION: &std::ffi::CStr =
        match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the package version holds a NUL"),
        };
    VERSION.as_ptr()
}

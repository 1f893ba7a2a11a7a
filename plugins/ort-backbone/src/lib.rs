//! # A Loupe backbone on ONNX Runtime
//!
//! [`OrtClipBackbone`] runs the same `image_encoder.onnx` of a Loupe model directory as the tract backbone
//! (`loupe-dapo`), through ONNX Runtime, on the execution provider the configuration names: `cpu`, `cuda`,
//! `tensorrt`, `rocm`, `openvino`, `directml` or `coreml`. Nothing of ONNX Runtime is downloaded or linked at build
//! time: the shared library (`libonnxruntime.so.1.x`, for example the one in a pip-installed `onnxruntime` wheel's
//! `onnxruntime/capi/`) is opened at run time from `components.options.ort-clip-onnx.library` or the environment
//! variable `LOUPE_ORT_LIBRARY` ([`runtime`]).
//!
//! It builds as a shared-library plugin (`libloupe_ort_backbone.so`) registering the backbone `ort-clip-onnx`;
//! load it like any vendor plugin and choose it with `components.backbone = "ort-clip-onnx"` (`docs/onnxruntime.md`).

pub mod backbone;
pub mod options;
pub mod runtime;

use loupe_sdk::Result;
use loupe_sdk::plugin::guest::Registrar;

pub use backbone::OrtClipBackbone;
pub use options::{OrtOptions, Provider};

/// Registry name of the backbone (`components.backbone`, and the key of its `components.options` object).
pub const BACKBONE: &std::ffi::CStr = c"ort-clip-onnx";

/// Registers the backbone from inside the shared-library plugin.
pub fn register_plugin(r: &mut Registrar) -> Result<()> {
    r.backbone(BACKBONE, backbone::backbone_factory)
}

loupe_sdk::export_plugin!(name: "onnxruntime", version: env!("CARGO_PKG_VERSION"), register: register_plugin);

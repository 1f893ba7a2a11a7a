//! The backbone's settings: `components.options.ort-clip-onnx` in the configuration, the library path also from
//! the environment.

use std::path::PathBuf;

use loupe_sdk::{LoupeConfig, LoupeError, Result};
use serde::Deserialize;

use crate::runtime::LIBRARY_ENV;

/// The key of this backbone's object under `components.options`.
pub const OPTIONS_KEY: &str = "ort-clip-onnx";

/// Where ONNX Runtime runs the image encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Provider {
    /// ONNX Runtime's CPU kernels (always present).
    #[default]
    Cpu,
    /// NVIDIA GPUs through CUDA (an `onnxruntime-gpu` build).
    Cuda,
    /// NVIDIA TensorRT (an `onnxruntime-gpu` build with TensorRT installed).
    TensorRt,
    /// AMD GPUs through ROCm.
    Rocm,
    /// Intel CPUs, GPUs and NPUs through OpenVINO.
    OpenVino,
    /// DirectML on Windows.
    DirectMl,
    /// Apple's Core ML.
    CoreMl,
}

impl Provider {
    /// Every provider, as named in the configuration.
    pub const ALL: [(&'static str, Provider); 7] = [
        ("cpu", Provider::Cpu),
        ("cuda", Provider::Cuda),
        ("tensorrt", Provider::TensorRt),
        ("rocm", Provider::Rocm),
        ("openvino", Provider::OpenVino),
        ("directml", Provider::DirectMl),
        ("coreml", Provider::CoreMl),
    ];

    /// The provider called `name` in the configuration (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())).map(|&(_, p)| p)
    }

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, p)| *p == self).map_or("cpu", |(n, _)| n)
    }
}

/// The raw option object, as written in the configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    library: Option<PathBuf>,
    provider: Option<String>,
    device_id: Option<i32>,
}

/// The backbone's settings, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrtOptions {
    /// The ONNX Runtime shared library: `library`, else `LOUPE_ORT_LIBRARY`, else `None` (the system loader's
    /// search for `libonnxruntime.so`).
    pub library: Option<PathBuf>,
    /// The execution provider (`provider`, default `cpu`).
    pub provider: Provider,
    /// The device the provider runs on (`device_id`, default 0).
    pub device_id: i32,
    /// Intra-op threads: `engine.threads` (0 = all cores).
    pub threads: usize,
}

fn field(name: &str) -> String {
    format!("components.options.{OPTIONS_KEY}.{name}")
}

impl OrtOptions {
    /// Reads the settings from the configuration (and `LOUPE_ORT_LIBRARY`); a wrong field is an error naming it.
    pub fn from_config(cfg: &LoupeConfig) -> Result<Self> {
        let value = cfg.components.options.as_ref().and_then(|o| o.get(OPTIONS_KEY)).cloned();
        let raw: RawOptions = match value {
            None => RawOptions::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| LoupeError::Config {
                file: None,
                field: format!("components.options.{OPTIONS_KEY}"),
                expected: "an object with `library` (path), `provider` (name) and `device_id` (integer)".into(),
                found: e.to_string(),
            })?,
        };
        let provider = match raw.provider.as_deref() {
            None => Provider::Cpu,
            Some(name) => Provider::parse(name).ok_or_else(|| LoupeError::Config {
                file: None,
                field: field("provider"),
                expected: format!("one of {}", Provider::ALL.map(|(n, _)| n).join(", ")),
                found: format!("{name:?}"),
            })?,
        };
        let device_id = raw.device_id.unwrap_or(0);
        if device_id < 0 {
            return Err(LoupeError::Config {
                file: None,
                field: field("device_id"),
                expected: "a device number >= 0".into(),
                found: device_id.to_string(),
            });
        }
        let library =
            raw.library.or_else(|| std::env::var_os(LIBRARY_ENV).filter(|v| !v.is_empty()).map(PathBuf::from));
        Ok(Self { library, provider, device_id, threads: cfg.engine.thread_count() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_options(v: serde_json::Value) -> LoupeConfig {
        let mut cfg = LoupeConfig::default();
        let mut map = serde_json::Map::new();
        map.insert(OPTIONS_KEY.into(), v);
        cfg.components.options = Some(map);
        cfg
    }

    #[test]
    fn providers_parse_by_name_and_a_wrong_one_is_named_with_the_choices() {
        assert_eq!(Provider::parse("CUDA"), Some(Provider::Cuda));
        for (name, p) in Provider::ALL {
            assert_eq!(Provider::parse(name), Some(p));
            assert_eq!(p.name(), name);
        }
        let err = OrtOptions::from_config(&with_options(serde_json::json!({"provider": "cudaa"}))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("components.options.ort-clip-onnx.provider"), "{text}");
        assert!(text.contains("\"cudaa\"") && text.contains("cpu, cuda, tensorrt"), "{text}");
    }

    #[test]
    fn unknown_fields_and_negative_devices_are_refused() {
        let err = OrtOptions::from_config(&with_options(serde_json::json!({"libary": "x.so"}))).unwrap_err();
        assert!(err.to_string().contains("libary"), "{err}");
        let err = OrtOptions::from_config(&with_options(serde_json::json!({"device_id": -1}))).unwrap_err();
        assert!(err.to_string().contains("device_id"), "{err}");
    }

    #[test]
    fn the_configured_library_and_provider_are_taken() {
        let cfg = with_options(
            serde_json::json!({"library": "/opt/ort/libonnxruntime.so", "provider": "tensorrt", "device_id": 1}),
        );
        let o = OrtOptions::from_config(&cfg).unwrap();
        assert_eq!(o.library, Some(PathBuf::from("/opt/ort/libonnxruntime.so")));
        assert_eq!((o.provider, o.device_id), (Provider::TensorRt, 1));
        assert!(o.threads >= 1);
    }
}

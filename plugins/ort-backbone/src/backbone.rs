//! The CLIP image encoder of a Loupe model directory on ONNX Runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loupe_dapo::ModelDir;
use loupe_dapo::backbone::{encoder_input, split_outputs};
use loupe_dapo::components::configured_model;
use loupe_sdk::config::Precision;
use loupe_sdk::{Backbone, ComponentInfo, ImageFeatures, ImageView, InputGeometry, LoupeConfig, LoupeError, Result};
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::Tensor;

use crate::options::{OrtOptions, Provider};
use crate::runtime::{Runtime, runtime};

/// Runs `image_encoder.onnx` (or its int8 version) of a Loupe model with ONNX Runtime.
pub struct OrtClipBackbone {
    /// `ort` runs a session through `&mut`; ONNX Runtime spreads one run over its intra-op threads.
    session: Mutex<Session>,
    geometry: InputGeometry,
    info: ComponentInfo,
    provider: Provider,
    origin: PathBuf,
}

/// The provider's `ort` registration and whether this ONNX Runtime build has it; `None` for the CPU.
fn dispatch(provider: Provider, device: i32) -> Option<(ExecutionProviderDispatch, ort::Result<bool>)> {
    Some(match provider {
        Provider::Cpu => return None,
        Provider::Cuda => (ep::CUDA::default().with_device_id(device).build(), ep::CUDA::is_available()),
        Provider::TensorRt => (ep::TensorRT::default().with_device_id(device).build(), ep::TensorRT::is_available()),
        Provider::Rocm => (ep::ROCm::default().with_device_id(device).build(), ep::ROCm::is_available()),
        Provider::OpenVino => (ep::OpenVINO::default().build(), ep::OpenVINO::is_available()),
        Provider::DirectMl => (ep::DirectML::default().with_device_id(device).build(), ep::DirectML::is_available()),
        Provider::CoreMl => (ep::CoreML::default().build(), ep::CoreML::is_available()),
    })
}

/// The providers this ONNX Runtime build has, by their configuration names.
fn available_providers() -> Vec<&'static str> {
    Provider::ALL
        .iter()
        .filter(|(_, p)| dispatch(*p, 0).is_none_or(|(_, available)| available.unwrap_or(false)))
        .map(|(n, _)| *n)
        .collect()
}

/// Adds the configured provider to `builder`; when this ONNX Runtime lacks it or it fails to start, logs a warning
/// and leaves the CPU. Returns the provider in use.
fn with_provider(builder: SessionBuilder, options: &OrtOptions, rt: &Runtime) -> (SessionBuilder, Provider) {
    let Some((dispatch, available)) = dispatch(options.provider, options.device_id) else {
        return (builder, Provider::Cpu);
    };
    let name = options.provider.name();
    let lib = format!("ONNX Runtime {} ({})", rt.library.version, rt.library.path.display());
    if !available.unwrap_or(false) {
        log::warn!(
            "execution provider `{name}` is not in {lib}, which has: {}; running on the CPU",
            available_providers().join(", ")
        );
        return (builder, Provider::Cpu);
    }
    match builder.with_execution_providers([dispatch.error_on_failure()]) {
        Ok(b) => (b, options.provider),
        Err(e) => {
            log::warn!(
                "execution provider `{name}` (device {}) of {lib} failed to start: {e}; running on the CPU",
                options.device_id
            );
            (e.recover(), Provider::Cpu)
        }
    }
}

impl OrtClipBackbone {
    /// Loads the image encoder of `model` (fp32, or int8 with [`Precision::Int8`]) with the given options.
    pub fn from_model_dir(model: &ModelDir, precision: Precision, options: &OrtOptions) -> Result<Self> {
        let rt = runtime(options.library.as_deref())?;
        let file = model.image_encoder_file(precision)?;
        let origin = model.label(file);
        let bytes = model.read(file)?;
        let fail = |stage: &str, e: &dyn std::fmt::Display| LoupeError::model(&origin, format!("{stage}: {e}"));
        let builder = Session::builder(&rt.environment)
            .map_err(|e| fail("ONNX Runtime session options", &e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail("ONNX Runtime optimisation level", &e))?
            .with_intra_threads(options.threads)
            .map_err(|e| fail("ONNX Runtime threads", &e))?
            .with_inter_threads(1)
            .map_err(|e| fail("ONNX Runtime threads", &e))?;
        let (mut builder, provider) = with_provider(builder, options, rt);
        let session = builder.commit_from_memory(&bytes).map_err(|e| fail("ONNX Runtime cannot run it", &e))?;
        for (what, names, want) in [
            ("input", session.inputs().iter().map(|o| o.name().to_string()).collect::<Vec<_>>(), &["image"][..]),
            (
                "output",
                session.outputs().iter().map(|o| o.name().to_string()).collect(),
                &["global", "patch_tokens"][..],
            ),
        ] {
            if let Some(missing) = want.iter().find(|w| !names.iter().any(|n| n == *w)) {
                return Err(fail(&format!("{what} `{missing}` missing"), &format!("it has {names:?}")));
            }
        }
        log::info!("image encoder {} on ONNX Runtime, provider {}", origin.display(), provider.name());
        let info = ComponentInfo {
            kind: "ort-clip-onnx".into(),
            name: model.meta.name.clone(),
            id: model.meta.model_id.clone(),
        };
        Ok(Self { session: Mutex::new(session), geometry: model.geometry(), info, provider, origin })
    }

    /// The provider the encoder runs on (the CPU after a fallback).
    pub fn provider(&self) -> Provider {
        self.provider
    }
}

impl Backbone for OrtClipBackbone {
    fn info(&self) -> ComponentInfo {
        self.info.clone()
    }

    fn geometry(&self) -> &InputGeometry {
        &self.geometry
    }

    fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let g = &self.geometry;
        let [h, w] = g.input_size;
        let n = images.len();
        let what =
            |e: &dyn std::fmt::Display| LoupeError::inference(format!("image encoder {}", self.origin.display()), e);
        let input =
            Tensor::from_array(([n, 3, h as usize, w as usize], encoder_input(images, g))).map_err(|e| what(&e))?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(ort::inputs!["image" => input]).map_err(|e| what(&e))?;
        let extract = |name: &str, expected: Vec<usize>| -> Result<Vec<f32>> {
            let (shape, data) = outputs[name].try_extract_tensor::<f32>().map_err(|e| what(&e))?;
            let found: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            if found != expected {
                return Err(LoupeError::mismatch(
                    format!("image encoder output `{name}` shape"),
                    format!("{expected:?}"),
                    format!("{found:?}"),
                ));
            }
            Ok(data.to_vec())
        };
        let global = extract("global", vec![n, g.feature_dim])?;
        let patches = extract("patch_tokens", vec![n, g.layers, g.grid[0] * g.grid[1], g.feature_dim])?;
        Ok(split_outputs(&global, &patches, n, g))
    }
}

/// Builds the backbone of the configured model (`model.dir`, or the embedded default model) on ONNX Runtime.
pub fn backbone_factory(cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
    let options = OrtOptions::from_config(cfg)?;
    Ok(Arc::new(OrtClipBackbone::from_model_dir(&configured_model(cfg)?, cfg.model.precision, &options)?))
}

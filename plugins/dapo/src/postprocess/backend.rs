//! Choosing where post-processing runs (`postprocess.backend`): `cpu`, `gpu`, or `auto`, which takes the GPU only
//! on a hardware adapter. A software Vulkan driver (Mesa's lavapipe, SwiftShader, WARP) computes the same numbers
//! but slower than the CPU path, so `auto` leaves it to tests and to explicit `gpu`.

use std::sync::Arc;

use loupe_sdk::config::{PostprocessBackend, PostprocessConfig};
use loupe_sdk::{PostProcessor, Result};

use super::DapoPostProcessor;

/// Builds the DAPO post-processor on the configured backend; the choice is logged once (`log::info!`).
///
/// - `cpu`: [`DapoPostProcessor`].
/// - `gpu`: the GPU post-processor on the best adapter wgpu finds, hardware or software; an error when there is
///   none or when this build lacks the `gpu` feature.
/// - `auto`: the GPU post-processor on a hardware adapter, else the CPU one (also when the GPU cannot be set up).
pub fn build_postprocessor(config: &PostprocessConfig) -> Result<Arc<dyn PostProcessor>> {
    let cpu = || -> Arc<dyn PostProcessor> { Arc::new(DapoPostProcessor::new(config.clone())) };
    match config.backend {
        PostprocessBackend::Cpu => {
            log::info!("post-processing on the CPU (postprocess.backend = cpu)");
            Ok(cpu())
        }
        PostprocessBackend::Gpu => gpu_postprocessor(config),
        PostprocessBackend::Auto => Ok(auto_postprocessor(config).unwrap_or_else(|reason| {
            log::info!("post-processing on the CPU (postprocess.backend = auto): {reason}");
            cpu()
        })),
    }
}

#[cfg(feature = "gpu")]
fn gpu_postprocessor(config: &PostprocessConfig) -> Result<Arc<dyn PostProcessor>> {
    let post = super::gpu::GpuPostProcessor::new(config.clone())?;
    log::info!("post-processing on the GPU (postprocess.backend = gpu): {}", post.adapter());
    Ok(Arc::new(post))
}

#[cfg(not(feature = "gpu"))]
fn gpu_postprocessor(_config: &PostprocessConfig) -> Result<Arc<dyn PostProcessor>> {
    Err(loupe_sdk::LoupeError::Config {
        file: None,
        field: "postprocess.backend".into(),
        expected: "cpu or auto (this build has no GPU support: cargo feature `gpu`, e.g. `cargo build --release -p loupe-cli --features full`)".into(),
        found: "gpu".into(),
    })
}

/// The GPU post-processor when a hardware adapter exists; otherwise why not.
#[cfg(feature = "gpu")]
fn auto_postprocessor(config: &PostprocessConfig) -> std::result::Result<Arc<dyn PostProcessor>, String> {
    use super::gpu::{AdapterChoice, GpuPostProcessor};
    match AdapterChoice::probe() {
        AdapterChoice::None => Err("no GPU adapter (no Vulkan, Metal or DX12 driver found)".into()),
        AdapterChoice::Software(adapter) => {
            Err(format!("the only GPU adapter is a software one ({adapter}), slower than the CPU path"))
        }
        AdapterChoice::Hardware(adapter) => {
            let post = GpuPostProcessor::on_adapter(config.clone(), adapter)
                .map_err(|e| format!("the GPU could not be set up: {e}"))?;
            log::info!("post-processing on the GPU (postprocess.backend = auto): {}", post.adapter());
            Ok(Arc::new(post))
        }
    }
}

#[cfg(not(feature = "gpu"))]
fn auto_postprocessor(_config: &PostprocessConfig) -> std::result::Result<Arc<dyn PostProcessor>, String> {
    Err("this build of loupe-dapo has no GPU support (cargo feature `gpu`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backend_builds_the_reference_postprocessor() {
        let cfg = PostprocessConfig { backend: PostprocessBackend::Cpu, ..Default::default() };
        let post = build_postprocessor(&cfg).expect("the CPU post-processor always builds");
        assert_eq!(post.info().kind, "dapo-postprocess-cpu");
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn without_the_gpu_feature_gpu_is_refused_and_auto_is_cpu() {
        let cfg = PostprocessConfig { backend: PostprocessBackend::Gpu, ..Default::default() };
        let err = build_postprocessor(&cfg).err().expect("gpu without the feature is an error").to_string();
        assert!(err.contains("postprocess.backend") && err.contains("gpu"), "{err}");
        let cfg = PostprocessConfig { backend: PostprocessBackend::Auto, ..Default::default() };
        assert_eq!(build_postprocessor(&cfg).unwrap().info().kind, "dapo-postprocess-cpu");
    }
}

//! The CLIP ONNX backbone on tract: image -> global feature + patch features of the chosen layers.

use std::path::Path;

use loupe_sdk::config::Precision;
use loupe_sdk::{Backbone, ComponentInfo, ImageFeatures, ImageView, InputGeometry, LoupeError, Result};
use tract_onnx::prelude::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

use crate::model_dir::ModelDir;
use crate::onnx::{InputSpec, Plan, load_plan, output_f32};
use crate::preprocess::push_normalized;

/// How the tract plan takes its batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlanShape {
    /// [`PlanShape::PerImage`] for small encoders, [`PlanShape::Batch`] for large ones (see [`PER_IMAGE_MAX_BYTES`]).
    #[default]
    Auto,
    /// One plan with a symbolic batch axis: a call's images run together (in one group per thread).
    Batch,
    /// A plan for one image, all shapes known: a call's images run one by one (in one group per thread).
    PerImage,
}

/// Encoders whose ONNX file is smaller than this get a per-image plan under [`PlanShape::Auto`]. Measured here
/// (`docs/benchmarks.md`): with every shape known tract fuses the element-wise work of the default model's blocks
/// into its matrix products (33 ms per image against 35 with a symbolic batch, one thread), while for ViT-B/16
/// (350 MB) it repacks weights on every run (800 ms against 567).
pub const PER_IMAGE_MAX_BYTES: usize = 32 << 20;

/// Runs `image_encoder.onnx` of a Loupe model (a directory, or the embedded default model).
pub struct ClipOnnxBackbone {
    plan: Plan,
    per_image: bool,
    geometry: InputGeometry,
    info: ComponentInfo,
    threads: usize,
    /// For one image on a batch plan: tract's matrix products (and element-wise ops) over `threads` threads; each
    /// output tile is computed by the same kernel whatever the thread count, so results are bit-identical across
    /// thread counts. One thread for a per-image plan.
    executor: Executor,
}

impl ClipOnnxBackbone {
    /// Loads the image encoder of the model directory at `dir` (fp32, one thread).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_model_dir(&ModelDir::open(dir)?)
    }

    /// Loads the fp32 image encoder of an opened model (on disk or in memory), to run on one thread.
    pub fn from_model_dir(model: &ModelDir) -> Result<Self> {
        Self::with_settings(model, Precision::Fp32, 1)
    }

    /// Loads the image encoder of `precision` (`Int8`: the model's quantised encoder) to run on `threads` threads.
    pub fn with_settings(model: &ModelDir, precision: Precision, threads: usize) -> Result<Self> {
        Self::with_plan(model, precision, threads, PlanShape::Auto)
    }

    /// As [`ClipOnnxBackbone::with_settings`], with the plan's shape chosen.
    pub fn with_plan(model: &ModelDir, precision: Precision, threads: usize, shape: PlanShape) -> Result<Self> {
        let geometry = model.geometry();
        let [h, w] = geometry.input_size;
        let file = model.image_encoder_file(precision)?;
        let bytes = model.read(file)?;
        let per_image = match shape {
            PlanShape::Auto => bytes.len() < PER_IMAGE_MAX_BYTES,
            PlanShape::Batch => false,
            PlanShape::PerImage => true,
        };
        let inputs = [InputSpec {
            name: "image",
            datum: f32::datum_type(),
            shape: vec![per_image.then_some(1), Some(3), Some(h as usize), Some(w as usize)],
        }];
        let plan = load_plan(&bytes, &model.label(file), &inputs, &["global", "patch_tokens"])?;
        let info = ComponentInfo {
            kind: "dapo-clip-onnx".into(),
            name: model.meta.name.clone(),
            id: model.meta.model_id.clone(),
        };
        let threads = threads.max(1);
        // A small encoder's products are too small to split: one image of the default model took 47 ms on two
        // threads against 37 on one (`docs/benchmarks.md`); its images are spread over the threads instead.
        let executor = if threads > 1 && !per_image {
            Executor::multithread_with_name(threads, "loupe-tract")
        } else {
            Executor::SingleThread
        };
        Ok(Self { plan, per_image, geometry, info, threads, executor })
    }

    /// Runs the plan once on `images` (one image with a per-image plan) with `executor`'s threads.
    fn run(&self, images: &[ImageView<'_>], executor: Executor) -> Result<Vec<ImageFeatures>> {
        let g = &self.geometry;
        let [h, w] = g.input_size;
        let (n, d, layers, cells) = (images.len(), g.feature_dim, g.layers, g.grid[0] * g.grid[1]);
        let tensor = Tensor::from_shape(&[n, 3, h as usize, w as usize], &encoder_input(images, g))
            .map_err(|e| LoupeError::inference("image encoder input", e))?;
        let out = multithread_tract_scope(executor, || self.plan.run(tvec!(tensor.into())))
            .map_err(|e| LoupeError::inference("image encoder", format!("{e:#}")))?;
        let global = output_f32(&out[0], &[n, d], "image encoder output `global`")?;
        let patches = output_f32(&out[1], &[n, layers, cells, d], "image encoder output `patch_tokens`")?;
        Ok(split_outputs(&global, &patches, n, g))
    }

    /// `images` on `executor`'s threads: all at once with a batch plan, one by one with a per-image plan.
    fn run_group(&self, images: &[ImageView<'_>], executor: Executor) -> Result<Vec<ImageFeatures>> {
        if !self.per_image {
            return self.run(images, executor);
        }
        let mut out = Vec::with_capacity(images.len());
        for image in images {
            out.extend(self.run(std::slice::from_ref(image), executor.clone())?);
        }
        Ok(out)
    }

    /// Several images on scoped threads, one group each, every group on one thread (a per-image plan takes
    /// the group's images one by one, a batch plan the whole group at once). The same arithmetic as on one
    /// thread, so the same bits; and no synchronisation inside the encoder, so two threads give nearly twice the
    /// images per second (a batch plan's matrix products split over threads gave 1.5x on ViT-B/16, batch 8).
    fn run_spread(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        let group = images.len().div_ceil(self.threads);
        let results: Vec<Result<Vec<ImageFeatures>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = images
                .chunks(group)
                .map(|chunk| scope.spawn(move || self.run_group(chunk, Executor::SingleThread)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| Err(LoupeError::inference("image encoder", "a worker thread panicked")))
                })
                .collect()
        });
        let mut features = Vec::with_capacity(images.len());
        for r in results {
            features.extend(r?);
        }
        Ok(features)
    }
}

/// The `[N, 3, H, W]` encoder input of a batch: each image resized and normalised ([`push_normalized`]).
pub fn encoder_input(images: &[ImageView<'_>], g: &InputGeometry) -> Vec<f32> {
    let [h, w] = g.input_size;
    let mut input = Vec::with_capacity(images.len() * 3 * (h * w) as usize);
    for image in images {
        push_normalized(image, g, &mut input);
    }
    input
}

/// Splits an encoder's batch outputs, `global` `[N, D]` and `patch_tokens` `[N, layers, cells, D]` (shapes
/// already checked), into one [`ImageFeatures`] per image.
pub fn split_outputs(global: &[f32], patches: &[f32], n: usize, g: &InputGeometry) -> Vec<ImageFeatures> {
    let (d, layers) = (g.feature_dim, g.layers);
    let per_image = layers * g.grid[0] * g.grid[1] * d;
    (0..n)
        .map(|i| ImageFeatures {
            global: global[i * d..(i + 1) * d].to_vec(),
            patches: patches[i * per_image..(i + 1) * per_image].to_vec(),
            layers,
            grid_h: g.grid[0],
            grid_w: g.grid[1],
            dim: d,
        })
        .collect()
}

impl Backbone for ClipOnnxBackbone {
    fn info(&self) -> ComponentInfo {
        self.info.clone()
    }

    fn geometry(&self) -> &InputGeometry {
        &self.geometry
    }

    fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        match images.len() {
            0 => Ok(Vec::new()),
            // One image: its matrix products over the threads.
            1 => self.run(images, self.executor.clone()),
            _ if self.threads > 1 => self.run_spread(images),
            _ => self.run_group(images, Executor::SingleThread),
        }
    }
}

//! The CLIP ONNX backbone on tract: image -> global feature + patch features of the chosen layers.

use std::path::Path;

use loupe_sdk::{Backbone, ComponentInfo, ImageFeatures, ImageView, InputGeometry, LoupeError, Result};
use tract_onnx::prelude::*;

use crate::model_dir::ModelDir;
use crate::onnx::{InputSpec, Plan, load_plan, output_f32};
use crate::preprocess::push_normalized;

/// Runs `image_encoder.onnx` of a Loupe model (a directory, or the embedded default model).
pub struct ClipOnnxBackbone {
    plan: Plan,
    geometry: InputGeometry,
    info: ComponentInfo,
}

impl ClipOnnxBackbone {
    /// Loads the image encoder of the model directory at `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_model_dir(&ModelDir::open(dir)?)
    }

    /// Loads the image encoder of an opened model (on disk or in memory).
    pub fn from_model_dir(model: &ModelDir) -> Result<Self> {
        let geometry = model.geometry();
        let [h, w] = geometry.input_size;
        let inputs = [InputSpec {
            name: "image",
            datum: f32::datum_type(),
            shape: vec![None, Some(3), Some(h as usize), Some(w as usize)],
        }];
        let file = &model.meta.files.image_encoder;
        let plan = load_plan(&model.read(file)?, &model.label(file), &inputs, &["global", "patch_tokens"])?;
        let info = ComponentInfo {
            kind: "dapo-clip-onnx".into(),
            name: model.meta.name.clone(),
            id: model.meta.model_id.clone(),
        };
        Ok(Self { plan, geometry, info })
    }
}

impl Backbone for ClipOnnxBackbone {
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
        let (n, d, layers, cells) = (images.len(), g.feature_dim, g.layers, g.grid[0] * g.grid[1]);
        let mut input = Vec::with_capacity(n * 3 * (h * w) as usize);
        for image in images {
            push_normalized(image, g, &mut input);
        }
        let tensor = Tensor::from_shape(&[n, 3, h as usize, w as usize], &input)
            .map_err(|e| LoupeError::inference("image encoder input", e))?;
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| LoupeError::inference("image encoder", format!("{e:#}")))?;
        let global = output_f32(&out[0], &[n, d], "image encoder output `global`")?;
        let patches = output_f32(&out[1], &[n, layers, cells, d], "image encoder output `patch_tokens`")?;
        let per_image = layers * cells * d;
        Ok((0..n)
            .map(|i| ImageFeatures {
                global: global[i * d..(i + 1) * d].to_vec(),
                patches: patches[i * per_image..(i + 1) * per_image].to_vec(),
                layers,
                grid_h: g.grid[0],
                grid_w: g.grid[1],
                dim: d,
            })
            .collect())
    }
}

//! The CLIP text encoder of a model directory, run from token embeddings so that learned context vectors can take
//! the place of words (DAPO's hybrid prompts).

use std::path::Path;

use loupe_sdk::{LoupeError, Result};
use safetensors::{Dtype, SafeTensors};
use tract_onnx::prelude::*;

use crate::model_dir::{ModelDir, TextTower};
use crate::onnx::{InputSpec, Plan, load_plan, output_f32};

/// One prompt, embedded: `[context_length, width]` and the position of its EOT token.
pub struct EmbeddedPrompt {
    /// Row-major `[context_length, width]`.
    pub embeddings: Vec<f32>,
    /// Position of EOT.
    pub eot_index: usize,
}

/// Runs `text_encoder.onnx` and holds the token-embedding table.
pub struct TextEncoder {
    plan: Plan,
    table: Vec<f32>,
    /// Tower description from the metadata.
    pub tower: TextTower,
    /// Output dimension.
    pub embed_dim: usize,
}

impl TextEncoder {
    /// Loads the text encoder and token table of a model (on disk or in memory).
    pub fn load(model: &ModelDir) -> Result<Self> {
        let tower = model.meta.text.clone();
        let (c, w) = (tower.context_length, tower.width);
        let mut inputs = vec![
            InputSpec { name: "prompt_embeddings", datum: f32::datum_type(), shape: vec![None, Some(c), Some(w)] },
            InputSpec { name: "eot_index", datum: i64::datum_type(), shape: vec![None] },
        ];
        if tower.deep_prompts > 0 {
            inputs.push(InputSpec {
                name: "deep_prompts",
                datum: f32::datum_type(),
                shape: vec![Some(tower.deep_layers()), Some(tower.deep_prompts), Some(w)],
            });
        }
        let files = &model.meta.files;
        let plan = load_plan(
            &model.read(&files.text_encoder)?,
            &model.label(&files.text_encoder),
            &inputs,
            &["text_features"],
        )?;
        let table = load_f32_tensor(
            &model.read(&files.token_embedding)?,
            &model.label(&files.token_embedding),
            "token_embedding",
            &[tower.vocab_size, w],
        )?;
        Ok(Self { plan, table, tower, embed_dim: model.meta.embed_dim })
    }

    /// Embedding of token `id`.
    pub fn token(&self, id: u32) -> &[f32] {
        let w = self.tower.width;
        let i = (id as usize).min(self.tower.vocab_size - 1);
        &self.table[i * w..(i + 1) * w]
    }

    /// Encodes prompts; `deep` holds the deep prompts `[layers, n, width]` when the model has them.
    /// Returns `[prompts, embed_dim]`, not normalised.
    pub fn encode(&self, prompts: &[EmbeddedPrompt], deep: Option<&[f32]>) -> Result<Vec<f32>> {
        let (c, w) = (self.tower.context_length, self.tower.width);
        let n = prompts.len();
        let mut flat = Vec::with_capacity(n * c * w);
        for p in prompts {
            if p.embeddings.len() != c * w || p.eot_index >= c {
                return Err(LoupeError::mismatch(
                    "prompt embedding",
                    format!("{c} x {w}, EOT < {c}"),
                    format!("{} values, EOT {}", p.embeddings.len(), p.eot_index),
                ));
            }
            flat.extend_from_slice(&p.embeddings);
        }
        let eot: Vec<i64> = prompts.iter().map(|p| p.eot_index as i64).collect();
        let fail = |e: TractError| LoupeError::inference("text encoder", format!("{e:#}"));
        let mut inputs: TVec<TValue> = tvec![
            Tensor::from_shape(&[n, c, w], &flat).map_err(fail)?.into(),
            Tensor::from_shape(&[n], &eot).map_err(fail)?.into(),
        ];
        if self.tower.deep_prompts > 0 {
            let shape = [self.tower.deep_layers(), self.tower.deep_prompts, w];
            let deep = deep.ok_or_else(|| {
                LoupeError::Vocabulary("the model has deep text prompts but the prompt bank carries none".into())
            })?;
            inputs.push(Tensor::from_shape(&shape, deep).map_err(fail)?.into());
        }
        let out = self.plan.run(inputs).map_err(fail)?;
        output_f32(&out[0], &[n, self.embed_dim], "text encoder output `text_features`")
    }
}

/// Extracts the f32 tensor `name` of shape `shape` from the safetensors file in `bytes`, read from `origin` (a
/// path or an in-memory label); errors name `origin`.
pub fn load_f32_tensor(bytes: &[u8], origin: &Path, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| LoupeError::model(origin, format!("not a safetensors file: {e}")))?;
    tensor_f32(&st, name, Some(shape)).map_err(|reason| LoupeError::model(origin, reason))
}

/// Extracts tensor `name` as f32, checking dtype, (if given) shape and that every value is finite (a NaN or an
/// infinity in a weight or a cached feature would turn every score it touches into NaN); the error is a reason
/// string naming the tensor and the position.
pub fn tensor_f32(st: &SafeTensors<'_>, name: &str, shape: Option<&[usize]>) -> std::result::Result<Vec<f32>, String> {
    let view = st.tensor(name).map_err(|_| format!("tensor `{name}` missing"))?;
    if view.dtype() != Dtype::F32 {
        return Err(format!("tensor `{name}`: expected dtype F32, found {:?}", view.dtype()));
    }
    if let Some(shape) = shape
        && view.shape() != shape
    {
        return Err(format!("tensor `{name}`: expected shape {shape:?}, found {:?}", view.shape()));
    }
    let values: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor `{name}`: value {} at index {:?} (shape {:?}); expected finite values",
            values[i],
            unravel(i, view.shape()),
            view.shape()
        ));
    }
    Ok(values)
}

/// The multi-dimensional index of flat position `i` in a row-major tensor of `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            index[k] = i % d;
            i /= d;
        }
    }
    index
}

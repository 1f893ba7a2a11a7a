//! Loading ONNX files with tract, with errors that name the file.

use std::path::Path;
use std::sync::Arc;

use loupe_sdk::{LoupeError, Result};
use tract_onnx::prelude::*;

/// A runnable, optimised tract plan.
pub type Plan = Arc<TypedRunnableModel>;

/// One declared input: its name in the ONNX file, element type and shape (`None` = the symbolic batch axis).
pub struct InputSpec<'a> {
    /// ONNX input name.
    pub name: &'a str,
    /// Element type.
    pub datum: DatumType,
    /// Shape; `None` marks the dynamic axis.
    pub shape: Vec<Option<usize>>,
}

/// Loupe's own rewrites of a tract plan, on by default (off only to measure what each brings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrites {
    /// `softmax(q k^T) v` as one op ([`crate::fused_attention`]).
    pub fused_attention: bool,
}

impl Default for Rewrites {
    fn default() -> Self {
        Self { fused_attention: true }
    }
}

/// Loads the ONNX model in `bytes` (read from `origin`, a path or an in-memory label: see
/// [`ModelSource`](crate::model_dir::ModelSource)), fixes its inputs to `inputs` (one symbolic axis `N` allowed)
/// and its outputs to `outputs`, and optimises it. Any failure is a [`LoupeError::Model`] naming `origin`.
pub fn load_plan(bytes: &[u8], origin: &Path, inputs: &[InputSpec<'_>], outputs: &[&str]) -> Result<Plan> {
    load_plan_with(bytes, origin, inputs, outputs, Rewrites::default())
}

/// [`load_plan`] with a choice of Loupe's rewrites.
pub fn load_plan_with(
    bytes: &[u8],
    origin: &Path,
    inputs: &[InputSpec<'_>],
    outputs: &[&str],
    rewrites: Rewrites,
) -> Result<Plan> {
    let fail = |stage: &str, e: TractError| LoupeError::model(origin, format!("{stage}: {e:#}"));
    // From bytes, so files on disk and embedded ones load alike (Loupe's models carry no external data files).
    let mut model =
        tract_onnx::onnx().model_for_read(&mut &*bytes).map_err(|e| fail("not a readable ONNX model", e))?;
    let batch = model.sym("N");
    // Without it tract cannot tell that `N x tokens x width` elements are many, and leaves multiplications by a
    // scalar and same-shape ones on its generic broadcasting path (2 ns per value instead of 0.2).
    model.symbols.add_assertion("N >= 1").map_err(|e| fail("batch axis", e))?;
    let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
    model.set_input_names(&names).map_err(|e| fail("expected inputs missing", e))?;
    model.select_outputs_by_name(outputs.iter().copied()).map_err(|e| fail("expected outputs missing", e))?;
    for (ix, spec) in inputs.iter().enumerate() {
        let shape: TVec<TDim> =
            spec.shape.iter().map(|d| d.map_or_else(|| batch.clone().into(), |n| n.to_dim())).collect();
        model
            .set_input_fact(ix, InferenceFact::dt_shape(spec.datum, shape))
            .map_err(|e| fail(&format!("input `{}`", spec.name), e))?;
    }
    let mut typed = model.into_typed().map_err(|e| fail("type analysis", e))?;
    if rewrites.fused_attention {
        // Before tract's simplifications, which split the second product along the queries wherever the tokens
        // are sliced later (class token, visual prompts, patches).
        crate::fused_attention::fuse_attention(&mut typed).map_err(|e| fail("optimisation (attention)", e))?;
    }
    let mut optimized = typed.into_optimized().map_err(|e| fail("optimisation", e))?;
    crate::row_softmax::use_row_softmax(&mut optimized).map_err(|e| fail("optimisation (softmax)", e))?;
    optimized.into_runnable().map_err(|e| fail("planning", e))
}

/// Copies an output tensor out as `f32`, checking its shape.
pub fn output_f32(value: &TValue, expected: &[usize], what: &str) -> Result<Vec<f32>> {
    if value.shape() != expected {
        return Err(LoupeError::mismatch(
            format!("{what} shape"),
            format!("{expected:?}"),
            format!("{:?}", value.shape()),
        ));
    }
    let view = value.to_plain_array_view::<f32>().map_err(|e| LoupeError::inference(what, e))?;
    Ok(view.iter().copied().collect())
}

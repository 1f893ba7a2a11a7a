//! Attention as one tract op: [`fuse_attention`] replaces each `softmax(q k^T) v` of a typed tract model
//! (an `EinSum` of queries and keys, a `Softmax` over the keys, an `EinSum` with the values) by [`FusedAttention`].
//!
//! Why: tract runs the three as separate products over whole tensors: it packs both operands of each product,
//! writes every head's `tokens x tokens` scores (2.6 MB per block for the default model, more than the L2 cache)
//! and reads them back twice. [`FusedAttention`] takes one head and a block of query rows at a time, so the
//! scores stay in cache between the two products and the softmax (`docs/benchmarks.md`, "tract on small models").
//! Each head is computed by one thread, whatever the thread count, so results do not depend on it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

use crate::row_softmax::softmax_rows;

/// Query rows per block: 64 rows of scores over 1374 keys (ViT-L/14-336 at 518) are 350 kB, within L2.
const ROW_BLOCK: usize = 64;

/// Where a tensor's axes are: the batch-like axes (batch, heads) in one order shared by the four tensors, the rows
/// (queries for `q` and the output, keys for `k` and `v`) and the columns (head width).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Positions of the batch-like axes.
    pub batch: TVec<usize>,
    /// Position of the rows axis.
    pub rows: usize,
    /// Position of the columns axis.
    pub cols: usize,
}

/// `softmax(q k^T) v` per batch-like index (no scale: the model applies its own before), in f32.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FusedAttention {
    /// Queries: rows = queries, columns = head width.
    pub q: Layout,
    /// Keys: rows = keys, columns = head width.
    pub k: Layout,
    /// Values: rows = keys, columns = value width.
    pub v: Layout,
    /// Output: rows = queries, columns = value width.
    pub out: Layout,
}

impl FusedAttention {
    fn output_shape<D: DimLike>(&self, q: &[D], v: &[D]) -> TVec<D> {
        let mut shape: TVec<D> = tvec![D::one(); self.out.batch.len() + 2];
        for (&o, &i) in self.out.batch.iter().zip(&self.q.batch) {
            shape[o] = q[i].clone();
        }
        shape[self.out.rows] = q[self.q.rows].clone();
        shape[self.out.cols] = v[self.v.cols].clone();
        shape
    }
}

impl Op for FusedAttention {
    fn name(&self) -> StaticName {
        "LoupeFusedAttention".into()
    }

    op_as_typed_op!();
}

impl TypedOp for FusedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3, "attention takes q, k and v");
        Ok(tvec!(f32::fact(self.output_shape(inputs[0].shape.dims(), inputs[2].shape.dims()))))
    }

    as_op!();
}

/// A tensor's base pointer, shared by the threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedPtr(*mut f32);
// SAFETY: every task writes only the elements of its own batch-like index (see `eval`).
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// Through a method, so that closures capture the wrapper (`Sync`), not its raw field.
    fn at(self, offset: isize) -> *mut f32 {
        self.0.wrapping_offset(offset)
    }
}

impl EvalOp for FusedAttention {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, k, v) = args_3!(inputs);
        let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
        let batch: TVec<usize> = self.q.batch.iter().map(|&p| qs[p]).collect();
        let (m, width, n, value_width) = (qs[self.q.rows], qs[self.q.cols], ks[self.k.rows], vs[self.v.cols]);
        ensure!(
            self.k.batch.iter().map(|&p| ks[p]).eq(batch.iter().copied())
                && self.v.batch.iter().map(|&p| vs[p]).eq(batch.iter().copied())
                && ks[self.k.cols] == width
                && vs[self.v.rows] == n,
            "attention shapes do not agree: q {qs:?}, k {ks:?}, v {vs:?}"
        );
        let out_shape = self.output_shape(qs, vs);
        let mut out = Tensor::zero::<f32>(&out_shape)?;
        let o_st = out.strides().to_vec();
        let (q_st, k_st, v_st) = (q.strides(), k.strides(), v.strides());
        let (q_plain, k_plain, v_plain) = (q.try_as_plain_ram()?, k.try_as_plain_ram()?, v.try_as_plain_ram()?);
        let (q_data, k_data, v_data) =
            (q_plain.as_slice::<f32>()?, k_plain.as_slice::<f32>()?, v_plain.as_slice::<f32>()?);
        let out_ptr = SharedPtr(out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?.as_mut_ptr());
        // Offsets of one batch-like index in each tensor.
        let offsets = |task: usize| {
            let (mut rest, mut offs) = (task, [0isize; 4]);
            for (i, &size) in batch.iter().enumerate().rev() {
                let ix = (rest % size) as isize;
                rest /= size;
                for (o, (layout, st)) in
                    offs.iter_mut().zip([(&self.q, q_st), (&self.k, k_st), (&self.v, v_st), (&self.out, &o_st[..])])
                {
                    *o += ix * st[layout.batch[i]];
                }
            }
            offs
        };
        let tasks: usize = batch.iter().product();
        if tasks == 0 || m == 0 || value_width == 0 {
            return Ok(tvec!(out.into_tvalue()));
        }
        let mut ids: Vec<usize> = (0..tasks).collect();
        tract_onnx::prelude::multithread::par_chunks_mut(&mut ids, 1, tasks * m * n.max(1), |_, chunk| {
            let mut scores = vec![0f32; ROW_BLOCK.min(m) * n];
            for &task in chunk.iter() {
                let [qo, ko, vo, oo] = offsets(task);
                for r0 in (0..m).step_by(ROW_BLOCK) {
                    let rows = ROW_BLOCK.min(m - r0);
                    let s = &mut scores[..rows * n];
                    let (qr, or) = (r0 as isize * q_st[self.q.rows], r0 as isize * o_st[self.out.rows]);
                    // SAFETY: every pointer and stride addresses elements inside its tensor (shapes checked
                    // above); the output rows written belong to this task's batch-like index alone.
                    unsafe {
                        matrixmultiply::sgemm(
                            rows,
                            width,
                            n,
                            1.0,
                            q_data.as_ptr().offset(qo + qr),
                            q_st[self.q.rows],
                            q_st[self.q.cols],
                            k_data.as_ptr().offset(ko),
                            k_st[self.k.cols],
                            k_st[self.k.rows],
                            0.0,
                            s.as_mut_ptr(),
                            n as isize,
                            1,
                        );
                    }
                    if n > 0 {
                        softmax_rows(s, n);
                    }
                    unsafe {
                        matrixmultiply::sgemm(
                            rows,
                            n,
                            value_width,
                            1.0,
                            s.as_ptr(),
                            n as isize,
                            1,
                            v_data.as_ptr().offset(vo),
                            v_st[self.v.rows],
                            v_st[self.v.cols],
                            0.0,
                            out_ptr.at(oo + or),
                            o_st[self.out.rows],
                            o_st[self.out.cols],
                        );
                    }
                }
            }
            Ok(())
        })?;
        Ok(tvec!(out.into_tvalue()))
    }
}

/// The roles of one einsum's axes: for each axis, its position in input 0, input 1 and the output.
type Slots = (Option<usize>, Option<usize>, Option<usize>);

fn slots(op: &EinSum) -> Option<Vec<Slots>> {
    let one = |p: &TVec<usize>| match p.len() {
        0 => Some(None),
        1 => Some(Some(p[0])),
        _ => None,
    };
    op.axes
        .iter_all_axes()
        .map(|a| Some((one(a.inputs.first()?)?, one(a.inputs.get(1)?)?, one(a.outputs.first()?)?)))
        .collect()
}

/// A binary f32 einsum without quantisation.
fn plain_einsum<'a>(model: &'a TypedModel, node: &'a TypedNode) -> Option<&'a EinSum> {
    let op = node.op_as::<EinSum>()?;
    let f32_in = node.inputs.iter().all(|i| model.outlet_fact(*i).is_ok_and(|f| f.datum_type == f32::datum_type()));
    (op.q_params.is_none() && op.operating_dt == f32::datum_type() && node.inputs.len() == 2 && f32_in).then_some(op)
}

/// The only consumer of `node`'s single output, if it has exactly one and is not a model output.
fn only_successor<'a>(model: &'a TypedModel, node: &TypedNode) -> Option<(&'a TypedNode, usize)> {
    let [out] = node.outputs.as_slice() else { return None };
    let [next] = out.successors.as_slice() else { return None };
    (!model.outputs.contains(&OutletId::new(node.id, 0))).then(|| (&model.nodes[next.node], next.slot))
}

/// Matches `scores = einsum(q, k)`, `softmax(scores)` over the keys, `einsum(probs, v)` starting at `scores`:
/// returns the fused op and the nodes `(scores, softmax, output)`.
fn match_attention(model: &TypedModel, scores: &TypedNode) -> Option<(FusedAttention, [usize; 3])> {
    let qk = plain_einsum(model, scores)?;
    let (mut batch, mut rows, mut keys, mut width) = (Vec::new(), None, None, None);
    for s in slots(qk)? {
        match s {
            (Some(q), Some(k), Some(o)) => batch.push((q, k, o)),
            (Some(q), None, Some(o)) if rows.is_none() => rows = Some((q, o)),
            (None, Some(k), Some(o)) if keys.is_none() => keys = Some((k, o)),
            (Some(q), Some(k), None) if width.is_none() => width = Some((q, k)),
            _ => return None,
        }
    }
    let ((q_rows, s_rows), (k_rows, s_keys), (q_cols, k_cols)) = (rows?, keys?, width?);
    let (softmax, slot) = only_successor(model, scores)?;
    let op = softmax.op_as::<Softmax>()?;
    if slot != 0 || op.kind != SoftmaxKind::Softmax || op.quant_output_dt.is_some() || op.axes.as_slice() != [s_keys] {
        return None;
    }
    let (pv_node, slot) = only_successor(model, softmax)?;
    let pv = plain_einsum(model, pv_node)?;
    if slot != 0 {
        return None;
    }
    let (mut v_batch, mut o_batch) = (vec![None; batch.len()], vec![None; batch.len()]);
    let (mut out_rows, mut v_rows, mut cols) = (None, None, None);
    for s in slots(pv)? {
        match s {
            (Some(p), Some(v), Some(o)) => {
                let j = batch.iter().position(|b| b.2 == p)?;
                if v_batch[j].replace(v).is_some() || o_batch[j].replace(o).is_some() {
                    return None;
                }
            }
            (Some(p), None, Some(o)) if p == s_rows && out_rows.is_none() => out_rows = Some(o),
            (Some(p), Some(v), None) if p == s_keys && v_rows.is_none() => v_rows = Some(v),
            (None, Some(v), Some(o)) if cols.is_none() => cols = Some((v, o)),
            _ => return None,
        }
    }
    let (v_cols, o_cols) = cols?;
    let attention = FusedAttention {
        q: Layout { batch: batch.iter().map(|b| b.0).collect(), rows: q_rows, cols: q_cols },
        k: Layout { batch: batch.iter().map(|b| b.1).collect(), rows: k_rows, cols: k_cols },
        v: Layout { batch: v_batch.into_iter().collect::<Option<_>>()?, rows: v_rows?, cols: v_cols },
        out: Layout { batch: o_batch.into_iter().collect::<Option<_>>()?, rows: out_rows?, cols: o_cols },
    };
    Some((attention, [scores.id, softmax.id, pv_node.id]))
}

/// Replaces every `softmax(q k^T) v` of `model` (typed, before tract's simplifications) by [`FusedAttention`]; returns
/// how many. Chains whose intermediate results are used elsewhere, masked or scaled after the product, or not f32
/// are left to tract.
pub fn fuse_attention(model: &mut TypedModel) -> TractResult<usize> {
    let found: Vec<_> = model.nodes.iter().filter_map(|n| match_attention(model, n)).collect();
    for (op, [scores, _, out]) in &found {
        let mut patch = TypedModelPatch::new("fuse attention");
        let q = patch.tap_model(model, model.nodes[*scores].inputs[0])?;
        let k = patch.tap_model(model, model.nodes[*scores].inputs[1])?;
        let v = patch.tap_model(model, model.nodes[*out].inputs[1])?;
        let name = format!("{}.fused", model.nodes[*out].name);
        let fused = patch.wire_node(name, op.clone(), &[q, k, v])?[0];
        patch.shunt_outside(model, OutletId::new(*out, 0), fused)?;
        patch.apply(model)?;
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `softmax(q k^T) v` in f64, `q`: `[heads, m, d]`, `k` and `v`: `[heads, n, d]`.
    fn reference(q: &[f32], k: &[f32], v: &[f32], [heads, m, n, d]: [usize; 4]) -> Vec<f32> {
        let e = d;
        let mut out = vec![0f32; heads * m * e];
        for h in 0..heads {
            for i in 0..m {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d).map(|c| f64::from(q[(h * m + i) * d + c]) * f64::from(k[(h * n + j) * d + c])).sum()
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e_s: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e_s.iter().sum();
                for c in 0..e {
                    let acc: f64 = (0..n).map(|j| e_s[j] / sum * f64::from(v[(h * n + j) * e + c])).sum();
                    out[(h * m + i) * e + c] = acc as f32;
                }
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 - 0.5) * 3.0).collect()
    }

    /// The ONNX-style chain on `[1, heads, tokens, d]` tensors with keys given transposed, as torch exports it.
    fn chain(heads: usize, m: usize, n: usize, d: usize) -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let q = model.add_source("q", f32::fact([1, heads, m, d]))?;
        let k = model.add_source("k", f32::fact([1, heads, n, d]))?;
        let v = model.add_source("v", f32::fact([1, heads, n, d]))?;
        let scores = model.wire_node("scores", EinSum::new("bhmc,bhnc->bhmn".parse()?, f32::datum_type()), &[q, k])?;
        let probs = model.wire_node("probs", Softmax::new(tvec![3], None, SoftmaxKind::Softmax), &scores)?;
        let out = model.wire_node("out", EinSum::new("bhmn,bhnc->bhmc".parse()?, f32::datum_type()), &[probs[0], v])?;
        model.select_output_outlets(&out)?;
        Ok(model)
    }

    fn run(model: TypedModel, inputs: [&[f32]; 3], shapes: [[usize; 4]; 3]) -> TractResult<Vec<f32>> {
        let plan = model.into_runnable()?;
        let tensors: TVec<TValue> = inputs
            .iter()
            .zip(shapes)
            .map(|(data, shape)| Tensor::from_shape(&shape, data).map(|t| t.into_tvalue()))
            .collect::<TractResult<_>>()?;
        let out = plan.run(tensors)?;
        Ok(out[0].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    }

    #[test]
    fn the_chain_is_fused_and_equals_a_double_precision_attention() -> TractResult<()> {
        // 70 queries: two row blocks, the second partial; 37 keys: rows not a multiple of the SIMD width.
        let (heads, m, n, d) = (3, 70, 37, 8);
        let (q, k, v) = (values(heads * m * d, 1), values(heads * n * d, 2), values(heads * n * d, 3));
        let mut model = chain(heads, m, n, d)?;
        let unfused = run(model.clone(), [&q, &k, &v], [[1, heads, m, d], [1, heads, n, d], [1, heads, n, d]])?;
        assert_eq!(fuse_attention(&mut model)?, 1);
        assert!(model.nodes.iter().any(|n| n.op_is::<FusedAttention>()));
        let fused = run(model, [&q, &k, &v], [[1, heads, m, d], [1, heads, n, d], [1, heads, n, d]])?;
        let want = reference(&q, &k, &v, [heads, m, n, d]);
        for ((a, b), w) in fused.iter().zip(&unfused).zip(&want) {
            assert!((a - w).abs() < 1e-5, "fused {a} vs reference {w}");
            assert!((b - w).abs() < 1e-5, "tract {b} vs reference {w}");
        }
        Ok(())
    }

    #[test]
    fn a_permuted_layout_is_read_through_its_strides() -> TractResult<()> {
        // q, k, v as `[tokens, heads, d]` (the layout of a split projection), output `[tokens, heads, d]`.
        let (heads, m, n, d) = (2, 9, 11, 4);
        let mut model = TypedModel::default();
        let q = model.add_source("q", f32::fact([m, heads, d]))?;
        let k = model.add_source("k", f32::fact([n, heads, d]))?;
        let v = model.add_source("v", f32::fact([n, heads, d]))?;
        let scores = model.wire_node("scores", EinSum::new("mhc,nhc->hmn".parse()?, f32::datum_type()), &[q, k])?;
        let probs = model.wire_node("probs", Softmax::new(tvec![2], None, SoftmaxKind::Softmax), &scores)?;
        let out = model.wire_node("out", EinSum::new("hmn,nhc->mhc".parse()?, f32::datum_type()), &[probs[0], v])?;
        model.select_output_outlets(&out)?;
        assert_eq!(fuse_attention(&mut model)?, 1);
        let (qd, kd, vd) = (values(m * heads * d, 4), values(n * heads * d, 5), values(n * heads * d, 6));
        let plan = model.into_runnable()?;
        let got = plan.run(tvec![
            Tensor::from_shape(&[m, heads, d], &qd)?.into_tvalue(),
            Tensor::from_shape(&[n, heads, d], &kd)?.into_tvalue(),
            Tensor::from_shape(&[n, heads, d], &vd)?.into_tvalue(),
        ])?;
        // The reference in `[heads, tokens, d]`, transposed to compare.
        let heads_first = |x: &[f32], t: usize| -> Vec<f32> {
            (0..heads).flat_map(|h| (0..t).flat_map(move |i| (0..d).map(move |c| x[(i * heads + h) * d + c]))).collect()
        };
        let want = reference(&heads_first(&qd, m), &heads_first(&kd, n), &heads_first(&vd, n), [heads, m, n, d]);
        let got = got[0].try_as_plain_ram()?;
        let got = got.as_slice::<f32>()?;
        for h in 0..heads {
            for i in 0..m {
                for c in 0..d {
                    let (a, w) = (got[(i * heads + h) * d + c], want[(h * m + i) * d + c]);
                    assert!((a - w).abs() < 1e-5, "head {h} row {i} col {c}: {a} vs {w}");
                }
            }
        }
        Ok(())
    }

    #[cfg(feature = "default-model")]
    #[test]
    fn every_block_of_the_default_models_encoder_gets_the_fused_op() {
        use crate::onnx::{InputSpec, load_plan};
        let model = crate::ModelDir::embedded().unwrap();
        let [h, w] = model.geometry().input_size;
        let file = &model.meta.files.image_encoder;
        let spec = InputSpec {
            name: "image",
            datum: f32::datum_type(),
            shape: vec![None, Some(3), Some(h as usize), Some(w as usize)],
        };
        let plan =
            load_plan(&model.read(file).unwrap(), &model.label(file), &[spec], &["global", "patch_tokens"]).unwrap();
        let fused = plan.model().nodes.iter().filter(|n| n.op_is::<FusedAttention>()).count();
        // Losing the rewrite silently (tract's graph for attention changing shape) costs a third of the encoder's time.
        assert_eq!(fused, model.meta.image.layers);
    }

    #[test]
    fn a_chain_whose_scores_are_used_elsewhere_is_left_alone() -> TractResult<()> {
        let mut model = chain(2, 5, 5, 4)?;
        let scores = model.node_by_name("scores")?.id;
        let mut outputs = model.output_outlets()?.to_vec();
        outputs.push(OutletId::new(scores, 0));
        model.select_output_outlets(&outputs)?;
        assert_eq!(fuse_attention(&mut model)?, 0);
        Ok(())
    }
}

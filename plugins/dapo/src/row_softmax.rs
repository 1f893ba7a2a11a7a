//! A faster f32 softmax over the last axis for tract plans: [`use_row_softmax`] swaps it in for tract's `Softmax`
//! after optimisation.
//!
//! Why: the attention softmax of a ViT runs over rows of `tokens` values (401, 201, 1374: rarely a multiple of
//! 4), where tract 0.23.9 calls three aligned kernels per row and spends about 2.2 ns per value on the 2 cores
//! measured here (1.4 ms of the default model's 40 ms per image in each of its 6 blocks, against under 0.3 ns per
//! value for a row-wise loop: `docs/benchmarks.md`). This one does each row in one pass structure (max, exp and
//! sum, scale) with an exponential that vectorises, compiled for AVX2 and FMA when the CPU has them. Rows are
//! independent and computed alike on any thread, so results do not depend on the thread count.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};
use tract_onnx::tract_core::{args_1, as_op, op_as_typed_op, op_out_of_plan};

/// Softmax over the last axis of an f32 tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowSoftmax;

impl Op for RowSoftmax {
    fn name(&self) -> StaticName {
        "LoupeRowSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for RowSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut tensor = input.into_tensor();
        let row = tensor.shape().last().copied().unwrap_or(1);
        if row > 0 {
            let mut plain = tensor.try_as_plain_ram_mut()?;
            let data = plain.as_slice_mut::<f32>()?;
            let total = data.len();
            tract_onnx::prelude::multithread::par_chunks_mut(data, row, total, |_, rows| {
                softmax_rows(rows, row);
                Ok(())
            })?;
        }
        Ok(tvec!(tensor.into_tvalue()))
    }
}

impl TypedOp for RowSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// Replaces every f32 `Softmax` over the last axis of `model` (optimised) with [`RowSoftmax`]; returns how many.
pub fn use_row_softmax(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes.len() {
        let node = &model.nodes[id];
        let Some(op) = node.op_as::<Softmax>() else { continue };
        let Some(&input) = node.inputs.first() else { continue };
        let fact = model.outlet_fact(input)?;
        let last = fact.rank().checked_sub(1);
        if op.kind == SoftmaxKind::Softmax
            && op.quant_output_dt.is_none()
            && fact.datum_type == f32::datum_type()
            && last.is_some_and(|l| op.axes.as_slice() == [l])
        {
            model.nodes[id].op = Box::new(RowSoftmax);
            swapped += 1;
        }
    }
    Ok(swapped)
}

/// Softmax of each `row`-long row of `data` in place.
pub fn softmax_rows(data: &mut [f32], row: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { softmax_rows_avx2(data, row) };
        return;
    }
    softmax_rows_any::<false>(data, row);
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(data: &mut [f32], row: usize) {
    softmax_rows_any::<true>(data, row);
}

/// `a * b + c`, fused (one rounding) where `FMA` says the CPU has it: unfused, `mul_add` would call a slow
/// library function.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

const LANES: usize = 8;

/// The body, written in lanes of 8 so that the compiler vectorises it (inlined into the AVX2 version).
#[inline(always)]
fn softmax_rows_any<const FMA: bool>(data: &mut [f32], row: usize) {
    for r in data.chunks_exact_mut(row) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = r.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
            }
        }
        let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
        let mut sums = [0.0f32; LANES];
        let mut chunks = r.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                let e = exp_non_positive::<FMA>(c[i] - max);
                c[i] = e;
                sums[i] += e;
            }
        }
        let mut sum = 0.0f32;
        for x in chunks.into_remainder() {
            *x = exp_non_positive::<FMA>(*x - max);
            sum += *x;
        }
        let inv = 1.0 / (sums.iter().sum::<f32>() + sum);
        for x in r.iter_mut() {
            *x *= inv;
        }
    }
}

/// `e^x` for `x <= 0` (a row value minus the row's maximum), relative error below 3e-7 (2 ulp): `x = k ln 2 + r` with
/// `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial of degree 6 (truncation below 2e-8), times `2^k`. Below -87
/// the result is clamped to `e^-87` (1.6e-38), which is nothing beside a row's sum of at least 1.
#[inline(always)]
fn exp_non_positive<const FMA: bool>(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that k * LN2_HI is exact for the k that occur.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds to an integer and leaves it in the low mantissa bits: k and 2^k without a
    // float-to-int conversion, which would not vectorise (Rust's `as i32` saturates).
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let t = madd::<FMA>(x, LOG2_E, ROUND);
    let k = t - ROUND;
    let r = madd::<FMA>(-k, LN2_LO, madd::<FMA>(-k, LN2_HI, x));
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = madd::<FMA>(p, r, c);
    }
    // k is in -126..=0 here, so 2^k = bits (k + 127) << 23 is a normal float.
    p * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(row: &[f32]) -> Vec<f32> {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, |m, x| m.max(f64::from(x)));
        let e: Vec<f64> = row.iter().map(|&x| (f64::from(x) - max).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| (v / s) as f32).collect()
    }

    #[test]
    fn the_exponential_is_within_3e7_relative_over_its_range_fused_or_not() {
        for fused in [false, true] {
            let exp = |x: f32| if fused { exp_non_positive::<true>(x) } else { exp_non_positive::<false>(x) };
            let mut worst = 0.0f64;
            for i in 0..=87_000 {
                let x = -(i as f32) / 1000.0;
                let (got, want) = (f64::from(exp(x)), f64::from(x).exp());
                worst = worst.max(((got - want) / want).abs());
            }
            assert!(worst < 3e-7, "fused {fused}: worst relative error {worst:e}");
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(-1000.0) < 1e-37);
        }
    }

    #[test]
    fn rows_of_any_length_match_a_double_precision_softmax() {
        for row in [1usize, 3, 8, 13, 401] {
            let mut data: Vec<f32> = (0..3 * row).map(|i| ((i * 7919) % 1013) as f32 / 37.0 - 10.0).collect();
            let want: Vec<f32> = data.chunks(row).flat_map(reference).collect();
            softmax_rows(&mut data, row);
            for (a, b) in data.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * b.max(1e-3), "row {row}: {a} vs {b}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_dispatched_kernel_is_the_body_this_cpu_gets() {
        let mut a: Vec<f32> = (0..4 * 37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let mut b = a.clone();
        softmax_rows(&mut a, 37);
        if has_avx2_fma() {
            softmax_rows_any::<true>(&mut b, 37);
        } else {
            softmax_rows_any::<false>(&mut b, 37);
        }
        // Vectorising changes no result: the operations and their order are the same.
        assert_eq!(a, b);
    }
}

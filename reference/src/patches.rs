//! The patch features of one image, L2-normalised, as every comparison here needs them.

use crate::error::{ReferenceError, Result};

/// One image's patch features, `[layers, cells, dim]` row-major, each row L2-normalised (a zero row stays zero).
#[derive(Clone, Debug, PartialEq)]
pub struct PatchSet {
    layers: usize,
    cells: usize,
    dim: usize,
    data: Vec<f32>,
}

impl PatchSet {
    /// Normalises `features` (`[layers, cells, dim]`, as a backbone returns them); fails when the buffer does not
    /// hold that many values or a value is not finite.
    pub fn new(features: &[f32], layers: usize, cells: usize, dim: usize) -> Result<Self> {
        let n = layers * cells * dim;
        if features.len() != n || n == 0 {
            return Err(ReferenceError::shape(
                format!("patch features of {layers} layers x {cells} cells x dim {dim}"),
                n,
                features.len(),
            ));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(ReferenceError::invalid(
                format!("patch feature value {i} (layer {}, cell {})", i / (cells * dim), (i / dim) % cells),
                "a finite number",
                features[i],
            ));
        }
        let mut data = features.to_vec();
        data.chunks_mut(dim).for_each(normalize);
        Ok(Self { layers, cells, dim, data })
    }

    /// Rows that are already normalised (taken from another set), as they are.
    pub(crate) fn from_normalized(data: Vec<f32>, layers: usize, cells: usize, dim: usize) -> Self {
        debug_assert_eq!(data.len(), layers * cells * dim);
        Self { layers, cells, dim, data }
    }

    /// Number of feature layers.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Patches per layer (grid cells).
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Layer `l`: `[cells, dim]` normalised rows.
    pub fn layer(&self, l: usize) -> &[f32] {
        let n = self.cells * self.dim;
        &self.data[l * n..(l + 1) * n]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// Fails unless `other` has the same layers, cells and dimension (`what` names the pair in the message).
    pub fn check_same_shape(&self, other: &PatchSet, what: &str) -> Result<()> {
        let a = (self.layers, self.cells, self.dim);
        let b = (other.layers, other.cells, other.dim);
        if a != b {
            let show = |(l, c, d): (usize, usize, usize)| format!("{l} layers x {c} cells x dim {d}");
            return Err(ReferenceError::shape(what, show(a), show(b)));
        }
        Ok(())
    }
}

/// L2-normalises `v` in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    // In f64: a square of any finite f32 neither overflows nor underflows there, so rows of very large or very
    // small values still come out unit-length (in f32, 1e20 squared is infinite and the row would become zero).
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_normalised_and_layers_sliced() {
        let p = PatchSet::new(&[3.0, 4.0, 0.0, 0.0, 0.0, 2.0, 1.0, 0.0], 2, 2, 2).unwrap();
        assert_eq!(p.layer(0), &[0.6, 0.8, 0.0, 0.0]);
        assert_eq!(p.layer(1), &[0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn rows_of_huge_or_tiny_values_come_out_unit_length() {
        for scale in [1e30f32, 1e-30, f32::MAX, f32::from_bits(1)] {
            let mut v = [3.0 * scale, 4.0 * scale, 0.0];
            if scale == f32::MAX {
                v = [scale, scale, 0.0];
            }
            normalize(&mut v);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-6, "scale {scale:e}: {v:?}");
        }
        let mut zero = [0.0f32; 3];
        normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[test]
    fn wrong_sizes_and_non_finite_values_are_refused() {
        assert!(PatchSet::new(&[1.0; 5], 1, 2, 2).unwrap_err().to_string().contains("expected 4, found 5"));
        let err = PatchSet::new(&[1.0, f32::NAN, 0.0, 1.0], 1, 2, 2).unwrap_err().to_string();
        assert!(err.contains("value 1") && err.contains("NaN"), "{err}");
        let a = PatchSet::new(&[1.0; 4], 1, 2, 2).unwrap();
        let b = PatchSet::new(&[1.0; 4], 2, 1, 2).unwrap();
        assert!(a.check_same_shape(&b, "pool image 3").unwrap_err().to_string().contains("pool image 3"));
    }
}

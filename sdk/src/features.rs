//! What flows between the components: image features from a backbone, the text matrix from a prompt bank.

use crate::error::{LoupeError, Result};

/// Features of one image: a global feature and patch features of several layers, all of dimension `dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFeatures {
    /// Global (CLS) feature, `[dim]`, not normalised.
    pub global: Vec<f32>,
    /// Patch features, `[layers, grid_h * grid_w, dim]` row-major, not normalised.
    pub patches: Vec<f32>,
    /// Number of feature layers.
    pub layers: usize,
    /// Patch grid height.
    pub grid_h: usize,
    /// Patch grid width.
    pub grid_w: usize,
    /// Feature dimension.
    pub dim: usize,
}

impl ImageFeatures {
    /// Checks the buffers against the declared shape.
    pub fn validate(&self) -> Result<()> {
        if self.global.len() != self.dim {
            return Err(LoupeError::mismatch("global feature length", self.dim, self.global.len()));
        }
        // Checked: the shape comes from a component and must not overflow into a false match (or a panic).
        let n = [self.grid_h, self.grid_w, self.dim].iter().try_fold(self.layers, |n, &d| n.checked_mul(d));
        if n != Some(self.patches.len()) {
            let n = n.map_or_else(|| "more than fits in memory".to_string(), |n| n.to_string());
            return Err(LoupeError::mismatch(
                format!(
                    "patch features of {} layers x {}x{} grid x dim {}",
                    self.layers, self.grid_h, self.grid_w, self.dim
                ),
                n,
                self.patches.len(),
            ));
        }
        Ok(())
    }

    /// Patch features of layer `l`, `[grid_h * grid_w, dim]`.
    pub fn layer(&self, l: usize) -> &[f32] {
        let n = self.grid_h * self.grid_w * self.dim;
        &self.patches[l * n..(l + 1) * n]
    }
}

/// Name of row 0 of every text matrix.
pub const NORMAL_CLASS: &str = "normal";

/// The text matrix of a vocabulary: row 0 is the normal state, row k the k-th defect word. Rows are L2-normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct TextFeatures {
    /// Defect words, in row order (row k = `words[k - 1]`).
    pub words: Vec<String>,
    /// Feature dimension.
    pub dim: usize,
    /// `[1 + words.len(), dim]`, row-major.
    pub rows: Vec<f32>,
}

impl TextFeatures {
    /// Builds a matrix, normalising each row; fails when the buffer does not hold `1 + words.len()` rows.
    pub fn new(words: Vec<String>, dim: usize, mut rows: Vec<f32>) -> Result<Self> {
        let expected = (1 + words.len()) * dim;
        if rows.len() != expected {
            return Err(LoupeError::mismatch(
                format!("text matrix for normal + {} words, dim {dim}", words.len()),
                expected,
                rows.len(),
            ));
        }
        for row in rows.chunks_mut(dim) {
            normalize(row);
        }
        Ok(Self { words, dim, rows })
    }

    /// Number of classes, normal included.
    pub fn classes(&self) -> usize {
        1 + self.words.len()
    }

    /// Row `k`.
    pub fn row(&self, k: usize) -> &[f32] {
        &self.rows[k * self.dim..(k + 1) * self.dim]
    }

    /// Class names: `normal` then the defect words.
    pub fn class_names(&self) -> Vec<String> {
        std::iter::once(NORMAL_CLASS.to_string()).chain(self.words.iter().cloned()).collect()
    }

    /// The sub-matrix of `normal` + the given words, in that order; fails naming a word this matrix lacks.
    pub fn select(&self, words: &[String]) -> Result<Self> {
        let mut rows = self.row(0).to_vec();
        for w in words {
            let k = self.words.iter().position(|x| x == w).ok_or_else(|| {
                LoupeError::Vocabulary(format!(
                    "word `{w}` is not in this text matrix (has: {})",
                    self.words.join(", ")
                ))
            })?;
            rows.extend_from_slice(self.row(k + 1));
        }
        Ok(Self { words: words.to_vec(), dim: self.dim, rows })
    }
}

/// L2-normalises `v` in place (a zero vector stays zero): the same function reference scoring normalises with.
pub use loupe_reference::patches::normalize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rows_are_normalised_and_selectable() {
        let t =
            TextFeatures::new(vec!["hole".into(), "scratch".into()], 2, vec![3.0, 4.0, 1.0, 0.0, 0.0, 2.0]).unwrap();
        assert_eq!(t.row(0), &[0.6, 0.8]);
        assert_eq!(t.row(2), &[0.0, 1.0]);
        let s = t.select(&["scratch".into()]).unwrap();
        assert_eq!(s.classes(), 2);
        assert_eq!(s.row(1), &[0.0, 1.0]);
        let err = t.select(&["burr".into()]).unwrap_err().to_string();
        assert!(err.contains("burr"), "{err}");
    }

    #[test]
    fn wrong_buffer_sizes_are_refused() {
        assert!(TextFeatures::new(vec!["hole".into()], 4, vec![0.0; 4]).is_err());
        let f = ImageFeatures {
            global: vec![0.0; 3],
            patches: vec![0.0; 2 * 4 * 3],
            layers: 2,
            grid_h: 2,
            grid_w: 2,
            dim: 3,
        };
        assert!(f.validate().is_ok());
        let bad = ImageFeatures { patches: vec![0.0; 5], ..f };
        assert!(bad.validate().is_err());
    }
}

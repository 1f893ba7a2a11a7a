//! The memory of good patches (k-shot "golden samples"): per feature layer, the normalised patch features of the
//! reference images, each row tagged with the reference image it came from.
//!
//! A query patch's raw score is, per layer, `1 - max cos` against that layer's rows, averaged over the layers.
//! [`Memory::leave_one_out_scores`] scores a sample of each reference's patches against the rows of the *other*
//! references: the spread of distances between normal patches, from which the SDK sets the score's scale.

use std::ops::Range;

use crate::coreset::greedy_coreset;
use crate::error::{ReferenceError, Result};
use crate::knn::{group_maxima, max_inner_products};
use crate::patches::PatchSet;

/// One layer of a memory.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLayer {
    /// `[rows, dim]` L2-normalised rows, ordered by owner.
    rows: Vec<f32>,
    /// Per row: the reference image it came from (0-based), ascending.
    owners: Vec<u32>,
}

impl MemoryLayer {
    /// A layer from stored rows (`[n, dim]`) and owners (`[n]`, ascending); a row whose norm is not 1 (within
    /// 1e-5) is normalised, so stored rows come back bit for bit and foreign ones still work. Fails on ragged
    /// rows, a length mismatch, descending owners, non-finite values or an empty layer.
    pub fn new(rows: Vec<f32>, owners: Vec<u32>, dim: usize) -> Result<Self> {
        if dim == 0 || rows.is_empty() || !rows.len().is_multiple_of(dim) {
            return Err(ReferenceError::shape(
                "memory rows",
                format!("a non-empty multiple of {dim} values"),
                rows.len(),
            ));
        }
        let n = rows.len() / dim;
        if owners.len() != n {
            return Err(ReferenceError::shape("memory row owners (one per row)", n, owners.len()));
        }
        if owners.windows(2).any(|w| w[0] > w[1]) {
            return Err(ReferenceError::invalid(
                "memory row owners",
                "ascending reference indices",
                "a descending pair",
            ));
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(ReferenceError::invalid(format!("memory value {i}"), "a finite number", rows[i]));
        }
        let mut rows = rows;
        for row in rows.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if (norm - 1.0).abs() > 1e-5 {
                crate::patches::normalize(row);
            }
        }
        Ok(Self { rows, owners })
    }

    /// The rows, `[n, dim]`.
    pub fn rows(&self) -> &[f32] {
        &self.rows
    }

    /// The reference image of each row.
    pub fn owners(&self) -> &[u32] {
        &self.owners
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the layer has no row (never true for a constructed layer).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Contiguous row ranges per owner, in owner order, with the owner.
    fn owner_ranges(&self) -> Vec<(u32, Range<usize>)> {
        let mut out: Vec<(u32, Range<usize>)> = Vec::new();
        for (i, &o) in self.owners.iter().enumerate() {
            match out.last_mut() {
                Some((last, r)) if *last == o => r.end = i + 1,
                _ => out.push((o, i..i + 1)),
            }
        }
        out
    }
}

/// Good patches per feature layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Memory {
    layers: Vec<MemoryLayer>,
    dim: usize,
}

impl Memory {
    /// Every patch of `sets`; `owners[i]` is the reference image that `sets[i]` shows (an augmented view shares
    /// its source's owner). Fails when the sets differ in shape or the lists in length.
    pub fn from_patch_sets(sets: &[PatchSet], owners: &[u32]) -> Result<Self> {
        let Some(first) = sets.first() else {
            return Err(ReferenceError::invalid("reference images", "at least one", 0));
        };
        if owners.len() != sets.len() {
            return Err(ReferenceError::shape(
                "owners of the reference views (one per view)",
                sets.len(),
                owners.len(),
            ));
        }
        for (i, s) in sets.iter().enumerate() {
            first.check_same_shape(s, &format!("patch features of reference view {i} (against view 0)"))?;
        }
        let mut order: Vec<usize> = (0..sets.len()).collect();
        order.sort_by_key(|&i| owners[i]); // stable: a source's views stay in the given order
        let (dim, cells) = (first.dim(), first.cells());
        let layers = (0..first.layers())
            .map(|l| {
                let mut rows = Vec::with_capacity(sets.len() * cells * dim);
                let mut row_owners = Vec::with_capacity(sets.len() * cells);
                for &i in &order {
                    rows.extend_from_slice(sets[i].layer(l));
                    row_owners.extend(std::iter::repeat_n(owners[i], cells));
                }
                MemoryLayer { rows, owners: row_owners }
            })
            .collect();
        Ok(Self { layers, dim })
    }

    /// A memory from stored layers (all of dimension `dim`); fails when there is none.
    pub fn from_layers(layers: Vec<MemoryLayer>, dim: usize) -> Result<Self> {
        if layers.is_empty() {
            return Err(ReferenceError::invalid("memory layers", "at least one", 0));
        }
        if let Some((l, layer)) = layers.iter().enumerate().find(|(_, m)| m.rows.len() != m.owners.len() * dim) {
            return Err(ReferenceError::shape(
                format!("memory layer {l} rows of dim {dim}"),
                layer.owners.len() * dim,
                layer.rows.len(),
            ));
        }
        Ok(Self { layers, dim })
    }

    /// The layers.
    pub fn layers(&self) -> &[MemoryLayer] {
        &self.layers
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of distinct reference images (owners) across the layers.
    pub fn images(&self) -> usize {
        let mut owners: Vec<u32> = self.layers.iter().flat_map(|l| l.owners.iter().copied()).collect();
        owners.sort_unstable();
        owners.dedup();
        owners.len()
    }

    /// Bytes held by the rows and owners.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| l.rows.len() * 4 + l.owners.len() * 4).sum()
    }

    /// The memory with each layer reduced to `ceil(fraction x rows)` rows by the greedy coreset (the seed chooses
    /// the first row; layer `l` uses `seed + l`). `fraction` in `(0, 1]`; 1 keeps everything.
    pub fn subsample(&self, fraction: f32, seed: u64) -> Result<Self> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(ReferenceError::invalid("coreset fraction", "a number in (0, 1]", fraction));
        }
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let target = ((layer.len() as f64 * f64::from(fraction)).ceil() as usize).max(1);
                let keep = greedy_coreset(&layer.rows, self.dim, target, seed.wrapping_add(l as u64))?;
                let mut rows = Vec::with_capacity(keep.len() * self.dim);
                for &i in &keep {
                    rows.extend_from_slice(&layer.rows[i * self.dim..(i + 1) * self.dim]);
                }
                let owners = keep.iter().map(|&i| layer.owners[i]).collect();
                Ok(MemoryLayer { rows, owners })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, dim: self.dim })
    }

    fn check_query(&self, query: &PatchSet) -> Result<()> {
        if query.layers() != self.layers.len() || query.dim() != self.dim {
            return Err(ReferenceError::shape(
                "patch features against the reference memory (layers x dim)",
                format!("{} x {}", self.layers.len(), self.dim),
                format!("{} x {}", query.layers(), query.dim()),
            ));
        }
        Ok(())
    }

    /// Raw score per cell of `query`: `1 - max cos` to the layer's rows, averaged over the layers; `[cells]`.
    pub fn score(&self, query: &PatchSet) -> Result<Vec<f32>> {
        self.check_query(query)?;
        let mut out = vec![0.0f32; query.cells()];
        for (l, layer) in self.layers.iter().enumerate() {
            let best = max_inner_products(query.layer(l), &layer.rows, self.dim)?;
            for (o, b) in out.iter_mut().zip(best) {
                *o += 1.0 - b;
            }
        }
        let n = self.layers.len() as f32;
        out.iter_mut().for_each(|v| *v /= n);
        Ok(out)
    }

    /// Raw scores of up to `cells_per_image` cells (evenly spaced) of each reference in `sources` (indexed by owner)
    /// against the memory rows of the other references, one list per reference: per cell, `1 - max cos` averaged
    /// over layers. Needs at least two owners.
    pub fn leave_one_out_scores(&self, sources: &[PatchSet], cells_per_image: usize) -> Result<Vec<Vec<f32>>> {
        if self.images() < 2 {
            return Err(ReferenceError::invalid(
                "reference images",
                "at least 2 (the scale of normal variation is measured between them)",
                self.images(),
            ));
        }
        let mut out = Vec::new();
        for (owner, source) in sources.iter().enumerate() {
            self.check_query(source)?;
            let cells = source.cells();
            let take = cells_per_image.clamp(1, cells);
            let picked: Vec<usize> = (0..take).map(|i| i * cells / take).collect();
            let mut sums = vec![0.0f32; take];
            for (l, layer) in self.layers.iter().enumerate() {
                let rows = source.layer(l);
                let q: Vec<f32> =
                    picked.iter().flat_map(|&c| rows[c * self.dim..(c + 1) * self.dim].iter().copied()).collect();
                let ranges = layer.owner_ranges();
                let others: Vec<Range<usize>> =
                    ranges.iter().filter(|(o, _)| *o as usize != owner).map(|(_, r)| r.clone()).collect();
                if others.is_empty() {
                    return Err(ReferenceError::invalid(
                        format!("memory layer {l}"),
                        "rows of at least two reference images",
                        "rows of one only",
                    ));
                }
                let maxima = group_maxima(&q, &layer.rows, self.dim, &others)?;
                for (s, per_group) in sums.iter_mut().zip(maxima.chunks(others.len())) {
                    *s += 1.0 - per_group.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                }
            }
            let n = self.layers.len() as f32;
            out.push(sums.into_iter().map(|s| s / n).collect());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_set(layers: usize, cells: usize, dim: usize, seed: u64) -> PatchSet {
        let mut g = SplitMix64::new(seed);
        let v: Vec<f32> = (0..layers * cells * dim).map(|_| g.next_gaussian() as f32).collect();
        PatchSet::new(&v, layers, cells, dim).unwrap()
    }

    #[test]
    fn a_reference_scores_zero_against_itself_and_more_against_others() {
        let refs: Vec<PatchSet> = (0..3).map(|s| random_set(2, 16, 8, s)).collect();
        let memory = Memory::from_patch_sets(&refs, &[0, 1, 2]).unwrap();
        assert_eq!(memory.layers()[0].len(), 48);
        assert_eq!(memory.images(), 3);
        let own = memory.score(&refs[1]).unwrap();
        assert!(own.iter().all(|v| v.abs() < 1e-5), "{own:?}");
        let other = memory.score(&random_set(2, 16, 8, 99)).unwrap();
        assert!(other.iter().all(|&v| v > 0.05), "{other:?}");
        let loo = memory.leave_one_out_scores(&refs, 100).unwrap();
        assert_eq!(loo.len(), 3);
        assert!(loo.iter().all(|l| l.len() == 16 && l.iter().all(|&v| v > 0.05)), "never the same patch");
    }

    #[test]
    fn views_of_one_source_are_grouped_and_excluded_together() {
        let a = random_set(1, 4, 4, 1);
        let b = random_set(1, 4, 4, 2);
        // View 2 repeats image 0 (as an augmented copy would, here exactly): leave-one-out must not see it.
        let memory = Memory::from_patch_sets(&[a.clone(), b.clone(), a.clone()], &[0, 1, 0]).unwrap();
        assert_eq!(memory.layers()[0].owners(), &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        let loo = memory.leave_one_out_scores(&[a, b], 4).unwrap();
        assert!(loo[0].iter().all(|&v| v > 1e-3), "{loo:?}");
        let single = Memory::from_patch_sets(&[random_set(1, 4, 4, 5)], &[0]).unwrap();
        assert!(
            single.leave_one_out_scores(&[random_set(1, 4, 4, 5)], 4).unwrap_err().to_string().contains("at least 2")
        );
    }

    #[test]
    fn coreset_keeps_a_fraction_per_layer_and_scores_stay_close() {
        let refs: Vec<PatchSet> = (0..4).map(|s| random_set(2, 50, 16, s)).collect();
        let memory = Memory::from_patch_sets(&refs, &[0, 1, 2, 3]).unwrap();
        let small = memory.subsample(0.25, 7).unwrap();
        assert_eq!(small.layers()[0].len(), 50);
        assert_eq!(small.layers()[1].len(), 50);
        assert!(small.layers()[0].owners().windows(2).all(|w| w[0] <= w[1]));
        assert!(small.bytes() * 4 == memory.bytes());
        let q = random_set(2, 50, 16, 77);
        let (full, sub) = (memory.score(&q).unwrap(), small.score(&q).unwrap());
        assert!(full.iter().zip(&sub).all(|(f, s)| s >= f), "a subset is never nearer");
        assert!(memory.subsample(0.0, 1).is_err() && memory.subsample(1.5, 1).is_err());
    }

    #[test]
    fn shapes_are_checked() {
        let memory = Memory::from_patch_sets(&[random_set(2, 4, 4, 1)], &[0]).unwrap();
        let err = memory.score(&random_set(3, 4, 4, 2)).unwrap_err().to_string();
        assert!(err.contains("2 x 4") && err.contains("3 x 4"), "{err}");
        assert!(Memory::from_patch_sets(&[random_set(1, 4, 4, 1), random_set(1, 5, 4, 1)], &[0, 1]).is_err());
        assert!(MemoryLayer::new(vec![1.0; 6], vec![0, 0], 4).is_err());
        assert!(MemoryLayer::new(vec![1.0; 8], vec![1, 0], 4).is_err());
        assert!(MemoryLayer::new(vec![f32::INFINITY; 4], vec![0], 4).is_err());
    }
}

//! Mutual scoring (zero-shot, no references), after MuSc (Li et al., ICLR 2024): the images of a batch, or the
//! last N images of a stream, serve as each other's references. Most images of a product are normal, so a
//! normal patch finds a close match in most other images, while a defect patch finds none in the images that
//! lack that defect.
//!
//! For a query image and a pool of G other images, per layer and query patch: `d_j = 1 - max cos` over the patches
//! of pool image `j`; the patch's layer score is the mean of the lowest `round(fraction x G)` (at least one) of the
//! `d_j`, so that up to about `(1 - fraction) x G` pool images showing the same defect cannot hide it; the raw
//! score averages the layers.
//!
//! Cost per query image: `G x layers` products of `cells x cells x dim`; memory: the pool's patches,
//! `G x layers x cells x dim` floats.

use std::ops::Range;

use crate::error::{ReferenceError, Result};
use crate::knn::group_maxima;
use crate::patches::PatchSet;
use crate::stats::lowest_mean;

/// The images scored against: a batch, or a stream's rolling window (a ring of `capacity` slots: pushing into a
/// full pool replaces the oldest image). Each member may carry its own raw score map (from when it was scored),
/// from which the SDK measures the scale of normal variation in this pool.
#[derive(Clone, Debug)]
pub struct Pool {
    capacity: usize,
    /// `(layers, cells, dim)` of the members, set by the first one.
    shape: Option<(usize, usize, usize)>,
    /// Per layer: `[slots, cells, dim]` rows of the occupied slots.
    rows: Vec<Vec<f32>>,
    /// Per occupied slot: its raw score map, once known.
    scores: Vec<Option<Vec<f32>>>,
    /// The slot the next push writes (the oldest once full).
    next: usize,
}

impl Pool {
    /// An empty pool of `capacity` images (at least 1).
    pub fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(ReferenceError::invalid("mutual pool size", "at least 1 image", 0));
        }
        Ok(Self { capacity, shape: None, rows: Vec::new(), scores: Vec::new(), next: 0 })
    }

    /// A pool holding `images` (a batch: each image will be scored against the others).
    pub fn from_images(images: &[PatchSet]) -> Result<Self> {
        let mut pool = Self::new(images.len().max(1))?;
        for image in images {
            pool.push(image, None)?;
        }
        Ok(pool)
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the pool holds no image.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Most images held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the members' patches and score maps.
    pub fn bytes(&self) -> usize {
        self.rows.iter().map(|r| r.len() * 4).sum::<usize>()
            + self.scores.iter().flatten().map(|s| s.len() * 4).sum::<usize>()
    }

    /// Forgets every image.
    pub fn clear(&mut self) {
        self.rows.iter_mut().for_each(Vec::clear);
        self.scores.clear();
        self.next = 0;
    }

    fn check(&self, image: &PatchSet, what: &str) -> Result<()> {
        match self.shape {
            Some((l, c, d)) if (l, c, d) != (image.layers(), image.cells(), image.dim()) => Err(ReferenceError::shape(
                format!("{what} against the mutual pool (layers x cells x dim)"),
                format!("{l} x {c} x {d}"),
                format!("{} x {} x {}", image.layers(), image.cells(), image.dim()),
            )),
            _ => Ok(()),
        }
    }

    /// Adds `image` (with its raw score map, if it was scored); a full pool drops its oldest image. Returns the slot.
    pub fn push(&mut self, image: &PatchSet, raw_scores: Option<Vec<f32>>) -> Result<usize> {
        self.check(image, "image added")?;
        let (layers, cells, dim) = (image.layers(), image.cells(), image.dim());
        if self.shape.is_none() {
            self.shape = Some((layers, cells, dim));
            self.rows = vec![Vec::with_capacity(self.capacity * cells * dim); layers];
        }
        if let Some(s) = &raw_scores
            && s.len() != cells
        {
            return Err(ReferenceError::shape("raw score map of an image added to the pool", cells, s.len()));
        }
        let slot = self.next;
        let n = cells * dim;
        for (l, rows) in self.rows.iter_mut().enumerate() {
            if slot == self.scores.len() {
                rows.extend_from_slice(image.layer(l));
            } else {
                rows[slot * n..(slot + 1) * n].copy_from_slice(image.layer(l));
            }
        }
        if slot == self.scores.len() {
            self.scores.push(raw_scores);
        } else {
            self.scores[slot] = raw_scores;
        }
        self.next = (slot + 1) % self.capacity;
        Ok(slot)
    }

    /// Raw mutual score per cell of `query` against every member but `exclude` (its own slot, for a batch member);
    /// `[cells]`. Fails when no other member is left.
    pub fn score(&self, query: &PatchSet, exclude: Option<usize>, fraction: f32) -> Result<Vec<f32>> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(ReferenceError::invalid("mutual fraction", "a number in (0, 1]", fraction));
        }
        self.check(query, "image scored")?;
        let cells = query.cells();
        let groups: Vec<Range<usize>> =
            (0..self.len()).filter(|&s| Some(s) != exclude).map(|s| s * cells..(s + 1) * cells).collect();
        if groups.is_empty() {
            return Err(ReferenceError::invalid("mutual pool", "at least one other image", "none"));
        }
        let g = groups.len();
        let k = ((fraction as f64 * g as f64).round() as usize).clamp(1, g);
        let mut out = vec![0.0f32; cells];
        for (l, rows) in self.rows.iter().enumerate() {
            let maxima = group_maxima(query.layer(l), rows, query.dim(), &groups)?;
            let mut d = vec![0.0f32; g];
            for (o, per_image) in out.iter_mut().zip(maxima.chunks(g)) {
                d.iter_mut().zip(per_image).for_each(|(d, m)| *d = 1.0 - m);
                *o += lowest_mean(&mut d, k);
            }
        }
        let n = self.rows.len() as f32;
        out.iter_mut().for_each(|v| *v /= n);
        Ok(out)
    }

    /// Scores every member that has no score map yet against the other members (at least two members needed).
    pub fn score_members(&mut self, fraction: f32) -> Result<()> {
        let missing: Vec<usize> = (0..self.len()).filter(|&s| self.scores[s].is_none()).collect();
        for slot in missing {
            let member = self.member(slot);
            let scores = self.score(&member, Some(slot), fraction)?;
            self.scores[slot] = Some(scores);
        }
        Ok(())
    }

    /// The raw score map of member `slot`, if known.
    pub fn member_scores(&self, slot: usize) -> Option<&[f32]> {
        self.scores.get(slot).and_then(|s| s.as_deref())
    }

    /// The known member score maps (the sample the scale is measured on).
    pub fn known_member_scores(&self) -> impl Iterator<Item = &[f32]> {
        self.scores.iter().flatten().map(Vec::as_slice)
    }

    /// Member `slot` as a patch set (its rows are already normalised).
    fn member(&self, slot: usize) -> PatchSet {
        let (layers, cells, dim) = self.shape.unwrap_or((0, 0, 0));
        let n = cells * dim;
        let mut data = Vec::with_capacity(layers * n);
        for rows in &self.rows {
            data.extend_from_slice(&rows[slot * n..(slot + 1) * n]);
        }
        PatchSet::from_normalized(data, layers, cells, dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// `n` images that share one set of normal patches (with noise); image `defect` has cell 0 replaced by an
    /// unrelated patch.
    fn stream(n: usize, defect: Option<usize>) -> Vec<PatchSet> {
        let (cells, dim) = (9, 16);
        let mut g = SplitMix64::new(1);
        let base: Vec<f32> = (0..cells * dim).map(|_| g.next_gaussian() as f32).collect();
        (0..n)
            .map(|i| {
                let mut v: Vec<f32> = base.iter().map(|x| x + 0.05 * g.next_gaussian() as f32).collect();
                if Some(i) == defect {
                    v[..dim].iter_mut().for_each(|x| *x = g.next_gaussian() as f32);
                }
                PatchSet::new(&v, 1, cells, dim).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_defect_patch_stands_out_and_normal_patches_do_not() {
        let images = stream(8, Some(3));
        let mut pool = Pool::from_images(&images).unwrap();
        let s = pool.score(&images[3], Some(3), 0.3).unwrap();
        assert!(s[0] > 0.3, "{s:?}");
        assert!(s[1..].iter().all(|&v| v < 0.05), "{s:?}");
        let normal = pool.score(&images[5], Some(5), 0.3).unwrap();
        assert!(normal.iter().all(|&v| v < 0.05), "{normal:?}");
        pool.score_members(0.3).unwrap();
        assert_eq!(pool.member_scores(3).unwrap(), s.as_slice());
        assert_eq!(pool.known_member_scores().count(), 8);
    }

    #[test]
    fn two_images_with_the_same_defect_do_not_hide_each_other() {
        let mut images = stream(10, Some(2));
        let twin = images[2].clone();
        images[7] = twin;
        let pool = Pool::from_images(&images).unwrap();
        // With fraction 0.3 the 3 lowest of 9 distances count: one twin cannot bring the mean down to normal.
        let s = pool.score(&images[2], Some(2), 0.3).unwrap();
        assert!(s[0] > 0.2, "{s:?}");
        // With fraction 0.1 (the single nearest image) the twin hides it: the documented trade-off.
        let hidden = pool.score(&images[2], Some(2), 0.1).unwrap();
        assert!(hidden[0] < 0.01, "{hidden:?}");
    }

    #[test]
    fn a_full_window_drops_its_oldest_image() {
        let images = stream(5, None);
        let mut pool = Pool::new(3).unwrap();
        for (i, im) in images.iter().enumerate() {
            assert_eq!(pool.push(im, None).unwrap(), i % 3);
        }
        assert_eq!(pool.len(), 3);
        pool.clear();
        assert!(pool.is_empty());
        assert!(Pool::new(0).is_err());
    }

    #[test]
    fn a_lone_image_or_another_shape_is_refused() {
        let images = stream(1, None);
        let pool = Pool::from_images(&images).unwrap();
        assert!(pool.score(&images[0], Some(0), 0.3).unwrap_err().to_string().contains("at least one other image"));
        let other = PatchSet::new(&[1.0; 8], 1, 2, 4).unwrap();
        assert!(pool.score(&other, None, 0.3).unwrap_err().to_string().contains("mutual pool"));
        assert!(pool.score(&images[0], None, 0.0).is_err());
    }
}

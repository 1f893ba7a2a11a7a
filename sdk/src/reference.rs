//! Reference scoring in the engine, between backbone and post-processor: the evidence of golden samples (a
//! profile's memory) and of mutual scoring (the other images of a batch, or a session's window), computed by
//! `loupe-reference` on any backbone's patch features and handed to the post-processor as
//! [`ReferenceEvidence`]. Method and measurements: `docs/reference.md`.

use loupe_reference::stats::median_of_quantiles;
use loupe_reference::{Memory, PatchSet, Pool};

use crate::config::ReferenceConfig;
use crate::error::{LoupeError, Result};
use crate::features::ImageFeatures;
use crate::fusion::{MIN_SCALE, ReferenceEvidence, SCALE_QUANTILE, ScoringMode};

/// Mutual scoring settings (`reference.mutual_*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MutualSettings {
    /// Images a session's window keeps.
    pub window: usize,
    /// Share of the lowest per-image distances averaged.
    pub fraction: f32,
    /// Fewest other images a score needs.
    pub min_pool: usize,
}

impl MutualSettings {
    /// The settings of a configuration.
    pub fn of(cfg: &ReferenceConfig) -> Self {
        Self { window: cfg.mutual_window.max(1), fraction: cfg.mutual_fraction, min_pool: cfg.mutual_min_pool.max(1) }
    }
}

/// The normalised patch features of one image.
pub fn patch_set(f: &ImageFeatures) -> Result<PatchSet> {
    Ok(PatchSet::new(&f.patches, f.layers, f.grid_h * f.grid_w, f.dim)?)
}

/// Golden-sample evidence of one image against `memory` (of `images` references, with its `scale`).
pub fn golden(memory: &Memory, scale: f32, images: usize, f: &ImageFeatures) -> Result<ReferenceEvidence> {
    let raw = memory.score(&patch_set(f)?)?;
    ReferenceEvidence::new(ScoringMode::Golden, raw, scale, images)
}

/// The scale of a pool: over its members, the median of each member's 99th-percentile patch score (each member
/// scored against the others).
fn pool_scale(pool: &Pool) -> f32 {
    median_of_quantiles(pool.known_member_scores(), SCALE_QUANTILE).unwrap_or(MIN_SCALE).max(MIN_SCALE)
}

/// Mutual evidence of every image of a batch against the other images of the batch; the batch needs at least
/// `min_pool + 1` images.
pub fn mutual_batch(features: &[ImageFeatures], settings: &MutualSettings) -> Result<Vec<ReferenceEvidence>> {
    if features.len() < settings.min_pool + 1 {
        return Err(LoupeError::mismatch(
            format!(
                "images in a batch for mutual scoring (reference.mutual_min_pool = {}: each image is scored against \
                 the others; for a stream, inspect one image at a time in a session, which keeps a window)",
                settings.min_pool
            ),
            format!("at least {}", settings.min_pool + 1),
            features.len(),
        ));
    }
    let sets = features.iter().map(patch_set).collect::<Result<Vec<_>>>()?;
    let mut pool = Pool::from_images(&sets)?;
    pool.score_members(settings.fraction)?;
    let scale = pool_scale(&pool);
    (0..sets.len())
        .map(|i| {
            let raw = pool.member_scores(i).map(<[f32]>::to_vec).unwrap_or_default();
            ReferenceEvidence::new(ScoringMode::Mutual, raw, scale, sets.len() - 1)
        })
        .collect()
}

/// A stream's rolling window for mutual scoring: each new image is scored against the last `window` images, then
/// joins them (replacing the oldest). While the window holds fewer than `min_pool` images there is no evidence
/// (the image is scored with text alone) but the image still joins.
#[derive(Clone, Debug)]
pub struct MutualWindow {
    pool: Pool,
    settings: MutualSettings,
}

impl MutualWindow {
    /// An empty window.
    pub fn new(settings: MutualSettings) -> Result<Self> {
        Ok(Self { pool: Pool::new(settings.window)?, settings })
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.pool.len()
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }

    /// The settings.
    pub fn settings(&self) -> &MutualSettings {
        &self.settings
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.pool.bytes()
    }

    /// Forgets every image (for a new product, or after a line stop).
    pub fn clear(&mut self) {
        self.pool.clear();
    }

    /// The evidence of `f` against the window (none while it fills), then adds `f` to the window.
    pub fn evidence(&mut self, f: &ImageFeatures) -> Result<Option<ReferenceEvidence>> {
        let set = patch_set(f)?;
        let evidence = self.score(&set)?;
        self.pool.push(&set, evidence.as_ref().map(|e| e.raw.clone()))?;
        Ok(evidence)
    }

    /// The evidence of `f` against the window (none while it fills), leaving the window as it was.
    pub fn evidence_apart(&mut self, f: &ImageFeatures) -> Result<Option<ReferenceEvidence>> {
        self.score(&patch_set(f)?)
    }

    fn score(&mut self, set: &PatchSet) -> Result<Option<ReferenceEvidence>> {
        if self.pool.len() < self.settings.min_pool {
            return Ok(None);
        }
        // Members that joined while the window filled get their own scores now, once.
        self.pool.score_members(self.settings.fraction)?;
        let scale = pool_scale(&self.pool);
        let raw = self.pool.score(set, None, self.settings.fraction)?;
        Ok(Some(ReferenceEvidence::new(ScoringMode::Mutual, raw, scale, self.pool.len())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(seed: u32, defect: bool) -> ImageFeatures {
        // Patches of one normal texture with a little noise; a defect replaces cell 0.
        let (cells, dim) = (4, 3);
        let base = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
        let mut patches = Vec::new();
        for (c, b) in base.iter().enumerate().take(cells) {
            for (d, v) in b.iter().enumerate().take(dim) {
                let noise = ((seed * 31 + c as u32 * 7 + d as u32 * 3) % 11) as f32 * 0.004;
                patches.push(v + noise);
            }
        }
        if defect {
            patches[..3].copy_from_slice(&[-1.0, 0.2, 0.3]);
        }
        ImageFeatures { global: vec![0.0; dim], patches, layers: 1, grid_h: 2, grid_w: 2, dim }
    }

    #[test]
    fn a_batch_needs_enough_images_and_scores_the_defect() {
        let s = MutualSettings { window: 8, fraction: 0.3, min_pool: 2 };
        let err = mutual_batch(&[features(0, false)], &s).unwrap_err().to_string();
        assert!(err.contains("at least 3") && err.contains("found 1"), "{err}");
        let batch: Vec<ImageFeatures> = (0..6).map(|i| features(i, i == 2)).collect();
        let ev = mutual_batch(&batch, &s).unwrap();
        assert_eq!(ev.len(), 6);
        assert_eq!(ev[2].pool, 5);
        let n = ev[2].normalized();
        assert!(n[0] > 0.9, "{n:?}");
        assert!(ev[0].normalized()[0] < 0.6, "{:?}", ev[0].normalized());
    }

    #[test]
    fn a_window_fills_before_it_scores_and_then_rolls() {
        let mut w = MutualWindow::new(MutualSettings { window: 3, fraction: 0.5, min_pool: 2 }).unwrap();
        assert!(w.evidence(&features(0, false)).unwrap().is_none());
        assert!(w.evidence(&features(1, false)).unwrap().is_none());
        let e = w.evidence(&features(2, true)).unwrap().expect("two images in the window: scored");
        assert_eq!(e.pool, 2);
        assert!(e.normalized()[0] > 0.9);
        for i in 3..6 {
            assert_eq!(w.evidence(&features(i, false)).unwrap().unwrap().pool, 3);
        }
        assert_eq!(w.len(), 3);
        w.clear();
        assert!(w.is_empty());
    }
}

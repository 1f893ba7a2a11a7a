//! Bounded-memory pixel scores: positive and negative counts in fixed linear bins over a known score range.
//!
//! A data set of a few hundred megapixels does not fit in memory as sorted `(score, label)` pairs, but its ranking
//! metrics only need, for each threshold, how many positives and negatives score above it. [`BinnedScores`] keeps
//! those counts at `bins` thresholds (the bins' lower edges): `16 * bins` bytes whatever the number of pixels. The
//! metrics are then exact for scores that are constant within each bin, and otherwise differ from the exact ones
//! only through pairs of samples that share a bin; [`BinnedScores::error_bounds`] computes how much that can be,
//! from the counts, so every report can say how exact it is.

use super::binary::{Operating, RankedCounts};
use super::{MetricError, MetricResult, check_finite};

/// Largest number of bins (memory: 16 bytes per bin, 24 with the PRO weights).
pub const MAX_BINS: usize = 1 << 26;

/// Positive and negative counts of scores in `bins` equal bins over `[lo, hi]`. Scores outside the range count in
/// the first or last bin and are tallied in [`BinnedScores::clamped`].
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedScores {
    lo: f64,
    hi: f64,
    pos: Vec<u64>,
    neg: Vec<u64>,
    clamped: u64,
}

/// How far binned metrics can be from the exact metrics on the same scores, at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct BinningBounds {
    /// Bound on `|AUROC_binned - AUROC_exact|`.
    pub auroc: f64,
    /// Bound on `|AP_binned - AP_exact|`.
    pub average_precision: f64,
}

impl BinnedScores {
    /// Empty counts over `[lo, hi]` in `bins` bins. Fails unless `lo < hi` are finite and `1 <= bins <=`
    /// [`MAX_BINS`].
    pub fn new(lo: f32, hi: f32, bins: usize) -> MetricResult<Self> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(MetricError::invalid("score range", "finite lo < hi", format!("[{lo}, {hi}]")));
        }
        if !(1..=MAX_BINS).contains(&bins) {
            return Err(MetricError::invalid("bin count", format!("1..={MAX_BINS}"), bins));
        }
        Ok(Self { lo: f64::from(lo), hi: f64::from(hi), pos: vec![0; bins], neg: vec![0; bins], clamped: 0 })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.pos.len()
    }

    /// The score range `[lo, hi]`.
    pub fn range(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.bins() as f64
    }

    /// Scores seen outside `[lo, hi]` (counted in the edge bins).
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Positive samples seen.
    pub fn positives(&self) -> u64 {
        self.pos.iter().sum()
    }

    /// Negative samples seen.
    pub fn negatives(&self) -> u64 {
        self.neg.iter().sum()
    }

    /// The bin of a finite score.
    pub fn bin_of(&self, score: f32) -> usize {
        let s = f64::from(score);
        if s < self.lo || s > self.hi {
            return if s < self.lo { 0 } else { self.bins() - 1 };
        }
        let i = ((s - self.lo) / (self.hi - self.lo) * self.bins() as f64).floor() as usize;
        i.min(self.bins() - 1)
    }

    /// The lower edge of bin `i` (the threshold it stands for).
    pub fn lower_edge(&self, i: usize) -> f64 {
        self.lo + (self.hi - self.lo) * i as f64 / self.bins() as f64
    }

    /// Adds scores with their labels; `what` names the input in errors. Nothing is added when a score is NaN or
    /// infinite or the lengths differ.
    pub fn add(&mut self, what: &str, scores: &[f32], labels: &[bool]) -> MetricResult<()> {
        if scores.len() != labels.len() {
            return Err(MetricError::mismatch(what, format!("{} labels", scores.len()), labels.len()));
        }
        check_finite(what, scores)?;
        for (&s, &l) in scores.iter().zip(labels) {
            self.add_one(s, l);
        }
        Ok(())
    }

    /// Adds one finite score (the caller checked it) and returns its bin.
    pub(crate) fn add_one(&mut self, score: f32, positive: bool) -> usize {
        let s = f64::from(score);
        if s < self.lo || s > self.hi {
            self.clamped += 1;
        }
        let b = self.bin_of(score);
        if positive {
            self.pos[b] += 1;
        } else {
            self.neg[b] += 1;
        }
        b
    }

    /// Adds another accumulator's counts. Fails unless both have the same range and bins.
    pub fn merge(&mut self, other: &Self) -> MetricResult<()> {
        if (self.lo, self.hi, self.bins()) != (other.lo, other.hi, other.bins()) {
            return Err(MetricError::mismatch(
                "binned scores to merge",
                format!("[{}, {}] in {} bins", self.lo, self.hi, self.bins()),
                format!("[{}, {}] in {} bins", other.lo, other.hi, other.bins()),
            ));
        }
        self.pos.iter_mut().zip(&other.pos).for_each(|(a, b)| *a += b);
        self.neg.iter_mut().zip(&other.neg).for_each(|(a, b)| *a += b);
        self.clamped += other.clamped;
        Ok(())
    }

    /// Non-empty bins from the highest down, as `(bin, positives, negatives)`.
    pub(crate) fn descending(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        (0..self.bins()).rev().filter(|&b| self.pos[b] + self.neg[b] > 0).map(|b| (b, self.pos[b], self.neg[b]))
    }

    /// The operating points at the non-empty bins' lower edges. Fails when nothing was added.
    pub fn ranked_counts(&self) -> MetricResult<RankedCounts> {
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut points = Vec::new();
        for (b, p, n) in self.descending() {
            tp += p;
            fp += n;
            points.push(Operating { threshold: self.lower_edge(b), tp, fp });
        }
        RankedCounts::from_points(points, tp, fp)
    }

    /// Bounds on the difference between the binned and the exact AUROC and AP of the scores added.
    ///
    /// AUROC: a positive-negative pair in different bins is ranked as exactly; a pair sharing a bin counts 1/2
    /// binned and 0, 1/2 or 1 exactly, so the bound is `sum_b pos_b neg_b / (2 P N)`. AP: the `i`-th positive of a
    /// bin entered after `tp0` positives and `fp0` negatives has, exactly, a precision between
    /// `(tp0 + i) / (tp0 + i + fp0 + neg_b)` and `(tp0 + pos_b) / (tp0 + pos_b + fp0)`; binned, all have
    /// `(tp0 + pos_b) / (tp0 + pos_b + fp0 + neg_b)`; each positive weighs `1 / P`. Zero for undefined metrics.
    pub fn error_bounds(&self) -> BinningBounds {
        let (p, n) = (self.positives() as f64, self.negatives() as f64);
        let mut bounds = BinningBounds::default();
        if p == 0.0 {
            return bounds;
        }
        let (mut tp0, mut fp0) = (0.0f64, 0.0f64);
        let mut tied_pairs = 0.0f64;
        for (_, pb, nb) in self.descending() {
            let (pb, nb) = (pb as f64, nb as f64);
            tied_pairs += pb * nb;
            if pb > 0.0 {
                let binned = (tp0 + pb) / (tp0 + pb + fp0 + nb);
                let upper = (tp0 + pb) / (tp0 + pb + fp0);
                // One term per positive of the bin: O(positives) in all.
                let mut dev = 0.0f64;
                let mut i = 1.0f64;
                while i <= pb {
                    let lower = (tp0 + i) / (tp0 + i + fp0 + nb);
                    dev += (binned - lower).max(upper - binned);
                    i += 1.0;
                }
                bounds.average_precision += dev / p;
            }
            tp0 += pb;
            fp0 += nb;
        }
        if n > 0.0 {
            bounds.auroc = tied_pairs / (2.0 * p * n);
        }
        bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 40) as f32 / (1u64 << 24) as f32
    }

    #[test]
    fn binned_equals_exact_when_scores_sit_on_bin_edges() {
        // Scores k/64 with 64 bins over [0, 1): each bin holds one distinct score, so binning changes nothing.
        let mut seed = 7u64;
        let scores: Vec<f32> = (0..500).map(|_| (lcg(&mut seed) * 64.0).floor() / 64.0).collect();
        let labels: Vec<bool> = scores.iter().map(|&s| lcg(&mut seed) < 0.2 + 0.6 * s).collect();
        let exact = RankedCounts::from_scores(&scores, &labels).unwrap();
        let mut h = BinnedScores::new(0.0, 1.0, 64).unwrap();
        h.add("test", &scores, &labels).unwrap();
        let binned = h.ranked_counts().unwrap();
        assert!((exact.roc_auc().unwrap() - binned.roc_auc().unwrap()).abs() < 1e-12);
        assert!((exact.average_precision().unwrap() - binned.average_precision().unwrap()).abs() < 1e-12);
        assert_eq!(h.clamped(), 0);
    }

    #[test]
    fn binned_error_stays_within_the_computed_bound() {
        let mut seed = 11u64;
        let scores: Vec<f32> = (0..4000).map(|_| lcg(&mut seed)).collect();
        let labels: Vec<bool> = scores.iter().map(|&s| lcg(&mut seed) < s * s).collect();
        let exact = RankedCounts::from_scores(&scores, &labels).unwrap();
        for bins in [4usize, 16, 256, 1 << 16] {
            let mut h = BinnedScores::new(0.0, 1.0, bins).unwrap();
            h.add("test", &scores, &labels).unwrap();
            let binned = h.ranked_counts().unwrap();
            let b = h.error_bounds();
            let da = (exact.roc_auc().unwrap() - binned.roc_auc().unwrap()).abs();
            let dp = (exact.average_precision().unwrap() - binned.average_precision().unwrap()).abs();
            assert!(da <= b.auroc + 1e-12, "bins {bins}: AUROC off by {da}, bound {}", b.auroc);
            assert!(dp <= b.average_precision + 1e-12, "bins {bins}: AP off by {dp}, bound {}", b.average_precision);
            if bins == 4 {
                assert!(da > 1e-4, "coarse bins do change the AUROC ({da})");
            }
        }
    }

    #[test]
    fn out_of_range_scores_are_clamped_and_counted() {
        let mut h = BinnedScores::new(0.0, 4.0, 8).unwrap();
        h.add("map", &[-1.0, 0.0, 4.0, 9.0], &[false, false, true, true]).unwrap();
        assert_eq!(h.clamped(), 2);
        assert_eq!(h.bin_of(-1.0), 0);
        assert_eq!(h.bin_of(9.0), 7);
        assert_eq!(h.bin_of(4.0), 7);
        let err = h.add("map", &[1.0, f32::INFINITY], &[false, true]).unwrap_err();
        assert!(err.to_string().contains("map: score 1 is inf"), "{err}");
        assert_eq!(h.positives() + h.negatives(), 4, "nothing added from a rejected batch");
        assert!(BinnedScores::new(1.0, 1.0, 8).is_err());
        assert!(BinnedScores::new(0.0, 1.0, 0).is_err());
        let other = BinnedScores::new(0.0, 1.0, 8).unwrap();
        assert!(h.merge(&other).is_err());
    }
}

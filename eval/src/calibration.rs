//! Thresholds from data, for `loupe calibrate`: at a stated false-positive rate on good images, or F1-optimal
//! when defective images are given. Loupe calls an image (pixel) anomalous when its score is strictly above the
//! threshold, and every threshold here is placed accordingly.

use crate::metrics::histogram::BinnedScores;
use crate::metrics::{F1Max, MetricError, MetricResult, RankedCounts};

/// The smallest threshold `t` such that at most `fpr` of `good` scores are above it (`score > t`): the
/// `floor(fpr x n) + 1`-th highest good score. Ties at `t` are not above it, so the rate holds exactly.
pub fn threshold_at_fpr(good: &[f32], fpr: f64) -> MetricResult<f32> {
    if good.is_empty() {
        return Err(MetricError::Empty { what: "good image scores".into() });
    }
    crate::metrics::check_finite("good image scores", good)?;
    let mut sorted = good.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    let allowed = ((fpr.clamp(0.0, 1.0) * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    Ok(sorted[allowed])
}

/// The F1-optimal threshold for `score > t` over image scores with labels (`true` = defective): halfway between
/// the score reaching F1-max and the next lower distinct score (or just below it when it is the lowest).
pub fn threshold_f1(scores: &[f32], labels: &[bool]) -> MetricResult<(f32, F1Max)> {
    let ranked = RankedCounts::from_scores(scores, labels)?;
    let best = ranked.f1_max()?;
    let points = ranked.points();
    let at = points.iter().position(|p| p.threshold == best.threshold).unwrap_or(0);
    let t = match points.get(at + 1) {
        Some(lower) => 0.5 * (best.threshold + lower.threshold),
        None => best.threshold - best.threshold.abs().max(1.0) * 1e-6,
    };
    Ok((t as f32, best))
}

/// The F1-optimal pixel threshold of binned pixel scores: just under the lower edge of the bin reaching F1-max
/// (half a bin below it), so that bin is inside the mask.
pub fn pixel_threshold_f1(pixels: &BinnedScores) -> MetricResult<(f32, F1Max)> {
    let best = pixels.ranked_counts()?.f1_max()?;
    Ok(((best.threshold - 0.5 * pixels.bin_width()) as f32, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fpr_threshold_leaves_at_most_that_share_above() {
        let good: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let t = threshold_at_fpr(&good, 0.05).unwrap();
        assert_eq!(t, 94.0);
        assert_eq!(good.iter().filter(|&&s| s > t).count(), 5);
        assert_eq!(threshold_at_fpr(&good, 0.0).unwrap(), 99.0, "nothing above the maximum");
        assert_eq!(threshold_at_fpr(&good, 1.0).unwrap(), 0.0);
        assert!(threshold_at_fpr(&[], 0.1).is_err());
    }

    #[test]
    fn f1_threshold_separates_a_separable_set() {
        let scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9];
        let labels = [false, false, false, true, true, true];
        let (t, best) = threshold_f1(&scores, &labels).unwrap();
        assert_eq!(best.f1, 1.0);
        assert!((t - 0.5).abs() < 1e-6, "{t}");
        let mut pixels = BinnedScores::new(0.0, 1.0, 100).unwrap();
        pixels.add("test", &scores, &labels).unwrap();
        let (p, best) = pixel_threshold_f1(&pixels).unwrap();
        assert_eq!(best.f1, 1.0);
        assert!(p < 0.7 && p > 0.3, "{p}");
    }
}

//! Scored binary problems (image anomalous or not, pixel defective or not): AUROC, average precision and F1-max,
//! computed as scikit-learn computes them.
//!
//! Everything derives from [`RankedCounts`]: one operating point per distinct score, in descending order, with the
//! numbers of positives (`tp`) and negatives (`fp`) scoring at or above it. Tied scores share one point, which is
//! what gives a tie half credit in the AUROC and one precision in the average precision, as in scikit-learn's
//! `roc_auc_score` (trapezoid over the ROC points) and `average_precision_score` (step-wise
//! `sum_k (R_k - R_{k-1}) P_k`, no interpolation).

use super::{MetricError, MetricResult, check_finite};

/// One threshold of a ranking: every sample scoring at or above `threshold` is called positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Operating {
    /// The score (or, for binned scores, the bin's lower edge).
    pub threshold: f64,
    /// Positives at or above the threshold.
    pub tp: u64,
    /// Negatives at or above the threshold.
    pub fp: u64,
}

/// The best F1 over all thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F1Max {
    /// `max 2 P R / (P + R)`.
    pub f1: f64,
    /// The highest threshold reaching it (samples scoring `>= threshold` are positive).
    pub threshold: f64,
    /// Precision there.
    pub precision: f64,
    /// Recall there.
    pub recall: f64,
}

/// Operating points of a scored binary problem, one per distinct score, highest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RankedCounts {
    points: Vec<Operating>,
    positives: u64,
    negatives: u64,
}

impl RankedCounts {
    /// Ranks `scores` with their labels (`true` = positive). Fails on a length mismatch, an empty input or a score
    /// that is NaN or infinite.
    pub fn from_scores(scores: &[f32], labels: &[bool]) -> MetricResult<Self> {
        if scores.len() != labels.len() {
            return Err(MetricError::mismatch("scores and labels", scores.len(), labels.len()));
        }
        if scores.is_empty() {
            return Err(MetricError::Empty { what: "scores".into() });
        }
        check_finite("scores", scores)?;
        let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
        pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut points: Vec<Operating> = Vec::new();
        let (mut tp, mut fp) = (0u64, 0u64);
        for (i, &(score, positive)) in pairs.iter().enumerate() {
            if positive {
                tp += 1;
            } else {
                fp += 1;
            }
            // A point closes a group of equal scores (-0.0 and 0.0 are one score, as in numpy).
            let last_of_group = pairs.get(i + 1).is_none_or(|next| next.0 != score);
            if last_of_group {
                points.push(Operating { threshold: f64::from(score), tp, fp });
            }
        }
        Ok(Self { points, positives: tp, negatives: fp })
    }

    /// Builds from points already in descending threshold order with non-decreasing cumulative counts (used by
    /// the binned accumulators). The last point must hold every sample.
    pub(crate) fn from_points(points: Vec<Operating>, positives: u64, negatives: u64) -> MetricResult<Self> {
        if positives + negatives == 0 {
            return Err(MetricError::Empty { what: "scores".into() });
        }
        Ok(Self { points, positives, negatives })
    }

    /// The operating points, highest threshold first.
    pub fn points(&self) -> &[Operating] {
        &self.points
    }

    /// Number of positive samples.
    pub fn positives(&self) -> u64 {
        self.positives
    }

    /// Number of negative samples.
    pub fn negatives(&self) -> u64 {
        self.negatives
    }

    fn need_both(&self, what: &str) -> MetricResult<()> {
        if self.positives == 0 || self.negatives == 0 {
            return Err(MetricError::one_class(what, self.positives, self.negatives, "both classes"));
        }
        Ok(())
    }

    fn need_positives(&self, what: &str) -> MetricResult<()> {
        if self.positives == 0 {
            return Err(MetricError::one_class(what, self.positives, self.negatives, "at least one positive"));
        }
        Ok(())
    }

    /// Area under the ROC curve (trapezoid over the operating points from (0, 0)). Needs both classes.
    pub fn roc_auc(&self) -> MetricResult<f64> {
        self.need_both("AUROC")?;
        let (p, n) = (self.positives as f64, self.negatives as f64);
        let (mut area, mut x0, mut y0) = (0.0f64, 0.0f64, 0.0f64);
        for pt in &self.points {
            let (x, y) = (pt.fp as f64 / n, pt.tp as f64 / p);
            area += (x - x0) * (y + y0) * 0.5;
            (x0, y0) = (x, y);
        }
        Ok(area)
    }

    /// Average precision, step-wise: `sum_k (R_k - R_{k-1}) P_k` over the operating points (scikit-learn's
    /// `average_precision_score`). Needs a positive; 1 when there is no negative.
    pub fn average_precision(&self) -> MetricResult<f64> {
        self.need_positives("average precision")?;
        let p = self.positives as f64;
        let (mut ap, mut r0) = (0.0f64, 0.0f64);
        for pt in &self.points {
            let r = pt.tp as f64 / p;
            let precision = pt.tp as f64 / (pt.tp + pt.fp) as f64;
            ap += (r - r0) * precision;
            r0 = r;
        }
        Ok(ap.max(0.0))
    }

    /// The best F1 over the operating points, `2 TP / (2 TP + FP + FN)`. Needs a positive.
    pub fn f1_max(&self) -> MetricResult<F1Max> {
        self.need_positives("F1-max")?;
        let p = self.positives;
        let mut best = F1Max { f1: 0.0, threshold: f64::INFINITY, precision: 1.0, recall: 0.0 };
        for pt in &self.points {
            let f1 = 2.0 * pt.tp as f64 / (pt.tp + pt.fp + p) as f64;
            if f1 > best.f1 {
                best = F1Max {
                    f1,
                    threshold: pt.threshold,
                    precision: pt.tp as f64 / (pt.tp + pt.fp) as f64,
                    recall: pt.tp as f64 / p as f64,
                };
            }
        }
        Ok(best)
    }

    /// The ROC curve as `(false positive rate, true positive rate)` from (0, 0) to (1, 1). Needs both classes.
    pub fn roc_curve(&self) -> MetricResult<Vec<(f64, f64)>> {
        self.need_both("ROC curve")?;
        let (p, n) = (self.positives as f64, self.negatives as f64);
        let mut out = Vec::with_capacity(self.points.len() + 1);
        out.push((0.0, 0.0));
        out.extend(self.points.iter().map(|pt| (pt.fp as f64 / n, pt.tp as f64 / p)));
        Ok(out)
    }

    /// The precision-recall curve as `(recall, precision)`, starting at recall 0 with precision 1 (scikit-learn's
    /// convention). Needs a positive.
    pub fn pr_curve(&self) -> MetricResult<Vec<(f64, f64)>> {
        self.need_positives("precision-recall curve")?;
        let p = self.positives as f64;
        let mut out = Vec::with_capacity(self.points.len() + 1);
        out.push((0.0, 1.0));
        out.extend(self.points.iter().map(|pt| (pt.tp as f64 / p, pt.tp as f64 / (pt.tp + pt.fp) as f64)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let r = RankedCounts::from_scores(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!(r.roc_auc().unwrap(), 1.0);
        assert_eq!(r.average_precision().unwrap(), 1.0);
        let f = r.f1_max().unwrap();
        assert_eq!((f.f1, f.threshold), (1.0, f64::from(0.8f32)));
        let r = RankedCounts::from_scores(&[0.1, 0.2, 0.8, 0.9], &[true, true, false, false]).unwrap();
        assert_eq!(r.roc_auc().unwrap(), 0.0);
    }

    #[test]
    fn ties_get_half_credit_and_one_precision() {
        // All four tied: one operating point.
        let r = RankedCounts::from_scores(&[0.5; 4], &[true, false, true, false]).unwrap();
        assert_eq!(r.points().len(), 1);
        assert_eq!(r.roc_auc().unwrap(), 0.5);
        assert_eq!(r.average_precision().unwrap(), 0.5);
        // Hand-computed: scores 3,2,2,1 labels 1,0,1,0: ROC points (0,.5) (.5,1) (1,1): area 0.875.
        let r = RankedCounts::from_scores(&[3.0, 2.0, 2.0, 1.0], &[true, false, true, false]).unwrap();
        assert!((r.roc_auc().unwrap() - 0.875).abs() < 1e-12);
        // AP = 0.5 * 1 + 0.5 * 2/3.
        assert!((r.average_precision().unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs_are_errors_not_nan() {
        let one = RankedCounts::from_scores(&[0.1, 0.2], &[false, false]).unwrap();
        assert!(matches!(one.roc_auc(), Err(MetricError::OneClass { .. })));
        assert!(matches!(one.average_precision(), Err(MetricError::OneClass { .. })));
        assert!(one.f1_max().is_err());
        let all_pos = RankedCounts::from_scores(&[0.1, 0.2], &[true, true]).unwrap();
        assert!(all_pos.roc_auc().is_err());
        assert_eq!(all_pos.average_precision().unwrap(), 1.0);
        let err = RankedCounts::from_scores(&[0.1, f32::NAN], &[true, false]).unwrap_err();
        assert!(matches!(err, MetricError::NonFinite { index: 1, .. }), "{err}");
        assert!(RankedCounts::from_scores(&[], &[]).is_err());
        assert!(RankedCounts::from_scores(&[0.1], &[true, false]).is_err());
    }
}

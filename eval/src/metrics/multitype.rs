//! Defect-type metrics: a confusion matrix over classes (0 = normal, then the defect types) with per-class
//! precision, recall, F1 and IoU, accuracy and macro averages, as scikit-learn's `confusion_matrix`,
//! `f1_score(average=None | "macro", labels=...)`, `jaccard_score` and `accuracy_score` compute them.
//!
//! Per-pixel use: the truth is the ground-truth type of each pixel, the prediction the engine's type map (0 outside
//! the predicted mask, else the argmax over the defect words). Per-image use: the truth is the image's folder type,
//! the prediction its most probable defect word. The one-vs-rest ranking metrics of each type come from
//! [`super::RankedCounts`] or [`super::BinnedScores`] on that type's score map; [`macro_mean`] averages them.

use super::histogram::{BinnedScores, BinningBounds};
use super::{MetricError, MetricResult, check_finite};

/// Counts of (true class, predicted class) pairs; a square matrix, row = truth, column = prediction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![0; classes * classes] }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Counts one pair. Fails when a class is out of range.
    pub fn add(&mut self, truth: usize, predicted: usize) -> MetricResult<()> {
        for (what, c) in [("true class", truth), ("predicted class", predicted)] {
            if c >= self.classes {
                return Err(MetricError::invalid(what, format!("0..{}", self.classes), c));
            }
        }
        self.counts[truth * self.classes + predicted] += 1;
        Ok(())
    }

    /// Counts pixel pairs (e.g. a ground-truth type map against a predicted one); `what` names them in errors.
    /// Nothing is added when the lengths differ or a class is out of range.
    pub fn add_maps(&mut self, what: &str, truth: &[u16], predicted: &[u16]) -> MetricResult<()> {
        if truth.len() != predicted.len() {
            return Err(MetricError::mismatch(what, format!("{} predicted pixels", truth.len()), predicted.len()));
        }
        if let Some(bad) = truth.iter().chain(predicted).find(|&&c| usize::from(c) >= self.classes) {
            return Err(MetricError::invalid(&format!("{what}: class"), format!("0..{}", self.classes), bad));
        }
        for (&t, &p) in truth.iter().zip(predicted) {
            self.counts[usize::from(t) * self.classes + usize::from(p)] += 1;
        }
        Ok(())
    }

    /// Adds another matrix of the same size.
    pub fn merge(&mut self, other: &Self) -> MetricResult<()> {
        if other.classes != self.classes {
            return Err(MetricError::mismatch("confusion matrices to merge", self.classes, other.classes));
        }
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Pairs with this truth and prediction.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// The matrix as rows (truth) of columns (prediction).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.classes.max(1)).map(<[u64]>::to_vec).collect()
    }

    /// All pairs counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Pairs whose truth is `class`.
    pub fn support(&self, class: usize) -> u64 {
        (0..self.classes).map(|p| self.count(class, p)).sum()
    }

    /// Pairs predicted as `class`.
    pub fn predicted(&self, class: usize) -> u64 {
        (0..self.classes).map(|t| self.count(t, class)).sum()
    }

    fn tp_fp_fn(&self, class: usize) -> MetricResult<(f64, f64, f64)> {
        if class >= self.classes {
            return Err(MetricError::invalid("class", format!("0..{}", self.classes), class));
        }
        let tp = self.count(class, class);
        Ok((tp as f64, (self.predicted(class) - tp) as f64, (self.support(class) - tp) as f64))
    }

    /// `TP / (TP + FP)`; fails when nothing was predicted as `class`.
    pub fn precision(&self, class: usize) -> MetricResult<f64> {
        let (tp, fp, fn_) = self.tp_fp_fn(class)?;
        ratio("precision", class, tp, tp + fp, fn_ + tp, "a prediction of the class")
    }

    /// `TP / (TP + FN)`; fails when `class` never occurs in the truth.
    pub fn recall(&self, class: usize) -> MetricResult<f64> {
        let (tp, fp, fn_) = self.tp_fp_fn(class)?;
        ratio("recall", class, tp, tp + fn_, tp + fp, "the class in the ground truth")
    }

    /// `2 TP / (2 TP + FP + FN)` (0 when the class is never predicted); fails when the class occurs neither in the
    /// truth nor in the predictions.
    pub fn f1(&self, class: usize) -> MetricResult<f64> {
        let (tp, fp, fn_) = self.tp_fp_fn(class)?;
        ratio("F1", class, 2.0 * tp, 2.0 * tp + fp + fn_, 0.0, "the class in the truth or the predictions")
    }

    /// Intersection over union `TP / (TP + FP + FN)`; fails when the class occurs neither in the truth nor in the
    /// predictions.
    pub fn iou(&self, class: usize) -> MetricResult<f64> {
        let (tp, fp, fn_) = self.tp_fp_fn(class)?;
        ratio("IoU", class, tp, tp + fp + fn_, 0.0, "the class in the truth or the predictions")
    }

    /// Fraction of pairs on the diagonal; fails on an empty matrix.
    pub fn accuracy(&self) -> MetricResult<f64> {
        let total = self.total();
        if total == 0 {
            return Err(MetricError::Empty { what: "accuracy".into() });
        }
        Ok((0..self.classes).map(|c| self.count(c, c)).sum::<u64>() as f64 / total as f64)
    }

    /// Mean F1 over `classes` (scikit-learn's `f1_score(labels=classes, average="macro")`).
    pub fn macro_f1(&self, classes: &[usize]) -> MetricResult<f64> {
        let values = classes.iter().map(|&c| self.f1(c)).collect::<MetricResult<Vec<f64>>>()?;
        macro_mean("macro F1", &values)
    }
}

fn ratio(what: &str, class: usize, num: f64, den: f64, other: f64, needs: &'static str) -> MetricResult<f64> {
    if den == 0.0 {
        return Err(MetricError::one_class(&format!("{what} of class {class}"), num as u64, other as u64, needs));
    }
    Ok(num / den)
}

/// The mean of per-class values (a macro average); fails on an empty list.
pub fn macro_mean(what: &str, values: &[f64]) -> MetricResult<f64> {
    if values.is_empty() {
        return Err(MetricError::Empty { what: what.into() });
    }
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// Pixel-level type metrics of a data set in bounded memory: the pixel confusion matrix of ground-truth against
/// predicted type maps, and one [`BinnedScores`] per type for its one-vs-rest ranking (positives: pixels of that
/// type; negatives: every other pixel, normal or of another type; score: that type's map).
#[derive(Clone, Debug, PartialEq)]
pub struct TypeAccumulator {
    ovr: Vec<BinnedScores>,
    pixels: ConfusionMatrix,
}

/// One defect type's pixel metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeScores {
    /// The type's class index (1-based; 0 is normal).
    pub type_id: usize,
    /// Ground-truth pixels of the type.
    pub pixels: u64,
    /// One-vs-rest AUROC of the type's score map.
    pub ovr_auroc: MetricResult<f64>,
    /// One-vs-rest average precision of the type's score map.
    pub ovr_ap: MetricResult<f64>,
    /// F1 of the predicted type map for this type.
    pub f1: MetricResult<f64>,
    /// IoU of the predicted type map for this type.
    pub iou: MetricResult<f64>,
    /// Share of the type's ground-truth pixels that the type map labels with this type (its pixel recall).
    pub typed_right: MetricResult<f64>,
    /// How far the binned one-vs-rest AUROC and AP can be from exact.
    pub bounds: BinningBounds,
}

/// Pixel-level type metrics over the types present in the ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSummary {
    /// One entry per type with ground-truth pixels, by type index.
    pub per_type: Vec<TypeScores>,
    /// Mean one-vs-rest AUROC over those types.
    pub macro_ovr_auroc: MetricResult<f64>,
    /// Mean one-vs-rest AP over those types.
    pub macro_ovr_ap: MetricResult<f64>,
    /// Mean F1 of the predicted type map over those types.
    pub macro_f1: MetricResult<f64>,
}

impl TypeAccumulator {
    /// An empty accumulator for `types` defect types (class indices 1..=types), their score maps binned over
    /// `[lo, hi]` in `bins` bins.
    pub fn new(types: usize, lo: f32, hi: f32, bins: usize) -> MetricResult<Self> {
        let ovr = (0..types).map(|_| BinnedScores::new(lo, hi, bins)).collect::<MetricResult<Vec<_>>>()?;
        Ok(Self { ovr, pixels: ConfusionMatrix::new(types + 1) })
    }

    /// Number of defect types.
    pub fn types(&self) -> usize {
        self.ovr.len()
    }

    /// Adds one image: its ground-truth type per pixel (0 = normal), the predicted type per pixel, and one score
    /// map per defect type (in type order). Everything is checked before anything is added.
    pub fn add_image(
        &mut self,
        what: &str,
        truth: &[u16],
        predicted: &[u16],
        type_scores: &[&[f32]],
    ) -> MetricResult<()> {
        if type_scores.len() != self.types() {
            return Err(MetricError::mismatch(&format!("{what}: type score maps"), self.types(), type_scores.len()));
        }
        for (k, s) in type_scores.iter().enumerate() {
            if s.len() != truth.len() {
                return Err(MetricError::mismatch(
                    &format!("{what}: values of type map {}", k + 1),
                    truth.len(),
                    s.len(),
                ));
            }
            check_finite(&format!("{what}: type map {}", k + 1), s)?;
        }
        let mut pixels = self.pixels.clone();
        pixels.add_maps(what, truth, predicted)?;
        self.pixels = pixels;
        for (k, scores) in type_scores.iter().enumerate() {
            let class = k as u16 + 1;
            for (&s, &t) in scores.iter().zip(truth) {
                self.ovr[k].add_one(s, t == class);
            }
        }
        Ok(())
    }

    /// Adds another accumulator of the same shape.
    pub fn merge(&mut self, other: &Self) -> MetricResult<()> {
        if other.types() != self.types() {
            return Err(MetricError::mismatch("type accumulators to merge", self.types(), other.types()));
        }
        self.pixels.merge(&other.pixels)?;
        for (a, b) in self.ovr.iter_mut().zip(&other.ovr) {
            a.merge(b)?;
        }
        Ok(())
    }

    /// The pixel confusion matrix (row = ground truth, column = prediction; 0 = normal).
    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.pixels
    }

    /// The binned one-vs-rest scores of type `type_id` (1-based), if it exists.
    pub fn ovr(&self, type_id: usize) -> Option<&BinnedScores> {
        type_id.checked_sub(1).and_then(|k| self.ovr.get(k))
    }

    /// Per-type metrics over the types with ground-truth pixels, and their macro means (an error when no type is
    /// present or one of them is undefined).
    pub fn summary(&self) -> TypeSummary {
        let mut per_type = Vec::new();
        for (k, binned) in self.ovr.iter().enumerate() {
            let type_id = k + 1;
            let pixels = self.pixels.support(type_id);
            if pixels == 0 {
                continue;
            }
            let ranked = binned.ranked_counts();
            per_type.push(TypeScores {
                type_id,
                pixels,
                ovr_auroc: ranked.as_ref().map_err(Clone::clone).and_then(|r| r.roc_auc()),
                ovr_ap: ranked.as_ref().map_err(Clone::clone).and_then(|r| r.average_precision()),
                f1: self.pixels.f1(type_id),
                iou: self.pixels.iou(type_id),
                typed_right: self.pixels.recall(type_id),
                bounds: binned.error_bounds(),
            });
        }
        let mean = |what: &str, pick: fn(&TypeScores) -> &MetricResult<f64>| {
            let values = per_type.iter().map(|t| pick(t).clone()).collect::<MetricResult<Vec<f64>>>()?;
            macro_mean(what, &values)
        };
        TypeSummary {
            macro_ovr_auroc: mean("macro one-vs-rest AUROC (no defect type in the ground truth)", |t| &t.ovr_auroc),
            macro_ovr_ap: mean("macro one-vs-rest AP (no defect type in the ground truth)", |t| &t.ovr_ap),
            macro_f1: mean("macro F1 (no defect type in the ground truth)", |t| &t.f1),
            per_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_scores_from_a_hand_made_matrix() {
        // truth:     0 0 0 1 1 2 2 2
        // predicted: 0 1 0 1 2 2 2 0
        let mut m = ConfusionMatrix::new(3);
        m.add_maps("px", &[0, 0, 0, 1, 1, 2, 2, 2], &[0, 1, 0, 1, 2, 2, 2, 0]).unwrap();
        assert_eq!(m.rows(), vec![vec![2, 1, 0], vec![0, 1, 1], vec![1, 0, 2]]);
        assert!((m.f1(1).unwrap() - 0.5).abs() < 1e-12); // 2*1 / (2 + 1 + 1)
        assert!((m.iou(2).unwrap() - 0.5).abs() < 1e-12); // 2 / (2 + 1 + 1)
        assert!((m.accuracy().unwrap() - 5.0 / 8.0).abs() < 1e-12);
        assert!((m.macro_f1(&[1, 2]).unwrap() - (0.5 + 4.0 / 6.0) / 2.0).abs() < 1e-12);
        assert!((m.precision(0).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_and_bad_input_are_errors() {
        let mut m = ConfusionMatrix::new(3);
        m.add(0, 0).unwrap();
        assert!(m.f1(2).is_err(), "class 2 neither true nor predicted");
        assert!(m.add(3, 0).is_err());
        assert!(m.add_maps("px", &[0, 1], &[0]).is_err());
        assert!(m.add_maps("px", &[0, 7], &[0, 0]).is_err());
        assert_eq!(m.total(), 1, "rejected input added nothing");
        assert!(ConfusionMatrix::new(2).accuracy().is_err());
        assert!(macro_mean("x", &[]).is_err());
        // A true class never predicted has F1 0, as scikit-learn.
        let mut m = ConfusionMatrix::new(2);
        m.add(1, 0).unwrap();
        assert_eq!(m.f1(1).unwrap(), 0.0);
        assert!(m.precision(1).is_err());
    }

    #[test]
    fn type_accumulator_checks_before_adding_and_skips_absent_types() {
        let mut acc = TypeAccumulator::new(2, 0.0, 1.0, 16).unwrap();
        let truth = [0u16, 1, 1, 0];
        let pred = [0u16, 1, 2, 2];
        let s1 = [0.1f32, 0.9, 0.8, 0.2];
        let s2 = [0.2f32, 0.1, 0.7, 0.6];
        assert!(acc.add_image("a", &truth, &pred, &[&s1]).is_err(), "one map for two types");
        assert!(acc.add_image("a", &truth, &pred, &[&s1, &[0.1, f32::NAN, 0.0, 0.0]]).is_err());
        assert_eq!(acc.confusion().total(), 0);
        acc.add_image("a", &truth, &pred, &[&s1, &s2]).unwrap();
        let s = acc.summary();
        assert_eq!(s.per_type.len(), 1, "type 2 has no ground-truth pixel");
        assert_eq!(s.per_type[0].ovr_auroc, Ok(1.0));
        assert_eq!(s.per_type[0].f1, Ok(2.0 / 3.0));
        assert_eq!(s.per_type[0].typed_right, Ok(0.5), "one of the two type-1 pixels is labelled type 1");
        assert_eq!(s.macro_f1, Ok(2.0 / 3.0));
        let empty = TypeAccumulator::new(2, 0.0, 1.0, 16).unwrap().summary();
        assert!(empty.macro_ovr_auroc.is_err());
    }
}

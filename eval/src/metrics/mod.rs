//! The field's detection and segmentation metrics, as the reference implementations compute them.
//!
//! - [`binary`]: ranked counts of a scored binary problem and what follows from them: AUROC, average precision
//!   (step-wise, as scikit-learn), F1-max, ROC and precision-recall curves. Exact on the given scores.
//! - [`histogram`]: [`BinnedScores`], a bounded-memory accumulator of pixel scores (fixed linear bins) that gives
//!   the same metrics with a computed bound on how far each can be from the exact value.
//! - [`pro`]: the per-region-overlap curve and AUPRO, on the exact curve as the MVTec AD evaluation code builds
//!   it (every distinct score a threshold), integrated up to an FPR limit and divided by it; exact
//!   ([`pro::ProCurve::exact`]) and binned ([`pro::PixelAccumulator`]).
//! - [`multitype`]: defect-type metrics: a confusion matrix with per-class F1 and IoU, macro averages, and macro
//!   one-vs-rest AUROC/AP.
//!
//! Degenerate inputs (no sample, one class only, no ground-truth region, a NaN or infinite score) give a
//! [`MetricError`] naming the case, never a NaN. Definitions and exactness: `docs/eval.md`.

pub mod binary;
pub mod histogram;
pub mod multitype;
pub mod pro;

pub use binary::{F1Max, Operating, RankedCounts};
pub use histogram::BinnedScores;
pub use multitype::{ConfusionMatrix, TypeAccumulator, TypeSummary};
pub use pro::{PixelAccumulator, ProCurve};

/// Why a metric could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// No sample at all.
    #[error("{what}: no samples")]
    Empty {
        /// The metric or input involved.
        what: String,
    },
    /// The metric needs both classes and one is missing (AUROC with one class; AP or F1 with no positive).
    #[error("{what}: undefined with {positives} positive and {negatives} negative samples (needs {needs})")]
    OneClass {
        /// The metric involved.
        what: String,
        /// Positive samples seen.
        positives: u64,
        /// Negative samples seen.
        negatives: u64,
        /// What the metric needs.
        needs: &'static str,
    },
    /// A score is NaN or infinite.
    #[error("{what}: score {index} is {value} (expected a finite number)")]
    NonFinite {
        /// The input involved.
        what: String,
        /// Position of the score.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// Two inputs that must have the same length or size do not.
    #[error("{what}: expected {expected}, found {found}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// Expected length or size.
        expected: String,
        /// Found length or size.
        found: String,
    },
    /// The data cannot define the metric (pixel metrics of images with image labels only).
    #[error("{what}: {reason}")]
    Undefined {
        /// The metric involved.
        what: String,
        /// Why.
        reason: String,
    },
    /// An argument outside its domain (an FPR limit outside (0, 1], a bin count of 0, a class index too large).
    #[error("{what}: expected {expected}, found {found}")]
    Invalid {
        /// The argument.
        what: String,
        /// Its domain.
        expected: String,
        /// The value given.
        found: String,
    },
}

impl MetricError {
    fn one_class(what: &str, positives: u64, negatives: u64, needs: &'static str) -> Self {
        Self::OneClass { what: what.into(), positives, negatives, needs }
    }

    fn mismatch(what: &str, expected: impl ToString, found: impl ToString) -> Self {
        Self::Mismatch { what: what.into(), expected: expected.to_string(), found: found.to_string() }
    }

    fn invalid(what: &str, expected: impl ToString, found: impl ToString) -> Self {
        Self::Invalid { what: what.into(), expected: expected.to_string(), found: found.to_string() }
    }
}

/// Result alias of the metrics.
pub type MetricResult<T> = std::result::Result<T, MetricError>;

/// Checks that every score is finite, naming the first that is not.
pub fn check_finite(what: &str, scores: &[f32]) -> MetricResult<()> {
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(MetricError::NonFinite { what: what.into(), index, value: scores[index] }),
        None => Ok(()),
    }
}

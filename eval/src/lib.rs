//! # Loupe evaluation
//!
//! What `loupe eval` (and `loupe calibrate`) measure with, kept out of the SDK that integrators link:
//!
//! - [`metrics`]: image AUROC / AP / F1-max, pixel AUROC / AP, AUPRO, defect-type metrics, exact and binned
//!   (tested against scikit-learn and the MVTec AD evaluation code);
//! - [`baseline`]: the training-free local-contrast filter every report shows beside the model;
//! - [`calibration`]: thresholds at a false-positive rate on good images, or F1-optimal;
//! - [`dataset`]: MVTec-layout data sets (with or without ground-truth masks);
//! - [`aggregate`], [`report`], [`plots`], [`gallery`]: accumulating results into `report.json`, `report.md` and
//!   PNG plots.
//!
//! Definitions and exactness: `docs/eval.md`.

pub mod aggregate;
pub mod baseline;
pub mod calibration;
pub mod dataset;
pub mod gallery;
pub mod metrics;
pub mod plots;
pub mod report;

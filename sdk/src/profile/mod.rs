//! Product profiles: one per customer or part. A profile holds what makes one product's inspection its own,
//! for one backbone model:
//!
//! - the defect vocabulary (unset: the engine's);
//! - the fusion rule and weight (unset: the configuration's);
//! - calibrated thresholds, with the scoring mode they were calibrated in and how (`loupe calibrate`);
//! - golden samples: the reference memory (patch features of good images, per layer, optionally coreset-
//!   subsampled) and the scale of normal variation measured between the references.
//!
//! The file is safetensors (`format = loupe-profile`, `docs/reference.md`): tensors `memory.<layer>.rows`
//! (`[n, dim]` f32) and `memory.<layer>.owners` (`[n]` u32, the reference image of each row), and the rest as
//! JSON in the metadata field `profile`. It records the `model_id` it was made for; an engine with another model
//! refuses it, as for prompt banks. [`create`] makes one from reference images; an [`Engine`](crate::Engine)
//! binds one ([`crate::Engine::bind_profile`]) to check it and compute its text matrix once.

mod augment;
mod create;
mod file;

use std::path::Path;

use loupe_reference::Memory;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use augment::Augmentation;
pub use create::{ProfileOptions, ReferenceImage, create};

use crate::detection::Thresholds;
use crate::error::{LoupeError, Result};
use crate::fusion::{Fusion, ScoringMode};
use crate::limits::Limits;

/// File format name in the metadata.
pub const FORMAT: &str = "loupe-profile";
/// File format version.
pub const FORMAT_VERSION: u32 = 1;

/// A reference image a profile was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSource {
    /// The name it was given (its file name, for `loupe profile create`).
    pub name: String,
    /// SHA-256 of its pixels (format, width, height and rows, without padding), hex.
    pub sha256: String,
    /// Width and height in pixels.
    pub size: [u32; 2],
}

/// The golden samples of a profile, as recorded in its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceInfo {
    /// The reference images, in owner order (row owners index this list).
    pub images: Vec<ReferenceSource>,
    /// Views added per reference (flips, rotations).
    pub augmentation: Augmentation,
    /// Share of the patches kept by the greedy coreset (1 = all).
    pub coreset_fraction: f32,
    /// Seed of the coreset's first row and projection.
    pub coreset_seed: u64,
    /// Memory rows per feature layer.
    pub rows_per_layer: Vec<usize>,
    /// The scale of normal variation: over the references, the median of each one's 99th-percentile
    /// leave-one-out patch distance (to the other references); reference evidence is 0.5 there.
    pub scale: f32,
    /// Patches the scale was measured on.
    pub scale_samples: usize,
}

/// How a profile's thresholds were set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The scoring the thresholds are for; in another mode the engine's defaults apply.
    pub mode: ScoringMode,
    /// Image score above which an image is anomalous.
    pub image_threshold: f32,
    /// Anomaly-map value above which a pixel is anomalous.
    pub pixel_threshold: f32,
    /// `fpr` (quantiles of the good images) or `f1` (F1-optimal on good and defective images).
    pub method: String,
    /// The false-positive rate asked for, with `fpr`.
    pub fpr: Option<f32>,
    /// Good images used.
    pub good_images: usize,
    /// Defective images used (0 with `fpr`).
    pub defective_images: usize,
    /// What the thresholds give on the calibration images (image FPR, recall, F1 ...), for the record.
    pub measured: std::collections::BTreeMap<String, f64>,
}

/// Everything in a profile but the memory (the JSON of the metadata field `profile`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileMeta {
    /// The profile's name (customer, part).
    pub name: String,
    /// `model_id` of the backbone it was made for.
    pub model_id: String,
    /// Name of that model, for people.
    pub model_name: String,
    /// Feature layers of that backbone.
    pub layers: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Patch grid `[height, width]`.
    pub grid: [usize; 2],
    /// The product's defect words; unset: the engine's vocabulary.
    pub vocabulary: Option<Vec<String>>,
    /// Fusion rule and weight; unset: the configuration's (`reference.fusion`).
    pub fusion: Option<Fusion>,
    /// Calibrated thresholds, if calibrated.
    pub calibration: Option<Calibration>,
    /// The golden samples' record, when the profile holds a memory.
    pub references: Option<ReferenceInfo>,
    /// The Loupe version that wrote it.
    pub created_by: String,
}

/// A product profile: its metadata and, for golden samples, the reference memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Vocabulary, fusion, calibration, references.
    pub meta: ProfileMeta,
    /// The reference memory (golden samples), if any.
    pub memory: Option<Memory>,
}

impl Profile {
    /// Reads a profile file; errors name the file and what was wrong (format, version, JSON field, tensor shape).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_limits(path, &Limits::default())
    }

    /// As [`Profile::load`], refusing a file over `limits.max_file_bytes` before reading it.
    pub fn load_with_limits(path: &Path, limits: &Limits) -> Result<Self> {
        file::read(path, limits)
    }

    /// Parses the bytes of a profile file; `name` is how errors name it.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Self> {
        file::parse(bytes).map_err(|reason| LoupeError::Profile { path: name.to_path_buf(), reason })
    }

    /// Writes the profile (safetensors), replacing the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        file::write(self, path)
    }

    /// The calibrated thresholds for `mode`, when the profile was calibrated in that mode.
    pub fn thresholds_for(&self, mode: ScoringMode) -> Option<Thresholds> {
        self.meta
            .calibration
            .as_ref()
            .filter(|c| c.mode == mode)
            .map(|c| Thresholds { image: c.image_threshold, pixel: c.pixel_threshold })
    }

    /// Bytes of its reference memory (0 without golden samples).
    pub fn memory_bytes(&self) -> usize {
        self.memory.as_ref().map_or(0, Memory::bytes)
    }
}

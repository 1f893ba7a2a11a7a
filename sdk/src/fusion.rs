//! Fusing reference evidence with text evidence: the rule every post-processor applies per patch cell and per
//! image, so that the CPU, the GPU and any other post-processor compute the same numbers.
//!
//! Reference evidence comes from `loupe-reference` as raw distances (`1 - cos`, averaged over layers). To be
//! fused with text it is put on a scale that means the same for every backbone: `x = raw / scale`, where `scale`
//! measures the distances *between normal images* (between the references of a profile, each against the others,
//! or between the images of a mutual pool): the median over those images of each one's 99th-percentile patch
//! distance, which a minority of unusual images cannot move. Then `x` is squashed to `x / (1 + x)`: 0.5 at the
//! edge of normal variation, always in `[0, 1)`. The text anomaly value (sum over `L` layers of the defect probabilities) is divided by `L`.
//! Rules (`reference.fusion`, chosen by measurement, `docs/reference.md`):
//!
//! | rule | cell | image | range |
//! | --- | --- | --- | --- |
//! | `mean` (WinCLIP+) | `w t + (1 - w) r` | `w s + (1 - w) R` | `[0, 1]` |
//! | `harmonic` (PromptAD) | `1 / (w / t + (1 - w) / r)` | the same of `s`, `R` | `[0, 1]` |
//! | `layer_sum` (APRIL-GAN) | text sum over layers `+ L x raw` (both summed over layers) | `s + raw image score` | `[0, 3L]`, `[0, 3]` |
//! | `reference` | `r` | `R` | `[0, 1]` |
//!
//! with `t` the text value / L, `r` the normalised reference value, `w` the text weight, `s` the text image score,
//! `R` the reference image score (the mean of the highest 1% of `r` over the grid, at least one cell). The
//! per-pixel defect type always comes from the text.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LoupeError, Result};

/// How text and reference evidence combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FusionRule {
    /// Weighted mean of the normalised evidences (WinCLIP+).
    #[default]
    Mean,
    /// Weighted harmonic mean of the normalised evidences (PromptAD): high only where both are.
    Harmonic,
    /// Sum over layers of the text probabilities and of the raw reference distances (APRIL-GAN, MultiADS).
    LayerSum,
    /// The reference evidence alone; the text still gives the defect types.
    Reference,
}

impl FusionRule {
    /// The rule's configuration name (`mean`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Harmonic => "harmonic",
            Self::LayerSum => "layer_sum",
            Self::Reference => "reference",
        }
    }

    /// Numeric code of the rule, as GPU kernels read it.
    pub fn code(self) -> u32 {
        match self {
            Self::Mean => 0,
            Self::Harmonic => 1,
            Self::LayerSum => 2,
            Self::Reference => 3,
        }
    }
}

/// A fusion rule with its text weight.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fusion {
    /// The rule.
    pub rule: FusionRule,
    /// Weight `w` of the text evidence in `mean` and `harmonic` (the reference gets `1 - w`).
    pub text_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Self { rule: FusionRule::Mean, text_weight: DEFAULT_TEXT_WEIGHT }
    }
}

/// The default text weight: WinCLIP+'s equal weighting, also the best or tied-best weight on Magnetic-Tile's
/// training runs (`docs/reference.md`).
pub const DEFAULT_TEXT_WEIGHT: f32 = 0.5;

/// Share of the grid cells whose mean is the reference image score.
pub const IMAGE_TOP_FRACTION: f32 = 0.01;

/// Per-image quantile of normal-to-normal distances whose median over images normalises to 0.5.
pub const SCALE_QUANTILE: f32 = 0.99;

/// Smallest scale: identical references (or pool images) would otherwise give 0, and any distance infinite
/// evidence.
pub const MIN_SCALE: f32 = 1e-6;

/// Smallest harmonic-mean operand, so a zero in one evidence gives 0 instead of a division by zero.
const HARMONIC_FLOOR: f32 = 1e-6;

impl Fusion {
    /// Checks the weight (in `[0, 1]`, finite).
    pub fn validate(&self, field: &str) -> Result<()> {
        if !(0.0..=1.0).contains(&self.text_weight) {
            return Err(LoupeError::Config {
                file: None,
                field: field.into(),
                expected: "a text weight in [0, 1]".into(),
                found: self.text_weight.to_string(),
            });
        }
        Ok(())
    }

    /// The reference term a cell's fusion uses: the raw distance for `layer_sum`, the normalised one otherwise.
    pub fn reference_term(&self, raw: f32, normalized: f32) -> f32 {
        match self.rule {
            FusionRule::LayerSum => raw,
            _ => normalized,
        }
    }

    /// The fused value of a cell from its text anomaly value (sum over `layers` layers of the defect
    /// probabilities) and its [reference term](Self::reference_term).
    pub fn cell(&self, text: f32, layers: usize, reference: f32) -> f32 {
        let l = layers.max(1) as f32;
        let w = self.text_weight;
        match self.rule {
            FusionRule::Mean => w * (text / l) + (1.0 - w) * reference,
            FusionRule::Harmonic => {
                1.0 / (w / (text / l).max(HARMONIC_FLOOR) + (1.0 - w) / reference.max(HARMONIC_FLOOR))
            }
            FusionRule::LayerSum => text + l * reference,
            FusionRule::Reference => reference,
        }
    }

    /// The fused image score from the text image score and the reference's image scores (normalised and raw).
    pub fn image(&self, text_score: f32, reference: &ImageEvidence) -> f32 {
        let w = self.text_weight;
        let r = reference.normalized;
        match self.rule {
            FusionRule::Mean => w * text_score + (1.0 - w) * r,
            FusionRule::Harmonic => 1.0 / (w / text_score.max(HARMONIC_FLOOR) + (1.0 - w) / r.max(HARMONIC_FLOOR)),
            FusionRule::LayerSum => text_score + reference.raw,
            FusionRule::Reference => r,
        }
    }

    /// Top of the fused anomaly map's range for `layers` feature layers (text alone: `layers`).
    pub fn map_range(&self, layers: usize) -> f32 {
        match self.rule {
            FusionRule::LayerSum => 3.0 * layers.max(1) as f32,
            _ => 1.0,
        }
    }

    /// Top of the fused image score's range (text alone: 1).
    pub fn image_range(&self) -> f32 {
        match self.rule {
            FusionRule::LayerSum => 3.0,
            _ => 1.0,
        }
    }
}

/// How reference evidence was gathered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoringMode {
    /// Text evidence only.
    Text,
    /// Against the golden samples (references) of a profile.
    Golden,
    /// Against the other images of a batch or a stream window.
    Mutual,
}

impl ScoringMode {
    /// Its name (`text`, `golden`, `mutual`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Golden => "golden",
            Self::Mutual => "mutual",
        }
    }
}

/// A reference image score, normalised and raw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageEvidence {
    /// Mean of the highest 1% of the normalised cell values.
    pub normalized: f32,
    /// Mean of the highest 1% of the raw cell values.
    pub raw: f32,
}

/// One image's reference evidence on the patch grid, as a post-processor receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceEvidence {
    /// Golden or mutual.
    pub mode: ScoringMode,
    /// Raw distance per grid cell (`1 - cos` averaged over layers), row-major `[grid_h * grid_w]`.
    pub raw: Vec<f32>,
    /// Normal-to-normal distance that normalises to 0.5.
    pub scale: f32,
    /// Reference images (golden) or pool images (mutual) behind the evidence.
    pub pool: usize,
}

impl ReferenceEvidence {
    /// Evidence from raw distances; `scale` must be positive and finite.
    pub fn new(mode: ScoringMode, raw: Vec<f32>, scale: f32, pool: usize) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(LoupeError::mismatch("reference score scale", "a positive finite number", scale));
        }
        Ok(Self { mode, raw, scale, pool })
    }

    /// `x / (1 + x)` of `x = raw / scale`: 0.5 at the scale.
    pub fn normalize(&self, raw: f32) -> f32 {
        let x = (raw / self.scale).max(0.0);
        x / (1.0 + x)
    }

    /// The normalised value per cell.
    pub fn normalized(&self) -> Vec<f32> {
        self.raw.iter().map(|&r| self.normalize(r)).collect()
    }

    /// The per-cell terms `fusion` combines with the text (see [`Fusion::reference_term`]).
    pub fn terms(&self, fusion: &Fusion) -> Vec<f32> {
        self.raw.iter().map(|&r| fusion.reference_term(r, self.normalize(r))).collect()
    }

    /// The image-level evidence: the mean of the highest 1% of the cells (at least one), normalised and raw.
    pub fn image(&self) -> ImageEvidence {
        let raw = loupe_reference::stats::top_mean(&self.raw, IMAGE_TOP_FRACTION);
        ImageEvidence { normalized: self.normalize(raw), raw }
    }
}

/// A score put on a scale where the threshold is 0.5 (as anomalib and Roboflow report): linear from 0 to the
/// threshold, and from the threshold to the top of the score's range, clipped to `[0, 1]`.
pub fn normalized_score(score: f32, threshold: f32, range: f32) -> f32 {
    let v = if score <= threshold {
        if threshold > 0.0 { 0.5 * score / threshold } else { 0.5 }
    } else if range > threshold {
        0.5 + 0.5 * (score - threshold) / (range - threshold)
    } else {
        1.0
    };
    v.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_one_half_at_the_scale() {
        let e = ReferenceEvidence::new(ScoringMode::Golden, vec![0.0, 0.1, 0.3], 0.1, 4).unwrap();
        assert_eq!(e.normalized(), vec![0.0, 0.5, 0.75]);
        assert!(ReferenceEvidence::new(ScoringMode::Golden, vec![], 0.0, 1).is_err());
        let img = e.image();
        assert_eq!(img.raw, 0.3, "1% of 3 cells is one cell: the maximum");
        assert_eq!(img.normalized, 0.75);
    }

    #[test]
    fn rules_combine_as_documented() {
        let mean = Fusion::default();
        assert_eq!(mean.cell(2.0, 4, 0.3), 0.5 * 0.5 + 0.5 * 0.3);
        let harmonic = Fusion { rule: FusionRule::Harmonic, text_weight: 0.5 };
        assert!((harmonic.cell(2.0, 4, 0.25) - 1.0 / (1.0 + 2.0)).abs() < 1e-6);
        assert!(harmonic.cell(0.0, 4, 0.9) < 1e-5, "no text evidence: nothing");
        let sum = Fusion { rule: FusionRule::LayerSum, text_weight: 0.5 };
        assert_eq!(sum.reference_term(0.2, 0.6), 0.2);
        assert_eq!(sum.cell(1.5, 4, 0.2), 1.5 + 0.8);
        assert_eq!(sum.map_range(4), 12.0);
        let reference = Fusion { rule: FusionRule::Reference, text_weight: 0.9 };
        assert_eq!(reference.cell(4.0, 4, 0.1), 0.1);
        let img = ImageEvidence { normalized: 0.4, raw: 0.2 };
        assert_eq!(mean.image(0.8, &img), 0.6);
        assert_eq!(sum.image(0.8, &img), 1.0);
        assert_eq!(reference.image(0.8, &img), 0.4);
        assert!(Fusion { rule: FusionRule::Mean, text_weight: 1.5 }.validate("reference.text_weight").is_err());
    }

    #[test]
    fn normalised_scores_are_one_half_at_the_threshold() {
        assert_eq!(normalized_score(0.2, 0.2, 1.0), 0.5);
        assert_eq!(normalized_score(0.1, 0.2, 1.0), 0.25);
        assert_eq!(normalized_score(0.6, 0.2, 1.0), 0.75);
        assert_eq!(normalized_score(2.0, 0.2, 1.0), 1.0);
        assert_eq!(normalized_score(0.0, 0.0, 1.0), 0.5);
        assert_eq!(normalized_score(0.9, 1.0, 1.0), 0.45);
    }
}

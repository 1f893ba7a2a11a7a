//! What a detection returns: scores, maps, the mask and its regions (anomalib's `pred_score`, `anomaly_map`,
//! `pred_mask`, plus DAPO's defect types).

use serde::Serialize;

use crate::fusion::ScoringMode;
use crate::thresholding::SegmentRule;

/// A dense single-channel map, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values.
    pub data: Vec<f32>,
}

impl ScoreMap {
    /// A map of zeros.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![0.0; width * height] }
    }

    /// Value at `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Largest value (0 for an empty map).
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0)
    }
}

/// A connected region of the mask.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Region {
    /// Bounding box `[x, y, width, height]` in output-map pixels.
    pub bbox: [u32; 4],
    /// Number of pixels.
    pub area: u32,
    /// Most frequent defect type of its pixels.
    pub defect_type: String,
    /// Mean anomaly score over the region.
    pub mean_score: f32,
    /// Largest anomaly score in the region.
    pub max_score: f32,
}

/// The thresholds a result was computed with (echoed with every result, as inspection users expect).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Image score above which the image is anomalous.
    pub image: f32,
    /// Anomaly-map value above which a pixel is in the mask.
    pub pixel: f32,
}

/// Where a result's evidence came from, and what each kind said.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    /// Text only, golden samples, or mutual scoring.
    pub mode: ScoringMode,
    /// The text evidence's image score (what `score` is in text mode).
    pub text_score: f32,
    /// The reference evidence's normalised image score (0.5 at the edge of normal variation), when there is one.
    pub reference_score: Option<f32>,
    /// Reference images (golden) or other images (mutual) compared with; 0 in text mode.
    pub pool: usize,
    /// The profile the image was inspected with, if any.
    pub profile: Option<String>,
    /// Mutual scoring was on but the session's window held fewer images than `reference.mutual_min_pool`: this
    /// result is text only.
    pub window_filling: bool,
}

impl Evidence {
    /// Text evidence only.
    pub fn text(text_score: f32) -> Self {
        Self {
            mode: ScoringMode::Text,
            text_score,
            reference_score: None,
            pool: 0,
            profile: None,
            window_filling: false,
        }
    }
}

/// The result of inspecting one image.
#[derive(Clone, Debug)]
pub struct Detection {
    /// Image anomaly score (raw): in [0, 1] for text and the `mean`, `harmonic` and `reference` fusions.
    pub score: f32,
    /// The score on a scale where the image threshold is 0.5, in [0, 1] (`fusion::normalized_score`).
    pub normalized_score: f32,
    /// `score > thresholds.image`.
    pub is_anomalous: bool,
    /// Class names: `normal`, then the defect words (index = type id).
    pub classes: Vec<String>,
    /// Image-level class probabilities (`[classes]`, softmax of the global feature against the text matrix).
    pub class_probabilities: Vec<f32>,
    /// Most probable defect type of the image (argmax over the defect rows).
    pub image_type: String,
    /// Anomaly map (DAPO: sum over layers of the defect probabilities, range `[0, layers]`; fused with reference
    /// evidence: `[0, map_range]`), smoothed if configured.
    pub anomaly_map: ScoreMap,
    /// Top of the anomaly map's range (the heatmap's colour scale): the number of layers for text, 1 for most
    /// fusions.
    pub map_range: f32,
    /// Top of the image score's range (1, or the `layer_sum` fusion's): what `normalized_score` maps to 1.
    pub score_range: f32,
    /// Per-class maps (`classes` of them), kept only when configured (`postprocess.keep_class_maps`).
    pub class_maps: Vec<ScoreMap>,
    /// Per-pixel type id: 0 outside the mask, else the most probable defect type (index into `classes`).
    pub type_map: Vec<u16>,
    /// The most probable defect type of every pixel, mask or not (what re-thresholding needs); empty when the
    /// post-processor makes its own masks or the type map was not kept.
    pub pixel_types: Vec<u16>,
    /// Binary mask, 0 or 255 per pixel.
    pub mask: Vec<u8>,
    /// Connected regions of the mask.
    pub regions: Vec<Region>,
    /// Thresholds used.
    pub thresholds: Thresholds,
    /// Smallest region kept, in pixels.
    pub min_region_area: u32,
    /// Which images got a mask and regions.
    pub segment: SegmentRule,
    /// Which evidence the result rests on.
    pub evidence: Evidence,
}

//! The per-image result JSON: what `loupe inspect` writes per image and `loupe_result_to_json` returns through the
//! C ABI, one format for both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::detection::{Detection, Evidence, Region, Thresholds};
use crate::thresholding::SegmentRule;
use crate::traits::ComponentInfo;

/// One image's result file.
#[derive(Serialize)]
pub struct ImageReport<'a> {
    /// Input file.
    pub image: String,
    /// Output map width (pixels).
    pub width: usize,
    /// Output map height (pixels).
    pub height: usize,
    /// Image anomaly score (raw; in [0, 1] for text and the `mean`, `harmonic`, `reference` fusions).
    pub score: f32,
    /// The score on a scale where the image threshold is 0.5 (as anomalib reports).
    pub normalized_score: f32,
    /// `anomalous` or `normal`.
    pub label: &'static str,
    /// Most probable defect type of the image.
    pub image_type: &'a str,
    /// Image-level probability of each class.
    pub class_probabilities: BTreeMap<&'a str, f32>,
    /// Thresholds used.
    pub thresholds: Thresholds,
    /// Smallest region kept, in pixels.
    pub min_region_area: u32,
    /// Which images got a mask and regions (`anomalous`: only those labelled anomalous; `all`).
    pub segment: SegmentRule,
    /// What the result rests on: text only, golden samples or mutual scoring, each evidence's image score.
    pub evidence: &'a Evidence,
    /// The anomaly map's value range (the heatmap's colour scale).
    pub map_range: [f32; 2],
    /// Number of mask pixels.
    pub mask_pixels: usize,
    /// Connected regions of the mask.
    pub regions: &'a [Region],
    /// Written files, relative to the output folder.
    pub outputs: BTreeMap<&'static str, String>,
    /// Backbone, prompt bank and post-processor identities.
    pub components: BTreeMap<&'static str, ComponentInfo>,
}

impl<'a> ImageReport<'a> {
    /// Builds the report of `d`.
    pub fn new(
        image: String,
        d: &'a Detection,
        map_range: f32,
        components: &[ComponentInfo; 3],
        outputs: BTreeMap<&'static str, String>,
    ) -> Self {
        let [backbone, bank, post] = components.clone();
        Self {
            image,
            width: d.anomaly_map.width,
            height: d.anomaly_map.height,
            score: d.score,
            normalized_score: d.normalized_score,
            label: if d.is_anomalous { "anomalous" } else { "normal" },
            image_type: &d.image_type,
            class_probabilities: d
                .classes
                .iter()
                .map(String::as_str)
                .zip(d.class_probabilities.iter().copied())
                .collect(),
            thresholds: d.thresholds,
            min_region_area: d.min_region_area,
            segment: d.segment,
            evidence: &d.evidence,
            map_range: [0.0, map_range],
            mask_pixels: d.mask.iter().filter(|&&m| m != 0).count(),
            regions: &d.regions,
            outputs,
            components: [("backbone", backbone), ("prompt_bank", bank), ("postprocessor", post)].into_iter().collect(),
        }
    }
}

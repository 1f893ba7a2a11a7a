//! What the thresholds decide, from the maps a post-processor computed: the label, the mask, the type map and the
//! regions. Kept apart from the maps so that a result can be re-thresholded without running the model again
//! ([`Detection::rethreshold`]), and so that per-call options ([`InspectOptions`]) cost only this step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::detection::{Detection, Region, ScoreMap, Thresholds};
use crate::error::{LoupeError, Result};
use crate::fusion::normalized_score;
use crate::regions::extract_regions;

/// Which images get a mask and regions (`postprocess.segment`). The image label and the mask come from two
/// thresholds (image score, anomaly-map value); this rule keeps them from contradicting each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentRule {
    /// Only images labelled anomalous: an image labelled normal has an empty mask, an all-zero type map and no
    /// regions (its anomaly map is kept). An anomalous image may still have no region when no pixel passes the
    /// pixel threshold: it is anomalous as a whole, with nothing localised.
    #[default]
    Anomalous,
    /// Every image, whatever its label: mask and label follow independent thresholds, so a normal image can have
    /// regions (Loupe's behaviour before this setting; what pixel-level benchmarks score).
    All,
}

/// Everything that turns maps into a verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Image and pixel thresholds.
    pub thresholds: Thresholds,
    /// Mask regions smaller than this many pixels are dropped (from the mask and type map too).
    pub min_region_area: u32,
    /// Which images get a mask and regions.
    pub segment: SegmentRule,
}

/// The threshold-dependent part of a detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// `score > thresholds.image`.
    pub is_anomalous: bool,
    /// The score on a scale where the image threshold is 0.5.
    pub normalized_score: f32,
    /// 0 or 255 per pixel.
    pub mask: Vec<u8>,
    /// 0 outside the mask, else the pixel's type.
    pub type_map: Vec<u16>,
    /// Connected regions of the mask.
    pub regions: Vec<Region>,
}

/// Decides label, mask, type map and regions: a pixel is in the mask when its anomaly value is above the pixel
/// threshold (and the segment rule lets the image have a mask); its type is `pixel_types`' (the most probable
/// defect type, computed for every pixel); regions below `min_region_area` are erased.
pub fn decide(
    score: f32,
    score_range: f32,
    anomaly: &ScoreMap,
    pixel_types: &[u16],
    classes: &[String],
    decision: &Decision,
) -> Verdict {
    let t = decision.thresholds;
    let is_anomalous = score > t.image;
    let segmented = is_anomalous || decision.segment == SegmentRule::All;
    let mut type_map: Vec<u16> = if segmented {
        anomaly.data.iter().zip(pixel_types).map(|(&v, &ty)| if v > t.pixel { ty.max(1) } else { 0 }).collect()
    } else {
        vec![0; anomaly.data.len()]
    };
    let mut mask: Vec<u8> = type_map.iter().map(|&ty| if ty != 0 { 255 } else { 0 }).collect();
    let regions = extract_regions(&mut mask, &mut type_map, anomaly, classes, decision.min_region_area);
    Verdict { is_anomalous, normalized_score: normalized_score(score, t.image, score_range), mask, type_map, regions }
}

/// Per-call options of an inspection; `None` / `true` fields mean the engine's configuration. Thresholds are on
/// the scale of the result's scoring mode (see [`Detection::thresholds`] of a result of that mode).
#[derive(Clone, Debug, PartialEq)]
pub struct InspectOptions {
    /// Image threshold instead of the engine's (or profile's).
    pub image_threshold: Option<f32>,
    /// Pixel threshold instead of the engine's (or profile's).
    pub pixel_threshold: Option<f32>,
    /// Smallest region kept, instead of `postprocess.min_region_area`.
    pub min_region_area: Option<u32>,
    /// Segment rule instead of `postprocess.segment`.
    pub segment: Option<SegmentRule>,
    /// Look only for these defect words, a subset of the active vocabulary (the profile's, else the engine's): its
    /// text matrix rows, so no text encoding happens. Class probabilities and the image score are over these
    /// classes only.
    pub classes: Option<Vec<String>>,
    /// Keep the float anomaly map in the result (`false` frees it once mask and regions are made; the result then
    /// cannot be re-thresholded). It is computed either way.
    pub keep_anomaly_map: bool,
    /// Keep the type map (and the per-pixel types re-thresholding needs) in the result; regions keep their types.
    pub keep_type_map: bool,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            image_threshold: None,
            pixel_threshold: None,
            min_region_area: None,
            segment: None,
            classes: None,
            keep_anomaly_map: true,
            keep_type_map: true,
        }
    }
}

impl InspectOptions {
    /// Whether the options change what the thresholds decide.
    pub fn changes_decision(&self) -> bool {
        self.image_threshold.is_some()
            || self.pixel_threshold.is_some()
            || self.min_region_area.is_some()
            || self.segment.is_some()
    }

    /// `base` with the options' values where they are set.
    pub fn decision(&self, base: &Decision) -> Decision {
        Decision {
            thresholds: Thresholds {
                image: self.image_threshold.unwrap_or(base.thresholds.image),
                pixel: self.pixel_threshold.unwrap_or(base.thresholds.pixel),
            },
            min_region_area: self.min_region_area.unwrap_or(base.min_region_area),
            segment: self.segment.unwrap_or(base.segment),
        }
    }

    /// Checks the values: finite thresholds, a minimum area of at least 1, a non-empty class list.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("image_threshold", self.image_threshold), ("pixel_threshold", self.pixel_threshold)] {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return Err(LoupeError::mismatch(format!("inspect options: {name}"), "a finite number", v));
            }
        }
        if self.min_region_area == Some(0) {
            return Err(LoupeError::mismatch("inspect options: min_region_area", "at least 1 pixel", 0));
        }
        if self.classes.as_ref().is_some_and(Vec::is_empty) {
            return Err(LoupeError::Vocabulary("inspect options: an empty class list (unset it for all)".into()));
        }
        Ok(())
    }

    /// Drops the outputs the options do not keep.
    pub fn trim(&self, d: &mut Detection) {
        if !self.keep_anomaly_map {
            d.anomaly_map.data = Vec::new();
            d.class_maps.clear();
        }
        if !self.keep_type_map {
            d.type_map = Vec::new();
            d.pixel_types = Vec::new();
        }
    }
}

impl Detection {
    /// The decision this result was made with.
    pub fn decision(&self) -> Decision {
        Decision { thresholds: self.thresholds, min_region_area: self.min_region_area, segment: self.segment }
    }

    /// The same result under another decision: label, normalised score, mask, type map and regions recomputed
    /// from the kept anomaly map and per-pixel types; maps and scores unchanged. Bit-identical to inspecting with
    /// that decision. Fails when the result kept no anomaly map or per-pixel types (skipped outputs, or a
    /// post-processor that makes its own masks).
    pub fn rethreshold(&self, decision: &Decision) -> Result<Detection> {
        let pixels = self.anomaly_map.width * self.anomaly_map.height;
        if self.anomaly_map.data.len() != pixels || self.pixel_types.len() != pixels {
            return Err(LoupeError::mismatch(
                "re-thresholding: maps kept in the result",
                format!("the anomaly map and per-pixel types ({pixels} pixels each)"),
                format!(
                    "{} and {} values (outputs skipped by the inspect options, or a post-processor that makes its \
                     own masks)",
                    self.anomaly_map.data.len(),
                    self.pixel_types.len()
                ),
            ));
        }
        let v = decide(self.score, self.score_range, &self.anomaly_map, &self.pixel_types, &self.classes, decision);
        Ok(Detection {
            is_anomalous: v.is_anomalous,
            normalized_score: v.normalized_score,
            mask: v.mask,
            type_map: v.type_map,
            regions: v.regions,
            thresholds: decision.thresholds,
            min_region_area: decision.min_region_area,
            segment: decision.segment,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::Evidence;

    fn classes() -> Vec<String> {
        vec!["normal".into(), "hole".into(), "scratch".into()]
    }

    /// A 4x2 map rising left to right, types 1 on the top row and 2 below.
    fn detection(score: f32, decision: Decision) -> Detection {
        let anomaly = ScoreMap { width: 4, height: 2, data: vec![0.1, 0.4, 0.6, 0.9, 0.1, 0.4, 0.6, 0.9] };
        let pixel_types = vec![1, 1, 1, 1, 2, 2, 2, 2];
        let v = decide(score, 1.0, &anomaly, &pixel_types, &classes(), &decision);
        Detection {
            score,
            normalized_score: v.normalized_score,
            is_anomalous: v.is_anomalous,
            classes: classes(),
            class_probabilities: vec![0.5, 0.3, 0.2],
            image_type: "hole".into(),
            anomaly_map: anomaly,
            map_range: 1.0,
            score_range: 1.0,
            class_maps: Vec::new(),
            pixel_types,
            type_map: v.type_map,
            mask: v.mask,
            regions: v.regions,
            thresholds: decision.thresholds,
            min_region_area: decision.min_region_area,
            segment: decision.segment,
            evidence: Evidence::text(score),
        }
    }

    fn decision(image: f32, pixel: f32, segment: SegmentRule) -> Decision {
        Decision { thresholds: Thresholds { image, pixel }, min_region_area: 1, segment }
    }

    #[test]
    fn normal_images_have_no_regions_unless_all_are_segmented() {
        let normal = detection(0.3, decision(0.5, 0.5, SegmentRule::Anomalous));
        assert!(!normal.is_anomalous);
        assert!(normal.regions.is_empty() && normal.mask.iter().all(|&m| m == 0));
        let all = detection(0.3, decision(0.5, 0.5, SegmentRule::All));
        assert_eq!(all.regions.len(), 1, "one 8-connected region over both rows");
        assert_eq!(all.mask, vec![0, 0, 255, 255, 0, 0, 255, 255]);
        assert_eq!(all.type_map, vec![0, 0, 1, 1, 0, 0, 2, 2]);
        let anomalous = detection(0.7, decision(0.5, 0.5, SegmentRule::Anomalous));
        assert_eq!(anomalous.mask, all.mask);
    }

    #[test]
    fn rethresholding_equals_deciding_afresh() {
        let first = detection(0.7, decision(0.5, 0.5, SegmentRule::Anomalous));
        for target in [
            decision(0.5, 0.3, SegmentRule::Anomalous),
            decision(0.8, 0.3, SegmentRule::Anomalous),
            decision(0.8, 0.3, SegmentRule::All),
            Decision { min_region_area: 5, ..decision(0.5, 0.3, SegmentRule::All) },
        ] {
            let re = first.rethreshold(&target).unwrap();
            let fresh = detection(0.7, target);
            assert_eq!((re.is_anomalous, re.normalized_score), (fresh.is_anomalous, fresh.normalized_score));
            assert_eq!((&re.mask, &re.type_map, &re.regions), (&fresh.mask, &fresh.type_map, &fresh.regions));
            assert_eq!(re.decision(), target);
        }
        // Lowering the pixel threshold brings in pixels the first decision had left out, with their types.
        let low = first.rethreshold(&decision(0.5, 0.3, SegmentRule::Anomalous)).unwrap();
        assert_eq!(low.type_map, vec![0, 1, 1, 1, 0, 2, 2, 2]);
        let high_area = first.rethreshold(&Decision { min_region_area: 7, ..first.decision() }).unwrap();
        assert!(high_area.regions.is_empty() && high_area.mask.iter().all(|&m| m == 0));
    }

    #[test]
    fn skipped_outputs_cannot_be_rethresholded_and_options_are_checked() {
        let mut d = detection(0.7, decision(0.5, 0.5, SegmentRule::Anomalous));
        let options = InspectOptions { keep_type_map: false, ..InspectOptions::default() };
        options.trim(&mut d);
        assert!(d.type_map.is_empty() && !d.regions.is_empty(), "regions keep their types");
        let err = d.rethreshold(&d.decision()).unwrap_err().to_string();
        assert!(err.contains("re-thresholding") && err.contains("8 pixels"), "{err}");
        let bad = InspectOptions { pixel_threshold: Some(f32::NAN), ..InspectOptions::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("pixel_threshold"));
        let bad = InspectOptions { min_region_area: Some(0), ..InspectOptions::default() };
        assert!(bad.validate().is_err());
        let bad = InspectOptions { classes: Some(Vec::new()), ..InspectOptions::default() };
        assert!(bad.validate().is_err());
        assert!(!InspectOptions::default().changes_decision());
    }
}

//! The DAPO post-processor on the CPU: **this is where a pixel's anomaly score and defect type are computed.**
//!
//! Per layer, each patch feature is compared with every row of the text matrix (cosine / temperature, softmax
//! over classes); the layers' probabilities are summed into per-class maps; the anomaly map is the sum of the
//! defect classes, upsampled bilinearly (aligned corners) to the output size and optionally smoothed. The image
//! score compares the global feature with `normal` and with the mean of the defect rows.
//!
//! With reference evidence (golden samples or mutual scoring, `loupe_sdk::fusion`), each grid cell's text value is
//! fused with the cell's reference value before upsampling, and the image score with the reference image score;
//! the per-pixel defect type still comes from the text's class maps.
//!
//! `gpu/` computes the same on the GPU (wgpu) with this code as reference and fallback; `backend.rs` chooses
//! between them (`postprocess.backend`, `docs/gpu.md`).

pub mod backend;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod smoothing;
pub mod upsample;

use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::features::normalize;
use loupe_sdk::thresholding::{Decision, decide};
use loupe_sdk::{
    ComponentInfo, Detection, Evidence, ImageFeatures, LoupeError, OutputSize, PostProcessor, PostprocessRequest,
    Result, ScoreMap, TextFeatures, Thresholds,
};

use upsample::Bilinear;

/// DAPO post-processing with the configured temperature, thresholds and smoothing.
#[derive(Clone, Debug)]
pub struct DapoPostProcessor {
    config: PostprocessConfig,
}

impl DapoPostProcessor {
    /// A post-processor with these settings.
    pub fn new(config: PostprocessConfig) -> Self {
        Self { config }
    }
}

/// In-place softmax of `logits`.
fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in logits.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    logits.iter_mut().for_each(|v| *v /= sum);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Image level: (score, class probabilities). The score is `softmax([g.T0, g.a] / t)[1]` with
/// `a = normalize(mean(T[1..]))`.
pub fn image_scores(global: &[f32], text: &TextFeatures, temperature: f32) -> (f32, Vec<f32>) {
    let mut g = global.to_vec();
    normalize(&mut g);
    let mut probs: Vec<f32> = (0..text.classes()).map(|k| dot(&g, text.row(k)) / temperature).collect();
    softmax(&mut probs);
    let mut any = vec![0.0f32; text.dim];
    for k in 1..text.classes() {
        any.iter_mut().zip(text.row(k)).for_each(|(a, t)| *a += t);
    }
    normalize(&mut any);
    let mut pair = [dot(&g, text.row(0)) / temperature, dot(&g, &any) / temperature];
    softmax(&mut pair);
    (pair[1], probs)
}

/// Per-class maps at grid resolution, `[classes][cells]`: the sum over layers of the per-patch class softmax.
pub fn class_grids(features: &ImageFeatures, text: &TextFeatures, temperature: f32) -> Vec<Vec<f32>> {
    let cells = features.grid_h * features.grid_w;
    let classes = text.classes();
    let mut grids = vec![vec![0.0f32; cells]; classes];
    let mut patch = vec![0.0f32; features.dim];
    let mut logits = vec![0.0f32; classes];
    for l in 0..features.layers {
        for (cell, p) in features.layer(l).chunks(features.dim).enumerate() {
            patch.copy_from_slice(p);
            normalize(&mut patch);
            for (k, logit) in logits.iter_mut().enumerate() {
                *logit = dot(&patch, text.row(k)) / temperature;
            }
            softmax(&mut logits);
            for (k, prob) in logits.iter().enumerate() {
                grids[k][cell] += prob;
            }
        }
    }
    grids
}

/// Checks what every post-processor needs: text and image features of one dimension, a non-empty patch grid,
/// a non-empty output map, and reference evidence (if any) of one value per grid cell.
pub(crate) fn check_request(request: &PostprocessRequest<'_>, text: &TextFeatures) -> Result<()> {
    check_inputs(request.features, text, request.output)?;
    if let Some(e) = request.reference {
        let cells = request.features.grid_w * request.features.grid_h;
        if e.raw.len() != cells {
            return Err(LoupeError::mismatch("reference evidence (one value per grid cell)", cells, e.raw.len()));
        }
    }
    Ok(())
}

/// Checks features, text and output size (see [`check_request`]).
pub(crate) fn check_inputs(features: &ImageFeatures, text: &TextFeatures, output: OutputSize) -> Result<()> {
    if features.dim != text.dim {
        return Err(LoupeError::mismatch(
            "text matrix dimension (image features vs prompt bank)",
            features.dim,
            text.dim,
        ));
    }
    if features.grid_w == 0 || features.grid_h == 0 || features.layers == 0 {
        return Err(LoupeError::mismatch(
            "patch features (layers x grid)",
            "at least 1 layer and a 1x1 grid",
            format!("{} layers x {}x{}", features.layers, features.grid_w, features.grid_h),
        ));
    }
    if output.width == 0 || output.height == 0 {
        return Err(LoupeError::mismatch("output map size", "> 0", format!("{}x{}", output.width, output.height)));
    }
    Ok(())
}

/// The thresholds of a request: its own, else the configured ones.
pub(crate) fn thresholds(config: &PostprocessConfig, request: &PostprocessRequest<'_>) -> Thresholds {
    request.thresholds.unwrap_or(Thresholds {
        image: config.image_threshold,
        pixel: config.pixel_threshold_for(request.features.layers),
    })
}

/// The anomaly grid: per cell the sum of the defect classes' grids, fused with the reference evidence if any.
pub(crate) fn anomaly_grid(grids: &[Vec<f32>], request: &PostprocessRequest<'_>) -> Vec<f32> {
    let text: Vec<f32> = (0..grids[0].len()).map(|c| grids[1..].iter().map(|g| g[c]).sum()).collect();
    match request.reference {
        None => text,
        Some(e) => {
            let layers = request.features.layers;
            let terms = e.terms(&request.fusion);
            text.iter().zip(terms).map(|(&t, r)| request.fusion.cell(t, layers, r)).collect()
        }
    }
}

/// What a post-processor computes per pixel; [`assemble`] turns it into a [`Detection`].
pub(crate) struct PixelMaps {
    /// Anomaly map at output size, smoothed if configured.
    pub anomaly: ScoreMap,
    /// Per pixel, mask or not: the most probable defect type (1.. ; the mask is decided later, on the CPU).
    pub pixel_types: Vec<u16>,
    /// Per-class maps at output size, or none when not kept.
    pub class_maps: Vec<ScoreMap>,
}

/// Adds what is computed per image on the CPU (image score and type, mask, regions) to the per-pixel maps.
pub(crate) fn assemble(
    config: &PostprocessConfig,
    request: &PostprocessRequest<'_>,
    text: &TextFeatures,
    maps: PixelMaps,
) -> Detection {
    let features = request.features;
    let (text_score, class_probabilities) = image_scores(&features.global, text, config.temperature);
    let thresholds = thresholds(config, request);
    let (score, map_range, score_range, evidence) = match request.reference {
        None => (text_score, features.layers as f32, 1.0, Evidence::text(text_score)),
        Some(e) => {
            let image = e.image();
            let evidence = Evidence {
                mode: e.mode,
                reference_score: Some(image.normalized),
                pool: e.pool,
                ..Evidence::text(text_score)
            };
            let f = &request.fusion;
            (f.image(text_score, &image), f.map_range(features.layers), f.image_range(), evidence)
        }
    };
    let image_type_id =
        (1..text.classes()).max_by(|&a, &b| class_probabilities[a].total_cmp(&class_probabilities[b])).unwrap_or(0);
    let PixelMaps { anomaly, pixel_types, class_maps } = maps;
    let classes = text.class_names();
    let decision = Decision { thresholds, min_region_area: config.min_region_area, segment: config.segment };
    let verdict = decide(score, score_range, &anomaly, &pixel_types, &classes, &decision);
    Detection {
        score,
        normalized_score: verdict.normalized_score,
        is_anomalous: verdict.is_anomalous,
        image_type: classes.get(image_type_id).cloned().unwrap_or_default(),
        classes,
        class_probabilities,
        anomaly_map: anomaly,
        map_range,
        score_range,
        class_maps,
        pixel_types,
        type_map: verdict.type_map,
        mask: verdict.mask,
        regions: verdict.regions,
        thresholds,
        min_region_area: decision.min_region_area,
        segment: decision.segment,
        evidence,
    }
}

/// Every pixel's most probable defect type (first on ties), not only the masked pixels': the mask is decided
/// afterwards (and again whenever the result is re-thresholded) from the anomaly map and these types. Each class
/// grid is interpolated along x once per grid row, then along y per pixel: the same operations in the same order
/// as [`Bilinear::sample`], so the values (and the GPU's `classify`) agree bit for bit, at a fraction of the cost.
fn pixel_types(grids: &[Vec<f32>], up: &Bilinear, grid_w: usize, grid_h: usize) -> Vec<u16> {
    let (xs, ys) = up.axes();
    let (w, h) = (xs.taps().len(), ys.taps().len());
    let rows: Vec<Vec<f32>> = grids[1..]
        .iter()
        .map(|g| {
            (0..grid_h)
                .flat_map(|gy| {
                    let row = &g[gy * grid_w..(gy + 1) * grid_w];
                    xs.taps().iter().map(move |&(x0, x1, wx)| row[x0] + (row[x1] - row[x0]) * wx)
                })
                .collect()
        })
        .collect();
    let mut types = vec![1u16; w * h];
    for (y, &(y0, y1, wy)) in ys.taps().iter().enumerate() {
        for (x, ty) in types[y * w..(y + 1) * w].iter_mut().enumerate() {
            let mut best = (1usize, f32::NEG_INFINITY);
            for (k, r) in rows.iter().enumerate() {
                let (top, bottom) = (r[y0 * w + x], r[y1 * w + x]);
                let v = top + (bottom - top) * wy;
                if v > best.1 {
                    best = (k + 1, v);
                }
            }
            *ty = best.0 as u16;
        }
    }
    types
}

impl DapoPostProcessor {
    /// The per-pixel maps, on the CPU.
    fn pixel_maps(&self, request: &PostprocessRequest<'_>, text: &TextFeatures) -> PixelMaps {
        let cfg = &self.config;
        let (features, output) = (request.features, request.output);
        let grids = class_grids(features, text, cfg.temperature);
        let (w, h) = (output.width, output.height);
        let up = Bilinear::new(features.grid_w, features.grid_h, w, h);
        // Summing before upsampling equals upsampling each class: bilinear interpolation is linear. Fusion with
        // reference evidence happens on the grid too, before upsampling.
        let mut anomaly = ScoreMap { width: w, height: h, data: up.apply(&anomaly_grid(&grids, request)) };
        smoothing::gaussian(&mut anomaly.data, w, h, cfg.smoothing_sigma);

        let pixel_types = pixel_types(&grids, &up, features.grid_w, features.grid_h);
        let class_maps = if cfg.keep_class_maps {
            grids.iter().map(|g| ScoreMap { width: w, height: h, data: up.apply(g) }).collect()
        } else {
            Vec::new()
        };
        PixelMaps { anomaly, pixel_types, class_maps }
    }
}

impl PostProcessor for DapoPostProcessor {
    fn info(&self) -> ComponentInfo {
        ComponentInfo { kind: "dapo-postprocess-cpu".into(), name: "dapo".into(), id: String::new() }
    }

    fn process_request(&self, request: &PostprocessRequest<'_>, text: &TextFeatures) -> Result<Detection> {
        check_request(request, text)?;
        let maps = self.pixel_maps(request, text);
        Ok(assemble(&self.config, request, text, maps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> TextFeatures {
        // normal = x axis, hole = y axis, scratch = z axis.
        TextFeatures::new(vec!["hole".into(), "scratch".into()], 3, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
            .unwrap()
    }

    /// 2 layers, 2x2 grid: cell 3 points at "scratch", cell 1 at "hole", the rest at "normal".
    fn features() -> ImageFeatures {
        let cells = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let layer: Vec<f32> = cells.iter().flatten().copied().collect();
        ImageFeatures {
            global: vec![0.0, 0.0, 5.0],
            patches: [layer.clone(), layer].concat(),
            layers: 2,
            grid_h: 2,
            grid_w: 2,
            dim: 3,
        }
    }

    #[test]
    fn image_score_and_type_follow_the_global_feature() {
        let (score, probs) = image_scores(&features().global, &text(), 0.07);
        assert!(score > 0.99, "{score}");
        assert!(probs[2] > probs[1] && probs[2] > probs[0]);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn per_pixel_types_and_regions() {
        let post = DapoPostProcessor::new(PostprocessConfig { keep_class_maps: true, ..Default::default() });
        let d = post.process(&features(), &text(), OutputSize { width: 2, height: 2 }).unwrap();
        assert_eq!(d.image_type, "scratch");
        // At grid size the map is the grid itself: sum of 2 layers of P(defect).
        assert!(d.anomaly_map.at(0, 0) < 1e-3);
        assert!((d.anomaly_map.at(1, 0) - 2.0).abs() < 1e-3);
        assert_eq!(d.mask, vec![0, 255, 0, 255]);
        assert_eq!(d.type_map, vec![0, 1, 0, 2]);
        assert_eq!(d.regions.len(), 1, "the two cells touch diagonally");
        assert_eq!(d.class_maps.len(), 3);
        let total: f32 = (0..3).map(|k| d.class_maps[k].at(0, 1)).sum();
        assert!((total - 2.0).abs() < 1e-5, "class maps of a pixel sum to the number of layers");
    }

    #[test]
    fn reference_evidence_is_fused_on_the_grid_and_types_stay_textual() {
        use loupe_sdk::{Fusion, FusionRule, ReferenceEvidence, ScoringMode};
        let post = DapoPostProcessor::new(PostprocessConfig::default());
        let f = features();
        // The reference flags cell 2 (a "normal" text cell) and clears cell 1 (a "hole" text cell).
        let evidence = ReferenceEvidence::new(ScoringMode::Golden, vec![0.0, 0.0, 1.0, 0.1], 0.1, 3).unwrap();
        let request = PostprocessRequest {
            features: &f,
            output: OutputSize { width: 2, height: 2 },
            reference: Some(&evidence),
            fusion: Fusion { rule: FusionRule::Reference, text_weight: 0.5 },
            thresholds: Some(Thresholds { image: 0.6, pixel: 0.45 }),
        };
        let d = post.process_request(&request, &text()).unwrap();
        assert_eq!(d.evidence.mode, ScoringMode::Golden);
        assert_eq!(d.evidence.pool, 3);
        assert!((d.anomaly_map.at(0, 1) - 10.0 / 11.0).abs() < 1e-6, "cell 2: x = 10, x / (1 + x)");
        assert_eq!(d.mask, vec![0, 0, 255, 255], "cells 2 (0.91) and 3 (0.5) pass 0.45");
        assert_eq!(d.type_map[2], 1, "a cell with no defect text gets the most probable defect word");
        assert_eq!(d.type_map[3], 2, "cell 3 stays scratch");
        assert_eq!(d.map_range, 1.0);
        assert!((d.score - 10.0 / 11.0).abs() < 1e-6, "reference rule: the top cell");
        assert!(d.is_anomalous && d.normalized_score > 0.5);
        assert!((d.evidence.text_score - image_scores(&f.global, &text(), 0.07).0).abs() < 1e-7);
        let mean = PostprocessRequest { fusion: Fusion::default(), ..request };
        let d = post.process_request(&mean, &text()).unwrap();
        let text_cell = post.process(&f, &text(), OutputSize { width: 2, height: 2 }).unwrap().anomaly_map.at(1, 0);
        assert!((d.anomaly_map.at(1, 0) - 0.5 * text_cell / 2.0).abs() < 1e-6);
        let short = ReferenceEvidence::new(ScoringMode::Golden, vec![0.0; 3], 0.1, 3).unwrap();
        let bad = PostprocessRequest { reference: Some(&short), ..request };
        assert!(post.process_request(&bad, &text()).unwrap_err().to_string().contains("one value per grid cell"));
    }

    #[test]
    fn pixel_types_are_the_argmax_of_the_sampled_class_maps_everywhere() {
        let f = features();
        let grids = class_grids(&f, &text(), 0.07);
        for (w, h) in [(2, 2), (7, 5), (1, 9)] {
            let up = Bilinear::new(f.grid_w, f.grid_h, w, h);
            let types = pixel_types(&grids, &up, f.grid_w, f.grid_h);
            for (i, &t) in types.iter().enumerate() {
                let sampled: Vec<f32> = grids.iter().map(|g| up.sample(g, i % w, i / w)).collect();
                let best = (1..grids.len()).fold(1, |b, k| if sampled[k] > sampled[b] { k } else { b });
                assert_eq!(usize::from(t), best, "{w}x{h} pixel {i}: {sampled:?}");
            }
        }
    }

    #[test]
    fn mismatched_dimensions_are_refused() {
        let post = DapoPostProcessor::new(PostprocessConfig::default());
        let other = TextFeatures::new(vec!["hole".into()], 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        assert!(post.process(&features(), &other, OutputSize { width: 2, height: 2 }).is_err());
    }
}

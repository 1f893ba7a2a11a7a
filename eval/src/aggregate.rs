//! Collects each image's result into bounded-memory accumulators and turns them into the report's metrics.
//!
//! Per folder type (`good` and each defect folder) one [`PixelAccumulator`] holds the binned anomaly-map scores and
//! PRO weights, so the overall pixel metrics merge them all and a type's metrics merge `good` with that type. Image
//! scores are few and kept exactly. Defect types: the ground-truth type of a pixel is its folder's vocabulary word
//! inside the mask; the predicted type is the engine's type map; one-vs-rest scores are the per-class maps.
//!
//! The training-free baseline (`crate::baseline`), when on, gets its own accumulators ([`ScoreSets`]) and the
//! same anomaly metrics; it has no defect types. So does the text-only result of the same run when the engine
//! fused reference evidence (golden samples or mutual scoring), so a report shows what the references added.
//!
//! Images of defect folders without masks (image labels only) count for the image metrics only; the pixel metrics
//! that would need them are undefined, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use crate::baseline::LocalContrast;
use crate::metrics::histogram::BinningBounds;
use crate::metrics::pro::{MapAndMask, PixelAccumulator};
use crate::metrics::{ConfusionMatrix, MetricError, MetricResult, RankedCounts, TypeAccumulator, check_finite};
use loupe_sdk::{Detection, ScoreMap};
use serde::Serialize;

use crate::dataset::{GOOD, Sample, normalise_word};

/// Most points a plotted curve keeps (curves of a million pixels are thinned for the plots only).
const PLOT_POINTS: usize = 2000;

/// Value range of the baseline's maps (`LocalContrast::anomaly_map`).
pub const BASELINE_RANGE: (f32, f32) = (0.0, 1.0);

/// How pixel scores are binned and AUPRO integrated.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Settings {
    /// Score range of the anomaly and class maps (`[0, feature layers]` for DAPO).
    pub range: (f32, f32),
    /// Bins of the pixel accumulators.
    pub bins: usize,
    /// FPR limit of AUPRO.
    pub fpr_limit: f64,
}

/// One evaluated image, as written in `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct ImageRecord {
    /// The image file.
    pub image: String,
    /// Its folder type.
    pub folder: String,
    /// Image anomaly score.
    pub score: f32,
    /// The score on the scale where the image threshold is 0.5.
    pub normalized_score: f32,
    /// `score > image threshold`.
    pub anomalous: bool,
    /// `text`, `golden` or `mutual`.
    pub mode: &'static str,
    /// The text-only score of the same image, when reference evidence was fused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_score: Option<f32>,
    /// The reference evidence's normalised image score, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_score: Option<f32>,
    /// Most probable defect word.
    pub image_type: String,
    /// Width x height.
    pub size: [u32; 2],
    /// Ground-truth defect pixels (absent for image labels only).
    pub mask_pixels: Option<u64>,
    /// Predicted mask pixels.
    pub predicted_pixels: u64,
    /// Largest anomaly-map value.
    pub max_map: f32,
    /// Reading and decoding the image and its mask, milliseconds.
    pub read_ms: f64,
    /// Backbone, reference scoring and post-processing, milliseconds.
    pub inference_ms: f64,
    /// The baseline's image score (absent with `--no-baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_score: Option<f32>,
    /// Computing the baseline's map, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ms: Option<f64>,
}

/// The baseline's result on one image.
pub struct BaselineResult {
    /// Its anomaly map at the image's size.
    pub map: ScoreMap,
    /// Time to compute it, milliseconds.
    pub ms: f64,
}

/// An image that could not be evaluated.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The image file.
    pub image: String,
    /// Its folder type.
    pub folder: String,
    /// What failed: `read image`, `read mask`, `inference` or `metrics`.
    pub stage: &'static str,
    /// The error.
    pub error: String,
}

/// The anomaly-detection metrics of a set of images (all, or `good` plus one defect type).
#[derive(Clone, Debug, Default, Serialize)]
pub struct MetricSet {
    /// Images in the set.
    pub images: usize,
    /// Defect-free images among them.
    pub good: usize,
    /// Defective images among them.
    pub defective: usize,
    /// Image AUROC.
    pub image_auroc: Option<f64>,
    /// Image average precision.
    pub image_ap: Option<f64>,
    /// Image F1-max.
    pub image_f1_max: Option<f64>,
    /// Image score threshold reaching F1-max (images scoring `>=` it are anomalous).
    pub image_f1_threshold: Option<f64>,
    /// Pixel AUROC.
    pub pixel_auroc: Option<f64>,
    /// Pixel average precision.
    pub pixel_ap: Option<f64>,
    /// Pixel F1-max.
    pub pixel_f1_max: Option<f64>,
    /// Anomaly-map threshold reaching pixel F1-max (the lower edge of a bin).
    pub pixel_f1_threshold: Option<f64>,
    /// AUPRO up to the FPR limit, divided by it.
    pub aupro: Option<f64>,
    /// Pixels of the set.
    pub pixels: u64,
    /// Ground-truth regions of the set.
    pub regions: u64,
    /// Bounds on the binning error of the pixel metrics.
    pub bounds: PixelBounds,
    /// Pixel scores outside the binned range (clamped to its ends).
    pub clamped_pixels: u64,
    /// Why a metric above is null.
    pub undefined: BTreeMap<String, String>,
}

/// Bounds on `|binned - exact|` of the pixel metrics.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PixelBounds {
    /// Pixel AUROC.
    pub pixel_auroc: f64,
    /// Pixel AP.
    pub pixel_ap: f64,
    /// AUPRO.
    pub aupro: f64,
}

/// One defect word's type metrics.
#[derive(Clone, Debug, Serialize)]
pub struct TypeRow {
    /// The vocabulary word.
    pub word: String,
    /// The folder it stands for.
    pub folder: String,
    /// Defective images of that folder evaluated.
    pub images: usize,
    /// Ground-truth pixels.
    pub gt_pixels: u64,
    /// One-vs-rest pixel AUROC of the word's class map.
    pub ovr_auroc: Option<f64>,
    /// One-vs-rest pixel AP of the word's class map.
    pub ovr_ap: Option<f64>,
    /// F1 of the predicted type map.
    pub f1: Option<f64>,
    /// IoU of the predicted type map.
    pub iou: Option<f64>,
    /// Share of the type's ground-truth pixels the type map labels with this word.
    pub typed_right: Option<f64>,
    /// Fraction of the folder's images whose most probable word is this one.
    pub image_recall: Option<f64>,
    /// Binning bounds of the one-vs-rest metrics.
    pub ovr_bounds: BinningBounds,
}

/// A confusion matrix with its labels.
#[derive(Clone, Debug, Serialize)]
pub struct LabelledMatrix {
    /// Row labels (ground truth).
    pub rows: Vec<String>,
    /// Column labels (prediction).
    pub columns: Vec<String>,
    /// Counts, row-major.
    pub counts: Vec<Vec<u64>>,
}

/// Defect-type metrics.
#[derive(Clone, Debug, Serialize)]
pub struct MultiType {
    /// The defect words (type ids 1..).
    pub vocabulary: Vec<String>,
    /// Folder type -> word (null: not in the vocabulary; its images count for anomaly metrics only).
    pub mapping: BTreeMap<String, Option<String>>,
    /// Mean one-vs-rest pixel AUROC over the words with ground-truth pixels.
    pub macro_ovr_auroc: Option<f64>,
    /// Mean one-vs-rest pixel AP over those words.
    pub macro_ovr_ap: Option<f64>,
    /// Mean F1 of the predicted type map over those words.
    pub macro_f1: Option<f64>,
    /// Per word with ground-truth pixels.
    pub per_type: Vec<TypeRow>,
    /// Fraction of defective images (of mapped folders) whose most probable word is their folder's.
    pub image_type_accuracy: Option<f64>,
    /// Every image: folder (good or word) against the decision (normal when not anomalous, else the word).
    pub image_confusion: LabelledMatrix,
    /// Pixels: ground-truth type against predicted type map.
    pub pixel_confusion: LabelledMatrix,
    /// Why a metric above is null.
    pub undefined: BTreeMap<String, String>,
}

/// Curves for the plots, thinned to at most [`PLOT_POINTS`] points.
#[derive(Clone, Debug, Default)]
pub struct Curves {
    /// Image ROC `(FPR, TPR)`.
    pub image_roc: Option<Vec<(f64, f64)>>,
    /// Image precision-recall `(recall, precision)`.
    pub image_pr: Option<Vec<(f64, f64)>>,
    /// Pixel ROC.
    pub pixel_roc: Option<Vec<(f64, f64)>>,
    /// Pixel precision-recall.
    pub pixel_pr: Option<Vec<(f64, f64)>>,
    /// PRO curve `(FPR, PRO)` up to the FPR limit.
    pub pro: Option<Vec<(f64, f64)>>,
}

/// One scorer's anomaly metrics: all images, each folder with `good`, and the overall curves.
pub struct Binary {
    /// All images.
    pub overall: MetricSet,
    /// `good` + each defect folder.
    pub per_folder: Vec<(String, MetricSet)>,
    /// Overall curves.
    pub curves: Curves,
}

/// Everything computed at the end.
pub struct Summary {
    /// All images.
    pub overall: MetricSet,
    /// `good` + each defect folder.
    pub per_folder: Vec<(String, MetricSet)>,
    /// Defect-type metrics.
    pub multitype: MultiType,
    /// Overall curves.
    pub curves: Curves,
    /// The baseline's anomaly metrics, when it ran.
    pub baseline: Option<Binary>,
    /// The text-only anomaly metrics of the same run, when reference evidence was fused.
    pub text_only: Option<Binary>,
}

/// One scorer's image scores and per-folder pixel accumulators (the engine's, or the baseline's).
pub struct ScoreSets {
    settings: Settings,
    pixels: BTreeMap<String, PixelAccumulator>,
    /// Folders whose images have no masks.
    image_only: BTreeSet<String>,
    /// `(folder, image score)` of every evaluated image, in order.
    images: Vec<(String, f32)>,
}

/// One image's results and ground truth, for [`Aggregator::add`].
pub struct Observation<'a> {
    /// The image.
    pub sample: &'a Sample,
    /// The engine's detection (fused with reference evidence, if any).
    pub detection: &'a Detection,
    /// The text-only detection of the same image, when `detection` fused reference evidence.
    pub text_only: Option<&'a Detection>,
    /// The baseline's map, when the baseline is on.
    pub baseline: Option<&'a BaselineResult>,
    /// The ground-truth mask (`None`: image label only).
    pub mask: Option<&'a [bool]>,
    /// Width and height.
    pub size: (u32, u32),
    /// Reading and inference times, milliseconds.
    pub timing: (f64, f64),
}

/// The running state of an evaluation.
pub struct Aggregator {
    vocabulary: Vec<String>,
    /// Folder -> type id (0 for good; None when the folder is not a vocabulary word).
    type_of_folder: BTreeMap<String, Option<usize>>,
    types: TypeAccumulator,
    image_argmax: ConfusionMatrix,
    image_decision: ConfusionMatrix,
    model: ScoreSets,
    baseline: Option<ScoreSets>,
    text_only: Option<ScoreSets>,
    /// Evaluated images in order.
    pub records: Vec<ImageRecord>,
    /// Images that could not be evaluated.
    pub failures: Vec<Failure>,
}

impl Aggregator {
    /// An empty aggregator for these folders (`image_only`: those without masks) and vocabulary; `baseline`:
    /// also accumulate the baseline's maps (values in [`BASELINE_RANGE`], same bins and FPR limit as the
    /// model's); `text_only`: also the text-only maps of the same run, binned with these settings.
    pub fn new(
        settings: Settings,
        vocabulary: &[String],
        folders: (&[String], &[String]),
        baseline: bool,
        text_only: Option<Settings>,
    ) -> MetricResult<Self> {
        let (defect_folders, image_only) = folders;
        let (lo, hi) = settings.range;
        let mut type_of_folder = BTreeMap::new();
        type_of_folder.insert(GOOD.to_string(), Some(0));
        for folder in defect_folders {
            let word = normalise_word(folder);
            let id = vocabulary.iter().position(|w| normalise_word(w) == word).map(|i| i + 1);
            type_of_folder.insert(folder.clone(), id);
        }
        let classes = vocabulary.len() + 1;
        let baseline_settings = Settings { range: BASELINE_RANGE, ..settings };
        Ok(Self {
            vocabulary: vocabulary.to_vec(),
            type_of_folder,
            types: TypeAccumulator::new(vocabulary.len(), lo, hi, settings.bins)?,
            image_argmax: ConfusionMatrix::new(classes),
            image_decision: ConfusionMatrix::new(classes),
            model: ScoreSets::new(settings, defect_folders, image_only)?,
            baseline: if baseline {
                Some(ScoreSets::new(baseline_settings, defect_folders, image_only)?)
            } else {
                None
            },
            text_only: text_only.map(|t| ScoreSets::new(t, defect_folders, image_only)).transpose()?,
            records: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// The vocabulary word a folder maps to, if any.
    pub fn word_of(&self, folder: &str) -> Option<&str> {
        match self.type_of_folder.get(folder) {
            Some(Some(id)) if *id > 0 => Some(self.vocabulary[id - 1].as_str()),
            _ => None,
        }
    }

    /// Adds one image's detection, text-only detection and baseline map (when on) and ground truth. Everything is
    /// checked before anything is added, so a failing image leaves the metrics as they were.
    pub fn add(&mut self, o: &Observation<'_>) -> Result<(), String> {
        let (sample, d) = (o.sample, o.detection);
        let (w, h) = (o.size.0 as usize, o.size.1 as usize);
        let map = &d.anomaly_map;
        if let Some(mask) = o.mask
            && mask.len() != w * h
        {
            return Err(format!("mask of {} pixels, expected the image's {w}x{h}", mask.len()));
        }
        self.model.check("anomaly map", &sample.folder, map, (w, h))?;
        match (&self.baseline, o.baseline) {
            (Some(sets), Some(b)) => sets.check("baseline map", &sample.folder, &b.map, (w, h))?,
            (None, None) => {}
            (Some(_), None) => return Err("internal: the baseline is on but was not computed".into()),
            (None, Some(_)) => return Err("internal: a baseline map was given with the baseline off".into()),
        }
        match (&self.text_only, o.text_only) {
            (Some(sets), Some(t)) => sets.check("text-only anomaly map", &sample.folder, &t.anomaly_map, (w, h))?,
            (None, None) => {}
            _ => return Err("internal: text-only results given without a text-only comparison, or missing".into()),
        }
        let k = self.vocabulary.len();
        if d.class_maps.len() != k + 1 || d.class_maps.iter().any(|c| c.data.len() != w * h) {
            return Err(format!(
                "the post-processor returned {} class maps, expected {} of {w}x{h} (postprocess.keep_class_maps)",
                d.class_maps.len(),
                k + 1
            ));
        }
        if d.type_map.len() != w * h {
            return Err(format!("type map of {} pixels, expected {}", d.type_map.len(), w * h));
        }
        if let Some(bad) = d.type_map.iter().find(|&&t| usize::from(t) > k) {
            return Err(format!("type map holds class {bad}, expected 0..={k}"));
        }
        for c in &d.class_maps[1..] {
            check_finite("class map", &c.data).map_err(|e| e.to_string())?;
        }
        let folder_id = self.type_of_folder.get(&sample.folder).copied().flatten();
        let image_type_id = self.vocabulary.iter().position(|v| *v == d.image_type).map_or(0, |i| i + 1);
        let view = |scores| masked(scores, o.mask, w, h);
        self.model.add(sample, view(&map.data).as_ref(), d.score)?;
        let baseline_score = match (&mut self.baseline, o.baseline) {
            (Some(sets), Some(b)) => {
                let score = LocalContrast::image_score(&b.map);
                sets.add(sample, view(&b.map.data).as_ref(), score)?;
                Some(score)
            }
            _ => None,
        };
        if let (Some(sets), Some(t)) = (&mut self.text_only, o.text_only) {
            sets.add(sample, view(&t.anomaly_map.data).as_ref(), t.score)?;
        }
        if let Some(t) = folder_id {
            if let Some(mask) = o.mask {
                let truth: Vec<u16> = mask.iter().map(|&m| if m { t as u16 } else { 0 }).collect();
                let scores: Vec<&[f32]> = d.class_maps[1..].iter().map(|c| c.data.as_slice()).collect();
                self.types
                    .add_image(&sample.path.display().to_string(), &truth, &d.type_map, &scores)
                    .map_err(|e| e.to_string())?;
            }
            if t > 0 {
                self.image_argmax.add(t, image_type_id).map_err(|e| e.to_string())?;
            }
            let decided = if d.is_anomalous { image_type_id } else { 0 };
            self.image_decision.add(t, decided).map_err(|e| e.to_string())?;
        }
        self.records.push(ImageRecord {
            image: sample.path.display().to_string(),
            folder: sample.folder.clone(),
            score: d.score,
            normalized_score: d.normalized_score,
            anomalous: d.is_anomalous,
            mode: d.evidence.mode.name(),
            text_score: o.text_only.map(|t| t.score),
            reference_score: d.evidence.reference_score,
            image_type: d.image_type.clone(),
            size: [o.size.0, o.size.1],
            mask_pixels: o.mask.map(|m| m.iter().filter(|&&m| m).count() as u64),
            predicted_pixels: d.mask.iter().filter(|&&m| m != 0).count() as u64,
            max_map: map.max(),
            read_ms: o.timing.0,
            inference_ms: o.timing.1,
            baseline_score,
            baseline_ms: o.baseline.map(|b| b.ms),
        });
        Ok(())
    }

    /// Records an image that could not be evaluated.
    pub fn fail(&mut self, sample: &Sample, stage: &'static str, error: String) {
        self.failures.push(Failure {
            image: sample.path.display().to_string(),
            folder: sample.folder.clone(),
            stage,
            error,
        });
    }

    /// Computes every metric.
    pub fn summary(&self) -> Summary {
        let Binary { overall, per_folder, curves } = self.model.summary();
        let baseline = self.baseline.as_ref().map(ScoreSets::summary);
        let text_only = self.text_only.as_ref().map(ScoreSets::summary);
        Summary { overall, per_folder, multitype: self.multitype(), curves, baseline, text_only }
    }
}

impl ScoreSets {
    /// Empty accumulators for `good` and these folders (`image_only`: those without masks).
    fn new(settings: Settings, defect_folders: &[String], image_only: &[String]) -> MetricResult<Self> {
        let (lo, hi) = settings.range;
        let mut pixels = BTreeMap::new();
        for folder in std::iter::once(GOOD).chain(defect_folders.iter().map(String::as_str)) {
            pixels.insert(folder.to_string(), PixelAccumulator::new(lo, hi, settings.bins)?);
        }
        Ok(Self { settings, pixels, image_only: image_only.iter().cloned().collect(), images: Vec::new() })
    }

    /// Checks a map against the image's size and the folders, before anything of the image is added anywhere.
    fn check(&self, what: &str, folder: &str, map: &ScoreMap, (w, h): (usize, usize)) -> Result<(), String> {
        if (map.width, map.height) != (w, h) || map.data.len() != w * h {
            return Err(format!("{what} {}x{}, expected the image's and mask's size {w}x{h}", map.width, map.height));
        }
        if !self.pixels.contains_key(folder) {
            return Err(format!("unknown folder {folder}"));
        }
        check_finite(what, &map.data).map_err(|e| e.to_string())
    }

    /// Adds one image's map and mask (`None`: image label only; checked by [`ScoreSets::check`]) and score.
    fn add(&mut self, sample: &Sample, view: Option<&MapAndMask<'_>>, score: f32) -> Result<(), String> {
        let acc = self.pixels.get_mut(&sample.folder).ok_or_else(|| format!("unknown folder {}", sample.folder))?;
        if let Some(view) = view {
            acc.add_image(&sample.path.display().to_string(), view).map_err(|e| e.to_string())?;
        }
        self.images.push((sample.folder.clone(), score));
        Ok(())
    }

    /// Why pixel metrics over `folders` are undefined, if some of them have no masks.
    fn without_masks<'a>(&self, folders: impl Iterator<Item = &'a String>) -> Option<String> {
        let missing: Vec<&str> = folders.filter(|f| self.image_only.contains(*f)).map(String::as_str).collect();
        (!missing.is_empty()).then(|| {
            format!(
                "no ground-truth masks for {} (image labels only: ground_truth/<type>/ is missing)",
                missing.join(", ")
            )
        })
    }

    /// The anomaly metrics of everything added: all images, and `good` with each defect folder.
    fn summary(&self) -> Binary {
        let all: Vec<&(String, f32)> = self.images.iter().collect();
        let pixels = match self.without_masks(self.pixels.keys()) {
            Some(reason) => Err(MetricError::Undefined { what: "pixel metrics".into(), reason }),
            None => self.merged(|_| true),
        };
        let (overall, curves) = self.metric_set(&all, &pixels, true);
        let mut per_folder = Vec::new();
        for folder in self.pixels.keys().filter(|f| *f != GOOD) {
            let subset: Vec<&(String, f32)> = self.images.iter().filter(|(f, _)| f == folder || f == GOOD).collect();
            let pixels = match self.without_masks(std::iter::once(folder)) {
                Some(reason) => Err(MetricError::Undefined { what: "pixel metrics".into(), reason }),
                None => self.merged(|f| f == GOOD || f == folder),
            };
            per_folder.push((folder.clone(), self.metric_set(&subset, &pixels, false).0));
        }
        Binary { overall, per_folder, curves }
    }

    /// The pixel accumulators of the folders `keep` selects, merged (all share range and bins, from `new`).
    fn merged(&self, keep: impl Fn(&str) -> bool) -> MetricResult<PixelAccumulator> {
        let (lo, hi) = self.settings.range;
        let mut out = PixelAccumulator::new(lo, hi, self.settings.bins)?;
        for (_, acc) in self.pixels.iter().filter(|(f, _)| keep(f)) {
            out.merge(acc)?;
        }
        Ok(out)
    }

    /// The metrics of `images` (`(folder, image score)`) and their merged pixels; `curves`: also the curves.
    fn metric_set(
        &self,
        images: &[&(String, f32)],
        pixels: &MetricResult<PixelAccumulator>,
        curves: bool,
    ) -> (MetricSet, Curves) {
        let mut m = MetricSet {
            images: images.len(),
            good: images.iter().filter(|(f, _)| f == GOOD).count(),
            ..Default::default()
        };
        m.defective = m.images - m.good;
        let mut c = Curves::default();
        let scores: Vec<f32> = images.iter().map(|(_, s)| *s).collect();
        let labels: Vec<bool> = images.iter().map(|(f, _)| f != GOOD).collect();
        let und = &mut m.undefined;
        match RankedCounts::from_scores(&scores, &labels) {
            Ok(r) => {
                m.image_auroc = put(und, "image_auroc", r.roc_auc());
                m.image_ap = put(und, "image_ap", r.average_precision());
                let f1 = r.f1_max();
                m.image_f1_threshold = f1.as_ref().ok().map(|f| f.threshold);
                m.image_f1_max = put(und, "image_f1_max", f1.map(|f| f.f1));
                if curves {
                    c.image_roc = r.roc_curve().ok().map(thin);
                    c.image_pr = r.pr_curve().ok().map(thin);
                }
            }
            Err(e) => {
                for key in ["image_auroc", "image_ap", "image_f1_max"] {
                    und.insert(key.into(), e.to_string());
                }
            }
        }
        let pixels = match pixels {
            Ok(p) => p,
            Err(e) => {
                for key in ["pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"] {
                    m.undefined.insert(key.into(), e.to_string());
                }
                return (m, c);
            }
        };
        let binned = pixels.scores();
        m.pixels = binned.positives() + binned.negatives();
        m.regions = pixels.regions();
        m.clamped_pixels = binned.clamped();
        match binned.ranked_counts() {
            Ok(r) => {
                m.pixel_auroc = put(und, "pixel_auroc", r.roc_auc());
                m.pixel_ap = put(und, "pixel_ap", r.average_precision());
                let f1 = r.f1_max();
                m.pixel_f1_threshold = f1.as_ref().ok().map(|f| f.threshold);
                m.pixel_f1_max = put(und, "pixel_f1_max", f1.map(|f| f.f1));
                if curves {
                    c.pixel_roc = r.roc_curve().ok().map(thin);
                    c.pixel_pr = r.pr_curve().ok().map(thin);
                }
            }
            Err(e) => {
                for key in ["pixel_auroc", "pixel_ap", "pixel_f1_max"] {
                    und.insert(key.into(), e.to_string());
                }
            }
        }
        let limit = self.settings.fpr_limit;
        let pro = pixels.pro_curve();
        m.aupro = put(und, "aupro", pro.as_ref().map_err(Clone::clone).and_then(|p| p.au_pro(limit)));
        if curves {
            c.pro = pro.ok().map(|p| thin(p.points().take_while(|&(x, _)| x <= limit).collect()));
        }
        let b = binned.error_bounds();
        m.bounds = PixelBounds {
            pixel_auroc: b.auroc,
            pixel_ap: b.average_precision,
            aupro: pixels.aupro_error_bound(limit).unwrap_or(0.0),
        };
        (m, c)
    }
}

impl Aggregator {
    fn multitype(&self) -> MultiType {
        let mut undefined = BTreeMap::new();
        let summary = self.types.summary();
        let folder_of = |id: usize| {
            self.type_of_folder.iter().find(|(_, t)| **t == Some(id)).map(|(f, _)| f.clone()).unwrap_or_default()
        };
        let per_type = summary
            .per_type
            .iter()
            .map(|t| {
                let word = self.vocabulary[t.type_id - 1].clone();
                let images = self.image_argmax.support(t.type_id);
                let mut und = BTreeMap::new();
                let row = TypeRow {
                    folder: folder_of(t.type_id),
                    images: images as usize,
                    gt_pixels: t.pixels,
                    ovr_auroc: put(&mut und, "ovr_auroc", t.ovr_auroc.clone()),
                    ovr_ap: put(&mut und, "ovr_ap", t.ovr_ap.clone()),
                    f1: put(&mut und, "f1", t.f1.clone()),
                    iou: put(&mut und, "iou", t.iou.clone()),
                    typed_right: put(&mut und, "typed_right", t.typed_right.clone()),
                    image_recall: put(&mut und, "image_recall", self.image_argmax.recall(t.type_id)),
                    ovr_bounds: t.bounds,
                    word: word.clone(),
                };
                for (k, v) in und {
                    undefined.insert(format!("{word}.{k}"), v);
                }
                row
            })
            .collect();
        let mut names = vec![GOOD.to_string()];
        names.extend(self.vocabulary.iter().cloned());
        let mut predicted = vec!["normal".to_string()];
        predicted.extend(self.vocabulary.iter().cloned());
        MultiType {
            vocabulary: self.vocabulary.clone(),
            mapping: self
                .type_of_folder
                .keys()
                .filter(|f| *f != GOOD)
                .map(|f| (f.clone(), self.word_of(f).map(str::to_string)))
                .collect(),
            macro_ovr_auroc: put(&mut undefined, "macro_ovr_auroc", summary.macro_ovr_auroc),
            macro_ovr_ap: put(&mut undefined, "macro_ovr_ap", summary.macro_ovr_ap),
            macro_f1: put(&mut undefined, "macro_f1", summary.macro_f1),
            per_type,
            image_type_accuracy: put(&mut undefined, "image_type_accuracy", self.image_argmax.accuracy()),
            image_confusion: LabelledMatrix {
                rows: names.clone(),
                columns: predicted.clone(),
                counts: self.image_decision.rows(),
            },
            pixel_confusion: LabelledMatrix {
                rows: std::iter::once("normal".to_string()).chain(self.vocabulary.iter().cloned()).collect(),
                columns: predicted,
                counts: self.types.confusion().rows(),
            },
            undefined,
        }
    }
}

/// A map with its mask, when the image has one.
fn masked<'a>(scores: &'a [f32], mask: Option<&'a [bool]>, width: usize, height: usize) -> Option<MapAndMask<'a>> {
    mask.map(|mask| MapAndMask { width, height, scores, mask })
}

/// A metric's value, or its reason recorded under `key`.
fn put(undefined: &mut BTreeMap<String, String>, key: &str, r: MetricResult<f64>) -> Option<f64> {
    match r {
        Ok(v) if v.is_finite() => Some(v),
        Ok(v) => {
            undefined.insert(key.into(), format!("not a finite number ({v})"));
            None
        }
        Err(e) => {
            undefined.insert(key.into(), e.to_string());
            None
        }
    }
}

/// Keeps at most about [`PLOT_POINTS`] points of a monotone curve: a point is kept when it moved far enough
/// from the last kept one; the last point always.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= PLOT_POINTS {
        return points;
    }
    let step = 2.0 / PLOT_POINTS as f64;
    let mut out = Vec::with_capacity(PLOT_POINTS + 2);
    let mut last = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for (i, &p) in points.iter().enumerate() {
        if i + 1 == points.len() || (p.0 - last.0).abs() + (p.1 - last.1).abs() >= step {
            out.push(p);
            last = p;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_ends_and_bounds_the_count() {
        let pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64 / 99_999.0, (i as f64 / 99_999.0).sqrt())).collect();
        let t = thin(pts.clone());
        assert!(t.len() <= PLOT_POINTS + 1, "{}", t.len());
        assert_eq!(t.first(), pts.first());
        assert_eq!(t.last(), pts.last());
    }
}

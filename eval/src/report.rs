//! `report.json` (everything, machine-readable) and `report.md` (tables and plots for people).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::baseline::LocalContrast;
use loupe_sdk::ComponentInfo;
use serde::Serialize;

use crate::aggregate::{
    BASELINE_RANGE, Binary, Failure, ImageRecord, LabelledMatrix, MetricSet, MultiType, Settings, Summary,
};

/// Where the metric definitions are documented.
pub const DEFINITIONS: &str = "docs/eval.md";

/// The data set part of the report.
#[derive(Serialize)]
pub struct DatasetInfo {
    /// The folder given.
    pub path: String,
    /// `--category`, if any.
    pub category: Option<String>,
    /// `mvtec` or `flat`.
    pub layout: &'static str,
    /// The folder of the type folders.
    pub images_dir: String,
    /// The ground-truth folder.
    pub ground_truth_dir: String,
    /// `--include` globs.
    pub include: Vec<String>,
    /// `--exclude` globs.
    pub exclude: Vec<String>,
    /// Images selected (evaluated + failed).
    pub images: usize,
    /// Images left out by the filters.
    pub filtered_out: usize,
    /// Images per folder type.
    pub by_folder: BTreeMap<String, usize>,
}

/// Timing over the evaluated images.
#[derive(Serialize)]
pub struct Timing {
    /// Wall time of the whole run, seconds (model loading included).
    pub total_s: f64,
    /// Building the engine (model, prompt bank, text matrix), seconds.
    pub engine_s: f64,
    /// Mean `inspect_one` time per image, ms.
    pub inference_mean_ms: Option<f64>,
    /// Median, ms.
    pub inference_median_ms: Option<f64>,
    /// 95th percentile, ms.
    pub inference_p95_ms: Option<f64>,
    /// Mean read + decode time of image and mask, ms.
    pub read_mean_ms: Option<f64>,
    /// Evaluated images per second of the loop.
    pub images_per_s: Option<f64>,
    /// Mean time of the baseline's map per image, ms (absent with `--no-baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_mean_ms: Option<f64>,
}

/// The training-free baseline: what it computes, and the same anomaly metrics as the model's (it has no types).
#[derive(Serialize)]
pub struct BaselineInfo<'a> {
    /// Its name.
    pub method: &'static str,
    /// What it computes, in one line (full definition: `docs/eval.md`, Baseline).
    pub description: &'static str,
    /// Side of the local-mean window, pixels.
    pub window: usize,
    /// Side of the smoothing square, pixels.
    pub smoothing: usize,
    /// Range of its maps, over which its pixel scores are binned.
    pub range: (f32, f32),
    /// All images.
    pub overall: &'a MetricSet,
    /// `good` + each defect folder.
    pub per_type: BTreeMap<String, &'a MetricSet>,
}

impl<'a> BaselineInfo<'a> {
    /// The report part of a baseline and its metrics.
    pub fn new(lc: &LocalContrast, metrics: &'a Binary) -> Self {
        Self {
            method: "local contrast",
            description: "|gray - local mean| / the image's median absolute deviation, box-smoothed, mapped by \
                          z / (1 + z); image score: the map's maximum",
            window: lc.window(),
            smoothing: lc.smoothing(),
            range: BASELINE_RANGE,
            overall: &metrics.overall,
            per_type: metrics.per_folder.iter().map(|(f, m)| (f.clone(), m)).collect(),
        }
    }
}

/// How the images were scored: text only, golden samples or mutual scoring, with its settings.
#[derive(Clone, Debug, Serialize)]
pub struct ModeInfo {
    /// `text`, `golden` or `mutual`.
    pub mode: &'static str,
    /// One line for people ("16 golden samples of ..., coreset 1, fusion mean (text weight 0.5)").
    pub description: String,
    /// The settings, for machines (references, shots, window, fusion ...).
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The text-only metrics of the same run, beside a fused mode.
#[derive(Serialize)]
pub struct TextOnlyInfo<'a> {
    /// All images.
    pub overall: &'a MetricSet,
    /// `good` + each defect folder.
    pub per_type: BTreeMap<String, &'a MetricSet>,
}

impl<'a> TextOnlyInfo<'a> {
    /// The report part of the text-only metrics.
    pub fn new(metrics: &'a Binary) -> Self {
        Self { overall: &metrics.overall, per_type: metrics.per_folder.iter().map(|(f, m)| (f.clone(), m)).collect() }
    }
}

/// The whole `report.json`.
#[derive(Serialize)]
pub struct Report<'a> {
    /// Loupe version that wrote it.
    pub loupe_version: &'static str,
    /// Where the metrics are defined.
    pub definitions: &'static str,
    /// The data set.
    pub dataset: DatasetInfo,
    /// How the images were scored.
    pub mode: ModeInfo,
    /// Backbone, prompt bank and post-processor identities.
    pub components: BTreeMap<&'static str, ComponentInfo>,
    /// Thresholds of the engine (echoed: they decide predicted masks, types and the image confusion matrix).
    pub thresholds: BTreeMap<&'static str, f32>,
    /// Binning and AUPRO settings.
    pub settings: Settings,
    /// Evaluated and failed counts.
    pub counts: BTreeMap<&'static str, usize>,
    /// All images together.
    pub overall: &'a MetricSet,
    /// `good` + each defect folder.
    pub per_type: BTreeMap<String, &'a MetricSet>,
    /// Defect-type metrics.
    pub multitype: &'a MultiType,
    /// The training-free baseline beside the model (absent with `--no-baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInfo<'a>>,
    /// The text-only metrics of the same run (present when reference evidence was fused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_only: Option<TextOnlyInfo<'a>>,
    /// Timing.
    pub timing: Timing,
    /// Files written, relative to the output folder.
    pub outputs: Vec<String>,
    /// Images that could not be evaluated.
    pub failures: &'a [Failure],
    /// Every evaluated image.
    pub images: &'a [ImageRecord],
}

impl Timing {
    /// Timing statistics of the records.
    pub fn of(records: &[ImageRecord], total_s: f64, engine_s: f64, loop_s: f64) -> Self {
        let mut inf: Vec<f64> = records.iter().map(|r| r.inference_ms).collect();
        inf.sort_by(f64::total_cmp);
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let quantile = |q: f64| (!inf.is_empty()).then(|| inf[((inf.len() - 1) as f64 * q).round() as usize]);
        let read: Vec<f64> = records.iter().map(|r| r.read_ms).collect();
        let baseline: Vec<f64> = records.iter().filter_map(|r| r.baseline_ms).collect();
        Self {
            total_s,
            engine_s,
            inference_mean_ms: mean(&inf),
            inference_median_ms: quantile(0.5),
            inference_p95_ms: quantile(0.95),
            read_mean_ms: mean(&read),
            images_per_s: (loop_s > 0.0 && !records.is_empty()).then(|| records.len() as f64 / loop_s),
            baseline_mean_ms: mean(&baseline),
        }
    }
}

/// ` (include `a,b`, exclude `c`)` for the filters given, empty without filters.
fn filters(include: &[String], exclude: &[String]) -> String {
    let parts: Vec<String> = [("include", include), ("exclude", exclude)]
        .iter()
        .filter(|(_, globs)| !globs.is_empty())
        .map(|(what, globs)| format!("{what} `{}`", globs.join(",")))
        .collect();
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} ms"))
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| " --- ").collect::<Vec<_>>().join("|"));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

fn matrix(out: &mut String, m: &LabelledMatrix, corner: &str) {
    let mut header = vec![corner];
    header.extend(m.columns.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = m
        .rows
        .iter()
        .zip(&m.counts)
        .map(|(name, counts)| std::iter::once(name.clone()).chain(counts.iter().map(u64::to_string)).collect())
        .collect();
    table(out, &header, &rows);
}

/// The model's anomaly metrics beside other scorers of the same images (text only, the baseline), overall and
/// per type: one column pair or triple per metric.
fn comparison(s: &mut String, model_name: &str, model: &Summary, others: &[(&str, &Binary)], limit: f64) {
    let metrics = ["image AUROC", "image AP", "pixel AUROC", "pixel AP", &format!("AUPRO@{limit}")];
    let first: Vec<String> = metrics.iter().map(|m| format!("{m}, {model_name}")).collect();
    let mut header = vec!["set"];
    for m in &first {
        header.push(m.as_str());
        header.extend(others.iter().map(|(name, _)| *name));
    }
    let pick = |m: &MetricSet| [m.image_auroc, m.image_ap, m.pixel_auroc, m.pixel_ap, m.aupro];
    let row = |name: &str, folder: Option<&str>, m: &MetricSet| {
        let mine = pick(m);
        let theirs: Vec<[Option<f64>; 5]> = others
            .iter()
            .map(|(_, b)| match folder {
                None => pick(&b.overall),
                Some(f) => b.per_folder.iter().find(|(g, _)| g == f).map_or([None; 5], |(_, m)| pick(m)),
            })
            .collect();
        let mut cells = vec![name.to_string()];
        for i in 0..5 {
            cells.push(num(mine[i]));
            cells.extend(theirs.iter().map(|t| num(t[i])));
        }
        cells
    };
    let mut rows = vec![row("**all**", None, &model.overall)];
    for (folder, m) in &model.per_folder {
        rows.push(row(folder, Some(folder), m));
    }
    table(s, &header, &rows);
    let mut notes = Vec::new();
    for (name, b) in others {
        notes.extend(b.overall.undefined.iter().map(|(k, v)| format!("{name}, all: {k} undefined: {v}")));
        for (f, m) in &b.per_folder {
            notes.extend(m.undefined.iter().map(|(k, v)| format!("{name}, {f}: {k} undefined: {v}")));
        }
    }
    for n in &notes {
        let _ = writeln!(s, "- {n}");
    }
    if !notes.is_empty() {
        s.push('\n');
    }
}

/// The Markdown report.
pub fn markdown(r: &Report<'_>, summary: &Summary, plots: &[(String, String)]) -> String {
    let mut s = String::new();
    let d = &r.dataset;
    let _ = writeln!(s, "# Loupe evaluation\n");
    let _ = writeln!(
        s,
        "- Data set: `{}`{} ({} layout); {} images selected{}, {} left out by the filters",
        d.path,
        d.category.as_ref().map(|c| format!(", category `{c}`")).unwrap_or_default(),
        d.layout,
        d.images,
        filters(&d.include, &d.exclude),
        d.filtered_out
    );
    let by_folder: Vec<String> = d.by_folder.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "- Images per folder: {}", by_folder.join(", "));
    let _ = writeln!(
        s,
        "- Evaluated: {}, failed: {}{}",
        r.counts.get("evaluated").copied().unwrap_or(0),
        r.counts.get("failed").copied().unwrap_or(0),
        if r.failures.is_empty() { "" } else { " (listed at the end)" }
    );
    for (role, c) in &r.components {
        let _ = writeln!(
            s,
            "- {role}: `{}` ({}{})",
            c.name,
            c.kind,
            if c.id.is_empty() { String::new() } else { format!(", id {}", c.id) }
        );
    }
    let _ = writeln!(s, "- Scoring: **{}**: {}", r.mode.mode, r.mode.description);
    let _ = writeln!(s, "- Vocabulary: {}", r.multitype.vocabulary.join(", "));
    let thresholds: Vec<String> = r.thresholds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        s,
        "- Thresholds: {}; anomaly-map range [{}, {}], {} pixel bins, AUPRO to FPR {}",
        thresholds.join(", "),
        r.settings.range.0,
        r.settings.range.1,
        r.settings.bins,
        r.settings.fpr_limit
    );
    let t = &r.timing;
    let _ = writeln!(
        s,
        "- Time: {:.1} s in all ({:.1} s building the engine); inference per image mean {}, median {}, p95 {}; \
         reading {} per image;{} {} images/s\n",
        t.total_s,
        t.engine_s,
        ms(t.inference_mean_ms),
        ms(t.inference_median_ms),
        ms(t.inference_p95_ms),
        ms(t.read_mean_ms),
        t.baseline_mean_ms.map_or(String::new(), |v| format!(" baseline {} per image;", ms(Some(v)))),
        t.images_per_s.map_or("n/a".into(), |v| format!("{v:.2}"))
    );

    let limit = r.settings.fpr_limit;
    let header = [
        "set",
        "images (good/defective)",
        "image AUROC",
        "image AP",
        "image F1-max",
        "pixel AUROC",
        "pixel AP",
        &format!("AUPRO@{limit}"),
        "pixel F1-max",
    ];
    let row = |name: &str, m: &MetricSet| {
        vec![
            name.to_string(),
            format!("{} ({}/{})", m.images, m.good, m.defective),
            num(m.image_auroc),
            num(m.image_ap),
            num(m.image_f1_max),
            num(m.pixel_auroc),
            num(m.pixel_ap),
            num(m.aupro),
            num(m.pixel_f1_max),
        ]
    };
    let _ = writeln!(s, "## Anomaly detection and segmentation\n");
    let _ = writeln!(s, "Per type: the `good` images plus that type's images.\n");
    let mut rows = vec![row("**all**", &summary.overall)];
    rows.extend(summary.per_folder.iter().map(|(f, m)| row(f, m)));
    table(&mut s, &header, &rows);
    let mut notes: Vec<String> =
        summary.overall.undefined.iter().map(|(k, v)| format!("all: {k} undefined: {v}")).collect();
    for (f, m) in &summary.per_folder {
        notes.extend(m.undefined.iter().map(|(k, v)| format!("{f}: {k} undefined: {v}")));
    }
    for n in &notes {
        let _ = writeln!(s, "- {n}");
    }
    if !notes.is_empty() {
        s.push('\n');
    }
    let mut others: Vec<(&str, &Binary)> = Vec::new();
    if let Some(t) = &summary.text_only {
        others.push(("text only", t));
    }
    if let Some(b) = &summary.baseline {
        others.push(("baseline", b));
    }
    if !others.is_empty() {
        let model_name = if summary.text_only.is_some() { r.mode.mode } else { "model" };
        let title = match (summary.text_only.is_some(), summary.baseline.is_some()) {
            (true, true) => format!("{} scoring beside text only and a training-free baseline", r.mode.mode),
            (true, false) => format!("{} scoring beside text only", r.mode.mode),
            _ => "Model beside a training-free baseline".to_string(),
        };
        let _ = writeln!(s, "### {title}\n");
        if summary.text_only.is_some() {
            let _ = writeln!(
                s,
                "Text only: the same run's text evidence alone (DAPO as published: no references), scored on the same \
                 images and pixels.\n"
            );
        }
        if let Some(info) = &r.baseline {
            let _ = writeln!(
                s,
                "Baseline: {} ({}-pixel window, {}-pixel smoothing; see Baseline in `{DEFINITIONS}`), a naive filter \
                 with no training, scored on the same images and pixels with the same metrics. A model worth using \
                 beats it.\n",
                info.method, info.window, info.smoothing
            );
        }
        comparison(&mut s, model_name, summary, &others, limit);
    }

    let mt = &summary.multitype;
    let _ = writeln!(s, "## Defect types\n");
    let mapping: Vec<String> = mt
        .mapping
        .iter()
        .map(|(f, w)| format!("{f} -> {}", w.as_deref().map_or("(not in the vocabulary)".into(), |w| format!("`{w}`"))))
        .collect();
    let _ = writeln!(s, "- Folder to word: {}", mapping.join(", "));
    if r.baseline.is_some() {
        let _ = writeln!(s, "- Baseline: - (it has no defect types; the metrics below are the model's only)");
    }
    let _ = writeln!(
        s,
        "- Macro one-vs-rest pixel AUROC {}, AP {}; macro F1 of the type map {}; image type accuracy {}\n",
        num(mt.macro_ovr_auroc),
        num(mt.macro_ovr_ap),
        num(mt.macro_f1),
        num(mt.image_type_accuracy)
    );
    let rows: Vec<Vec<String>> = mt
        .per_type
        .iter()
        .map(|t| {
            vec![
                t.word.clone(),
                t.folder.clone(),
                t.images.to_string(),
                t.gt_pixels.to_string(),
                num(t.ovr_auroc),
                num(t.ovr_ap),
                num(t.f1),
                num(t.iou),
                num(t.typed_right),
                num(t.image_recall),
            ]
        })
        .collect();
    table(
        &mut s,
        &[
            "word",
            "folder",
            "images",
            "GT pixels",
            "OvR AUROC",
            "OvR AP",
            "F1",
            "IoU",
            "pixels typed right",
            "image type recall",
        ],
        &rows,
    );
    let _ =
        writeln!(s, "Image decisions (rows: folder; columns: normal if not anomalous, else the most probable word):\n");
    matrix(&mut s, &mt.image_confusion, "folder \\ decision");
    let _ = writeln!(s, "Pixels (rows: ground-truth type; columns: predicted type map):\n");
    matrix(&mut s, &mt.pixel_confusion, "truth \\ predicted");
    for (k, v) in &mt.undefined {
        let _ = writeln!(s, "- {k} undefined: {v}");
    }

    let _ = writeln!(s, "\n## Plots\n");
    for (file, title) in plots {
        let _ = writeln!(s, "### {title}\n\n![{title}]({file})\n");
    }

    let o = &summary.overall;
    let _ = writeln!(s, "## How exact\n");
    let _ = writeln!(
        s,
        "Image metrics are exact. Pixel metrics are computed from {} bins over the map range; the binning can move \
         them by at most: pixel AUROC {:.2e}, pixel AP {:.2e}, AUPRO {:.2e} (overall set). {} pixel scores fell \
         outside the range and were counted at its ends.\n",
        r.settings.bins, o.bounds.pixel_auroc, o.bounds.pixel_ap, o.bounds.aupro, o.clamped_pixels
    );
    if let Some(b) = &summary.baseline {
        let o = &b.overall;
        let (lo, hi) = BASELINE_RANGE;
        let _ = writeln!(
            s,
            "The baseline's maps are binned the same way over [{lo}, {hi}]: at most pixel AUROC {:.2e}, pixel AP \
             {:.2e}, AUPRO {:.2e} (overall set).\n",
            o.bounds.pixel_auroc, o.bounds.pixel_ap, o.bounds.aupro
        );
    }

    let _ = writeln!(s, "## Metric definitions\n");
    let _ = writeln!(
        s,
        "- AUROC: area under the ROC curve, ties counting half (scikit-learn `roc_auc_score`).\n\
         - AP: step-wise average precision `sum (R_k - R_k-1) P_k`, no interpolation (scikit-learn \
         `average_precision_score`).\n\
         - F1-max: best F1 over all thresholds of the precision-recall curve; its threshold is reported.\n\
         - AUPRO@{limit}: per-region overlap against the FPR of defect-free pixels, on the exact curve (every \
         distinct score a threshold, as the MVTec AD evaluation code), integrated to FPR {limit} and divided by {limit}.\n\
         - OvR AUROC/AP of a word: its class map ranking its ground-truth pixels against all other pixels; macro = \
         mean over the words with ground-truth pixels.\n\
         - F1 / IoU of a word: the engine's type map (normal outside the predicted mask) against the ground truth.\n\
         - Image type accuracy: defective images (of folders in the vocabulary) whose most probable word is their \
         folder's.\n\n\
         Full definitions: `{DEFINITIONS}` in the Loupe repository.\n"
    );

    if !r.failures.is_empty() {
        let _ = writeln!(s, "## Failed images\n");
        let rows: Vec<Vec<String>> = r
            .failures
            .iter()
            .map(|f| vec![format!("`{}`", f.image), f.stage.to_string(), f.error.replace('|', "\\|")])
            .collect();
        table(&mut s, &["image", "stage", "error"], &rows);
    }
    s
}

//! `loupe eval`: the field's metrics on an MVTec-layout data set, with `report.json`, `report.md` and PNG plots.
//!
//! Every image is inspected at its own size (the anomaly map is compared with the mask pixel for pixel), its result
//! folded into bounded-memory accumulators (`aggregate`), and the worst cases kept as thumbnails (`gallery`). A
//! training-free baseline (local contrast, `loupe_eval::baseline`) is scored on the same images and reported beside
//! the model. Metric definitions: `docs/eval.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loupe_eval::baseline::LocalContrast;
use loupe_eval::metrics::pro::DEFAULT_FPR_LIMIT;
use loupe_sdk::{Engine, LoupeConfig, LoupeError, MapSize, OwnedImage, ScoringMode};

use loupe_eval::aggregate::{Aggregator, BaselineResult, Observation, Settings, Summary};
use loupe_eval::dataset::{Dataset, Sample, StemFilter, normalise_word, read_mask};
use loupe_eval::gallery::Gallery;
use loupe_eval::plots;
use loupe_eval::report::{self, BaselineInfo, DatasetInfo, ModeInfo, Report, TextOnlyInfo, Timing};

use crate::options::EngineOptions;
use crate::scoring::{Scorer, ScoringOptions, primed_stream_order};

/// Default bins of the pixel accumulators.
const DEFAULT_BINS: usize = 1 << 20;

/// Arguments of `loupe eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// MVTec-layout data set: `good/`, `<type>/` (or `test/good/`, `test/<type>/`) and
    /// `ground_truth/<type>/<stem>_mask.png`; with `--category`, the folder holding the categories.
    dataset: PathBuf,
    /// Category subfolder of the data set (MVTec AD: `bottle`, `screw`, ...).
    #[arg(long)]
    category: Option<String>,
    /// Only images whose file stem matches one of these comma-separated globs (e.g. `exp5*,exp6*`).
    #[arg(long, value_delimiter = ',')]
    include: Vec<String>,
    /// Leave out images whose file stem matches one of these comma-separated globs.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Defect words, comma-separated. Default: `prompts.defects` of the configuration, else the data set's type
    /// folder names (`_` read as a space). Folders map to words by name.
    #[arg(long, value_delimiter = ',')]
    defects: Option<Vec<String>>,
    #[command(flatten)]
    engine: EngineOptions,
    #[command(flatten)]
    scoring: ScoringOptions,
    /// Output folder.
    #[arg(long, default_value = "loupe-eval")]
    out: PathBuf,
    /// Bins of the pixel-score accumulators over the anomaly map's range (memory: about 24 bytes x bins per
    /// folder + 16 bytes x bins per word).
    #[arg(long, default_value_t = DEFAULT_BINS)]
    pixel_bins: usize,
    /// FPR limit of AUPRO.
    #[arg(long, default_value_t = DEFAULT_FPR_LIMIT)]
    fpr_limit: f64,
    /// Worst false positives and false negatives shown in `worst_cases.png` (each).
    #[arg(long, default_value_t = 4)]
    worst: usize,
    /// Skip the training-free baseline (local contrast) reported beside the model.
    #[arg(long)]
    no_baseline: bool,
    /// Side of the baseline's local-mean window, pixels at the image's resolution (odd, >= 3).
    #[arg(long, default_value_t = LocalContrast::DEFAULT_WINDOW)]
    baseline_window: usize,
}

impl EvalArgs {
    /// Configuration file + environment, then the flags; class maps kept, maps at the input's size, every image
    /// segmented.
    fn config(&self, folders: &[String]) -> Result<LoupeConfig, LoupeError> {
        let mut cfg = self.engine.load()?;
        if let Some(d) = &self.defects {
            cfg.prompts.defects = Some(d.clone());
        } else if cfg.prompts.defects.is_none() {
            cfg.prompts.defects = Some(folders.iter().map(|f| normalise_word(f)).collect());
        }
        cfg.postprocess.keep_class_maps = true;
        // Pixel metrics score every image's segmentation, whatever its label, as benchmarks do: the segment rule
        // (`postprocess.segment`) is a product decision on top of it, and would mix image errors into them.
        cfg.postprocess.segment = loupe_sdk::SegmentRule::All;
        self.scoring.apply(&mut cfg);
        if cfg.postprocess.map_size != MapSize::Input {
            eprintln!("note: eval compares maps with masks at the image's size: postprocess.map_size set to `input`");
            cfg.postprocess.map_size = MapSize::Input;
        }
        self.engine.validate(&cfg)
    }

    /// The baseline to run, if any.
    fn baseline(&self) -> Result<Option<LocalContrast>, LoupeError> {
        if self.no_baseline {
            return Ok(None);
        }
        LocalContrast::new(self.baseline_window, LocalContrast::DEFAULT_SMOOTHING).map(Some).map_err(|_| {
            LoupeError::Config {
                file: None,
                field: "--baseline-window".into(),
                expected: "an odd number of pixels >= 3".into(),
                found: self.baseline_window.to_string(),
            }
        })
    }

    fn check(&self) -> Result<(), LoupeError> {
        let invalid = |field: &str, expected: &str, found: String| {
            Err(LoupeError::Config { file: None, field: field.into(), expected: expected.into(), found })
        };
        if !(self.fpr_limit > 0.0 && self.fpr_limit <= 1.0) {
            return invalid("--fpr-limit", "a number in (0, 1]", self.fpr_limit.to_string());
        }
        let max = loupe_eval::metrics::histogram::MAX_BINS;
        if !(16..=max).contains(&self.pixel_bins) {
            return invalid("--pixel-bins", &format!("16..={max}"), self.pixel_bins.to_string());
        }
        Ok(())
    }
}

/// Runs `loupe eval`. Exit status: 0 every image evaluated, 1 some failed (reported), 2 nothing could run.
pub fn run(args: &EvalArgs) -> ExitCode {
    let started = Instant::now();
    let (filter, baseline) = match args
        .check()
        .and_then(|_| StemFilter::new(&args.include, &args.exclude))
        .and_then(|f| Ok((f, args.baseline()?)))
    {
        Ok(v) => v,
        Err(e) => return fatal(&e),
    };
    let dataset = match Dataset::open(&args.dataset, args.category.as_deref(), &filter) {
        Ok(d) if !d.samples.is_empty() => d,
        Ok(d) => {
            return fatal(&format!(
                "no images selected in {} ({} left out by the filters)",
                d.images_dir.display(),
                d.filtered_out
            ));
        }
        Err(e) => return fatal(&e),
    };
    let (cfg, engine) =
        match args.config(&dataset.defect_types).and_then(|cfg| Ok((cfg.clone(), loupe_dapo::build_engine(&cfg)?))) {
            Ok(v) => v,
            Err(e) => return fatal(&e),
        };
    eprintln!("{}", crate::options::model_line(&cfg, &engine));
    let engine_s = started.elapsed().as_secs_f64();
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return fatal(&format!("cannot create output folder {}: {e}", args.out.display()));
    }
    let scored_paths = dataset.samples.iter().map(|s| s.path.as_path());
    let mut scorer = match args
        .scoring
        .profile(&engine, scored_paths)
        .and_then(|p| Scorer::new(&engine, p, dataset.samples.len()))
    {
        Ok(s) => s,
        Err(e) => return fatal(&e),
    };
    let mode = scorer.mode();
    eprintln!("scoring: {}", scorer.describe(&engine));
    let layers = engine.backbone().geometry().layers;
    let engine_thresholds = engine.thresholds(mode, scorer.profile.as_deref());
    let (image_t, pixel_t) = engine_thresholds
        .map_or((cfg.postprocess.image_threshold, cfg.pixel_threshold(layers)), |t| (t.image, t.pixel));
    let thresholds: BTreeMap<&'static str, f32> = [("image", image_t), ("pixel", pixel_t)].into_iter().collect();
    let text_range = (0.0, engine.map_range(ScoringMode::Text, None));
    let range = (0.0, engine.map_range(mode, scorer.profile.as_deref()));
    let settings = Settings { range, bins: args.pixel_bins, fpr_limit: args.fpr_limit };
    let text_settings = (mode != ScoringMode::Text).then_some(Settings { range: text_range, ..settings });
    let folders = (dataset.defect_types.as_slice(), dataset.folders_without_masks.as_slice());
    let mut agg =
        match Aggregator::new(settings, scorer.vocabulary(&engine), folders, baseline.is_some(), text_settings) {
            Ok(a) => a,
            Err(e) => return fatal(&e),
        };
    for folder in &dataset.defect_types {
        if agg.word_of(folder).is_none() {
            eprintln!(
                "note: folder `{folder}` is not a word of the vocabulary ({}): its images count for anomaly metrics, \
                 not for type metrics",
                scorer.vocabulary(&engine).join(", ")
            );
        }
    }
    for folder in &dataset.folders_without_masks {
        eprintln!("note: folder `{folder}` has no ground_truth/{folder}/: its images count at image level only");
    }
    let mut gallery = Gallery::new(args.worst);
    let window = scorer.window.as_ref().map_or(0, |w| w.settings().window);
    let (order, priming) = scoring_order(mode, dataset.samples.len(), window);
    let loop_start = Instant::now();
    let bar = ProgressBar::new(order.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} elapsed, ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (step, &i) in order.iter().enumerate() {
        let sample = &dataset.samples[i];
        bar.set_message(sample.stem.clone());
        let job = Job { engine: &engine, baseline: baseline.as_ref(), range: settings.range.1, prime: step < priming };
        if let Err((stage, e)) = evaluate_one(&job, &mut scorer, sample, &mut agg, &mut gallery) {
            bar.suspend(|| eprintln!("error: {}: {stage}: {e}", sample.path.display()));
            if step >= priming {
                agg.fail(sample, stage, e);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let loop_s = loop_start.elapsed().as_secs_f64();
    let summary = agg.summary();
    let mode_info = ModeInfo {
        mode: mode.name(),
        description: scorer.describe(&engine),
        settings: mode_settings(&engine, &scorer, &args.scoring),
    };
    let context = Context { dataset: &dataset, engine: &engine, settings, thresholds, baseline, mode: mode_info };
    if let Err(e) = write_outputs(args, &context, &agg, &summary, &gallery, (started, engine_s, loop_s)) {
        return fatal(&e);
    }
    let (ok, failed) = (agg.records.len(), agg.failures.len());
    let o = &summary.overall;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "evaluated {ok} of {} images ({failed} failed) in {:.1} s: image AUROC {}, pixel AUROC {}, AUPRO@{} {}; \
         report in {}",
        dataset.samples.len(),
        started.elapsed().as_secs_f64(),
        f(o.image_auroc),
        f(o.pixel_auroc),
        args.fpr_limit,
        f(o.aupro),
        args.out.join("report.md").display()
    );
    let others =
        [("text only (same run)", &summary.text_only), ("baseline (local contrast, training-free)", &summary.baseline)];
    for (name, scorer) in others {
        if let Some(o) = scorer.as_ref().map(|b| &b.overall) {
            println!(
                "{name}: image AUROC {}, pixel AUROC {}, AUPRO@{} {}",
                f(o.image_auroc),
                f(o.pixel_auroc),
                args.fpr_limit,
                f(o.aupro)
            );
        }
    }
    if ok == 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fatal(e: &dyn std::fmt::Display) -> ExitCode {
    crate::print_error("", e);
    ExitCode::from(2)
}

/// What every image of a run shares.
struct Job<'a> {
    engine: &'a Engine,
    baseline: Option<&'a LocalContrast>,
    /// Top of the anomaly map's range (the gallery's colour scale).
    range: f32,
    /// The image only fills the mutual window (its result is not counted).
    prime: bool,
}

/// The order images are scored in, and how many leading ones only prime the mutual window: the data set's order
/// for text and golden samples; for mutual scoring a fixed shuffle (a production stream mixes good and defective
/// parts) primed with its own last window ([`primed_stream_order`]).
fn scoring_order(mode: ScoringMode, n: usize, window: usize) -> (Vec<usize>, usize) {
    if mode == ScoringMode::Mutual { primed_stream_order(n, window) } else { ((0..n).collect(), 0) }
}

/// Reads, inspects (with the engine, the scorer's evidence and the baseline, if any) and aggregates one image;
/// the error names the stage that failed.
fn evaluate_one(
    job: &Job<'_>,
    scorer: &mut Scorer,
    sample: &Sample,
    agg: &mut Aggregator,
    gallery: &mut Gallery,
) -> Result<(), (&'static str, String)> {
    let t0 = Instant::now();
    let image =
        OwnedImage::open_with_limits(&sample.path, job.engine.limits()).map_err(|e| ("read image", e.to_string()))?;
    let mask = match (&sample.mask, sample.pixel_truth) {
        (Some(path), _) => Some(read_mask(path, image.width, image.height).map_err(|e| ("read mask", e.to_string()))?),
        (None, true) => Some(vec![false; image.width as usize * image.height as usize]),
        (None, false) => None,
    };
    let read_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let scored = scorer.score(job.engine, &image.view(), !job.prime).map_err(|e| ("inference", e.to_string()))?;
    if job.prime {
        return Ok(());
    }
    let inference_ms = t1.elapsed().as_secs_f64() * 1e3;
    let base = job.baseline.map(|lc| {
        let t2 = Instant::now();
        let map = lc.anomaly_map(&image.view());
        BaselineResult { map, ms: t2.elapsed().as_secs_f64() * 1e3 }
    });
    let d = &scored.detection;
    let observation = Observation {
        sample,
        detection: d,
        text_only: scored.text_only.as_ref(),
        baseline: base.as_ref(),
        mask: mask.as_deref(),
        size: (image.width, image.height),
        timing: (read_ms, inference_ms),
    };
    agg.add(&observation).map_err(|e| ("metrics", e))?;
    if gallery.wants(sample.is_good(), d.score) {
        let name = format!("{}/{}", sample.folder, sample.stem);
        let blank = vec![false; image.width as usize * image.height as usize];
        gallery.offer(sample.is_good(), &name, &image.view().to_rgb(), d, mask.as_deref().unwrap_or(&blank), job.range);
    }
    Ok(())
}

/// The scoring settings the report records.
fn mode_settings(engine: &Engine, scorer: &Scorer, opts: &ScoringOptions) -> BTreeMap<String, serde_json::Value> {
    let mut m = BTreeMap::new();
    let f = engine.fusion(scorer.profile.as_deref());
    m.insert("fusion".to_string(), serde_json::json!(f.rule.name()));
    m.insert("text_weight".to_string(), serde_json::json!(f.text_weight));
    if !opts.references.is_empty() {
        m.insert("references".to_string(), serde_json::json!(opts.references));
        m.insert("shots".to_string(), serde_json::json!(opts.shots));
    }
    if let Some(p) = &scorer.profile {
        m.insert("profile".to_string(), serde_json::json!(p.name()));
        if let Some(info) = &p.profile().meta.references {
            m.insert(
                "reference_images".to_string(),
                serde_json::json!(info.images.iter().map(|i| &i.name).collect::<Vec<_>>()),
            );
            m.insert("augmentation".to_string(), serde_json::json!(info.augmentation));
            m.insert("coreset_fraction".to_string(), serde_json::json!(info.coreset_fraction));
            m.insert("scale".to_string(), serde_json::json!(info.scale));
            m.insert("memory_bytes".to_string(), serde_json::json!(p.profile().memory_bytes()));
        }
    }
    if let Some(w) = &scorer.window {
        let s = w.settings();
        m.insert("mutual_window".to_string(), serde_json::json!(s.window));
        m.insert("mutual_fraction".to_string(), serde_json::json!(s.fraction));
        m.insert("mutual_min_pool".to_string(), serde_json::json!(s.min_pool));
        m.insert("stream_order".to_string(), serde_json::json!("fixed shuffle (seed 0), primed with its last window"));
    }
    m
}

/// What the report echoes besides the metrics.
struct Context<'a> {
    dataset: &'a Dataset,
    engine: &'a Engine,
    settings: Settings,
    thresholds: BTreeMap<&'static str, f32>,
    baseline: Option<LocalContrast>,
    mode: ModeInfo,
}

fn write_outputs(
    args: &EvalArgs,
    ctx: &Context<'_>,
    agg: &Aggregator,
    summary: &Summary,
    gallery: &Gallery,
    (started, engine_s, loop_s): (Instant, f64, f64),
) -> Result<(), String> {
    let out = &args.out;
    let mut plots: Vec<(String, String)> = Vec::new();
    let c = &summary.curves;
    let o = &summary.overall;
    let lab = |what: &str, v: Option<f64>| format!("{what} ({})", v.map_or("n/a".into(), |v| format!("{v:.3}")));
    let series = |label: String, points, colour, dashed| plots::Series { label, points, colour, dashed };
    let mut roc = Vec::new();
    if let Some(p) = &c.image_roc {
        roc.push(series(lab("image AUROC", o.image_auroc), p, 0, false));
    }
    if let Some(p) = &c.pixel_roc {
        roc.push(series(lab("pixel AUROC", o.pixel_auroc), p, 1, false));
    }
    // The baseline's ROC curves, dashed in the model's colours.
    if let Some(b) = &summary.baseline {
        if let Some(p) = &b.curves.image_roc {
            roc.push(series(lab("baseline image", b.overall.image_auroc), p, 0, true));
        }
        if let Some(p) = &b.curves.pixel_roc {
            roc.push(series(lab("baseline pixel", b.overall.pixel_auroc), p, 1, true));
        }
    }
    plots::curves(&out.join("roc.png"), "ROC curves", ("false positive rate", "true positive rate"), 1.0, &roc, true)?;
    plots.push(("roc.png".into(), "ROC curves".into()));
    let mut pr = Vec::new();
    if let Some(p) = &c.image_pr {
        pr.push(series(lab("image AP", o.image_ap), p, 0, false));
    }
    if let Some(p) = &c.pixel_pr {
        pr.push(series(lab("pixel AP", o.pixel_ap), p, 1, false));
    }
    plots::curves(&out.join("pr.png"), "Precision-recall curves", ("recall", "precision"), 1.0, &pr, false)?;
    plots.push(("pr.png".into(), "Precision-recall curves".into()));
    let limit = args.fpr_limit;
    let pro: Vec<plots::Series> =
        c.pro.iter().map(|p| series(lab(&format!("AUPRO@{limit}"), o.aupro), p, 0, false)).collect();
    plots::curves(&out.join("pro.png"), "Per-region overlap", ("false positive rate", "PRO"), limit, &pro, false)?;
    plots.push(("pro.png".into(), format!("PRO curve up to FPR {limit}")));
    let mut groups: Vec<String> = summary.per_folder.iter().map(|(f, _)| f.clone()).collect();
    groups.push("all".into());
    let sets: Vec<_> = summary.per_folder.iter().map(|(_, m)| m).chain(std::iter::once(&summary.overall)).collect();
    let mut series = vec![
        ("image AUROC".to_string(), sets.iter().map(|m| m.image_auroc).collect()),
        ("pixel AUROC".to_string(), sets.iter().map(|m| m.pixel_auroc).collect()),
        (format!("AUPRO@{limit}"), sets.iter().map(|m| m.aupro).collect()),
    ];
    // Same groups in the same order: every scorer comes from the same folders.
    if let Some(t) = &summary.text_only {
        let values = t.per_folder.iter().map(|(_, m)| m.pixel_auroc).chain(std::iter::once(t.overall.pixel_auroc));
        series.push(("text-only pixel AUROC".to_string(), values.collect()));
    }
    if let Some(b) = &summary.baseline {
        let values = b.per_folder.iter().map(|(_, m)| m.pixel_auroc).chain(std::iter::once(b.overall.pixel_auroc));
        series.push(("baseline pixel AUROC".to_string(), values.collect()));
    }
    plots::bars(&out.join("per_type.png"), "Per defect type (good + type)", &groups, &series)?;
    plots.push(("per_type.png".into(), "Per defect type".into()));
    if gallery.write(&out.join("worst_cases.png"))? {
        plots.push(("worst_cases.png".into(), "Worst false positives and false negatives".into()));
    }

    let dataset = ctx.dataset;
    let [backbone, bank, post] = ctx.engine.components();
    let mut outputs: Vec<String> = vec!["report.json".into(), "report.md".into()];
    outputs.extend(plots.iter().map(|(f, _)| f.clone()));
    let report = Report {
        loupe_version: env!("CARGO_PKG_VERSION"),
        definitions: report::DEFINITIONS,
        mode: ctx.mode.clone(),
        dataset: DatasetInfo {
            path: args.dataset.display().to_string(),
            category: args.category.clone(),
            layout: dataset.layout,
            images_dir: dataset.images_dir.display().to_string(),
            ground_truth_dir: dataset.ground_truth_dir.display().to_string(),
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            images: dataset.samples.len(),
            filtered_out: dataset.filtered_out,
            by_folder: dataset.counts().into_iter().collect(),
        },
        components: [("backbone", backbone), ("prompt_bank", bank), ("postprocessor", post)].into_iter().collect(),
        thresholds: ctx.thresholds.clone(),
        settings: ctx.settings,
        counts: [("selected", dataset.samples.len()), ("evaluated", agg.records.len()), ("failed", agg.failures.len())]
            .into_iter()
            .collect(),
        overall: &summary.overall,
        per_type: summary.per_folder.iter().map(|(f, m)| (f.clone(), m)).collect(),
        multitype: &summary.multitype,
        baseline: ctx.baseline.as_ref().zip(summary.baseline.as_ref()).map(|(lc, b)| BaselineInfo::new(lc, b)),
        text_only: summary.text_only.as_ref().map(TextOnlyInfo::new),
        timing: Timing::of(&agg.records, started.elapsed().as_secs_f64(), engine_s, loop_s),
        outputs,
        failures: &agg.failures,
        images: &agg.records,
    };
    let md = report::markdown(&report, summary, &plots);
    write_text(&out.join("report.md"), &md)?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("report.json: {e}"))?;
    write_text(&out.join("report.json"), &json)
}

fn write_text(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

//! `loupe bench`: wall time per image of the backbone alone, of post-processing alone, of the pipeline
//! (`Engine::inspect`) and end to end (file read and decode to regions), images per second and peak memory, as
//! JSON, so that a script can put it beside ONNX Runtime and the PyTorch reference run on the same files
//! (`tools/loupe_tools/bench.py`, `tools/loupe_tools/bench_backbones.py`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use loupe_sdk::config::Precision;
use loupe_sdk::{Engine, LoupeConfig, LoupeError, OwnedImage};
use serde::Serialize;

use crate::options::EngineOptions;

/// Arguments of `loupe bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Images to time; each timed run takes the next `--batch` of them, cycling.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineOptions,
    /// Timed runs (each of `--batch` images). Default: 5 per image given.
    #[arg(long)]
    repeat: Option<usize>,
    /// Untimed runs first (plan warm-up, caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Images per backbone call (overrides `engine.batch_size`).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Backbone threads (overrides `engine.threads`; 0 = all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Backbone component (overrides `components.backbone`), e.g. `ort-clip-onnx` from its plugin.
    #[arg(long)]
    backbone: Option<String>,
    /// Image encoder precision (overrides `model.precision`).
    #[arg(long, value_parser = ["fp32", "int8"])]
    precision: Option<String>,
    /// With `--precision int8`: also inspect every image with the fp32 encoder and report the largest
    /// differences of scores and anomaly maps.
    #[arg(long)]
    against_fp32: bool,
    /// Also time this backbone component (e.g. `ort-clip-onnx`) on the same batches, alternating with the first
    /// run by run in this one process, so that both meet the same moments of a noisy machine.
    #[arg(long)]
    versus: Option<String>,
}

/// Timing summary in milliseconds per image.
#[derive(Serialize)]
struct Stats {
    median_ms: f64,
    min_ms: f64,
    runs: usize,
}

impl Stats {
    fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Self { median_ms: median, min_ms: ms[0], runs: n }
    }
}

#[derive(Serialize)]
struct BenchReport {
    model: String,
    backbone_component: String,
    input_size: [u32; 2],
    images: usize,
    batch: usize,
    threads: usize,
    precision: Precision,
    /// The backbone alone (preprocessing and encoder), per image.
    backbone: Stats,
    /// Post-processing alone (scores, maps at the output size, types, regions), per image.
    postprocess: Stats,
    /// `Engine::inspect` on decoded images (backbone, post-processing and the rest), per image.
    pipeline: Stats,
    /// File read and decode, then `Engine::inspect`, per image.
    end_to_end: Stats,
    /// Images per second end to end (1000 / its median).
    images_per_s: f64,
    /// Peak resident memory of this process (VmHWM; Linux), megabytes.
    peak_rss_mb: Option<f64>,
    /// `--against-fp32`: how far this precision's results are from fp32's.
    #[serde(skip_serializing_if = "Option::is_none")]
    against_fp32: Option<Difference>,
    /// `--versus`: the other backbone's time on the same batches, alternating.
    #[serde(skip_serializing_if = "Option::is_none")]
    versus: Option<Versus>,
}

/// Another backbone timed in alternation with the first.
#[derive(Serialize)]
struct Versus {
    backbone_component: String,
    backbone: Stats,
    /// This backbone's median over the other's.
    ratio: f64,
}

/// Largest absolute differences of one engine's results from another's over the same images.
#[derive(Serialize)]
struct Difference {
    score_max_abs: f32,
    anomaly_map_max_abs: f32,
    /// The anomaly map's range (its values lie in 0..this), to read the difference against.
    map_range: f32,
    images: usize,
}

/// Runs `loupe bench`; prints one JSON object on stdout.
pub fn run(args: &BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::print_error("", &e);
            ExitCode::from(2)
        }
    }
}

fn configure(args: &BenchArgs) -> Result<LoupeConfig, LoupeError> {
    let mut cfg = args.engine.load()?;
    cfg.engine.batch_size = args.batch.max(1);
    if let Some(t) = args.threads {
        cfg.engine.threads = t;
    }
    if let Some(b) = &args.backbone {
        cfg.components.backbone.clone_from(b);
    }
    if let Some(p) = &args.precision {
        cfg.model.precision = if p == "int8" { Precision::Int8 } else { Precision::Fp32 };
    }
    args.engine.validate(&cfg)
}

/// Milliseconds `f` takes.
fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1e3)
}

fn bench(args: &BenchArgs) -> Result<BenchReport, LoupeError> {
    let cfg = configure(args)?;
    let engine = loupe_dapo::build_engine(&cfg)?;
    let other = match &args.versus {
        Some(name) => {
            let mut other_cfg = cfg.clone();
            other_cfg.components.backbone.clone_from(name);
            Some(loupe_dapo::build_engine(&other_cfg)?)
        }
        None => None,
    };
    let mut other_ms = Vec::new();
    let batch = cfg.engine.batch_size;
    let repeat = args.repeat.unwrap_or(5 * args.images.len()).max(1);
    let per_image = |ms: f64| ms / batch as f64;
    let [mut backbone, mut postprocess, mut pipeline, mut end_to_end] = [(); 4].map(|()| Vec::new());
    for run in 0..args.warmup + repeat {
        let paths: Vec<&PathBuf> = (0..batch).map(|i| &args.images[(run * batch + i) % args.images.len()]).collect();
        let (decoded, decode_ms) = time(|| paths.iter().map(|p| OwnedImage::open(p)).collect::<Result<Vec<_>, _>>());
        let decoded = decoded?;
        let views: Vec<_> = decoded.iter().map(OwnedImage::view).collect();
        let (features, backbone_ms) = time(|| engine.encode(&views));
        let features = features?;
        if let Some(other) = &other {
            let (encoded, ms) = time(|| other.encode(&views));
            encoded?;
            if run >= args.warmup {
                other_ms.push(per_image(ms));
            }
        }
        let outputs: Vec<_> = views.iter().map(|v| engine.output_size(v)).collect();
        let (detections, post_ms) = time(|| engine.postprocess(&features, &vec![None; features.len()], &outputs, None));
        detections?;
        let (inspected, pipeline_ms) = time(|| engine.inspect(&views));
        inspected?;
        if run >= args.warmup {
            backbone.push(per_image(backbone_ms));
            postprocess.push(per_image(post_ms));
            pipeline.push(per_image(pipeline_ms));
            end_to_end.push(per_image(decode_ms + pipeline_ms));
        }
    }
    let backbone = Stats::of(backbone);
    let versus = args.versus.as_ref().map(|name| {
        let other = Stats::of(other_ms);
        Versus { backbone_component: name.clone(), ratio: backbone.median_ms / other.median_ms, backbone: other }
    });
    let end_to_end = Stats::of(end_to_end);
    let against_fp32 = if args.against_fp32 { Some(against_fp32(args, &cfg, &engine)?) } else { None };
    Ok(BenchReport {
        model: engine.backbone().info().name,
        backbone_component: cfg.components.backbone.clone(),
        input_size: engine.backbone().geometry().input_size,
        images: args.images.len(),
        batch,
        threads: cfg.engine.thread_count(),
        precision: cfg.model.precision,
        backbone,
        postprocess: Stats::of(postprocess),
        pipeline: Stats::of(pipeline),
        images_per_s: 1e3 / end_to_end.median_ms,
        end_to_end,
        peak_rss_mb: peak_rss_mb(),
        against_fp32,
        versus,
    })
}

/// Inspects every image with `engine` and with the same configuration in fp32; the largest differences.
fn against_fp32(args: &BenchArgs, cfg: &LoupeConfig, engine: &Engine) -> Result<Difference, LoupeError> {
    let mut fp32_cfg = cfg.clone();
    fp32_cfg.model.precision = Precision::Fp32;
    let fp32 = loupe_dapo::build_engine(&fp32_cfg)?;
    let mut d = Difference { score_max_abs: 0.0, anomaly_map_max_abs: 0.0, map_range: 0.0, images: 0 };
    d.map_range = engine.map_range(loupe_sdk::ScoringMode::Text, None);
    for path in &args.images {
        let image = OwnedImage::open(path)?;
        let (a, b) = (engine.inspect_one(&image.view())?, fp32.inspect_one(&image.view())?);
        d.score_max_abs = d.score_max_abs.max((a.score - b.score).abs());
        let map = a.anomaly_map.data.iter().zip(&b.anomaly_map.data).map(|(x, y)| (x - y).abs());
        d.anomaly_map_max_abs = map.fold(d.anomaly_map_max_abs, f32::max);
        d.images += 1;
    }
    Ok(d)
}

/// `VmHWM` of `/proc/self/status` in megabytes (Linux); `None` elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

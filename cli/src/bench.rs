//! `loupe bench`: per-image wall time of the backbone alone and of the whole pipeline, as JSON, so that a script
//! can put it beside onnxruntime and the PyTorch reference run on the same files (`tools/loupe_tools/bench.py`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use loupe_sdk::{LoupeConfig, OwnedImage};
use serde::Serialize;

/// Arguments of `loupe bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Images to time (each is run `--repeat` times).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model directory. Default: the embedded default model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt bank file (required with `--model`). Default: the embedded default model's bank.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Timed runs per image.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Untimed runs first (plan warm-up, caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

/// Timing summary in milliseconds.
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
    input_size: [u32; 2],
    images: usize,
    backbone: Stats,
    pipeline: Stats,
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

fn bench(args: &BenchArgs) -> Result<BenchReport, loupe_sdk::LoupeError> {
    let mut cfg = LoupeConfig::default();
    cfg.model.dir.clone_from(&args.model);
    cfg.prompts.bank.clone_from(&args.prompts);
    let engine = loupe_dapo::build_engine(&cfg)?;
    let images = args.images.iter().map(|p| OwnedImage::open(p)).collect::<Result<Vec<_>, _>>()?;
    let repeat = args.repeat.max(1);
    let (mut backbone, mut pipeline) = (Vec::new(), Vec::new());
    for image in &images {
        let view = image.view();
        for i in 0..args.warmup + repeat {
            let t = Instant::now();
            engine.backbone().encode(std::slice::from_ref(&view))?;
            let backbone_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            engine.inspect_one(&view)?;
            let pipeline_ms = t.elapsed().as_secs_f64() * 1e3;
            if i >= args.warmup {
                backbone.push(backbone_ms);
                pipeline.push(pipeline_ms);
            }
        }
    }
    Ok(BenchReport {
        model: engine.backbone().info().name,
        input_size: engine.backbone().geometry().input_size,
        images: images.len(),
        backbone: Stats::of(backbone),
        pipeline: Stats::of(pipeline),
    })
}

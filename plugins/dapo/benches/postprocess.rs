//! Post-processing, CPU vs GPU, at DAPO's working size: 37x37 patch grid, 4 layers, dim 768 -> 518x518 maps,
//! 1+K = 8 and 21 classes, batches of 1 and 8. Prints the median time of each and the GPU/CPU ratio.
//!
//! `cargo bench -p loupe-dapo --bench postprocess` (release build; `LOUPE_BENCH_RUNS` sets the repetitions, 7 by
//! default). The GPU is the adapter `GpuPostProcessor::new` picks (hardware first, else lavapipe). The CPU path is
//! single-threaded; lavapipe spreads its work over the machine's cores.

use std::time::{Duration, Instant};

use loupe_dapo::DapoPostProcessor;
use loupe_dapo::postprocess::gpu::GpuPostProcessor;
use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::{ImageFeatures, OutputSize, PostProcessor, TextFeatures};

#[path = "../tests/common/mod.rs"]
mod common;
use common::Rng;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("LOUPE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(7).max(1);
    let config = PostprocessConfig::default();
    let cpu = DapoPostProcessor::new(config.clone());
    let gpu = GpuPostProcessor::new(config)?;
    println!("GPU adapter: {}", gpu.adapter());
    println!("median of {runs} runs; CPU and GPU alternate, so both see the same machine load");
    println!("| classes | batch | CPU ms/batch | GPU ms/batch | GPU/CPU |");
    println!("|---|---|---|---|---|");
    let (grid, layers, dim) = (37, 4, 768);
    let output = OutputSize { width: 518, height: 518 };
    let mut rng = Rng(0x1005e);
    for classes in [8, 21] {
        let words = (1..classes).map(|k| format!("defect{k}")).collect();
        let text = TextFeatures::new(words, dim, rng.vec(classes * dim))?;
        for batch_size in [1, 8] {
            let images: Vec<ImageFeatures> = (0..batch_size)
                .map(|_| ImageFeatures {
                    global: rng.vec(dim),
                    patches: rng.vec(layers * grid * grid * dim),
                    layers,
                    grid_h: grid,
                    grid_w: grid,
                    dim,
                })
                .collect();
            let batch: Vec<(&ImageFeatures, OutputSize)> = images.iter().map(|f| (f, output)).collect();
            // Warm-up: pipelines compiled, buffers grown to this batch.
            cpu.process_batch(&batch, &text)?;
            gpu.process_batch(&batch, &text)?;
            let (mut c, mut g) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
            for _ in 0..runs {
                let t = Instant::now();
                std::hint::black_box(cpu.process_batch(&batch, &text)?);
                c.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(gpu.process_batch(&batch, &text)?);
                g.push(t.elapsed());
            }
            if !gpu.gpu_active() {
                return Err("the GPU failed during the benchmark and fell back to the CPU (see the log)".into());
            }
            let (c, g) = (median(c), median(g));
            println!(
                "| {classes} | {batch_size} | {:.1} | {:.1} | {:.2} |",
                c.as_secs_f64() * 1e3,
                g.as_secs_f64() * 1e3,
                g.as_secs_f64() / c.as_secs_f64()
            );
        }
    }
    Ok(())
}

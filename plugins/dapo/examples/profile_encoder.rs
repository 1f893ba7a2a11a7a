//! Where tract spends an image encoder's time: runs a model's `image_encoder.onnx` as the backbone plans it and
//! prints the time per operator kind and the slowest nodes (`docs/benchmarks.md`, "tract on small models").
//!
//! ```text
//! cargo run --release -p loupe-dapo --example profile_encoder -- [MODEL_DIR] [--runs 20] [--batch 1] [--threads 1]
//!     [--fixed-batch] [--unfused-attention]
//! ```
//! Without a model directory: the embedded default model.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A developer's tool: a panic is its error report.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use loupe_dapo::ModelDir;
use loupe_dapo::onnx::{InputSpec, Rewrites, load_plan_with};
use tract_onnx::prelude::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut runs, mut batch, mut threads, mut fixed) = (None, 20usize, 1usize, 1usize, false);
    let mut rewrites = Rewrites::default();
    while let Some(a) = args.next() {
        let mut num = || args.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match a.as_str() {
            "--runs" => runs = num(),
            "--batch" => batch = num(),
            "--threads" => threads = num(),
            "--fixed-batch" => fixed = true,
            "--unfused-attention" => rewrites.fused_attention = false,
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let model = match &dir {
        Some(d) => ModelDir::open(d).unwrap(),
        None => ModelDir::embedded().unwrap(),
    };
    let g = model.geometry();
    let [h, w] = g.input_size;
    let spec = InputSpec {
        name: "image",
        datum: f32::datum_type(),
        shape: vec![fixed.then_some(batch), Some(3), Some(h as usize), Some(w as usize)],
    };
    let file = &model.meta.files.image_encoder;
    let plan =
        load_plan_with(&model.read(file).unwrap(), &model.label(file), &[spec], &["global", "patch_tokens"], rewrites)
            .unwrap();
    let input: TValue = Tensor::zero::<f32>(&[batch, 3, h as usize, w as usize]).unwrap().into();
    let executor = if threads > 1 { Executor::multithread(threads) } else { Executor::SingleThread };
    let mut state = tract_onnx::tract_core::plan::SimpleState::new(&plan).unwrap();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    let mut by_node: HashMap<usize, (f64, String)> = HashMap::new();
    let mut total = 0.0;
    for run in 0..=runs {
        let t0 = Instant::now();
        multithread_tract_scope(executor.clone(), || {
            state.run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                if run > 0 {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let e = by_op.entry(node.op().name().to_string()).or_default();
                    e.0 += ms;
                    e.1 += 1;
                    by_node
                        .entry(node.id)
                        .or_insert_with(|| (0.0, format!("{} ({})", node.name, node.op().name())))
                        .0 += ms;
                }
                out
            })
        })
        .unwrap();
        if run > 0 {
            total += t0.elapsed().as_secs_f64() * 1e3;
        }
    }
    let per_run = |ms: f64| ms / runs as f64;
    // The plan run as the backbone runs it, without the per-node clock: what a user gets.
    let mut plain = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        multithread_tract_scope(executor.clone(), || plan.run(tvec!(input.clone()))).unwrap();
        plain.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    plain.sort_by(f64::total_cmp);
    println!("plain runs: median {:.2} ms, min {:.2} ms", plain[runs / 2], plain[0]);
    println!(
        "{}: {} nodes, batch {batch}, {threads} thread(s): {:.2} ms per run",
        model.label(file).display(),
        plan.model().nodes.len(),
        per_run(total)
    );
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("\n| op | ms per run | share | nodes |\n| --- | --- | --- | --- |");
    for (op, (ms, n)) in &ops {
        println!("| {op} | {:.3} | {:.1} % | {} |", per_run(*ms), 100.0 * ms / total, n / runs);
    }
    let mut nodes: Vec<_> = by_node.into_values().collect();
    nodes.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("\nslowest nodes:");
    for (ms, name) in nodes.iter().take(40) {
        println!("  {:.3} ms  {name}", per_run(*ms));
    }
}

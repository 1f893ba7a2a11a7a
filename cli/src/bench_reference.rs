//! `loupe bench-reference`: time golden-sample scoring (exact nearest-neighbour search over a reference memory)
//! on given vectors, per coreset fraction, as JSON, so that `tools/loupe_tools/bench_reference.py` can put it
//! beside faiss-cpu on the same vectors. With `--encode`, it first writes such vectors from images with the
//! configured model (the embedded default model when none is given).
//!
//! Vectors file (safetensors, f32): `queries` `[layers, queries, dim]` (one query image's patches per layer) and
//! `memory` `[layers, rows, dim]`, with `memory_owners` `[rows]` u32 (reference image of each row). Rows need not
//! be normalised; they are normalised once, outside the timing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use loupe_reference::{Memory, MemoryLayer, PatchSet};
use loupe_sdk::{LoupeConfig, LoupeError};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

use crate::options::EngineOptions;
use crate::references;

/// Arguments of `loupe bench-reference`.
#[derive(Args)]
pub struct BenchReferenceArgs {
    /// The vectors file to time (written by `--encode`, or by the benchmark script).
    #[arg(long)]
    vectors: PathBuf,
    /// Instead of timing: encode `--queries` and `--references` with the model and write them to `--vectors`.
    #[arg(long)]
    encode: bool,
    /// Query images (with `--encode`); the first is the timed query image.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    queries: Vec<String>,
    /// Reference images (with `--encode`).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    references: Vec<String>,
    /// Coreset fractions to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,0.25,0.1")]
    fractions: Vec<f32>,
    /// Timed runs per fraction.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Folder to write, per fraction, the (subsampled) memory and Loupe's per-query maxima for comparison.
    #[arg(long)]
    write: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineOptions,
}

#[derive(Serialize)]
struct FractionReport {
    fraction: f32,
    rows_per_layer: Vec<usize>,
    memory_bytes: usize,
    coreset_ms: f64,
    median_ms: f64,
    min_ms: f64,
    runs: usize,
    /// The memory and maxima written for this fraction (with `--write`).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

#[derive(Serialize)]
struct BenchReport {
    layers: usize,
    queries: usize,
    dim: usize,
    memory_rows: usize,
    threads: usize,
    fractions: Vec<FractionReport>,
}

/// Runs `loupe bench-reference`; prints one JSON object on stdout.
pub fn run(args: &BenchReferenceArgs) -> ExitCode {
    let result = if args.encode { encode(args).map(|()| None) } else { bench(args).map(Some) };
    match result {
        Ok(report) => {
            if let Some(r) = report {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::print_error("", &e);
            ExitCode::from(2)
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_tensors(path: &Path, tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>) -> Result<(), LoupeError> {
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoupeError::inference("vectors file", e))?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| LoupeError::inference(path.display().to_string(), e))
}

/// Encodes the images with the configured model and writes the vectors file.
fn encode(args: &BenchReferenceArgs) -> Result<(), LoupeError> {
    let cfg: LoupeConfig = args.engine.validate(&args.engine.load()?)?;
    let engine = loupe_dapo::build_engine(&cfg)?;
    let g = engine.backbone().geometry().clone();
    let (layers, cells, dim) = (g.layers, g.grid[0] * g.grid[1], g.feature_dim);
    let load = |paths: &[String], option: &str| -> Result<Vec<Vec<f32>>, LoupeError> {
        let files = references::expand(paths, option)?;
        let mut out = Vec::new();
        for (_, img) in references::decode(&files)? {
            out.push(engine.encode(&[img.view()])?.remove(0).patches);
        }
        Ok(out)
    };
    let queries = load(&args.queries, "--queries")?;
    let refs = load(&args.references, "--references")?;
    let first = queries.first().ok_or_else(|| LoupeError::mismatch("--queries", "at least one image", 0))?;
    // [layers, rows, dim]: layer-major over the images.
    let stack = |sets: &[Vec<f32>]| -> Vec<f32> {
        let mut v = Vec::with_capacity(sets.len() * layers * cells * dim);
        for l in 0..layers {
            for s in sets {
                v.extend_from_slice(&s[l * cells * dim..(l + 1) * cells * dim]);
            }
        }
        v
    };
    let owners: Vec<u8> =
        (0..refs.len() as u32).flat_map(|o| std::iter::repeat_n(o, cells)).flat_map(u32::to_le_bytes).collect();
    write_tensors(
        &args.vectors,
        vec![
            ("queries".into(), Dtype::F32, vec![layers, cells, dim], f32_bytes(&stack(std::slice::from_ref(first)))),
            ("memory".into(), Dtype::F32, vec![layers, refs.len() * cells, dim], f32_bytes(&stack(&refs))),
            ("memory_owners".into(), Dtype::U32, vec![refs.len() * cells], owners),
        ],
    )?;
    eprintln!(
        "wrote {}: {layers} layers, {cells} queries and {} memory rows of dim {dim}",
        args.vectors.display(),
        refs.len() * cells
    );
    Ok(())
}

/// A tensor's f32 values and shape.
fn read_f32(st: &SafeTensors<'_>, name: &str, file: &Path) -> Result<(Vec<f32>, Vec<usize>), LoupeError> {
    let bad = |r: String| LoupeError::Io { path: file.to_path_buf(), source: std::io::Error::other(r) };
    let v = st.tensor(name).map_err(|_| bad(format!("tensor `{name}` missing")))?;
    if v.dtype() != Dtype::F32 || v.shape().len() != 3 {
        return Err(bad(format!(
            "tensor `{name}`: expected F32 [layers, rows, dim], found {:?} {:?}",
            v.dtype(),
            v.shape()
        )));
    }
    Ok((v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), v.shape().to_vec()))
}

fn bench(args: &BenchReferenceArgs) -> Result<BenchReport, LoupeError> {
    let file = &args.vectors;
    let bytes = std::fs::read(file).map_err(|e| LoupeError::io(file, e))?;
    let bad = |r: String| LoupeError::Io { path: file.clone(), source: std::io::Error::other(r) };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let (q, qs) = read_f32(&st, "queries", file)?;
    let (m, ms) = read_f32(&st, "memory", file)?;
    if qs[0] != ms[0] || qs[2] != ms[2] {
        return Err(bad(format!("queries {qs:?} and memory {ms:?} differ in layers or dim")));
    }
    let (layers, nq, rows, dim) = (qs[0], qs[1], ms[1], qs[2]);
    let owners: Vec<u32> = match st.tensor("memory_owners") {
        Ok(v) => v.data().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Err(_) => vec![0; rows],
    };
    let query = PatchSet::new(&q, layers, nq, dim)?;
    let full = Memory::from_layers(
        (0..layers)
            .map(|l| MemoryLayer::new(m[l * rows * dim..(l + 1) * rows * dim].to_vec(), owners.clone(), dim))
            .collect::<Result<Vec<_>, _>>()?,
        dim,
    )?;
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).map_err(|e| LoupeError::io(dir, e))?;
    }
    let mut fractions = Vec::new();
    for &fraction in &args.fractions {
        let t = Instant::now();
        let memory = if fraction < 1.0 { full.subsample(fraction, 0)? } else { full.clone() };
        let coreset_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut times = Vec::new();
        for i in 0..args.warmup + args.repeat.max(1) {
            let t = Instant::now();
            std::hint::black_box(memory.score(&query)?);
            if i >= args.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let file = match &args.write {
            Some(dir) => Some(write_fraction(dir, fraction, &memory, &query)?),
            None => None,
        };
        fractions.push(FractionReport {
            fraction,
            rows_per_layer: memory.layers().iter().map(MemoryLayer::len).collect(),
            memory_bytes: memory.bytes(),
            coreset_ms,
            median_ms: times[times.len() / 2],
            min_ms: times[0],
            runs: times.len(),
            file,
        });
    }
    Ok(BenchReport { layers, queries: nq, dim, memory_rows: rows, threads: rayon_threads(), fractions })
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Writes `memory_<fraction>.safetensors`: the memory (normalised rows, `memory.<l>` `[rows, dim]` per layer), the
/// normalised queries and Loupe's per-layer maxima `maxima` `[layers, queries]`; returns the file's path.
fn write_fraction(dir: &Path, fraction: f32, memory: &Memory, query: &PatchSet) -> Result<String, LoupeError> {
    let dim = memory.dim();
    let mut tensors = Vec::new();
    let mut maxima = Vec::new();
    for (l, layer) in memory.layers().iter().enumerate() {
        tensors.push((format!("memory.{l}"), Dtype::F32, vec![layer.len(), dim], f32_bytes(layer.rows())));
        maxima.extend(loupe_reference::knn::max_inner_products(query.layer(l), layer.rows(), dim)?);
    }
    tensors.push((
        "queries".into(),
        Dtype::F32,
        vec![query.layers(), query.cells(), dim],
        f32_bytes(&(0..query.layers()).flat_map(|l| query.layer(l).to_vec()).collect::<Vec<_>>()),
    ));
    tensors.push(("maxima".into(), Dtype::F32, vec![query.layers(), query.cells()], f32_bytes(&maxima)));
    let path = dir.join(format!("memory_{fraction}.safetensors"));
    write_tensors(&path, tensors)?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_the_timing_path() {
        let dir = tempfile::tempdir().unwrap();
        let (layers, nq, rows, dim) = (2, 5, 40, 8);
        let mut g = loupe_reference::rng::SplitMix64::new(9);
        let q: Vec<f32> = (0..layers * nq * dim).map(|_| g.next_gaussian() as f32).collect();
        let m: Vec<f32> = (0..layers * rows * dim).map(|_| g.next_gaussian() as f32).collect();
        let file = dir.path().join("v.safetensors");
        write_tensors(
            &file,
            vec![
                ("queries".into(), Dtype::F32, vec![layers, nq, dim], f32_bytes(&q)),
                ("memory".into(), Dtype::F32, vec![layers, rows, dim], f32_bytes(&m)),
            ],
        )
        .unwrap();
        let args = BenchReferenceArgs {
            vectors: file,
            encode: false,
            queries: vec![],
            references: vec![],
            fractions: vec![1.0, 0.5],
            repeat: 2,
            warmup: 0,
            write: Some(dir.path().join("out")),
            engine: EngineOptions { model: None, prompts: None, config: None },
        };
        let r = bench(&args).unwrap();
        assert_eq!((r.layers, r.queries, r.dim, r.memory_rows), (layers, nq, dim, rows));
        assert_eq!(r.fractions[0].rows_per_layer, vec![40, 40]);
        assert_eq!(r.fractions[1].rows_per_layer, vec![20, 20]);
        assert!(dir.path().join("out/memory_0.5.safetensors").is_file());
    }
}

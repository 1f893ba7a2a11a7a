//! GPU post-processing against the CPU reference, and the choice of backend.
//!
//! Parity: every map within 1e-5 of the CPU's (absolute; maps range over [0, layers]). The GPU runs the same loops
//! in the same order, so the two differ only by the rounding of `exp`, division and fused multiply-adds: about
//! 1 ulp per operation, amplified by 1/temperature (14.3) in the logits and summed over a few layers: a few 1e-7.
//! 1e-5 leaves a wide margin for real GPUs while still catching any indexing or ordering mistake (those move
//! values by 1e-2 and more). The mask and the type map are compared exactly except at pixels within the tolerance
//! of the threshold or of a tie between types, which legitimately may go either way.
//!
//! Without a GPU adapter the GPU tests skip loudly; with `REQUIRE_GPU=1` (CI, on Mesa's lavapipe) they fail.

#![cfg(feature = "gpu")]
#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use loupe_dapo::DapoPostProcessor;
use loupe_dapo::postprocess::backend::build_postprocessor;
use loupe_dapo::postprocess::gpu::{AdapterChoice, GpuPostProcessor};
use loupe_sdk::config::{PostprocessBackend, PostprocessConfig};
use loupe_sdk::{
    Detection, Fusion, FusionRule, ImageFeatures, OutputSize, PostProcessor, PostprocessRequest, ReferenceEvidence,
    ScoringMode, TextFeatures, Thresholds,
};

mod common;
use common::Rng;

/// Post-processing settings of the parity tests: every image segmented (`segment = all`), so that masks and type
/// maps of images labelled normal are compared too.
fn parity_config() -> PostprocessConfig {
    PostprocessConfig { segment: loupe_sdk::SegmentRule::All, ..Default::default() }
}

const TOLERANCE: f32 = 1e-5;

/// Records warnings, to check that a fallback is announced.
struct Warnings(std::sync::Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.0.lock().unwrap().push(r.args().to_string());
        }
    }

    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(std::sync::Mutex::new(Vec::new()));

fn warnings() -> Vec<String> {
    // Installed once per test binary; later calls fail harmlessly.
    let _ = log::set_logger(&WARNINGS).map(|()| log::set_max_level(log::LevelFilter::Warn));
    WARNINGS.0.lock().unwrap().clone()
}

fn gpu_required() -> bool {
    std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// The GPU post-processor on whatever adapter exists (lavapipe in CI); `None` (after a loud note) when there is
/// no adapter at all, unless `REQUIRE_GPU=1`. An adapter on which it cannot be built is a failure, not a skip.
fn gpu(config: &PostprocessConfig) -> Option<GpuPostProcessor> {
    if matches!(AdapterChoice::probe(), AdapterChoice::None) {
        assert!(!gpu_required(), "REQUIRE_GPU=1 but wgpu finds no GPU adapter (is mesa-vulkan-drivers installed?)");
        eprintln!("\n!!! SKIPPED: no GPU adapter. Install mesa-vulkan-drivers (lavapipe) to run this test.\n");
        return None;
    }
    Some(GpuPostProcessor::new(config.clone()).unwrap())
}

fn random_text(rng: &mut Rng, classes: usize, dim: usize) -> TextFeatures {
    let words = (1..classes).map(|k| format!("defect{k}")).collect();
    TextFeatures::new(words, dim, rng.vec(classes * dim)).unwrap()
}

/// Patch features leaning towards random text rows, so that every class wins somewhere.
fn random_features(rng: &mut Rng, text: &TextFeatures, grid: usize, layers: usize) -> ImageFeatures {
    let dim = text.dim;
    let mut patches = Vec::with_capacity(layers * grid * grid * dim);
    for _ in 0..layers * grid * grid {
        let k = ((rng.next() + 1.0) * 0.5 * text.classes() as f32) as usize % text.classes();
        let lean = 0.2 + 0.3 * (rng.next() + 1.0);
        let noise = rng.vec(dim);
        patches.extend(text.row(k).iter().zip(noise).map(|(t, n)| lean * t * (dim as f32).sqrt() + n));
    }
    ImageFeatures { global: rng.vec(dim), patches, layers, grid_h: grid, grid_w: grid, dim }
}

#[track_caller]
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    let (i, diff) = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |best, (i, d)| if d > best.1 || d.is_nan() { (i, d) } else { best });
    assert!(diff <= TOLERANCE, "{what}: max |GPU - CPU| = {diff} at {i} (GPU {}, CPU {})", gpu[i], cpu[i]);
    eprintln!("{what}: max |GPU - CPU| = {diff:e}");
}

/// Compares a GPU detection with the CPU's; returns how many pixels were masked (to check the test bites).
#[track_caller]
fn assert_same(what: &str, gpu: &Detection, cpu: &Detection) -> usize {
    assert_eq!(gpu.score, cpu.score, "{what}: image score (computed on the CPU by both)");
    assert_eq!(gpu.class_probabilities, cpu.class_probabilities, "{what}: image class probabilities");
    assert_eq!(gpu.image_type, cpu.image_type, "{what}: image type");
    assert_eq!(gpu.thresholds, cpu.thresholds, "{what}: thresholds");
    assert_eq!((gpu.anomaly_map.width, gpu.anomaly_map.height), (cpu.anomaly_map.width, cpu.anomaly_map.height));
    assert_close(&format!("{what}: anomaly map"), &gpu.anomaly_map.data, &cpu.anomaly_map.data);
    assert_eq!(gpu.class_maps.len(), cpu.class_maps.len(), "{what}: class map count");
    for (k, (g, c)) in gpu.class_maps.iter().zip(&cpu.class_maps).enumerate() {
        assert_close(&format!("{what}: class map {k}"), &g.data, &c.data);
    }
    let thr = cpu.thresholds.pixel;
    let mut masked = 0;
    let mut disagreements = 0;
    for i in 0..cpu.mask.len() {
        let near_threshold = (cpu.anomaly_map.data[i] - thr).abs() <= TOLERANCE;
        if cpu.mask[i] != gpu.mask[i] {
            assert!(
                near_threshold,
                "{what}: mask differs at pixel {i}, {} from the threshold",
                cpu.anomaly_map.data[i] - thr
            );
            disagreements += 1;
            continue;
        }
        if cpu.mask[i] == 0 {
            continue;
        }
        masked += 1;
        if cpu.type_map[i] != gpu.type_map[i] {
            // Only a near tie between the two types may differ.
            let (a, b) = (cpu.type_map[i] as usize, gpu.type_map[i] as usize);
            let gap = (cpu.class_maps[a].data[i] - cpu.class_maps[b].data[i]).abs();
            assert!(gap <= 2.0 * TOLERANCE, "{what}: type at pixel {i}: GPU {b}, CPU {a}, class values {gap} apart");
            disagreements += 1;
        }
    }
    if disagreements == 0 {
        assert_eq!(gpu.mask, cpu.mask, "{what}: mask");
        assert_eq!(gpu.type_map, cpu.type_map, "{what}: type map");
        assert_eq!(gpu.regions.len(), cpu.regions.len(), "{what}: region count");
        for (g, c) in gpu.regions.iter().zip(&cpu.regions) {
            assert_eq!((g.bbox, g.area, &g.defect_type), (c.bbox, c.area, &c.defect_type), "{what}: region");
            assert!((g.mean_score - c.mean_score).abs() <= TOLERANCE && (g.max_score - c.max_score).abs() <= TOLERANCE);
        }
    }
    masked
}

/// Grids 8x8 and 37x37, 1+K = 2, 4, 8, 21 classes, maps 64x64, 518x518 and 97x61 in one mixed batch, sigma 0 and 4.
#[test]
fn random_inputs_match_the_cpu_at_every_size_and_class_count() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for sigma in [0.0, 4.0] {
        let config = PostprocessConfig { smoothing_sigma: sigma, keep_class_maps: true, ..parity_config() };
        let Some(gpu) = gpu(&config) else { return };
        let cpu = DapoPostProcessor::new(config.clone());
        for grid in [8, 37] {
            for classes in [2, 4, 8, 21] {
                let text = random_text(&mut rng, classes, 32);
                let images: Vec<ImageFeatures> = (0..3).map(|_| random_features(&mut rng, &text, grid, 4)).collect();
                let outputs = [(64, 64), (518, 518), (97, 61)].map(|(width, height)| OutputSize { width, height });
                let batch: Vec<(&ImageFeatures, OutputSize)> = images.iter().zip(outputs).collect();
                let from_gpu = gpu.process_batch(&batch, &text).unwrap();
                assert!(gpu.gpu_active(), "the GPU failed and fell back to the CPU: see the warnings");
                assert_eq!(from_gpu.len(), 3);
                let mut masked = 0;
                for ((f, o), g) in batch.iter().zip(&from_gpu) {
                    let what = format!("grid {grid}, {classes} classes, {}x{}, sigma {sigma}", o.width, o.height);
                    masked += assert_same(&what, g, &cpu.process(f, &text, *o).unwrap());
                }
                assert!(masked > 0, "grid {grid}, {classes} classes, sigma {sigma}: nothing masked, the test is weak");
            }
        }
    }
}

/// Reference evidence fused on the grid: every rule, text weights 0.25 and 0.75, a mixed batch with and without
/// evidence, smoothing on; the GPU equals the CPU (maps within 1e-5, same masks and types).
#[test]
fn fused_reference_evidence_matches_the_cpu_for_every_rule() {
    let config = PostprocessConfig { smoothing_sigma: 2.0, keep_class_maps: true, ..parity_config() };
    let Some(gpu) = gpu(&config) else { return };
    let cpu = DapoPostProcessor::new(config.clone());
    let mut rng = Rng(0xf00d_5eed);
    let text = random_text(&mut rng, 5, 32);
    let images: Vec<ImageFeatures> = (0..3).map(|_| random_features(&mut rng, &text, 12, 4)).collect();
    let evidence: Vec<ReferenceEvidence> = (0..2)
        .map(|_| {
            let raw = rng.vec(144).into_iter().map(|v| 0.1 * (v + 1.0)).collect();
            ReferenceEvidence::new(ScoringMode::Golden, raw, 0.05, 8).unwrap()
        })
        .collect();
    let outputs = [(50, 40), (96, 96), (33, 71)].map(|(width, height)| OutputSize { width, height });
    for rule in [FusionRule::Mean, FusionRule::Harmonic, FusionRule::LayerSum, FusionRule::Reference] {
        for text_weight in [0.25, 0.75] {
            let fusion = Fusion { rule, text_weight };
            let pixel = 0.3 * fusion.map_range(4);
            let requests: Vec<PostprocessRequest<'_>> = images
                .iter()
                .zip(outputs)
                .enumerate()
                .map(|(i, (f, output))| PostprocessRequest {
                    features: f,
                    output,
                    // The last image has no evidence: text and fused requests share a batch.
                    reference: evidence.get(i),
                    fusion,
                    thresholds: Some(Thresholds { image: 0.5, pixel }),
                })
                .collect();
            let from_gpu = gpu.process_requests(&requests, &text).unwrap();
            assert!(gpu.gpu_active(), "the GPU failed and fell back to the CPU: see the warnings");
            let mut masked = 0;
            for (r, g) in requests.iter().zip(&from_gpu) {
                let what = format!("{} w={text_weight}, {}x{}", rule.name(), r.output.width, r.output.height);
                let c = cpu.process_request(r, &text).unwrap();
                assert_eq!(g.evidence, c.evidence, "{what}: evidence");
                masked += assert_same(&what, g, &c);
            }
            assert!(masked > 0, "{}: nothing masked, the test is weak", rule.name());
        }
    }
}

/// DAPO's working size: 37x37 grid, 4 layers, dim 768, 21 classes, 518x518, with the default configuration.
#[test]
fn working_size_matches_the_cpu() {
    let config = PostprocessConfig::default();
    let Some(gpu) = gpu(&config) else { return };
    let mut rng = Rng(0x0dd_ba11);
    let text = random_text(&mut rng, 21, 768);
    let f = random_features(&mut rng, &text, 37, 4);
    let out = OutputSize { width: 518, height: 518 };
    // The CPU keeps its class maps for the tie check of `assert_same`; the GPU runs the default configuration.
    let cpu = DapoPostProcessor::new(PostprocessConfig { keep_class_maps: true, ..config.clone() });
    let mut g = gpu.process(&f, &text, out).unwrap();
    let c = cpu.process(&f, &text, out).unwrap();
    assert!(g.class_maps.is_empty(), "class maps are not kept by default");
    g.class_maps = c.class_maps.clone();
    assert!(assert_same("37x37, 21 classes, dim 768", &g, &c) > 0, "nothing masked, the test is weak");
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity/expected.safetensors")
}

/// The committed fixture's encoder outputs (tiny CLIP, 8x8 grid, 4 layers, 1+3 classes, 64x64), plain and smoothed;
/// the GPU maps also match the PyTorch reference's.
#[test]
fn fixture_features_match_the_cpu_and_the_reference() {
    let bytes = std::fs::read(fixture_path()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    let tensor = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let v = st.tensor(name).unwrap();
        let data = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        (v.shape().to_vec(), data)
    };
    let words: Vec<String> = serde_json::from_str(&meta["words"]).unwrap();
    let stems: Vec<String> = serde_json::from_str(&meta["images"]).unwrap();
    let sigma: f32 = meta["smoothing_sigma"].parse().unwrap();
    let (tshape, rows) = tensor("text_features");
    let text = TextFeatures::new(words, tshape[1], rows).unwrap();
    for (sigma, reference) in [(0.0, "anomaly_map"), (sigma, "anomaly_map_smoothed")] {
        let config = PostprocessConfig { smoothing_sigma: sigma, keep_class_maps: true, ..parity_config() };
        let Some(gpu) = gpu(&config) else { return };
        let cpu = DapoPostProcessor::new(config);
        let features: Vec<ImageFeatures> = stems
            .iter()
            .map(|s| {
                let (shape, patches) = tensor(&format!("{s}/patch_tokens"));
                let grid = (shape[1] as f64).sqrt() as usize;
                assert_eq!(grid * grid, shape[1]);
                ImageFeatures {
                    global: tensor(&format!("{s}/global")).1,
                    patches,
                    layers: shape[0],
                    grid_h: grid,
                    grid_w: grid,
                    dim: shape[2],
                }
            })
            .collect();
        let (mshape, _) = tensor(&format!("{}/{reference}", stems[0]));
        let out = OutputSize { width: mshape[1], height: mshape[0] };
        let batch: Vec<_> = features.iter().map(|f| (f, out)).collect();
        let from_gpu = gpu.process_batch(&batch, &text).unwrap();
        assert!(gpu.gpu_active());
        for ((s, f), g) in stems.iter().zip(&features).zip(&from_gpu) {
            assert_same(&format!("fixture {s}, sigma {sigma}"), g, &cpu.process(f, &text, out).unwrap());
            let expected = tensor(&format!("{s}/{reference}")).1;
            let diff = g.anomaly_map.data.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff <= 1e-4, "fixture {s}: GPU vs PyTorch reference {reference}: {diff}");
        }
    }
}

/// Through the engine: the fixture model's batch of 4 images is one GPU submission, with the CPU engine's results.
#[test]
fn engine_batches_are_one_submission_each() {
    let config = PostprocessConfig { smoothing_sigma: 1.0, ..parity_config() };
    let Some(gpu) = gpu(&config) else { return };
    let gpu = std::sync::Arc::new(gpu);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity");
    let model = loupe_dapo::ModelDir::open(&dir.join("model")).unwrap();
    let backbone = std::sync::Arc::new(loupe_dapo::ClipOnnxBackbone::from_model_dir(&model).unwrap());
    let bank = std::sync::Arc::new(loupe_dapo::DapoPromptBank::load(&dir.join("bank.safetensors"), &model).unwrap());
    let mut cfg = loupe_sdk::LoupeConfig { postprocess: config.clone(), ..Default::default() };
    cfg.engine.batch_size = 4;
    let on_gpu = loupe_sdk::Engine::new(backbone.clone(), bank.clone(), gpu.clone(), &cfg).unwrap();
    let on_cpu =
        loupe_sdk::Engine::new(backbone, bank, std::sync::Arc::new(DapoPostProcessor::new(config)), &cfg).unwrap();
    let images: Vec<loupe_sdk::OwnedImage> = ["gray", "rgb", "rgba", "gray_hole"]
        .iter()
        .map(|s| loupe_sdk::OwnedImage::open(&dir.join("images").join(format!("{s}.png"))).unwrap())
        .collect();
    let views: Vec<_> = images.iter().map(loupe_sdk::OwnedImage::view).collect();
    let before = gpu.submissions();
    let g = on_gpu.inspect(&views).unwrap();
    assert_eq!(gpu.submissions() - before, 1, "4 images with batch_size 4: one submission");
    let c = on_cpu.inspect(&views).unwrap();
    for (i, (g, c)) in g.iter().zip(&c).enumerate() {
        assert_close(&format!("engine image {i}"), &g.anomaly_map.data, &c.anomaly_map.data);
    }
    assert_eq!(on_gpu.components()[2].kind, "dapo-postprocess-gpu");
}

/// Buffers are reused across batches of different shapes, and the results do not depend on what ran before.
#[test]
fn buffers_are_reused_across_batch_shapes() {
    let config = PostprocessConfig { smoothing_sigma: 1.5, ..parity_config() };
    let Some(gpu) = gpu(&config) else { return };
    let cpu = DapoPostProcessor::new(config.clone());
    let mut rng = Rng(42);
    let text = random_text(&mut rng, 4, 16);
    let big = random_features(&mut rng, &text, 12, 3);
    let small = random_features(&mut rng, &text, 5, 2);
    let (o_big, o_small) = (OutputSize { width: 200, height: 150 }, OutputSize { width: 33, height: 17 });
    for round in 0..2 {
        let two = gpu.process_batch(&[(&big, o_big), (&small, o_small)], &text).unwrap();
        let one = gpu.process(&small, &text, o_small).unwrap();
        let c_small = cpu.process(&small, &text, o_small).unwrap();
        assert_same(&format!("round {round}, big"), &two[0], &cpu.process(&big, &text, o_big).unwrap());
        assert_same(&format!("round {round}, small in a batch"), &two[1], &c_small);
        assert_same(&format!("round {round}, small alone"), &one, &c_small);
        assert_eq!(one.anomaly_map.data, two[1].anomaly_map.data, "same image, same GPU result");
    }
}

/// A batch over the adapter's buffer limit is split into several submissions; an image over it on its own runs
/// on the CPU. Results are the same either way.
#[test]
fn batches_over_the_buffer_limit_are_split() {
    let config = PostprocessConfig::default();
    let Some(gpu) = gpu(&config) else { return };
    let cpu = DapoPostProcessor::new(config.clone());
    let mut rng = Rng(2024);
    let text = random_text(&mut rng, 4, 16);
    let images: Vec<ImageFeatures> = (0..4).map(|_| random_features(&mut rng, &text, 6, 2)).collect();
    let small = OutputSize { width: 40, height: 40 };
    let big = OutputSize { width: 100, height: 90 };
    // The largest buffer of a 40x40 image is its read-back (2 x 1600 words = 12.8 kB): two fit under 30 kB.
    gpu.lower_buffer_limit_for_tests(30_000);
    let batch = [(&images[0], small), (&images[1], small), (&images[2], big), (&images[3], small)];
    let before = gpu.submissions();
    let out = gpu.process_batch(&batch, &text).unwrap();
    // [0, 1] together, [2] alone and too large (CPU, no submission), [3] alone.
    assert_eq!(gpu.submissions() - before, 2);
    assert!(gpu.gpu_active(), "a batch over the limits is not a GPU failure");
    for (i, ((f, o), d)) in batch.iter().zip(&out).enumerate() {
        let mut c = cpu.process(f, &text, *o).unwrap();
        c.class_maps.clear();
        assert_close(&format!("image {i}"), &d.anomaly_map.data, &c.anomaly_map.data);
        assert_eq!((d.anomaly_map.width, d.anomaly_map.height), (o.width, o.height));
    }
}

#[test]
fn bad_inputs_are_refused_like_the_cpu_does() {
    let config = PostprocessConfig::default();
    let Some(gpu) = gpu(&config) else { return };
    let mut rng = Rng(7);
    let text = random_text(&mut rng, 3, 8);
    let f = random_features(&mut rng, &text, 4, 2);
    let other = random_text(&mut rng, 3, 6);
    let err = gpu.process(&f, &other, OutputSize { width: 8, height: 8 }).unwrap_err().to_string();
    assert!(err.contains("dimension"), "{err}");
    let err = gpu.process(&f, &text, OutputSize { width: 0, height: 8 }).unwrap_err().to_string();
    assert!(err.contains("output map size"), "{err}");
    assert!(gpu.gpu_active(), "bad input is the caller's error, not a GPU failure");
}

/// A lost device (a driver reset, an unplugged eGPU) makes the batch run on the CPU: same answer, no crash.
#[test]
fn a_lost_device_falls_back_to_the_cpu() {
    let config = PostprocessConfig { smoothing_sigma: 2.0, ..parity_config() };
    let Some(gpu) = gpu(&config) else { return };
    let cpu = DapoPostProcessor::new(config.clone());
    let mut rng = Rng(99);
    let text = random_text(&mut rng, 5, 16);
    let f = random_features(&mut rng, &text, 9, 4);
    let out = OutputSize { width: 70, height: 50 };
    gpu.process(&f, &text, out).unwrap();
    assert!(gpu.gpu_active());
    warnings();
    gpu.simulate_device_loss();
    let after = gpu.process_batch(&[(&f, out), (&f, out)], &text).unwrap();
    assert!(!gpu.gpu_active(), "after a failure the post-processor stays on the CPU");
    let warned = warnings();
    assert!(warned.iter().any(|w| w.contains("run on the CPU")), "no fallback warning among {warned:?}");
    eprintln!("warnings: {warned:?}");
    let expected = cpu.process(&f, &text, out).unwrap();
    for d in &after {
        assert_eq!(d.anomaly_map, expected.anomaly_map, "the fallback is the CPU path itself");
        assert_eq!(d.type_map, expected.type_map);
        assert_eq!(d.regions, expected.regions);
    }
}

/// Every output of a detection, bit for bit: the CPU fallback is the CPU post-processor itself.
#[track_caller]
fn assert_identical(what: &str, a: &Detection, b: &Detection) {
    assert_eq!(a.score.to_bits(), b.score.to_bits(), "{what}: score");
    assert_eq!(a.class_probabilities, b.class_probabilities, "{what}: class probabilities");
    assert_eq!(a.image_type, b.image_type, "{what}: image type");
    assert_eq!(a.anomaly_map, b.anomaly_map, "{what}: anomaly map");
    assert_eq!(a.class_maps, b.class_maps, "{what}: class maps");
    assert_eq!((&a.mask, &a.type_map, &a.pixel_types), (&b.mask, &b.type_map, &b.pixel_types), "{what}: mask, types");
    assert_eq!(a.regions, b.regions, "{what}: regions");
    assert_eq!(a.thresholds, b.thresholds, "{what}: thresholds");
}

/// The device lost while a batch is on the GPU (destroyed right after the submission, before the read-back, as a
/// driver reset would): that batch's results are the CPU post-processor's, a warning says the GPU was given up,
/// and every later call keeps working on the CPU with the CPU's results, without touching the GPU again.
#[test]
fn a_device_lost_during_a_batch_gives_the_cpu_results_and_later_calls_keep_working() {
    let config = PostprocessConfig { smoothing_sigma: 1.0, keep_class_maps: true, ..parity_config() };
    let Some(gpu) = gpu(&config) else { return };
    let cpu = DapoPostProcessor::new(config.clone());
    let mut rng = Rng(0xdead_5eed);
    let text = random_text(&mut rng, 4, 16);
    let images: Vec<ImageFeatures> = (0..3).map(|_| random_features(&mut rng, &text, 7, 3)).collect();
    let outputs = [(40, 30), (64, 64), (23, 51)].map(|(width, height)| OutputSize { width, height });
    let batch: Vec<(&ImageFeatures, OutputSize)> = images.iter().zip(outputs).collect();
    let expected: Vec<Detection> = batch.iter().map(|(f, o)| cpu.process(f, &text, *o).unwrap()).collect();
    for (i, (g, c)) in gpu.process_batch(&batch, &text).unwrap().iter().zip(&expected).enumerate() {
        assert_same(&format!("healthy GPU, image {i}"), g, c);
    }
    assert!(gpu.gpu_active());
    let seen = warnings().len();
    gpu.inject_device_loss_for_tests();
    let submitted = gpu.submissions();
    let during = gpu.process_batch(&batch, &text).unwrap();
    assert_eq!(gpu.submissions(), submitted + 1, "the batch went to the GPU and was lost there");
    assert!(!gpu.gpu_active(), "a lost device retires the GPU");
    let warned = warnings()[seen..].to_vec();
    eprintln!("warnings: {warned:?}");
    assert!(
        warned.iter().any(|w| w.contains("GPU post-processing failed") && w.contains("all later ones run on the CPU")),
        "no fallback warning among {warned:?}"
    );
    assert!(warned.iter().any(|w| w.contains("GPU device lost")), "a real device loss, reported by wgpu: {warned:?}");
    for (i, (d, c)) in during.iter().zip(&expected).enumerate() {
        assert_identical(&format!("batch in flight, image {i}"), d, c);
    }
    for round in 0..2 {
        let later = gpu.process_batch(&batch, &text).unwrap();
        for (i, (d, c)) in later.iter().zip(&expected).enumerate() {
            assert_identical(&format!("later batch {round}, image {i}"), d, c);
        }
        assert_identical(
            &format!("later single {round}"),
            &gpu.process(&images[1], &text, outputs[1]).unwrap(),
            &expected[1],
        );
    }
    assert_eq!(gpu.submissions(), submitted + 1, "later calls do not go back to the lost device");
}

/// Through an engine: a device lost during an engine batch gives that call the CPU engine's results exactly, and
/// the same engine's later calls too.
#[test]
fn an_engine_whose_device_is_lost_mid_batch_goes_on_with_the_cpu_results() {
    let config = parity_config();
    let Some(gpu) = gpu(&config) else { return };
    let gpu = std::sync::Arc::new(gpu);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity");
    let model = loupe_dapo::ModelDir::open(&dir.join("model")).unwrap();
    let backbone = std::sync::Arc::new(loupe_dapo::ClipOnnxBackbone::from_model_dir(&model).unwrap());
    let bank = std::sync::Arc::new(loupe_dapo::DapoPromptBank::load(&dir.join("bank.safetensors"), &model).unwrap());
    let mut cfg = loupe_sdk::LoupeConfig { postprocess: config.clone(), ..Default::default() };
    cfg.engine.batch_size = 4;
    let on_gpu = loupe_sdk::Engine::new(backbone.clone(), bank.clone(), gpu.clone(), &cfg).unwrap();
    let on_cpu =
        loupe_sdk::Engine::new(backbone, bank, std::sync::Arc::new(DapoPostProcessor::new(config)), &cfg).unwrap();
    let images: Vec<loupe_sdk::OwnedImage> = ["gray", "rgb", "rgba", "gray_hole"]
        .iter()
        .map(|s| loupe_sdk::OwnedImage::open(&dir.join("images").join(format!("{s}.png"))).unwrap())
        .collect();
    let views: Vec<_> = images.iter().map(loupe_sdk::OwnedImage::view).collect();
    let expected = on_cpu.inspect(&views).unwrap();
    on_gpu.inspect(&views).unwrap();
    assert!(gpu.gpu_active());
    let seen = warnings().len();
    gpu.inject_device_loss_for_tests();
    let during = on_gpu.inspect(&views).unwrap();
    assert!(!gpu.gpu_active());
    assert!(warnings()[seen..].iter().any(|w| w.contains("run on the CPU")), "no fallback warning");
    for (i, (d, c)) in during.iter().zip(&expected).enumerate() {
        assert_identical(&format!("engine batch in flight, image {i}"), d, c);
    }
    let later = on_gpu.inspect(&views).unwrap();
    for (i, (d, c)) in later.iter().zip(&expected).enumerate() {
        assert_identical(&format!("engine, later batch, image {i}"), d, c);
    }
    // One image alone runs the backbone on a batch of one (rounding differently from a batch of 4): compare alike.
    let single = on_cpu.inspect_one(&views[2]).unwrap();
    assert_identical("engine, later single image", &on_gpu.inspect_one(&views[2]).unwrap(), &single);
}

#[test]
fn auto_takes_the_gpu_only_on_a_hardware_adapter() {
    let choice = AdapterChoice::probe();
    let expected = match &choice {
        AdapterChoice::None => {
            assert!(!gpu_required(), "REQUIRE_GPU=1 but wgpu finds no adapter");
            eprintln!("\n!!! no GPU adapter at all: checking only that `auto` is the CPU\n");
            "dapo-postprocess-cpu"
        }
        AdapterChoice::Software(a) => {
            eprintln!("software adapter: {a}");
            "dapo-postprocess-cpu"
        }
        AdapterChoice::Hardware(a) => {
            eprintln!("hardware adapter: {a}");
            "dapo-postprocess-gpu"
        }
    };
    let config = PostprocessConfig { backend: PostprocessBackend::Auto, ..Default::default() };
    assert_eq!(build_postprocessor(&config).unwrap().info().kind, expected);
    if !matches!(choice, AdapterChoice::None) {
        let config = PostprocessConfig { backend: PostprocessBackend::Gpu, ..Default::default() };
        assert_eq!(
            build_postprocessor(&config).unwrap().info().kind,
            "dapo-postprocess-gpu",
            "`gpu` takes any adapter"
        );
    }
}

const HIDDEN_DRIVER_CHILD: &str = "LOUPE_TEST_HIDDEN_VULKAN_CHILD";
const CHILD_DONE: &str = "hidden-vulkan child: auto = cpu, gpu = error";

/// With the Vulkan driver hidden (and wgpu limited to Vulkan), there is no adapter: `auto` is the CPU and `gpu`
/// is a clear configuration error. Runs in a child process, since the Vulkan loader reads its variables once.
#[test]
fn without_vulkan_auto_is_the_cpu_and_gpu_is_an_error() {
    let missing = std::env::temp_dir().join("loupe-no-such-vulkan-icd.json");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hidden_vulkan_child", "--nocapture", "--test-threads=1"])
        .env(HIDDEN_DRIVER_CHILD, "1")
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", &missing)
        .env("VK_DRIVER_FILES", &missing)
        .env_remove("VK_ADD_DRIVER_FILES")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "child failed:\n{text}");
    assert!(text.contains(CHILD_DONE), "the child did not run its checks:\n{text}");
}

/// The child half of the test above; does nothing when run directly.
#[test]
fn hidden_vulkan_child() {
    if std::env::var_os(HIDDEN_DRIVER_CHILD).is_none() {
        return;
    }
    assert!(matches!(AdapterChoice::probe(), AdapterChoice::None), "an adapter is visible despite the hidden driver");
    let auto = PostprocessConfig { backend: PostprocessBackend::Auto, ..Default::default() };
    assert_eq!(build_postprocessor(&auto).unwrap().info().kind, "dapo-postprocess-cpu");
    let gpu = PostprocessConfig { backend: PostprocessBackend::Gpu, ..Default::default() };
    let err = build_postprocessor(&gpu).err().expect("`gpu` without an adapter must fail").to_string();
    assert!(err.contains("postprocess.backend") && err.contains("no adapter"), "{err}");
    println!("{CHILD_DONE}");
}

#[test]
fn backend_is_read_from_files_and_the_environment() {
    use loupe_sdk::{ConfigFormat, LoupeConfig};
    assert_eq!(LoupeConfig::default().postprocess.backend, PostprocessBackend::Auto);
    let cfg = LoupeConfig::from_text("[postprocess]\nbackend = \"gpu\"\n", ConfigFormat::Toml).unwrap();
    assert_eq!(cfg.postprocess.backend, PostprocessBackend::Gpu);
    let env: HashMap<String, String> = [("LOUPE_POSTPROCESS__BACKEND".to_string(), "cpu".to_string())].into();
    assert_eq!(LoupeConfig::load_with_env(None, &env).unwrap().postprocess.backend, PostprocessBackend::Cpu);
    let err =
        LoupeConfig::from_text("[postprocess]\nbackend = \"cuda\"\n", ConfigFormat::Toml).unwrap_err().to_string();
    assert!(err.contains("postprocess.backend") && err.contains("cuda"), "{err}");
}

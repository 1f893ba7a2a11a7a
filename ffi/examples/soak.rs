//! Soak run of the C ABI: one engine shared by several threads (one session each, as docs/c-api.md recommends),
//! many inspections through `loupe_session_inspect` over the fixture images. Checks that
//!
//! - every result equals, bit for bit, the single-thread result for the same image (score, normalised score,
//!   label, anomaly map, mask, type map, regions), and
//! - resident memory (VmRSS) grows by less than `--max-growth` percent between the end of the warm-up (the first
//!   `--warmup` percent of the inspections) and the end.
//!
//! ```text
//! cargo run --release -p loupe-ffi --example soak -- [--inspections 10000] [--threads 4] [--warmup 10]
//!     [--max-growth 1.0] [--config FILE | --default-model] [IMAGE...]
//! ```
//!
//! Without `--config`/`--default-model` the engine is the parity fixture's tiny model (`tests/fixtures/parity`);
//! without images, the fixture images `tests/fixtures/parity/images/*.png` and `tests/fixtures/mvtec-mini/*/*.png`.
//! Prints RSS at every tenth of the run and a summary line; exits 1 on a mismatch, a failed call or too much growth.

#![allow(clippy::unwrap_used)] // A tool: a panic with the library's message is the failure report.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use loupe::*;
use loupe_sdk::{OwnedImage, PixelFormat};

struct Args {
    inspections: usize,
    threads: usize,
    warmup_pct: f64,
    max_growth_pct: f64,
    config: Option<PathBuf>,
    default_model: bool,
    images: Vec<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: soak [--inspections N] [--threads T] [--warmup PCT] [--max-growth PCT] \
         [--config FILE | --default-model] [IMAGE...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        inspections: 10_000,
        threads: 4,
        warmup_pct: 10.0,
        max_growth_pct: 1.0,
        config: None,
        default_model: false,
        images: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--inspections" => a.inspections = value().parse().unwrap_or_else(|_| usage()),
            "--threads" => a.threads = value().parse().unwrap_or_else(|_| usage()),
            "--warmup" => a.warmup_pct = value().parse().unwrap_or_else(|_| usage()),
            "--max-growth" => a.max_growth_pct = value().parse().unwrap_or_else(|_| usage()),
            "--config" => a.config = Some(PathBuf::from(value())),
            "--default-model" => a.default_model = true,
            "-h" | "--help" => usage(),
            s if s.starts_with("--") => usage(),
            s => a.images.push(PathBuf::from(s)),
        }
    }
    if a.threads == 0 || a.inspections == 0 || !(0.0..100.0).contains(&a.warmup_pct) {
        usage();
    }
    a
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn fixture_images() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for pattern in ["tests/fixtures/parity/images", "tests/fixtures/mvtec-mini"] {
        let mut stack = vec![root().join(pattern)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                let is_mask_dir = p.file_name().is_some_and(|n| n == "ground_truth");
                if p.is_dir() && !is_mask_dir {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "png") {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(loupe_last_error()) }.to_string_lossy().into_owned()
}

#[track_caller]
fn ok(status: LoupeStatus) {
    if status != LoupeStatus::Ok {
        eprintln!("soak: {} failed: {status:?}: {}", std::panic::Location::caller(), last_error());
        std::process::exit(1);
    }
}

fn format_code(f: PixelFormat) -> u32 {
    match f {
        PixelFormat::Gray8 => LOUPE_FORMAT_GRAY8,
        PixelFormat::Rgb8 => LOUPE_FORMAT_RGB8,
        PixelFormat::Bgr8 => LOUPE_FORMAT_BGR8,
        PixelFormat::Rgba8 => LOUPE_FORMAT_RGBA8,
        PixelFormat::Bgra8 => LOUPE_FORMAT_BGRA8,
        PixelFormat::Bgrx8 => LOUPE_FORMAT_BGRX8,
        PixelFormat::Rgbx8 => LOUPE_FORMAT_RGBX8,
        PixelFormat::Gray16 { bits: 10 } => LOUPE_FORMAT_GRAY10,
        PixelFormat::Gray16 { bits: 12 } => LOUPE_FORMAT_GRAY12,
        PixelFormat::Gray16 { bits: 14 } => LOUPE_FORMAT_GRAY14,
        PixelFormat::Gray16 { .. } => LOUPE_FORMAT_GRAY16,
    }
}

fn view_of(image: &OwnedImage) -> LoupeImageView {
    LoupeImageView {
        data: image.data.as_ptr(),
        width: image.width,
        height: image.height,
        stride: 0,
        format: format_code(image.format),
    }
}

/// What is compared bit for bit: floats as their bit patterns, so NaN == NaN and -0 != +0.
#[derive(PartialEq, Eq, Debug)]
struct Fingerprint {
    score: u32,
    normalized: u32,
    anomalous: bool,
    size: (u32, u32),
    anomaly_map: Vec<u32>,
    mask: Vec<u8>,
    type_map: Vec<u16>,
    regions: Vec<[u32; 8]>,
}

/// Reads a result back through the C accessors.
fn fingerprint(r: *const LoupeResult) -> Fingerprint {
    unsafe {
        let (mut score, mut normalized, mut anomalous) = (0f32, 0f32, false);
        ok(loupe_result_score(r, &mut score));
        ok(loupe_result_normalized_score(r, &mut normalized));
        ok(loupe_result_is_anomalous(r, &mut anomalous));
        let (mut w, mut h) = (0u32, 0u32);
        let mut map = std::ptr::null();
        ok(loupe_result_anomaly_map(r, &mut map, &mut w, &mut h));
        let len = w as usize * h as usize;
        let anomaly_map = std::slice::from_raw_parts(map, len).iter().map(|v| v.to_bits()).collect();
        let (mut w2, mut h2) = (0u32, 0u32);
        let mut mask = std::ptr::null();
        ok(loupe_result_mask(r, &mut mask, &mut w2, &mut h2));
        assert_eq!((w2, h2), (w, h), "mask size differs from the anomaly map's");
        let mask = std::slice::from_raw_parts(mask, len).to_vec();
        let mut types = std::ptr::null();
        ok(loupe_result_type_map(r, &mut types, &mut w2, &mut h2));
        assert_eq!((w2, h2), (w, h), "type map size differs from the anomaly map's");
        let type_map = std::slice::from_raw_parts(types, len).to_vec();
        let mut n = 0usize;
        ok(loupe_result_region_count(r, &mut n));
        let regions = (0..n)
            .map(|i| {
                let mut g = std::mem::zeroed::<LoupeRegion>();
                ok(loupe_result_region(r, i, &mut g));
                [g.x, g.y, g.width, g.height, g.area, g.type_index, g.mean_score.to_bits(), g.max_score.to_bits()]
            })
            .collect();
        Fingerprint {
            score: score.to_bits(),
            normalized: normalized.to_bits(),
            anomalous,
            size: (w, h),
            anomaly_map,
            mask,
            type_map,
            regions,
        }
    }
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args = parse_args();
    let paths = if args.images.is_empty() { fixture_images() } else { args.images.clone() };
    let images: Vec<OwnedImage> = paths.iter().map(|p| OwnedImage::open(p).unwrap()).collect();
    assert!(!images.is_empty(), "no images");

    let mut engine = std::ptr::null_mut();
    let model = if args.default_model {
        ok(unsafe { loupe_engine_create_default(&mut engine) });
        "embedded default model".to_string()
    } else if let Some(config) = &args.config {
        let c = CString::new(config.to_str().unwrap()).unwrap();
        ok(unsafe { loupe_engine_create_from_file(c.as_ptr(), &mut engine) });
        config.display().to_string()
    } else {
        let dir = root().join("tests/fixtures/parity").canonicalize().unwrap();
        let text = format!(
            "[model]\ndir = '{}'\n[prompts]\nbank = '{}'\n",
            dir.join("model").display(),
            dir.join("bank.safetensors").display()
        );
        let c = CString::new(text).unwrap();
        ok(unsafe { loupe_engine_create_from_string(c.as_ptr(), LOUPE_CONFIG_TOML, &mut engine) });
        "parity fixture (tests/fixtures/parity)".to_string()
    };

    // The single-thread results, one session, before any other thread starts.
    let expected: Vec<Fingerprint> = unsafe {
        let mut session = std::ptr::null_mut();
        ok(loupe_session_create(engine, &mut session));
        let v = images
            .iter()
            .map(|img| {
                let mut r = std::ptr::null_mut();
                ok(loupe_session_inspect(session, &view_of(img), &mut r));
                let f = fingerprint(r);
                ok(loupe_result_destroy(r));
                f
            })
            .collect();
        ok(loupe_session_destroy(session));
        v
    };
    let distinct = expected.iter().enumerate().all(|(i, a)| expected[..i].iter().all(|b| a != b));
    println!(
        "soak: {} inspections, {} threads, {} images ({}), model: {model}",
        args.inspections,
        args.threads,
        images.len(),
        if distinct { "all results distinct" } else { "some results equal" }
    );

    let total = args.inspections;
    let warmup = ((total as f64 * args.warmup_pct / 100.0).round() as usize).max(1);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mismatches = AtomicUsize::new(0);
    let first_mismatches = Mutex::new(Vec::<String>::new());
    let rss_warm = AtomicU64::new(0);
    let milestones = Mutex::new(Vec::<(usize, u64)>::new());
    let tenth = (total / 10).max(1);
    let barrier = Barrier::new(args.threads);
    let engine_addr = engine as usize;
    let start = Instant::now();

    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| {
                let engine = engine_addr as *const LoupeEngine;
                let mut session = std::ptr::null_mut();
                ok(unsafe { loupe_session_create(engine, &mut session) });
                barrier.wait();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        break;
                    }
                    let i = k % images.len();
                    let mut r = std::ptr::null_mut();
                    ok(unsafe { loupe_session_inspect(session, &view_of(&images[i]), &mut r) });
                    let f = fingerprint(r);
                    ok(unsafe { loupe_result_destroy(r) });
                    if f != expected[i] {
                        mismatches.fetch_add(1, Ordering::Relaxed);
                        let mut m = first_mismatches.lock().unwrap();
                        if m.len() < 5 {
                            m.push(format!(
                                "inspection {k}: {} differs from the single-thread result",
                                paths[i].display()
                            ));
                        }
                    }
                    let finished = done.fetch_add(1, Ordering::AcqRel) + 1;
                    if finished == warmup {
                        rss_warm.store(rss_kib(), Ordering::Release);
                    }
                    if finished.is_multiple_of(tenth) {
                        milestones.lock().unwrap().push((finished, rss_kib()));
                    }
                }
                ok(unsafe { loupe_session_destroy(session) });
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let rss_end = rss_kib();
    ok(unsafe { loupe_engine_destroy(engine) });

    let mut milestones = milestones.into_inner().unwrap();
    milestones.sort();
    let line: Vec<String> = milestones.iter().map(|(n, kib)| format!("{n}:{kib}")).collect();
    println!("soak: RSS (KiB) after N inspections: {}", line.join(" "));
    for m in first_mismatches.into_inner().unwrap() {
        println!("soak: MISMATCH {m}");
    }
    let rss_warm = rss_warm.into_inner();
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm as f64 * 100.0;
    let mismatches = mismatches.into_inner();
    println!(
        "soak: inspections={total} threads={} seconds={seconds:.2} inspections_per_s={:.1} rss_after_warmup_kib={rss_warm} \
         rss_end_kib={rss_end} growth_pct={growth:.3} mismatches={mismatches}",
        args.threads,
        total as f64 / seconds
    );
    let mut failed = false;
    if mismatches > 0 {
        println!("soak: FAIL: {mismatches} results differ from the single-thread results");
        failed = true;
    }
    if growth >= args.max_growth_pct {
        println!("soak: FAIL: RSS grew {growth:.3} % after warm-up (limit {} %)", args.max_growth_pct);
        failed = true;
    }
    if !failed {
        println!("soak: PASS");
    }
    std::process::exit(i32::from(failed));
}

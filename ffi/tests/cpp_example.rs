//! Builds the cdylib, compiles the C++ vision-cell example (`examples/cpp`, `-Wall -Wextra -Werror`, OpenCV) and
//! the minimal C example (`examples/c`), runs them on the parity fixture, and checks that the C++ program's
//! printed scores and regions, its overlays and its masks equal the Rust API's on the same images: with the
//! engine's default, with two customers' profiles on one engine (one made from a folder of good images, one
//! loaded from a file), and with a mutual window.
//!
//! Needs g++, a C compiler and Debian's `libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev`. Without
//! them the test skips loudly, unless `REQUIRE_CPP=1` (CI sets it), when it fails.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;
mod linking;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use linking::{build_library, build_vision_cell, compile_minimal_c, cpp_toolchain_present as toolchain_present, run};
use loupe_sdk::profile::{Augmentation, ProfileOptions, ReferenceImage};
use loupe_sdk::{Detection, LoupeConfig, OwnedImage, Session, render};

/// One image's verdict as printed by the example.
#[derive(Debug, Default)]
struct Printed {
    name: String,
    /// The customer, with `--profile`.
    profile: Option<String>,
    score: f32,
    label: String,
    image_type: String,
    regions: Vec<([u32; 4], u32, String, f32, f32)>,
    /// Scoring mode, pool and window filling, with `--profile` or `--mutual`.
    evidence: Option<(String, usize, bool)>,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    find_field(line, key).unwrap_or_else(|| panic!("no `{key}=` in `{line}`"))
}

fn find_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// Parses the example's output; `%.9g` floats read back as the exact f32 that was printed.
fn parse(stdout: &str) -> Vec<Printed> {
    let mut images: Vec<Printed> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("image ") {
            let regions: usize = field(line, "regions").parse().unwrap();
            images.push(Printed {
                name: rest.split_whitespace().next().unwrap().to_string(),
                profile: find_field(line, "profile").map(str::to_string),
                score: field(line, "score").parse().unwrap(),
                label: field(line, "label").to_string(),
                image_type: field(line, "type").to_string(),
                regions: Vec::with_capacity(regions),
                evidence: find_field(line, "mode").map(|mode| {
                    (mode.to_string(), field(line, "pool").parse().unwrap(), field(line, "filling") == "yes")
                }),
            });
        } else if line.starts_with("  region ") {
            let bbox: Vec<u32> = field(line, "bbox").split(',').map(|v| v.parse().unwrap()).collect();
            images.last_mut().unwrap().regions.push((
                bbox.try_into().unwrap(),
                field(line, "area").parse().unwrap(),
                field(line, "type").to_string(),
                field(line, "mean").parse().unwrap(),
                field(line, "max").parse().unwrap(),
            ));
        }
    }
    images
}

fn assert_matches_rust(printed: &Printed, d: &Detection) {
    let name = &format!("{} ({})", printed.name, printed.profile.as_deref().unwrap_or("default"));
    assert_eq!(printed.score, d.score, "{name}: score");
    assert_eq!(printed.label, if d.is_anomalous { "anomalous" } else { "normal" }, "{name}: label");
    assert_eq!(printed.image_type, d.image_type, "{name}: image type");
    let expected: Vec<_> =
        d.regions.iter().map(|r| (r.bbox, r.area, r.defect_type.clone(), r.mean_score, r.max_score)).collect();
    assert_eq!(printed.regions, expected, "{name}: regions");
    if let Some((mode, pool, filling)) = &printed.evidence {
        assert_eq!(mode, d.evidence.mode.name(), "{name}: mode");
        assert_eq!(*pool, d.evidence.pool, "{name}: pool");
        assert_eq!(*filling, d.evidence.window_filling, "{name}: window filling");
    }
}

/// Checks the mask and overlay the example wrote for `stem` against the Rust result.
fn assert_files_match_rust(out_dir: &Path, stem: &str, image: &OwnedImage, d: &Detection) {
    let mask = image::open(out_dir.join(format!("{stem}_mask.png"))).unwrap().to_luma8();
    assert_eq!(mask.into_raw(), d.mask, "{stem}: the mask written by OpenCV from the result's memory");
    let overlay = image::open(out_dir.join(format!("{stem}_overlay.png"))).unwrap().to_rgb8();
    let expected = render::overlay(&image.view().to_rgb(), d, d.map_range);
    assert!(overlay == expected, "{stem}: the overlay differs from the SDK's rendering of the Rust result");
}

/// Builds the example into `dir` and writes the cell's configuration there; returns both paths.
fn build_example(dir: &Path) -> (PathBuf, PathBuf) {
    let program = build_vision_cell(dir);
    // Thresholds chosen so that the fixture gives both labels and several regions per image.
    let config_path = dir.join("cell.toml");
    std::fs::write(&config_path, config_toml("[postprocess]\nimage_threshold = 0.046\npixel_threshold = 3.2\n"))
        .unwrap();
    (program, config_path)
}

#[test]
fn the_cpp_vision_cell_prints_and_draws_what_the_rust_api_computes() {
    if !toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (program, config_path) = build_example(tmp.path());
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let images = fixture_images();
    let output = run(Command::new(&program).arg(&config_path).arg(&out_dir).args(&images));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed = parse(&stdout);
    assert_eq!(printed.len(), images.len(), "one verdict per image:\n{stdout}");
    assert!(stdout.starts_with(&format!("loupe {}, classes: normal hole scratch crack\n", env!("CARGO_PKG_VERSION"))));

    // The Rust API on the same configuration file and image files.
    let config = LoupeConfig::load(Some(&config_path)).unwrap();
    let engine = loupe_dapo::build_engine(&config).unwrap();
    let mut labels = Vec::new();
    let mut region_total = 0;
    for (path, p) in images.iter().zip(&printed) {
        assert_eq!(p.name, path.file_name().unwrap().to_str().unwrap());
        assert!(p.profile.is_none() && p.evidence.is_none(), "no profile option: the original output format");
        let image = OwnedImage::open(path).unwrap();
        let d = engine.inspect_one(&image.view()).unwrap();
        assert_matches_rust(p, &d);
        assert_eq!(d.map_range, engine.backbone().geometry().layers as f32);
        labels.push(d.is_anomalous);
        region_total += d.regions.len();
        assert_files_match_rust(&out_dir, path.file_stem().unwrap().to_str().unwrap(), &image, &d);
    }
    assert!(labels.contains(&true) && labels.contains(&false), "both labels exercised: {labels:?}");
    assert!(region_total > images.len(), "several regions exercised: {region_total}");

    // Bad input: an unreadable image is reported and the others still inspected; a bad configuration stops with
    // status 2 and a message naming the file and field.
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let out = Command::new(&program).arg(&config_path).arg(&out_dir).arg(&junk).arg(&images[0]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.png"));
    assert_eq!(parse(&String::from_utf8_lossy(&out.stdout)).len(), 1);
    let bad_config = tmp.path().join("bad.yaml");
    std::fs::write(&bad_config, "postprocess:\n  smoothing_sigma: -2\n").unwrap();
    let out = Command::new(&program).arg(&bad_config).arg(&out_dir).arg(&images[0]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOUPE_STATUS_CONFIG")
            && stderr.contains("bad.yaml")
            && stderr.contains("postprocess.smoothing_sigma"),
        "{stderr}"
    );
}

#[test]
fn the_cpp_vision_cell_serves_two_customers_on_one_engine_as_the_rust_api() {
    if !toolchain_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (program, config_path) = build_example(tmp.path());
    let config = LoupeConfig::load(Some(&config_path)).unwrap();
    let engine = std::sync::Arc::new(loupe_dapo::build_engine(&config).unwrap());
    let images = fixture_images();
    let decoded: Vec<OwnedImage> = images.iter().map(|p| OwnedImage::open(p).unwrap()).collect();

    // Customer "acme": a folder of three good images, made into a profile by the C++ program. The Rust profile
    // from the same files in the same (name) order, with the names the C API records.
    let refs_dir = tmp.path().join("acme-good");
    std::fs::create_dir(&refs_dir).unwrap();
    let ref_files = ["gray.png", "rgb.png", "rgba.png"];
    for f in ref_files {
        std::fs::copy(fixture_dir().join("images").join(f), refs_dir.join(f)).unwrap();
    }
    let ref_images: Vec<OwnedImage> = ref_files.iter().map(|f| OwnedImage::open(&refs_dir.join(f)).unwrap()).collect();
    let names: Vec<String> = (0..ref_images.len()).map(|i| format!("references[{i}]")).collect();
    let refs: Vec<ReferenceImage<'_>> =
        ref_images.iter().zip(&names).map(|(image, name)| ReferenceImage { name, image: image.view() }).collect();
    let acme_options = ProfileOptions { name: "acme".into(), ..ProfileOptions::default() };
    let acme = engine.bind_profile(loupe_sdk::profile::create(&engine, &refs, &acme_options).unwrap()).unwrap();
    // Customer "zenith": a profile file (mirror-augmented references, another name inside), loaded by the program.
    let zenith_options =
        ProfileOptions { name: "zenith-part-7".into(), augmentation: Augmentation::Flips, ..ProfileOptions::default() };
    let zenith_file = tmp.path().join("zenith.safetensors");
    loupe_sdk::profile::create(&engine, &refs[..2], &zenith_options).unwrap().save(&zenith_file).unwrap();
    let zenith = engine.load_profile(&zenith_file).unwrap();

    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let mut cmd = Command::new(&program);
    cmd.arg(&config_path).arg(&out_dir).arg("--profile").arg(format!("acme={}", refs_dir.display()));
    cmd.arg("--profile").arg(format!("zenith={}", zenith_file.display())).args(&images);
    let stdout = String::from_utf8(run(&mut cmd).stdout).unwrap();
    assert!(stdout.contains("profile acme: golden samples from 3 images in "), "{stdout}");
    assert!(stdout.contains("profile zenith: zenith-part-7 loaded from ") && stdout.contains("(golden samples: yes)"));
    let printed = parse(&stdout);
    assert_eq!(printed.len(), 2 * images.len(), "one verdict per image and customer:\n{stdout}");
    let mut scores: Vec<(usize, f32)> = Vec::new();
    for (i, (path, image)) in images.iter().zip(&decoded).enumerate() {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        for (k, (customer, profile)) in [("acme", &acme), ("zenith", &zenith)].into_iter().enumerate() {
            let p = &printed[2 * i + k];
            assert_eq!(
                (p.name.as_str(), p.profile.as_deref()),
                (path.file_name().unwrap().to_str().unwrap(), Some(customer))
            );
            let d = engine.inspect_with(&[image.view()], Some(profile)).unwrap().remove(0);
            assert_eq!(d.evidence.mode.name(), "golden");
            assert_matches_rust(p, &d);
            assert_files_match_rust(&out_dir, &format!("{stem}_{customer}"), image, &d);
            scores.push((k, d.score));
        }
    }
    let per_customer = |k: usize| scores.iter().filter(|s| s.0 == k).map(|s| s.1).collect::<Vec<f32>>();
    assert_ne!(per_customer(0), per_customer(1), "two profiles, two sets of verdicts");

    // A mutual window of 4 (no profile): the fixture images twice, so the window fills then scores; the verdicts
    // equal a Rust session's with the same window.
    let mut cmd = Command::new(&program);
    cmd.arg(&config_path).arg(&out_dir).arg("--mutual").arg("4").args(&images).args(&images);
    let printed = parse(&String::from_utf8(run(&mut cmd).stdout).unwrap());
    assert_eq!(printed.len(), 2 * images.len());
    let mut session = Session::new(engine.clone()).unwrap();
    session.set_window(4).unwrap();
    session.set_mutual(true);
    for (i, (p, image)) in printed.iter().zip(decoded.iter().chain(&decoded)).enumerate() {
        let d = session.inspect(&image.view()).unwrap();
        assert_matches_rust(p, &d);
        let (mode, pool, filling) = p.evidence.clone().unwrap();
        assert_eq!((mode.as_str(), filling), if i < 4 { ("text", true) } else { ("mutual", false) }, "image {i}");
        assert_eq!(pool, if i < 4 { 0 } else { 4 });
    }

    // A profile file that is not one: status 2, the message names the file.
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a profile").unwrap();
    let out = Command::new(&program)
        .arg(&config_path)
        .arg(&out_dir)
        .arg("--profile")
        .arg(format!("bad={}", junk.display()))
        .arg(&images[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOUPE_STATUS_PROFILE") && stderr.contains("junk.safetensors"), "{stderr}");
}

#[test]
fn the_minimal_c_example_compiles_pedantically_and_runs() {
    if !toolchain_present() {
        return;
    }
    let lib_dir = build_library();
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("minimal");
    let mut rpath = std::ffi::OsString::from("-Wl,-rpath,");
    rpath.push(&lib_dir);
    let flags = ["-Wall", "-Wextra", "-Werror", "-pedantic"].map(std::ffi::OsString::from);
    compile_minimal_c(&lib_dir, &program, &[flags.as_slice(), &[rpath]].concat());
    let config_path = tmp.path().join("loupe.toml");
    std::fs::write(&config_path, config_toml("")).unwrap();
    let overlay = tmp.path().join("overlay.png");
    let out = run(Command::new(&program).arg(&config_path).arg(&overlay));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let score: f32 = field(stdout.lines().next().unwrap(), "score").parse().unwrap();
    assert!((0.0..=1.0).contains(&score), "{stdout}");
    let written = image::open(&overlay).unwrap();
    assert_eq!((written.width(), written.height()), (96, 80), "the overlay has the in-memory image's size");

    // A missing configuration file: the C program prints the status name and the message naming the file.
    let out = Command::new(&program).arg(tmp.path().join("absent.toml")).arg(&overlay).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOUPE_STATUS_IO") && stderr.contains("absent.toml"), "{stderr}");
}

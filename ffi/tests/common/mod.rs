//! Shared by the C ABI tests: the parity fixture, engines made through the C functions, and a plain-Rust snapshot
//! of a result read back through every accessor (to compare with the Rust API).

#![allow(dead_code, clippy::unwrap_used)] // Not every test file uses every helper; a panic is the failure report.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use loupe::*;
use loupe_sdk::{Detection, OwnedImage, PixelFormat};

/// `tests/fixtures/parity`: the tiny model, its prompt bank and four images.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/parity")
}

/// The fixture images, sorted by name.
pub fn fixture_images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture_dir().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    assert!(v.len() >= 4, "fixture images missing: {v:?}");
    v
}

/// A TOML configuration for the fixture model and bank (absolute paths), plus `extra` lines.
pub fn config_toml(extra: &str) -> String {
    let dir = fixture_dir().canonicalize().unwrap();
    format!(
        "[model]\ndir = '{}'\n[prompts]\nbank = '{}'\n{extra}",
        dir.join("model").display(),
        dir.join("bank.safetensors").display()
    )
}

/// The message of this thread's last call.
pub fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(loupe_last_error()) }.to_string_lossy().into_owned()
}

/// `status` must be OK; otherwise panic with the library's message.
#[track_caller]
pub fn ok(status: LoupeStatus) {
    assert_eq!(status, LoupeStatus::Ok, "{}", last_error());
}

/// An engine on the fixture, through `loupe_engine_create_from_string`.
pub fn fixture_engine(extra: &str) -> *mut LoupeEngine {
    let text = CString::new(config_toml(extra)).unwrap();
    let mut engine = std::ptr::null_mut();
    ok(unsafe { loupe_engine_create_from_string(text.as_ptr(), LOUPE_CONFIG_TOML, &mut engine) });
    assert!(!engine.is_null());
    engine
}

/// The LOUPE_FORMAT_* of an SDK pixel format.
pub fn format_code(f: PixelFormat) -> u32 {
    match f {
        PixelFormat::Gray8 => LOUPE_FORMAT_GRAY8,
        PixelFormat::Rgb8 => LOUPE_FORMAT_RGB8,
        PixelFormat::Bgr8 => LOUPE_FORMAT_BGR8,
        PixelFormat::Rgba8 => LOUPE_FORMAT_RGBA8,
    }
}

/// A packed C view of a decoded image (borrows its pixels).
pub fn view_of(image: &OwnedImage) -> LoupeImageView {
    LoupeImageView {
        data: image.data.as_ptr(),
        width: image.width,
        height: image.height,
        stride: 0,
        format: format_code(image.format),
    }
}

/// Everything a result holds, copied out (through the C accessors, or from a Rust `Detection`).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub score: f32,
    pub anomalous: bool,
    pub thresholds: (f32, f32),
    pub image_type: String,
    pub classes: Vec<String>,
    pub probabilities: Vec<f32>,
    pub size: (u32, u32),
    pub anomaly_map: Vec<f32>,
    pub mask: Vec<u8>,
    pub type_map: Vec<u16>,
    /// bbox, area, type index, type name, mean and max score.
    pub regions: Vec<([u32; 4], u32, u32, String, f32, f32)>,
}

fn c_text(p: *const std::ffi::c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

/// Reads a result through every C accessor.
pub fn snapshot(r: *const LoupeResult) -> Snapshot {
    unsafe {
        let mut score = 0.0;
        ok(loupe_result_score(r, &mut score));
        let mut anomalous = false;
        ok(loupe_result_is_anomalous(r, &mut anomalous));
        let (mut ti, mut tp) = (0.0, 0.0);
        ok(loupe_result_thresholds(r, &mut ti, &mut tp));
        let mut name = std::ptr::null();
        ok(loupe_result_image_type(r, &mut name));
        let image_type = c_text(name);
        let mut n = 0;
        ok(loupe_result_class_count(r, &mut n));
        let mut classes = Vec::new();
        let mut probabilities = Vec::new();
        for i in 0..n {
            ok(loupe_result_class_name(r, i, &mut name));
            classes.push(c_text(name));
            let mut p = 0.0;
            ok(loupe_result_class_probability(r, i, &mut p));
            probabilities.push(p);
        }
        let (mut w, mut h) = (0, 0);
        let mut map = std::ptr::null();
        ok(loupe_result_anomaly_map(r, &mut map, &mut w, &mut h));
        let len = (w * h) as usize;
        let anomaly_map = std::slice::from_raw_parts(map, len).to_vec();
        let mut mask = std::ptr::null();
        let (mut w2, mut h2) = (0, 0);
        ok(loupe_result_mask(r, &mut mask, &mut w2, &mut h2));
        assert_eq!((w2, h2), (w, h));
        let mask = std::slice::from_raw_parts(mask, len).to_vec();
        let mut types = std::ptr::null();
        ok(loupe_result_type_map(r, &mut types, &mut w2, &mut h2));
        assert_eq!((w2, h2), (w, h));
        let type_map = std::slice::from_raw_parts(types, len).to_vec();
        ok(loupe_result_region_count(r, &mut n));
        let mut regions = Vec::new();
        for i in 0..n {
            let mut reg = std::mem::zeroed::<LoupeRegion>();
            ok(loupe_result_region(r, i, &mut reg));
            regions.push((
                [reg.x, reg.y, reg.width, reg.height],
                reg.area,
                reg.type_index,
                c_text(reg.type_name),
                reg.mean_score,
                reg.max_score,
            ));
        }
        Snapshot {
            score,
            anomalous,
            thresholds: (ti, tp),
            image_type,
            classes,
            probabilities,
            size: (w, h),
            anomaly_map,
            mask,
            type_map,
            regions,
        }
    }
}

/// The same snapshot from a Rust API detection.
pub fn snapshot_of(d: &Detection) -> Snapshot {
    Snapshot {
        score: d.score,
        anomalous: d.is_anomalous,
        thresholds: (d.thresholds.image, d.thresholds.pixel),
        image_type: d.image_type.clone(),
        classes: d.classes.clone(),
        probabilities: d.class_probabilities.clone(),
        size: (d.anomaly_map.width as u32, d.anomaly_map.height as u32),
        anomaly_map: d.anomaly_map.data.clone(),
        mask: d.mask.clone(),
        type_map: d.type_map.clone(),
        regions: d
            .regions
            .iter()
            .map(|r| {
                let t = d.classes.iter().position(|c| *c == r.defect_type).unwrap() as u32;
                (r.bbox, r.area, t, r.defect_type.clone(), r.mean_score, r.max_score)
            })
            .collect(),
    }
}

/// Inspects `view` with a new session on `engine` and returns the snapshot (session and result destroyed).
pub fn inspect_once(engine: *const LoupeEngine, view: &LoupeImageView) -> Snapshot {
    unsafe {
        let mut session = std::ptr::null_mut();
        ok(loupe_session_create(engine, &mut session));
        let mut result = std::ptr::null_mut();
        ok(loupe_session_inspect(session, view, &mut result));
        let s = snapshot(result);
        ok(loupe_result_destroy(result));
        ok(loupe_session_destroy(session));
        s
    }
}

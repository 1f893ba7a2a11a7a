//! Shared by the C ABI tests: the parity fixture, engines made through the C functions, and a plain-Rust snapshot
//! of a result read back through every accessor (to compare with the Rust API).

#![allow(dead_code, clippy::unwrap_used)] // Not every test file uses every helper; a panic is the failure report.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use loupe::*;
use loupe_sdk::{Detection, LoupeConfig, OwnedImage, PixelFormat, ScoringMode};

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
    config_toml_in(&fixture_dir(), extra)
}

/// A TOML configuration for the model and bank of fixture folder `dir` (`model/`, `bank.safetensors`), plus `extra`
/// lines (top-level keys such as `profile` must come before any section).
pub fn config_toml_in(dir: &Path, extra: &str) -> String {
    let dir = dir.canonicalize().unwrap();
    format!(
        "{}[model]\ndir = '{}'\n[prompts]\nbank = '{}'\n{}",
        extra.split_inclusive('\n').take_while(|l| !l.starts_with('[')).collect::<String>(),
        dir.join("model").display(),
        dir.join("bank.safetensors").display(),
        extra.split_inclusive('\n').skip_while(|l| !l.starts_with('[')).collect::<String>(),
    )
}

/// The Rust API's engine on the same configuration text as [`fixture_engine`].
pub fn rust_engine(extra: &str) -> loupe_sdk::Engine {
    let config = LoupeConfig::from_text(&config_toml(extra), loupe_sdk::ConfigFormat::Toml).unwrap();
    loupe_dapo::build_engine(&config).unwrap()
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
        PixelFormat::Bgra8 => LOUPE_FORMAT_BGRA8,
        PixelFormat::Bgrx8 => LOUPE_FORMAT_BGRX8,
        PixelFormat::Rgbx8 => LOUPE_FORMAT_RGBX8,
        PixelFormat::Gray16 { bits: 10 } => LOUPE_FORMAT_GRAY10,
        PixelFormat::Gray16 { bits: 12 } => LOUPE_FORMAT_GRAY12,
        PixelFormat::Gray16 { bits: 14 } => LOUPE_FORMAT_GRAY14,
        PixelFormat::Gray16 { .. } => LOUPE_FORMAT_GRAY16,
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
    pub normalized_score: f32,
    pub map_range: f32,
    pub evidence: EvidenceSnapshot,
}

/// A result's evidence (`LoupeEvidence`), with the reference score as an option so that snapshots compare.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvidenceSnapshot {
    pub mode: u32,
    pub text_score: f32,
    pub reference_score: Option<f32>,
    pub pool: u32,
    pub window_filling: bool,
}

/// A `LoupeEvidence` with its `struct_size` set and every other field holding a sentinel.
pub fn evidence_out() -> LoupeEvidence {
    LoupeEvidence {
        struct_size: size_of::<LoupeEvidence>() as u32,
        mode: 77,
        text_score: -7.0,
        reference_score: -7.0,
        pool: 77,
        window_filling: true,
    }
}

/// The evidence of a result, through `loupe_result_evidence`.
pub fn evidence(r: *const LoupeResult) -> EvidenceSnapshot {
    let mut e = evidence_out();
    ok(unsafe { loupe_result_evidence(r, &mut e) });
    assert_eq!(e.struct_size as usize, size_of::<LoupeEvidence>(), "struct_size is never written");
    EvidenceSnapshot {
        mode: e.mode,
        text_score: e.text_score,
        reference_score: (!e.reference_score.is_nan()).then_some(e.reference_score),
        pool: e.pool,
        window_filling: e.window_filling,
    }
}

/// The `LOUPE_MODE_*` of a scoring mode.
pub fn mode_code(mode: ScoringMode) -> u32 {
    match mode {
        ScoringMode::Text => LOUPE_MODE_TEXT,
        ScoringMode::Golden => LOUPE_MODE_GOLDEN,
        ScoringMode::Mutual => LOUPE_MODE_MUTUAL,
    }
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
        let mut normalized_score = -1.0;
        ok(loupe_result_normalized_score(r, &mut normalized_score));
        let mut map_range = -1.0;
        ok(loupe_result_map_range(r, &mut map_range));
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
            normalized_score,
            map_range,
            evidence: evidence(r),
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
        normalized_score: d.normalized_score,
        map_range: d.map_range,
        evidence: EvidenceSnapshot {
            mode: mode_code(d.evidence.mode),
            text_score: d.evidence.text_score,
            reference_score: d.evidence.reference_score,
            pool: d.evidence.pool as u32,
            window_filling: d.evidence.window_filling,
        },
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

/// The fixture images, decoded.
pub fn fixture_owned_images() -> Vec<OwnedImage> {
    fixture_images().iter().map(|p| OwnedImage::open(p).unwrap()).collect()
}

/// `image` mirrored left-right, as packed RGB: another plausible image of the same product.
pub fn mirrored(image: &OwnedImage) -> OwnedImage {
    let rgb = image::imageops::flip_horizontal(&image.view().to_rgb());
    let (width, height) = rgb.dimensions();
    OwnedImage { data: rgb.into_raw(), width, height, format: PixelFormat::Rgb8 }
}

/// Creates a profile through `loupe_profile_create` (options NULL when `options` is None).
pub fn c_profile(
    engine: *const LoupeEngine,
    references: &[LoupeImageView],
    options: Option<&LoupeProfileOptions>,
) -> *mut LoupeProfile {
    let mut profile = std::ptr::null_mut();
    let options = options.map_or(std::ptr::null(), |o| o as *const LoupeProfileOptions);
    ok(unsafe { loupe_profile_create(engine, references.as_ptr(), references.len(), options, &mut profile) });
    assert!(!profile.is_null());
    profile
}

/// A new session on `engine`.
pub fn c_session(engine: *const LoupeEngine) -> *mut LoupeSession {
    let mut session = std::ptr::null_mut();
    ok(unsafe { loupe_session_create(engine, &mut session) });
    session
}

/// Inspects `view` with `session` (its profile and window) and returns the snapshot (result destroyed).
pub fn inspect_in(session: *mut LoupeSession, view: &LoupeImageView) -> Snapshot {
    unsafe {
        let mut result = std::ptr::null_mut();
        ok(loupe_session_inspect(session, view, &mut result));
        let s = snapshot(result);
        ok(loupe_result_destroy(result));
        s
    }
}

/// A C string of a path.
pub fn c_path(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

/// The marker of the fault fixture's `fault-backbone` (`plugins/fixture-panicking`): RGB of pixel (0, 0); the red
/// byte of pixel (1, 0) is the fault code.
pub const MAGIC: [u8; 3] = [0xFA, 0x17, 0x7E];

/// `libloupe_fixture_panicking.so`, built once per test process with the running test's profile.
pub fn fault_plugin() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        loupe_tests::shared_lib(&loupe_tests::build_cdylibs(&["loupe-fixture-panicking"]), "loupe_fixture_panicking")
    })
}

/// `image` as packed RGB with the fault fixture's marker asking for fault `code`.
pub fn marked(image: &OwnedImage, code: u8) -> OwnedImage {
    let mut rgb = image.view().to_rgb();
    rgb.put_pixel(0, 0, image::Rgb(MAGIC));
    rgb.put_pixel(1, 0, image::Rgb([code, 0, 0]));
    let (width, height) = rgb.dimensions();
    OwnedImage { data: rgb.into_raw(), width, height, format: PixelFormat::Rgb8 }
}

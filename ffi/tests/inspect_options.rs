//! Per-call options, re-thresholding, the segment rule, engine queries and result JSON through the C ABI.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::CString;

use common::*;
use loupe::*;
use loupe_sdk::OwnedImage;

/// A zeroed options struct of this version.
fn options() -> LoupeInspectOptions {
    LoupeInspectOptions::default()
}

/// Inspects `view` in `session` with `options`; the result handle (caller destroys it).
fn inspect_ex(session: *mut LoupeSession, view: &LoupeImageView, o: Option<&LoupeInspectOptions>) -> *mut LoupeResult {
    let mut result = std::ptr::null_mut();
    ok(unsafe { loupe_session_inspect_ex(session, view, o.map_or(std::ptr::null(), |o| o), &mut result) });
    result
}

fn snapshot_and_destroy(result: *mut LoupeResult) -> Snapshot {
    let s = snapshot(result);
    ok(unsafe { loupe_result_destroy(result) });
    s
}

fn rethreshold(result: *const LoupeResult, o: &LoupeInspectOptions) -> Snapshot {
    let mut out = std::ptr::null_mut();
    ok(unsafe { loupe_result_rethreshold(result, o, &mut out) });
    snapshot_and_destroy(out)
}

#[test]
fn thresholds_per_call_equal_an_engine_configured_with_them_and_rethresholding() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let plain_first = inspect_once(engine, &view_of(&images[0]));
    // Thresholds that change masks and labels: a pixel threshold at the map's median, an image threshold between
    // the fixture's scores.
    let mut values = plain_first.anomaly_map.clone();
    values.sort_by(f32::total_cmp);
    let pixel = values[values.len() / 2];
    let image = plain_first.score - 1e-4;
    let set = LoupeInspectOptions {
        set: LOUPE_OPTION_IMAGE_THRESHOLD | LOUPE_OPTION_PIXEL_THRESHOLD | LOUPE_OPTION_MIN_REGION_AREA,
        image_threshold: image,
        pixel_threshold: pixel,
        min_region_area: 3,
        ..options()
    };
    let configured = fixture_engine(&format!(
        "[postprocess]\nimage_threshold = {image:?}\npixel_threshold = {pixel:?}\nmin_region_area = 3\n"
    ));
    let mut changed_masks = 0;
    for img in &images {
        let view = view_of(img);
        let expected = inspect_once(configured, &view);
        let plain = inspect_ex(session, &view, None);
        let with_options = snapshot_and_destroy(inspect_ex(session, &view, Some(&set)));
        assert_eq!(with_options, expected, "per-call options = an engine configured with them");
        assert_eq!(rethreshold(plain, &set), expected, "re-thresholding = inspecting with the thresholds");
        // A zeroed struct changes nothing, nor does re-thresholding with no field set.
        assert_eq!(snapshot_and_destroy(inspect_ex(session, &view, Some(&options()))), snapshot(plain));
        assert_eq!(rethreshold(plain, &options()), snapshot(plain));
        changed_masks += usize::from(expected.mask != snapshot(plain).mask);
        ok(unsafe { loupe_result_destroy(plain) });
    }
    assert!(changed_masks > 0, "the thresholds chosen must change some masks, or the test proves nothing");
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(configured));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn the_segment_rule_keeps_normal_images_free_of_regions() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let view = view_of(&images[0]);
    // Every image is normal (no score exceeds 1) and every pixel passes: only `all` segments it.
    let normal = LoupeInspectOptions {
        set: LOUPE_OPTION_IMAGE_THRESHOLD | LOUPE_OPTION_PIXEL_THRESHOLD | LOUPE_OPTION_SEGMENT,
        image_threshold: 1.0,
        pixel_threshold: -1.0,
        segment: LOUPE_SEGMENT_ANOMALOUS,
        ..options()
    };
    let gated = snapshot_and_destroy(inspect_ex(session, &view, Some(&normal)));
    assert!(!gated.anomalous);
    assert!(gated.regions.is_empty() && gated.mask.iter().all(|&m| m == 0) && gated.type_map.iter().all(|&t| t == 0));
    let all = snapshot_and_destroy(inspect_ex(
        session,
        &view,
        Some(&LoupeInspectOptions { segment: LOUPE_SEGMENT_ALL, ..normal }),
    ));
    assert!(!all.anomalous);
    assert_eq!(all.regions.len(), 1, "every pixel is one region");
    assert!(all.mask.iter().all(|&m| m == 255) && all.type_map.iter().all(|&t| t >= 1));
    assert_eq!(gated.anomaly_map, all.anomaly_map, "the rule changes the mask, not the map");
    // The engine's default is `anomalous`; `postprocess.segment = "all"` restores the independent thresholds.
    let mut info = engine_info_out();
    ok(unsafe { loupe_engine_info(engine, &mut info) });
    assert_eq!(info.segment, LOUPE_SEGMENT_ANOMALOUS);
    let bad = LoupeInspectOptions { segment: 9, ..normal };
    let mut result = std::ptr::null_mut();
    assert_eq!(unsafe { loupe_session_inspect_ex(session, &view, &bad, &mut result) }, LoupeStatus::InvalidArgument);
    assert!(last_error().contains("options->segment") && result.is_null(), "{}", last_error());
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn a_vocabulary_subset_equals_an_engine_with_that_vocabulary() {
    let engine = fixture_engine("");
    let mut count = 0;
    ok(unsafe { loupe_engine_class_count(engine, &mut count) });
    assert!(count >= 3, "the fixture has at least two defect words");
    let mut name = std::ptr::null();
    ok(unsafe { loupe_engine_class_name(engine, 2, &mut name) });
    let word = unsafe { std::ffi::CStr::from_ptr(name) }.to_str().unwrap().to_string();
    let subset = LoupeInspectOptions { set: LOUPE_OPTION_CLASSES, classes: &name, class_count: 1, ..options() };
    // The fixture configuration ends in its `[prompts]` section: the vocabulary joins it.
    let narrow_text = CString::new(format!("{}defects = [{word:?}]\n", config_toml(""))).unwrap();
    let mut narrow = std::ptr::null_mut();
    ok(unsafe { loupe_engine_create_from_string(narrow_text.as_ptr(), LOUPE_CONFIG_TOML, &mut narrow) });
    let session = c_session(engine);
    for img in fixture_owned_images() {
        let view = view_of(&img);
        let got = snapshot_and_destroy(inspect_ex(session, &view, Some(&subset)));
        assert_eq!(got.classes, vec!["normal".to_string(), word.clone()]);
        assert_eq!(got, inspect_once(narrow, &view));
    }
    // A word the engine does not have, and a NULL entry.
    let unknown = CString::new("no-such-defect").unwrap();
    let bad = LoupeInspectOptions { classes: &unknown.as_ptr(), ..subset };
    let images = fixture_owned_images();
    let view = view_of(&images[0]);
    let mut result = std::ptr::null_mut();
    assert_eq!(unsafe { loupe_session_inspect_ex(session, &view, &bad, &mut result) }, LoupeStatus::Vocabulary);
    assert!(last_error().contains("no-such-defect"), "{}", last_error());
    let null_word: *const std::ffi::c_char = std::ptr::null();
    let bad = LoupeInspectOptions { classes: &null_word, ..subset };
    assert_eq!(unsafe { loupe_session_inspect_ex(session, &view, &bad, &mut result) }, LoupeStatus::NullArgument);
    assert!(last_error().contains("options->classes[0]"), "{}", last_error());
    // A finished result cannot change vocabulary.
    let plain = inspect_ex(session, &view, None);
    assert_eq!(unsafe { loupe_result_rethreshold(plain, &subset, &mut result) }, LoupeStatus::InvalidArgument);
    assert!(result.is_null() && last_error().contains("LOUPE_OPTION_CLASSES"), "{}", last_error());
    unsafe {
        ok(loupe_result_destroy(plain));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(narrow));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn skipped_outputs_are_refused_not_dangling() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let view = view_of(&images[0]);
    let full = snapshot_and_destroy(inspect_ex(session, &view, None));
    let skip = LoupeInspectOptions { skip: LOUPE_SKIP_ANOMALY_MAP | LOUPE_SKIP_TYPE_MAP, ..options() };
    let r = inspect_ex(session, &view, Some(&skip));
    unsafe {
        let (mut w, mut h) = (7, 7);
        let mut map = std::ptr::null();
        assert_eq!(loupe_result_anomaly_map(r, &mut map, &mut w, &mut h), LoupeStatus::InvalidArgument);
        assert!(map.is_null() && (w, h) == (0, 0) && last_error().contains("LOUPE_SKIP_ANOMALY_MAP"));
        let mut types = std::ptr::null();
        assert_eq!(loupe_result_type_map(r, &mut types, &mut w, &mut h), LoupeStatus::InvalidArgument);
        assert!(last_error().contains("LOUPE_SKIP_TYPE_MAP"), "{}", last_error());
        let mut mask = std::ptr::null();
        ok(loupe_result_mask(r, &mut mask, &mut w, &mut h));
        assert_eq!(std::slice::from_raw_parts(mask, (w * h) as usize), full.mask.as_slice());
        let (mut score, mut regions) = (0.0, 0);
        ok(loupe_result_score(r, &mut score));
        ok(loupe_result_region_count(r, &mut regions));
        assert_eq!((score, regions), (full.score, full.regions.len()));
        let mut out = std::ptr::null_mut();
        assert_eq!(loupe_result_rethreshold(r, &options(), &mut out), LoupeStatus::Mismatch);
        assert!(out.is_null() && last_error().contains("re-thresholding"), "{}", last_error());
        let path = c_path(&std::env::temp_dir().join("loupe-skipped-overlay.png"));
        assert_eq!(loupe_result_write_overlay(r, &view, path.as_ptr()), LoupeStatus::InvalidArgument);
        ok(loupe_result_destroy(r));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn options_and_rethreshold_refuse_bad_structs_and_handles() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let view = view_of(&images[0]);
    let plain = inspect_ex(session, &view, None);
    unsafe {
        let mut out = std::ptr::null_mut();
        // A struct from an older, smaller version (or an uninitialised size) is refused before any field is read.
        for size in [0u32, 4, size_of::<LoupeInspectOptions>() as u32 - 1] {
            let o = LoupeInspectOptions { struct_size: size, ..options() };
            assert_eq!(loupe_session_inspect_ex(session, &view, &o, &mut out), LoupeStatus::InvalidArgument);
            assert!(last_error().contains("struct_size") && out.is_null(), "{}", last_error());
            assert_eq!(loupe_result_rethreshold(plain, &o, &mut out), LoupeStatus::InvalidArgument);
        }
        let nan = LoupeInspectOptions { set: LOUPE_OPTION_PIXEL_THRESHOLD, pixel_threshold: f32::NAN, ..options() };
        assert_eq!(loupe_result_rethreshold(plain, &nan, &mut out), LoupeStatus::InvalidArgument);
        assert_eq!(loupe_result_rethreshold(plain, &options(), std::ptr::null_mut()), LoupeStatus::NullArgument);
        assert_eq!(loupe_result_rethreshold(std::ptr::null(), &options(), &mut out), LoupeStatus::NullArgument);
        assert_eq!(loupe_result_rethreshold(session.cast(), &options(), &mut out), LoupeStatus::InvalidHandle);
        assert!(last_error().contains("a session, expected a result"), "{}", last_error());
        assert_eq!(loupe_session_inspect_ex(engine.cast(), &view, &options(), &mut out), LoupeStatus::InvalidHandle);
        // NULL options are the defaults.
        ok(loupe_result_rethreshold(plain, std::ptr::null(), &mut out));
        assert_eq!(snapshot(out), snapshot(plain));
        ok(loupe_result_destroy(out));
        ok(loupe_result_destroy(plain));
        assert_eq!(loupe_result_rethreshold(plain, &options(), &mut out), LoupeStatus::InvalidHandle, "stale");
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

/// A `LoupeEngineInfo` with its size set and sentinels elsewhere.
fn engine_info_out() -> LoupeEngineInfo {
    LoupeEngineInfo {
        struct_size: size_of::<LoupeEngineInfo>() as u32,
        model_name: std::ptr::null(),
        model_id: std::ptr::null(),
        bank_name: std::ptr::null(),
        bank_id: std::ptr::null(),
        postprocessor: std::ptr::null(),
        input_width: 0,
        input_height: 0,
        layers: 0,
        feature_dim: 0,
        image_threshold: -1.0,
        pixel_threshold: -1.0,
        min_region_area: 0,
        segment: 0,
        class_count: 0,
        has_default_profile: true,
    }
}

fn text(p: *const std::ffi::c_char) -> String {
    assert!(!p.is_null());
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

#[test]
fn engines_say_what_they_hold_and_the_default_needs_no_configuration() {
    let engine = fixture_engine("[postprocess]\nimage_threshold = 0.25\nmin_region_area = 4\n");
    let rust = rust_engine("[postprocess]\nimage_threshold = 0.25\nmin_region_area = 4\n");
    let [model, bank, post] = rust.components();
    let g = rust.backbone().geometry().clone();
    let mut info = engine_info_out();
    unsafe {
        ok(loupe_engine_info(engine, &mut info));
        assert_eq!(info.struct_size as usize, size_of::<LoupeEngineInfo>());
        assert_eq!((text(info.model_name), text(info.model_id)), (model.name, model.id));
        assert_eq!((text(info.bank_name), text(info.bank_id)), (bank.name, bank.id));
        assert_eq!(text(info.postprocessor), post.kind);
        assert_eq!([info.input_height, info.input_width], g.input_size);
        assert_eq!((info.layers as usize, info.feature_dim as usize), (g.layers, g.feature_dim));
        assert_eq!((info.image_threshold, info.pixel_threshold), (0.25, 0.5 * g.layers as f32));
        assert_eq!((info.min_region_area, info.class_count as usize), (4, 1 + rust.vocabulary().len()));
        assert!(!info.has_default_profile);
        // What a result of this engine reports agrees.
        let images = fixture_owned_images();
        let s = inspect_once(engine, &view_of(&images[0]));
        assert_eq!(s.thresholds, (info.image_threshold, info.pixel_threshold));

        let mut small = LoupeEngineInfo { struct_size: 8, ..engine_info_out() };
        assert_eq!(loupe_engine_info(engine, &mut small), LoupeStatus::InvalidArgument);
        assert!(small.model_name.is_null() && last_error().contains("struct_size"), "nothing written");
        assert_eq!(loupe_engine_info(engine, std::ptr::null_mut()), LoupeStatus::NullArgument);
        assert_eq!(loupe_engine_info(std::ptr::null(), &mut info), LoupeStatus::NullArgument);
        let session = c_session(engine);
        assert_eq!(loupe_engine_info(session.cast(), &mut info), LoupeStatus::InvalidHandle);
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
        assert_eq!(loupe_engine_info(engine, &mut info), LoupeStatus::InvalidHandle, "stale");

        let mut default = std::ptr::null_mut();
        ok(loupe_engine_create_default(&mut default));
        let mut info = engine_info_out();
        ok(loupe_engine_info(default, &mut info));
        let embedded = loupe_dapo::build_engine(&loupe_sdk::LoupeConfig::default()).unwrap();
        assert_eq!(text(info.model_id), embedded.backbone().info().id);
        let image = OwnedImage::open(&fixture_images()[0]).unwrap();
        assert_eq!(inspect_once(default, &view_of(&image)), snapshot_of(&embedded.inspect_one(&image.view()).unwrap()));
        ok(loupe_engine_destroy(default));
        assert_eq!(loupe_engine_create_default(std::ptr::null_mut()), LoupeStatus::NullArgument);
    }
}

#[test]
fn result_json_is_the_cli_document() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let view = view_of(&images[0]);
    let r = inspect_ex(session, &view, None);
    let s = snapshot(r);
    let name = CString::new("part-7.png").unwrap();
    unsafe {
        let mut len = 0;
        ok(loupe_result_to_json(r, name.as_ptr(), std::ptr::null_mut(), 0, &mut len));
        assert!(len > 100, "{len}");
        let mut small = vec![b'#' as std::ffi::c_char; len];
        assert_eq!(loupe_result_to_json(r, name.as_ptr(), small.as_mut_ptr(), len, &mut len), LoupeStatus::OutOfRange);
        assert!(small.iter().all(|&c| c == b'#' as std::ffi::c_char), "a short buffer is left untouched");
        let mut buf = vec![0 as std::ffi::c_char; len + 1];
        ok(loupe_result_to_json(r, name.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut len));
        let json = std::ffi::CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert_eq!(json.len(), len);
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["image"], "part-7.png");
        assert_eq!(v["score"].as_f64().unwrap() as f32, s.score);
        assert_eq!(v["label"], if s.anomalous { "anomalous" } else { "normal" });
        assert_eq!(v["regions"].as_array().unwrap().len(), s.regions.len());
        assert_eq!(v["mask_pixels"].as_u64().unwrap() as usize, s.mask.iter().filter(|&&m| m != 0).count());
        assert_eq!(v["segment"], "anomalous");
        let rust = rust_engine("");
        assert_eq!(v["components"]["backbone"]["id"], rust.backbone().info().id.as_str());
        // The same document as the CLI's writer, field for field.
        let image = OwnedImage::open(&fixture_images()[0]).unwrap();
        let d = rust.inspect_one(&image.view()).unwrap();
        let cli = loupe_sdk::report::ImageReport::new(
            "part-7.png".into(),
            &d,
            d.map_range,
            &rust.components(),
            Default::default(),
        );
        assert_eq!(json, serde_json::to_string_pretty(&cli).unwrap());
        assert_eq!(
            loupe_result_to_json(r, std::ptr::null(), std::ptr::null_mut(), 0, std::ptr::null_mut()),
            LoupeStatus::NullArgument
        );
        ok(loupe_result_to_json(r, std::ptr::null(), std::ptr::null_mut(), 0, &mut len));
        ok(loupe_result_destroy(r));
        assert_eq!(
            loupe_result_to_json(r, std::ptr::null(), std::ptr::null_mut(), 0, &mut len),
            LoupeStatus::InvalidHandle
        );
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

//! Every C function, given a NULL handle or NULL pointer, returns the right status (no crash); destroyed, foreign
//! and wrong-kind handles are refused with `LOUPE_STATUS_INVALID_HANDLE`. The test checks that it covered every
//! function declared in `include/loupe.h`, so a new function cannot skip it.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char};
use std::ptr::{null, null_mut};

use common::*;
use loupe::*;
use loupe_sdk::OwnedImage;

/// Records which functions were exercised and checks statuses and messages.
struct Checker {
    covered: BTreeSet<&'static str>,
}

impl Checker {
    #[track_caller]
    fn expect(&mut self, function: &'static str, found: LoupeStatus, expected: LoupeStatus, message_has: &str) {
        self.covered.insert(function);
        let message = last_error();
        assert_eq!(found, expected, "{function}: {message}");
        if expected == LoupeStatus::Ok {
            assert!(message.is_empty(), "{function}: a success leaves no message, found `{message}`");
        } else {
            assert!(message.contains(message_has), "{function}: message `{message}` should contain `{message_has}`");
        }
    }

    #[track_caller]
    fn null(&mut self, function: &'static str, found: LoupeStatus, argument: &str) {
        self.expect(function, found, LoupeStatus::NullArgument, &format!("`{argument}` is NULL"));
    }

    #[track_caller]
    fn stale(&mut self, function: &'static str, found: LoupeStatus) {
        self.expect(function, found, LoupeStatus::InvalidHandle, "not a live Loupe handle");
    }
}

/// Function names declared in the committed header.
fn header_functions() -> BTreeSet<String> {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/loupe.h")).unwrap();
    header
        .lines()
        .filter(|l| !l.trim_start().starts_with('*') && !l.trim_start().starts_with("/*"))
        .filter_map(|l| l.split('(').next().filter(|_| l.contains('(')))
        .filter_map(|head| head.split_whitespace().last())
        .map(|name| name.trim_start_matches('*').to_string())
        .filter(|name| name.starts_with("loupe_"))
        .collect()
}

struct Live {
    engine: *mut LoupeEngine,
    session: *mut LoupeSession,
    result: *mut LoupeResult,
    profile: *mut LoupeProfile,
}

fn live(image: &OwnedImage) -> Live {
    let engine = fixture_engine("");
    let mut session = null_mut();
    let mut result = null_mut();
    unsafe {
        ok(loupe_session_create(engine, &mut session));
        ok(loupe_session_inspect(session, &view_of(image), &mut result));
    }
    let profile = c_profile(engine, &[view_of(image), view_of(image)], None);
    Live { engine, session, result, profile }
}

/// Calls every function taking a handle with `engine`, `session`, `result` and `profile` as given, expecting each
/// to be refused as stale or wrong-kind (`check` says how).
#[allow(clippy::too_many_arguments)] // One argument per handle kind, plus what the calls need.
unsafe fn call_all_with_handles(
    c: &mut Checker,
    engine: *mut LoupeEngine,
    session: *mut LoupeSession,
    result: *mut LoupeResult,
    profile: *mut LoupeProfile,
    view: &LoupeImageView,
    path: &CStr,
    check: fn(&mut Checker, &'static str, LoupeStatus),
) {
    unsafe {
        let (mut n, mut f, mut b, mut name) = (0usize, 0f32, false, null::<c_char>());
        let mut s = null_mut();
        let mut r = null_mut();
        let mut p = null_mut();
        let mut e = evidence_out();
        let views = [*view, *view];
        let mut region = std::mem::zeroed::<LoupeRegion>();
        let (mut w, mut h) = (0u32, 0u32);
        let (mut fm, mut bm, mut tm) = (null::<f32>(), null::<u8>(), null::<u16>());
        check(c, "loupe_engine_class_count", loupe_engine_class_count(engine, &mut n));
        check(c, "loupe_engine_class_name", loupe_engine_class_name(engine, 0, &mut name));
        check(c, "loupe_session_create", loupe_session_create(engine, &mut s));
        check(c, "loupe_session_inspect", loupe_session_inspect(session, view, &mut r));
        check(c, "loupe_session_inspect_batch", loupe_session_inspect_batch(session, view, 1, &mut r));
        check(c, "loupe_session_set_profile", loupe_session_set_profile(session, null()));
        check(
            c,
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(session, profile, view, &mut r),
        );
        check(c, "loupe_session_set_mutual", loupe_session_set_mutual(session, 8));
        check(c, "loupe_session_window_len", loupe_session_window_len(session, &mut n));
        check(c, "loupe_profile_load", loupe_profile_load(engine, path.as_ptr(), &mut p));
        check(c, "loupe_profile_create", loupe_profile_create(engine, views.as_ptr(), 2, null(), &mut p));
        check(c, "loupe_profile_save", loupe_profile_save(profile, path.as_ptr()));
        check(c, "loupe_profile_name", loupe_profile_name(profile, &mut name));
        check(c, "loupe_profile_has_references", loupe_profile_has_references(profile, &mut b));
        check(c, "loupe_result_normalized_score", loupe_result_normalized_score(result, &mut f));
        check(c, "loupe_result_evidence", loupe_result_evidence(result, &mut e));
        assert!(p.is_null() && !b && e.reference_score.is_nan() && (e.mode, e.pool) == (LOUPE_MODE_TEXT, 0));
        check(c, "loupe_result_score", loupe_result_score(result, &mut f));
        check(c, "loupe_result_is_anomalous", loupe_result_is_anomalous(result, &mut b));
        check(c, "loupe_result_thresholds", loupe_result_thresholds(result, &mut f, &mut f.clone()));
        check(c, "loupe_result_image_type", loupe_result_image_type(result, &mut name));
        check(c, "loupe_result_class_count", loupe_result_class_count(result, &mut n));
        check(c, "loupe_result_class_name", loupe_result_class_name(result, 0, &mut name));
        check(c, "loupe_result_class_probability", loupe_result_class_probability(result, 0, &mut f));
        check(c, "loupe_result_anomaly_map", loupe_result_anomaly_map(result, &mut fm, &mut w, &mut h));
        check(c, "loupe_result_map_range", loupe_result_map_range(result, &mut f));
        check(c, "loupe_result_mask", loupe_result_mask(result, &mut bm, &mut w, &mut h));
        check(c, "loupe_result_type_map", loupe_result_type_map(result, &mut tm, &mut w, &mut h));
        check(c, "loupe_result_region_count", loupe_result_region_count(result, &mut n));
        check(c, "loupe_result_region", loupe_result_region(result, 0, &mut region));
        check(c, "loupe_result_write_overlay", loupe_result_write_overlay(result, view, path.as_ptr()));
        let mut info = std::mem::zeroed::<LoupeEngineInfo>();
        info.struct_size = size_of::<LoupeEngineInfo>() as u32;
        check(c, "loupe_engine_info", loupe_engine_info(engine, &mut info));
        check(c, "loupe_session_inspect_ex", loupe_session_inspect_ex(session, view, null(), &mut r));
        let mut status = LoupeStatus::Ok;
        check(
            c,
            "loupe_session_inspect_batch_ex",
            loupe_session_inspect_batch_ex(session, view, 1, null(), &mut r, &mut status),
        );
        assert_ne!(status, LoupeStatus::Ok, "a refused batch gives its slots the call's status");
        check(
            c,
            "loupe_session_inspect_with_profile_ex",
            loupe_session_inspect_with_profile_ex(session, profile, view, null(), &mut r),
        );
        check(c, "loupe_result_rethreshold", loupe_result_rethreshold(result, null(), &mut r));
        check(c, "loupe_result_to_json", loupe_result_to_json(result, null(), null_mut(), 0, &mut n));
        assert!(info.model_name.is_null(), "a refused query writes nothing");
        // Outputs of refused calls are cleared, never left pointing at something.
        assert!(s.is_null() && r.is_null() && name.is_null() && fm.is_null() && bm.is_null() && tm.is_null());
        assert!(region.type_name.is_null() && (w, h) == (0, 0));
        check(c, "loupe_result_destroy", loupe_result_destroy(result));
        check(c, "loupe_session_destroy", loupe_session_destroy(session));
        check(c, "loupe_engine_destroy", loupe_engine_destroy(engine));
        check(c, "loupe_profile_destroy", loupe_profile_destroy(profile));
    }
}

#[test]
fn every_function_refuses_null_stale_and_wrong_kind_handles() {
    let image = OwnedImage::open(&fixture_dir().join("images/gray.png")).unwrap();
    let view = view_of(&image);
    let dir = tempfile::tempdir().unwrap();
    let overlay = CString::new(dir.path().join("o.png").to_str().unwrap()).unwrap();
    let config = CString::new(config_toml("")).unwrap();
    let config_path = dir.path().join("loupe.toml");
    std::fs::write(&config_path, config_toml("")).unwrap();
    let config_path = CString::new(config_path.to_str().unwrap()).unwrap();
    let mut c = Checker { covered: BTreeSet::new() };
    let l = live(&image);

    unsafe {
        // Functions without pointer arguments never fail.
        c.covered.extend(["loupe_c_api_version", "loupe_version", "loupe_last_error", "loupe_status_name"]);
        assert_eq!(loupe_c_api_version(), LOUPE_C_API_VERSION);
        assert_eq!(CStr::from_ptr(loupe_version()).to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(CStr::from_ptr(loupe_status_name(LoupeStatus::NullArgument as i32)), c"LOUPE_STATUS_NULL_ARGUMENT");
        assert!(!loupe_last_error().is_null());

        // NULL handles and NULL pointers, one argument at a time, the others valid. A sentinel in each output
        // checks that failures clear it.
        let sentinel = std::ptr::dangling_mut::<u8>();
        let (mut e, mut s, mut r) = (sentinel.cast(), sentinel.cast(), sentinel.cast());
        c.null("loupe_engine_create_from_file", loupe_engine_create_from_file(null(), &mut e), "path");
        assert!(e.is_null());
        c.null(
            "loupe_engine_create_from_file",
            loupe_engine_create_from_file(config_path.as_ptr(), null_mut()),
            "out_engine",
        );
        c.null(
            "loupe_engine_create_from_string",
            loupe_engine_create_from_string(null(), LOUPE_CONFIG_TOML, &mut e),
            "text",
        );
        c.null(
            "loupe_engine_create_from_string",
            loupe_engine_create_from_string(config.as_ptr(), LOUPE_CONFIG_TOML, null_mut()),
            "out_engine",
        );
        let (mut n, mut f, mut b, mut name) = (7usize, 1f32, true, sentinel.cast_const().cast::<c_char>());
        c.null("loupe_engine_class_count", loupe_engine_class_count(null(), &mut n), "engine");
        assert_eq!(n, 0);
        c.null("loupe_engine_class_count", loupe_engine_class_count(l.engine, null_mut()), "out_count");
        c.null("loupe_engine_class_name", loupe_engine_class_name(null(), 0, &mut name), "engine");
        assert!(name.is_null());
        c.null("loupe_engine_class_name", loupe_engine_class_name(l.engine, 0, null_mut()), "out_name");
        c.null("loupe_session_create", loupe_session_create(null(), &mut s), "engine");
        assert!(s.is_null());
        c.null("loupe_session_create", loupe_session_create(l.engine, null_mut()), "out_session");
        c.null("loupe_session_inspect", loupe_session_inspect(null_mut(), &view, &mut r), "session");
        assert!(r.is_null());
        c.null("loupe_session_inspect", loupe_session_inspect(l.session, null(), &mut r), "image");
        c.null("loupe_session_inspect", loupe_session_inspect(l.session, &view, null_mut()), "out_result");
        let no_pixels = LoupeImageView { data: null(), ..view };
        c.null("loupe_session_inspect", loupe_session_inspect(l.session, &no_pixels, &mut r), "image.data");
        r = sentinel.cast();
        c.null("loupe_session_inspect_batch", loupe_session_inspect_batch(null_mut(), &view, 1, &mut r), "session");
        assert!(r.is_null());
        c.null("loupe_session_inspect_batch", loupe_session_inspect_batch(l.session, null(), 1, &mut r), "images");
        c.null(
            "loupe_session_inspect_batch",
            loupe_session_inspect_batch(l.session, &view, 1, null_mut()),
            "out_results",
        );
        c.null(
            "loupe_session_inspect_batch",
            loupe_session_inspect_batch(l.session, &no_pixels, 1, &mut r),
            "images[0].data",
        );
        c.null(
            "loupe_session_inspect_batch",
            loupe_session_inspect_batch(null_mut(), null(), 0, null_mut()),
            "session",
        );

        // Profiles and the session calls that take them.
        let mut p = sentinel.cast::<LoupeProfile>();
        let pair = [view, view];
        c.null("loupe_profile_load", loupe_profile_load(null(), config_path.as_ptr(), &mut p), "engine");
        assert!(p.is_null());
        c.null("loupe_profile_load", loupe_profile_load(l.engine, null(), &mut p), "path");
        c.null("loupe_profile_load", loupe_profile_load(l.engine, config_path.as_ptr(), null_mut()), "out_profile");
        p = sentinel.cast();
        c.null("loupe_profile_create", loupe_profile_create(null(), pair.as_ptr(), 2, null(), &mut p), "engine");
        assert!(p.is_null());
        c.null("loupe_profile_create", loupe_profile_create(l.engine, null(), 2, null(), &mut p), "references");
        c.null(
            "loupe_profile_create",
            loupe_profile_create(l.engine, pair.as_ptr(), 2, null(), null_mut()),
            "out_profile",
        );
        let no_pixel_pair = [view, LoupeImageView { data: null(), ..view }];
        c.null(
            "loupe_profile_create",
            loupe_profile_create(l.engine, no_pixel_pair.as_ptr(), 2, null(), &mut p),
            "references[1].data",
        );
        c.null("loupe_profile_save", loupe_profile_save(null(), overlay.as_ptr()), "profile");
        c.null("loupe_profile_save", loupe_profile_save(l.profile, null()), "path");
        c.null("loupe_profile_name", loupe_profile_name(null(), &mut name), "profile");
        assert!(name.is_null());
        c.null("loupe_profile_name", loupe_profile_name(l.profile, null_mut()), "out_name");
        c.null("loupe_profile_has_references", loupe_profile_has_references(null(), &mut b), "profile");
        assert!(!b);
        c.null(
            "loupe_profile_has_references",
            loupe_profile_has_references(l.profile, null_mut()),
            "out_has_references",
        );
        c.null("loupe_session_set_profile", loupe_session_set_profile(null_mut(), l.profile), "session");
        c.null("loupe_session_set_mutual", loupe_session_set_mutual(null_mut(), 8), "session");
        n = 7;
        c.null("loupe_session_window_len", loupe_session_window_len(null(), &mut n), "session");
        assert_eq!(n, 0);
        c.null("loupe_session_window_len", loupe_session_window_len(l.session, null_mut()), "out_count");
        r = sentinel.cast();
        c.null(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(null_mut(), l.profile, &view, &mut r),
            "session",
        );
        assert!(r.is_null());
        c.null(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(l.session, null(), &view, &mut r),
            "profile",
        );
        c.null(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(l.session, l.profile, null(), &mut r),
            "image",
        );
        c.null(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(l.session, l.profile, &view, null_mut()),
            "out_result",
        );
        c.null(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(l.session, l.profile, &no_pixels, &mut r),
            "image.data",
        );
        // The successes of the calls above, with live handles (NULL profile = the engine's default).
        c.expect("loupe_session_set_profile", loupe_session_set_profile(l.session, l.profile), LoupeStatus::Ok, "");
        c.expect("loupe_session_set_profile", loupe_session_set_profile(l.session, null()), LoupeStatus::Ok, "");
        c.expect("loupe_session_set_mutual", loupe_session_set_mutual(l.session, 0), LoupeStatus::Ok, "");
        // Wrong kind in the second handle argument, the first one live.
        let wrong_profile = l.session.cast_const().cast::<LoupeProfile>();
        c.expect(
            "loupe_session_set_profile",
            loupe_session_set_profile(l.session, wrong_profile),
            LoupeStatus::InvalidHandle,
            "is a session, expected a profile",
        );
        c.expect(
            "loupe_session_inspect_with_profile",
            loupe_session_inspect_with_profile(l.session, wrong_profile, &view, &mut r),
            LoupeStatus::InvalidHandle,
            "is a session, expected a profile",
        );
        assert!(r.is_null());

        let res = l.result as *const LoupeResult;
        c.null("loupe_result_score", loupe_result_score(null(), &mut f), "result");
        assert_eq!(f, 0.0);
        c.null("loupe_result_score", loupe_result_score(res, null_mut()), "out_score");
        b = true;
        c.null("loupe_result_is_anomalous", loupe_result_is_anomalous(null(), &mut b), "result");
        assert!(!b);
        c.null("loupe_result_is_anomalous", loupe_result_is_anomalous(res, null_mut()), "out_anomalous");
        c.null("loupe_result_thresholds", loupe_result_thresholds(null(), &mut f, &mut f.clone()), "result");
        c.null("loupe_result_thresholds", loupe_result_thresholds(res, null_mut(), &mut f), "out_image");
        c.null("loupe_result_thresholds", loupe_result_thresholds(res, &mut f, null_mut()), "out_pixel");
        name = sentinel.cast_const().cast();
        c.null("loupe_result_image_type", loupe_result_image_type(null(), &mut name), "result");
        assert!(name.is_null());
        c.null("loupe_result_image_type", loupe_result_image_type(res, null_mut()), "out_name");
        c.null("loupe_result_class_count", loupe_result_class_count(null(), &mut n), "result");
        c.null("loupe_result_class_count", loupe_result_class_count(res, null_mut()), "out_count");
        c.null("loupe_result_class_name", loupe_result_class_name(null(), 0, &mut name), "result");
        c.null("loupe_result_class_name", loupe_result_class_name(res, 0, null_mut()), "out_name");
        c.null("loupe_result_class_probability", loupe_result_class_probability(null(), 0, &mut f), "result");
        c.null("loupe_result_class_probability", loupe_result_class_probability(res, 0, null_mut()), "out_probability");
        let (mut w, mut h) = (5u32, 5u32);
        let mut fm = sentinel.cast_const().cast::<f32>();
        c.null("loupe_result_anomaly_map", loupe_result_anomaly_map(null(), &mut fm, &mut w, &mut h), "result");
        assert!(fm.is_null() && (w, h) == (0, 0));
        c.null("loupe_result_anomaly_map", loupe_result_anomaly_map(res, null_mut(), &mut w, &mut h), "out_data");
        c.null("loupe_result_anomaly_map", loupe_result_anomaly_map(res, &mut fm, null_mut(), &mut h), "out_width");
        c.null("loupe_result_anomaly_map", loupe_result_anomaly_map(res, &mut fm, &mut w, null_mut()), "out_height");
        c.null("loupe_result_map_range", loupe_result_map_range(null(), &mut f), "result");
        c.null("loupe_result_map_range", loupe_result_map_range(res, null_mut()), "out_range");
        let mut bm = null::<u8>();
        c.null("loupe_result_mask", loupe_result_mask(null(), &mut bm, &mut w, &mut h), "result");
        c.null("loupe_result_mask", loupe_result_mask(res, null_mut(), &mut w, &mut h), "out_data");
        c.null("loupe_result_mask", loupe_result_mask(res, &mut bm, null_mut(), &mut h), "out_width");
        c.null("loupe_result_mask", loupe_result_mask(res, &mut bm, &mut w, null_mut()), "out_height");
        let mut tm = null::<u16>();
        c.null("loupe_result_type_map", loupe_result_type_map(null(), &mut tm, &mut w, &mut h), "result");
        c.null("loupe_result_type_map", loupe_result_type_map(res, null_mut(), &mut w, &mut h), "out_data");
        c.null("loupe_result_type_map", loupe_result_type_map(res, &mut tm, null_mut(), &mut h), "out_width");
        c.null("loupe_result_type_map", loupe_result_type_map(res, &mut tm, &mut w, null_mut()), "out_height");
        c.null("loupe_result_normalized_score", loupe_result_normalized_score(null(), &mut f), "result");
        c.null("loupe_result_normalized_score", loupe_result_normalized_score(res, null_mut()), "out_score");
        let mut e = evidence_out();
        c.null("loupe_result_evidence", loupe_result_evidence(null(), &mut e), "result");
        assert!(e.reference_score.is_nan() && (e.mode, e.pool, e.window_filling) == (LOUPE_MODE_TEXT, 0, false));
        c.null("loupe_result_evidence", loupe_result_evidence(res, null_mut()), "out_evidence");
        c.null("loupe_result_region_count", loupe_result_region_count(null(), &mut n), "result");
        c.null("loupe_result_region_count", loupe_result_region_count(res, null_mut()), "out_count");
        let mut region = std::mem::zeroed::<LoupeRegion>();
        c.null("loupe_result_region", loupe_result_region(null(), 0, &mut region), "result");
        c.null("loupe_result_region", loupe_result_region(res, 0, null_mut()), "out_region");
        c.null("loupe_result_write_overlay", loupe_result_write_overlay(null(), &view, overlay.as_ptr()), "result");
        c.null("loupe_result_write_overlay", loupe_result_write_overlay(res, null(), overlay.as_ptr()), "image");
        c.null("loupe_result_write_overlay", loupe_result_write_overlay(res, &view, null()), "path");
        c.null(
            "loupe_result_write_overlay",
            loupe_result_write_overlay(res, &no_pixels, overlay.as_ptr()),
            "image.data",
        );
        let mut info = std::mem::zeroed::<LoupeEngineInfo>();
        info.struct_size = size_of::<LoupeEngineInfo>() as u32;
        c.null("loupe_engine_info", loupe_engine_info(null(), &mut info), "engine");
        c.null("loupe_engine_info", loupe_engine_info(l.engine, null_mut()), "out_info");
        c.null("loupe_engine_create_default", loupe_engine_create_default(null_mut()), "out_engine");
        c.null("loupe_session_inspect_ex", loupe_session_inspect_ex(null_mut(), &view, null(), &mut r), "session");
        c.null("loupe_session_inspect_ex", loupe_session_inspect_ex(l.session, null(), null(), &mut r), "image");
        c.null(
            "loupe_session_inspect_ex",
            loupe_session_inspect_ex(l.session, &view, null(), null_mut()),
            "out_result",
        );
        let mut statuses = [LoupeStatus::Ok; 2];
        let mut results = [null_mut(); 2];
        let views = [view, view];
        let batch = |session, images, out_results, out_statuses| {
            loupe_session_inspect_batch_ex(session, images, 2, null(), out_results, out_statuses)
        };
        let (rp, sp) = (results.as_mut_ptr(), statuses.as_mut_ptr());
        c.null("loupe_session_inspect_batch_ex", batch(null_mut(), views.as_ptr(), rp, sp), "session");
        assert_eq!(statuses, [LoupeStatus::NullArgument; 2]);
        c.null("loupe_session_inspect_batch_ex", batch(l.session, null(), rp, sp), "images");
        c.null("loupe_session_inspect_batch_ex", batch(l.session, views.as_ptr(), null_mut(), sp), "out_results");
        c.null("loupe_session_inspect_batch_ex", batch(l.session, views.as_ptr(), rp, null_mut()), "out_statuses");
        let p = l.profile;
        c.null(
            "loupe_session_inspect_with_profile_ex",
            loupe_session_inspect_with_profile_ex(l.session, null(), &view, null(), &mut r),
            "profile",
        );
        c.null(
            "loupe_session_inspect_with_profile_ex",
            loupe_session_inspect_with_profile_ex(l.session, p, null(), null(), &mut r),
            "image",
        );
        c.null("loupe_result_rethreshold", loupe_result_rethreshold(null(), null(), &mut r), "result");
        c.null("loupe_result_rethreshold", loupe_result_rethreshold(res, null(), null_mut()), "out_result");
        c.null("loupe_result_to_json", loupe_result_to_json(null(), null(), null_mut(), 0, &mut n), "result");
        c.null("loupe_result_to_json", loupe_result_to_json(res, null(), null_mut(), 0, null_mut()), "out_length");
        // A NULL log callback removes the callback: not an error.
        c.expect(
            "loupe_set_log_callback",
            loupe_set_log_callback(LOUPE_LOG_WARN, None, null_mut()),
            LoupeStatus::Ok,
            "",
        );
        // Destroying NULL is a no-op, as with free().
        c.expect("loupe_result_destroy", loupe_result_destroy(null_mut()), LoupeStatus::Ok, "");
        c.expect("loupe_session_destroy", loupe_session_destroy(null_mut()), LoupeStatus::Ok, "");
        c.expect("loupe_engine_destroy", loupe_engine_destroy(null_mut()), LoupeStatus::Ok, "");
        c.expect("loupe_profile_destroy", loupe_profile_destroy(null_mut()), LoupeStatus::Ok, "");

        // Wrong kinds: each live handle passed where another kind is expected.
        let wrong = |c: &mut Checker, f: &'static str, s: LoupeStatus| {
            c.expect(f, s, LoupeStatus::InvalidHandle, ", expected ")
        };
        call_all_with_handles(
            &mut c,
            l.profile.cast(),
            l.engine.cast(),
            l.session.cast(),
            l.result.cast(),
            &view,
            &overlay,
            wrong,
        );

        // Foreign values that Loupe never handed out.
        let foreign = std::ptr::dangling_mut::<u64>();
        call_all_with_handles(
            &mut c,
            foreign.cast(),
            foreign.cast(),
            foreign.cast(),
            foreign.cast(),
            &view,
            &overlay,
            Checker::stale,
        );

        // Stale: destroyed handles, after new objects were created (a reused address must not revive them).
        ok(loupe_result_destroy(l.result));
        ok(loupe_session_destroy(l.session));
        ok(loupe_engine_destroy(l.engine));
        ok(loupe_profile_destroy(l.profile));
        let fresh = live(&image);
        call_all_with_handles(&mut c, l.engine, l.session, l.result, l.profile, &view, &overlay, Checker::stale);
        // The fresh handles still work after all that.
        let mut score = -1.0;
        ok(loupe_result_score(fresh.result, &mut score));
        assert!((0.0..=1.0).contains(&score));
        let mut has = false;
        ok(loupe_profile_has_references(fresh.profile, &mut has));
        assert!(has);
        ok(loupe_result_destroy(fresh.result));
        ok(loupe_session_destroy(fresh.session));
        ok(loupe_engine_destroy(fresh.engine));
        ok(loupe_profile_destroy(fresh.profile));
    }

    let declared = header_functions();
    let covered: BTreeSet<String> = c.covered.iter().map(|s| s.to_string()).collect();
    assert!(declared.len() >= 37, "header parse found only {declared:?}");
    let missed: Vec<_> = declared.difference(&covered).collect();
    assert!(missed.is_empty(), "functions of include/loupe.h not exercised with NULL/stale arguments: {missed:?}");
}

#[test]
fn out_of_range_indices_and_bad_arguments_are_named() {
    let image = OwnedImage::open(&fixture_dir().join("images/gray.png")).unwrap();
    let l = live(&image);
    unsafe {
        let mut n = 0;
        ok(loupe_result_region_count(l.result, &mut n));
        let mut region = std::mem::zeroed::<LoupeRegion>();
        assert_eq!(loupe_result_region(l.result, n, &mut region), LoupeStatus::OutOfRange);
        assert!(last_error().contains(&format!("expected < {n}, found {n}")), "{}", last_error());
        let mut name = null();
        assert_eq!(loupe_result_class_name(l.result, 99, &mut name), LoupeStatus::OutOfRange);
        let text = CString::new(config_toml("")).unwrap();
        let mut e = null_mut();
        assert_eq!(loupe_engine_create_from_string(text.as_ptr(), 0, &mut e), LoupeStatus::InvalidArgument);
        assert!(last_error().contains("`format`") && last_error().contains("found 0"), "{}", last_error());
        let not_utf8 = [0xFFu8, 0xFE, 0];
        assert_eq!(
            loupe_engine_create_from_string(not_utf8.as_ptr().cast(), LOUPE_CONFIG_TOML, &mut e),
            LoupeStatus::InvalidArgument
        );
        assert!(last_error().contains("UTF-8"), "{}", last_error());
        let short_stride = LoupeImageView { stride: 3, ..view_of(&image) };
        let mut r = null_mut();
        assert_eq!(loupe_session_inspect(l.session, &short_stride, &mut r), LoupeStatus::Image);
        assert!(last_error().contains("image.stride"), "{}", last_error());
        ok(loupe_result_destroy(l.result));
        ok(loupe_session_destroy(l.session));
        ok(loupe_engine_destroy(l.engine));
        ok(loupe_profile_destroy(l.profile));
    }
}

//! Misuse of the C API, each defined (a status, or documented as safe) and tested (docs/c-api.md, "Handles and
//! ownership", "Thread-safety"):
//!
//! - the engine handle destroyed while its sessions, results and profiles live: they keep working, with the same
//!   results as before;
//! - results used after their engine, session and profile are gone: valid, contents unchanged;
//! - one session used from two threads at once: the second call gets `LOUPE_STATUS_BUSY` and the first completes
//!   correctly. The overlap is made deterministic, not timed: the first call runs an image whose marker makes the
//!   fault fixture's backbone (`plugins/fixture-panicking`, `wait`) hold it inside the inspection until the test
//!   has made every other call; the same holds a session, or its engine, being destroyed mid-inspection;
//! - double destroys: `null_and_stale.rs` destroys every handle kind a second time (after new handles were made)
//!   and gets `LOUPE_STATUS_INVALID_HANDLE`; here two threads destroy one handle at the same moment: exactly one
//!   succeeds;
//! - views with a stride shorter than a row, and NULL pixels with a non-zero size, in every function taking views:
//!   a status and a message naming the field.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::ffi::CStr;
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::*;
use loupe::*;

/// The `wait` fault: write `<flag_dir>/entered`, wait for `<flag_dir>/release`, then encode normally.
const WAIT: u8 = 10;

const COMMON: &str = "[postprocess]\nbackend = 'cpu'\n";

/// An engine whose backbone (the DAPO backbone, through the fault fixture) holds marked `wait` images until
/// `flags/release` exists.
fn holding_engine(flags: &Path) -> *mut LoupeEngine {
    fixture_engine(&format!(
        "{COMMON}[components]\nbackbone = 'fault-backbone'\n[components.options.fault-backbone]\nflag_dir = '{}'\n\
         [plugins]\nuse_env = false\npaths = ['{}']\n",
        flags.display(),
        fault_plugin().display()
    ))
}

/// Waits until the backbone has written `flags/entered` (a failure after 60 s: the fixture never got the image).
fn wait_until_held(flags: &Path) {
    let start = Instant::now();
    while !flags.join("entered").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the backbone never received the held image");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn release(flags: &Path) {
    std::fs::write(flags.join("release"), b"").unwrap();
}

/// Inspects with the session at `session` (an address, so that it crosses threads): status, message, snapshot.
fn inspect_at(session: usize, view: &LoupeImageView) -> (LoupeStatus, String, Option<Snapshot>) {
    let mut result = null_mut();
    let status = unsafe { loupe_session_inspect(session as *mut LoupeSession, view, &mut result) };
    let message = last_error();
    let snap = (status == LoupeStatus::Ok).then(|| {
        let s = snapshot(result);
        unsafe { ok(loupe_result_destroy(result)) };
        s
    });
    (status, message, snap)
}

#[track_caller]
fn busy(function: &str, status: LoupeStatus) {
    let message = last_error();
    assert_eq!(status, LoupeStatus::Busy, "{function}: {message}");
    assert!(message.contains("`session` is in use by another thread") && message.contains("one session per thread"));
}

#[test]
fn a_second_call_on_a_busy_session_gets_busy_and_the_first_completes_correctly() {
    let flags = tempfile::tempdir().unwrap();
    let engine = holding_engine(flags.path());
    let clean = fixture_engine(COMMON);
    let images = fixture_owned_images();
    let held = marked(&images[1], WAIT);
    let expected_held = inspect_once(clean, &view_of(&held));
    let expected: Vec<Snapshot> = images.iter().map(|i| inspect_once(clean, &view_of(i))).collect();
    let session = c_session(engine);
    let other = c_session(engine);
    let profile = c_profile(engine, &[view_of(&images[0]), view_of(&images[2])], None);
    let view = view_of(&images[0]);
    let views = [view, view_of(&images[3])];
    std::thread::scope(|s| {
        let addr = session as usize;
        let held = &held;
        let first = s.spawn(move || inspect_at(addr, &view_of(held)));
        wait_until_held(flags.path());
        // The first call is inside the backbone, holding the session, until `release`: every call on the session
        // from this thread meets it, whatever the timing.
        unsafe {
            let mut r = std::ptr::dangling_mut::<LoupeResult>();
            busy("loupe_session_inspect", loupe_session_inspect(session, &view, &mut r));
            assert!(r.is_null(), "a refused call clears its output");
            busy("loupe_session_inspect_ex", loupe_session_inspect_ex(session, &view, null(), &mut r));
            busy("inspect_with_profile", loupe_session_inspect_with_profile(session, profile, &view, &mut r));
            busy(
                "inspect_with_profile_ex",
                loupe_session_inspect_with_profile_ex(session, profile, &view, null(), &mut r),
            );
            assert!(r.is_null());
            let mut rs = [std::ptr::dangling_mut::<LoupeResult>(); 2];
            busy(
                "loupe_session_inspect_batch",
                loupe_session_inspect_batch(session, views.as_ptr(), 2, rs.as_mut_ptr()),
            );
            assert!(rs.iter().all(|r| r.is_null()));
            let mut statuses = [LoupeStatus::Ok; 2];
            busy(
                "loupe_session_inspect_batch_ex",
                loupe_session_inspect_batch_ex(
                    session,
                    views.as_ptr(),
                    2,
                    null(),
                    rs.as_mut_ptr(),
                    statuses.as_mut_ptr(),
                ),
            );
            assert_eq!(statuses, [LoupeStatus::Busy; 2], "each image gets the call's status");
            assert!(rs.iter().all(|r| r.is_null()));
            busy("loupe_session_set_profile", loupe_session_set_profile(session, profile));
            busy("loupe_session_set_mutual", loupe_session_set_mutual(session, 8));
            let mut n = 99;
            busy("loupe_session_window_len", loupe_session_window_len(session, &mut n));
            assert_eq!(n, 0);
        }
        // Other sessions of the same engine are not held up, nor is the engine.
        assert_eq!(inspect_in(other, &view), expected[0], "another session meanwhile");
        let mut classes = 0;
        unsafe { ok(loupe_engine_class_count(engine, &mut classes)) };
        assert!(classes > 1);
        release(flags.path());
        let (status, message, snap) = first.join().unwrap();
        assert_eq!(status, LoupeStatus::Ok, "the first call: {message}");
        assert_eq!(snap.unwrap(), expected_held, "the first call's result is the clean engine's");
    });
    // The session is free again, and the refused calls changed nothing (no profile, no mutual window).
    for (i, image) in images.iter().enumerate() {
        assert_eq!(inspect_in(session, &view_of(image)), expected[i], "image {i} after the overlap");
    }
    let mut n = 99;
    unsafe {
        ok(loupe_session_window_len(session, &mut n));
        assert_eq!(n, 0, "the refused set_mutual did not turn mutual scoring on");
        ok(loupe_session_destroy(session));
        ok(loupe_session_destroy(other));
        ok(loupe_profile_destroy(profile));
        ok(loupe_engine_destroy(engine));
        ok(loupe_engine_destroy(clean));
    }
}

/// docs/c-api.md: a session (or its engine) destroyed while one of its inspections runs on another thread: the
/// inspection completes normally and returns a valid result; later calls on the handle get
/// `LOUPE_STATUS_INVALID_HANDLE`.
#[test]
fn destroying_a_session_and_its_engine_during_an_inspection_lets_it_complete() {
    let flags = tempfile::tempdir().unwrap();
    let engine = holding_engine(flags.path());
    let clean = fixture_engine(COMMON);
    let images = fixture_owned_images();
    let held = marked(&images[3], WAIT);
    let expected_held = inspect_once(clean, &view_of(&held));
    let session = c_session(engine);
    std::thread::scope(|s| {
        let addr = session as usize;
        let held = &held;
        let first = s.spawn(move || inspect_at(addr, &view_of(held)));
        wait_until_held(flags.path());
        unsafe {
            ok(loupe_session_destroy(session));
            ok(loupe_engine_destroy(engine));
            let (mut r, mut s) = (null_mut(), null_mut());
            assert_eq!(loupe_session_inspect(session, &view_of(&images[0]), &mut r), LoupeStatus::InvalidHandle);
            assert_eq!(loupe_session_create(engine, &mut s), LoupeStatus::InvalidHandle);
        }
        release(flags.path());
        let (status, message, snap) = first.join().unwrap();
        assert_eq!(status, LoupeStatus::Ok, "{message}");
        assert_eq!(snap.unwrap(), expected_held);
    });
    unsafe { ok(loupe_engine_destroy(clean)) };
}

/// A result's contents through every accessor, its JSON, and a re-thresholded copy's snapshot.
fn everything(r: *const LoupeResult) -> (Snapshot, String, Snapshot) {
    let mut len = 0;
    unsafe {
        ok(loupe_result_to_json(r, c"part.png".as_ptr(), null_mut(), 0, &mut len));
        let mut buf = vec![0u8; len + 1];
        ok(loupe_result_to_json(r, c"part.png".as_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut len));
        let json = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_string();
        let mut o: LoupeInspectOptions = std::mem::zeroed();
        o.struct_size = size_of::<LoupeInspectOptions>() as u32;
        o.set = LOUPE_OPTION_PIXEL_THRESHOLD;
        o.pixel_threshold = 1.0;
        let mut again = null_mut();
        ok(loupe_result_rethreshold(r, &o, &mut again));
        let re = snapshot(again);
        ok(loupe_result_destroy(again));
        (snapshot(r), json, re)
    }
}

#[test]
fn destroying_the_engine_leaves_its_sessions_profiles_and_results_working_unchanged() {
    let engine = fixture_engine("");
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let (plain, golden) = (c_session(engine), c_session(engine));
    // Two sessions with mutual windows fed the same 4 images: one scores a 5th before the engine handle goes, the
    // other after, from the window it kept.
    let (mutual, mutual_twin) = (c_session(engine), c_session(engine));
    let profile = c_profile(engine, &[views[0], views[2]], None);
    unsafe {
        ok(loupe_session_set_profile(golden, profile));
        ok(loupe_session_set_mutual(mutual, 4));
        ok(loupe_session_set_mutual(mutual_twin, 4));
    }
    let before_plain: Vec<Snapshot> = views.iter().map(|v| inspect_in(plain, v)).collect();
    let before_golden: Vec<Snapshot> = views.iter().map(|v| inspect_in(golden, v)).collect();
    let mut r_before = null_mut();
    unsafe { ok(loupe_session_inspect(plain, &views[1], &mut r_before)) };
    let kept = everything(r_before);
    for v in &views {
        inspect_in(mutual, v);
        inspect_in(mutual_twin, v);
    }
    let before_mutual = inspect_in(mutual, &views[1]);
    assert_eq!((before_mutual.evidence.mode, before_mutual.evidence.pool), (LOUPE_MODE_MUTUAL, 4));
    let mut name = null();
    unsafe { ok(loupe_engine_class_name(engine, 1, &mut name)) };
    let class_name = unsafe { CStr::from_ptr(name) }.to_owned();

    unsafe {
        ok(loupe_engine_destroy(engine));
        assert_eq!(loupe_engine_destroy(engine), LoupeStatus::InvalidHandle, "the handle itself is gone");
        let mut s = null_mut();
        assert_eq!(loupe_session_create(engine, &mut s), LoupeStatus::InvalidHandle);
        // Engine class names live until the engine and its sessions are destroyed.
        assert_eq!(CStr::from_ptr(name), class_name.as_c_str());
    }
    // Sessions go on with the same results, their profile and window included; profiles still apply.
    let after_plain: Vec<Snapshot> = views.iter().map(|v| inspect_in(plain, v)).collect();
    assert_eq!(after_plain, before_plain);
    let after_golden: Vec<Snapshot> = views.iter().map(|v| inspect_in(golden, v)).collect();
    assert_eq!(after_golden, before_golden);
    assert_eq!(inspect_in(mutual_twin, &views[1]), before_mutual, "the window a session kept past its engine handle");
    unsafe {
        ok(loupe_session_set_profile(plain, profile));
        assert_eq!(inspect_in(plain, &views[3]), before_golden[3], "the profile set after the engine went");
        let mut r = null_mut();
        ok(loupe_session_inspect_with_profile(mutual, profile, &views[0], &mut r));
        assert_eq!(snapshot(r), before_golden[0]);
        ok(loupe_result_destroy(r));
    }
    assert_eq!(everything(r_before), kept, "a result made before the engine was destroyed");
    unsafe {
        ok(loupe_session_destroy(plain));
        ok(loupe_session_destroy(golden));
        ok(loupe_session_destroy(mutual));
        ok(loupe_session_destroy(mutual_twin));
        ok(loupe_profile_destroy(profile));
    }
    assert_eq!(everything(r_before), kept, "and after its sessions and profile were destroyed");
    unsafe { ok(loupe_result_destroy(r_before)) };
}

#[test]
fn results_outlive_their_engine_session_and_profile_with_their_contents() {
    let engine = fixture_engine("");
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let session = c_session(engine);
    let profile = c_profile(engine, &[views[0], views[2]], None);
    let mut results = vec![null_mut(); 4];
    let mut golden = null_mut();
    unsafe {
        ok(loupe_session_inspect_batch(session, views.as_ptr(), 4, results.as_mut_ptr()));
        ok(loupe_session_inspect_with_profile(session, profile, &views[3], &mut golden));
    }
    results.push(golden);
    let before: Vec<_> = results.iter().map(|&r| everything(r)).collect();
    let mut map = null();
    let (mut w, mut h) = (0, 0);
    unsafe { ok(loupe_result_anomaly_map(results[1], &mut map, &mut w, &mut h)) };
    let copied = unsafe { std::slice::from_raw_parts(map, (w * h) as usize) }.to_vec();
    unsafe {
        ok(loupe_profile_destroy(profile));
        ok(loupe_engine_destroy(engine));
        ok(loupe_session_destroy(session));
    }
    let after: Vec<_> = results.iter().map(|&r| everything(r)).collect();
    assert_eq!(after, before, "contents, JSON and re-thresholding of results whose makers are gone");
    assert_eq!(after[4].0.evidence.mode, LOUPE_MODE_GOLDEN);
    // Pointers returned before stay valid too (they are owned by the result).
    assert_eq!(unsafe { std::slice::from_raw_parts(map, (w * h) as usize) }, copied.as_slice());
    let dir = tempfile::tempdir().unwrap();
    let path = c_path(&dir.path().join("overlay.png"));
    unsafe { ok(loupe_result_write_overlay(results[1], &views[1], path.as_ptr())) };
    for r in results {
        unsafe { ok(loupe_result_destroy(r)) };
    }
}

/// Two threads destroy the same handle at the same moment, for every kind: whatever the interleaving, exactly one
/// call succeeds and the other gets `LOUPE_STATUS_INVALID_HANDLE`; a third destroy is refused too. (Destroying a
/// destroyed handle after new handles were made, for each kind: `null_and_stale.rs`.)
#[test]
fn two_threads_destroying_one_handle_one_succeeds() {
    let engine = fixture_engine("");
    let image = &fixture_owned_images()[0];
    let race = |destroy: &(dyn Fn() -> LoupeStatus + Sync)| {
        let barrier = Barrier::new(2);
        let mut outcomes: Vec<(LoupeStatus, String)> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let status = destroy();
                        (status, last_error())
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        outcomes.sort_by_key(|(s, _)| *s as i32);
        assert_eq!(outcomes[0], (LoupeStatus::Ok, String::new()), "{outcomes:?}");
        assert_eq!(outcomes[1].0, LoupeStatus::InvalidHandle, "{outcomes:?}");
        let m = &outcomes[1].1;
        assert!(m.contains("was destroyed by another thread") || m.contains("is not a live Loupe handle"), "{m}");
        assert_eq!(destroy(), LoupeStatus::InvalidHandle, "a third destroy");
    };
    for _ in 0..8 {
        let session = c_session(engine) as usize;
        let result = {
            let mut r = null_mut();
            unsafe { ok(loupe_session_inspect(session as *mut _, &view_of(image), &mut r)) };
            r as usize
        };
        let profile = c_profile(engine, &[view_of(image), view_of(image)], None) as usize;
        let other_engine = fixture_engine("") as usize;
        race(&|| unsafe { loupe_result_destroy(result as *mut _) });
        race(&|| unsafe { loupe_session_destroy(session as *mut _) });
        race(&|| unsafe { loupe_profile_destroy(profile as *mut _) });
        race(&|| unsafe { loupe_engine_destroy(other_engine as *mut _) });
    }
    unsafe { ok(loupe_engine_destroy(engine)) };
}

/// Every function taking image views refuses a stride shorter than a row and NULL pixels (with a non-zero size),
/// with a status and a message naming the view's field (`image`, `images[i]`, `references[i]`), and no output.
#[test]
fn short_strides_and_null_pixels_are_refused_naming_the_field() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let good = view_of(&images[2]);
    let mut r0 = null_mut();
    unsafe { ok(loupe_session_inspect(session, &good, &mut r0)) };
    let pixels = vec![128u8; 64 * 64 * 8]; // Room for any of the views below: a bad view is refused, never read.
    let dir = tempfile::tempdir().unwrap();
    let overlay = c_path(&dir.path().join("o.png"));
    let cases = [
        (LOUPE_FORMAT_RGB8, 3, 64),         // the width in pixels passed as the stride in bytes
        (LOUPE_FORMAT_RGB8, 3, 64 * 3 - 1), // one byte short
        (LOUPE_FORMAT_BGRA8, 4, 64 * 3),    // a 3-channel stride for a 4-channel view
        (LOUPE_FORMAT_GRAY12, 2, 64),       // 16-bit words counted as bytes
        (LOUPE_FORMAT_GRAY8, 1, 63),
    ];
    let null_pixels = LoupeImageView { data: null(), width: 64, height: 64, stride: 0, format: LOUPE_FORMAT_RGB8 };
    let mut refusals = Vec::new();
    for (format, bpp, stride) in cases {
        let view = LoupeImageView { data: pixels.as_ptr(), width: 64, height: 64, stride, format };
        let says = |name: &str| {
            format!(
                "`{name}.stride`: expected >= width * channels = {} bytes (or 0 for packed), found {stride}",
                64 * bpp
            )
        };
        refusals.push((view, LoupeStatus::Image, says("image"), says("images[1]"), says("references[1]")));
    }
    refusals.push((
        null_pixels,
        LoupeStatus::NullArgument,
        "`image.data` is NULL".to_string(),
        "`images[1].data` is NULL".to_string(),
        "`references[1].data` is NULL".to_string(),
    ));
    for (bad, status, single, in_batch, in_references) in refusals {
        unsafe {
            let mut r = std::ptr::dangling_mut::<LoupeResult>();
            assert_eq!(loupe_session_inspect(session, &bad, &mut r), status, "{}", last_error());
            assert_eq!(last_error(), single);
            assert!(r.is_null());
            assert_eq!(loupe_result_write_overlay(r0, &bad, overlay.as_ptr()), status);
            assert_eq!(last_error(), single, "loupe_result_write_overlay");
            // All-or-nothing batch: the bad view refuses the call.
            let views = [good, bad, good];
            let mut rs = [std::ptr::dangling_mut::<LoupeResult>(); 3];
            assert_eq!(loupe_session_inspect_batch(session, views.as_ptr(), 3, rs.as_mut_ptr()), status);
            assert_eq!(last_error(), in_batch, "loupe_session_inspect_batch");
            assert!(rs.iter().all(|r| r.is_null()));
            // Batch with statuses: only the bad view's slot fails.
            let mut statuses = [LoupeStatus::Error; 3];
            let call = loupe_session_inspect_batch_ex(
                session,
                views.as_ptr(),
                3,
                null(),
                rs.as_mut_ptr(),
                statuses.as_mut_ptr(),
            );
            assert_eq!(call, LoupeStatus::BatchPartial, "{}", last_error());
            assert_eq!(last_error(), format!("1 of 3 images failed: images[1]: {in_batch}"));
            assert_eq!(statuses, [LoupeStatus::Ok, status, LoupeStatus::Ok]);
            assert!(rs[1].is_null() && !rs[0].is_null() && !rs[2].is_null());
            ok(loupe_result_destroy(rs[0]));
            ok(loupe_result_destroy(rs[2]));
            let mut p = std::ptr::dangling_mut::<LoupeProfile>();
            assert_eq!(loupe_profile_create(engine, views.as_ptr(), 3, null(), &mut p), status);
            assert_eq!(last_error(), in_references, "loupe_profile_create");
            assert!(p.is_null());
        }
    }
    unsafe {
        ok(loupe_result_destroy(r0));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

//! Faults inside plugin components, through the C API: an engine made from a configuration string that loads the
//! fault fixture (`plugins/fixture-panicking`: `fault-backbone` faults on images carrying a marker, see its
//! `src/lib.rs`; `cpp/throwing_postprocessor.cpp` throws on maps of chosen widths). Each fault gives that call a
//! status and a message naming the component and what was wrong (single images and batches), and the same engine
//! and session then inspect the next images exactly as a clean engine does.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use common::*;
use loupe::*;
use loupe_sdk::{OwnedImage, PixelFormat};

/// The C++ throwing post-processor, compiled into `dir`; `None` (said on stderr) without g++ unless REQUIRE_CPP=1.
fn throwing_plugin(dir: &Path) -> Option<PathBuf> {
    let src = loupe_tests::repo_root().join("plugins/fixture-panicking/cpp/throwing_postprocessor.cpp");
    loupe_tests::compile_plugin("g++", &src, &dir.join("libfault_hysteresis.so"))
}

/// Settings shared by the faulty and the clean engines.
const COMMON: &str = "[engine]\nbatch_size = 4\n[postprocess]\nbackend = 'cpu'\n";

/// An engine on the fixture model whose backbone is the fault fixture's, loaded from its shared library.
fn faulty_engine() -> *mut LoupeEngine {
    fixture_engine(&format!(
        "{COMMON}[components]\nbackbone = 'fault-backbone'\n[plugins]\nuse_env = false\npaths = ['{}']\n",
        fault_plugin().display()
    ))
}

/// `image` resized to `width` columns, as packed RGB.
fn widened(image: &OwnedImage, width: u32) -> OwnedImage {
    let rgb = image.view().to_rgb();
    let crop = image::imageops::resize(&rgb, width, rgb.height(), image::imageops::FilterType::Triangle);
    OwnedImage { data: crop.into_raw(), width, height: image.height, format: PixelFormat::Rgb8 }
}

/// Inspects `view` with `session`: the status, the message and the snapshot on success (result destroyed).
fn try_inspect(session: *mut LoupeSession, view: &LoupeImageView) -> (LoupeStatus, String, Option<Snapshot>) {
    let mut result = null_mut();
    let status = unsafe { loupe_session_inspect(session, view, &mut result) };
    let message = last_error();
    if status != LoupeStatus::Ok {
        assert!(result.is_null(), "a failed call leaves no result");
        return (status, message, None);
    }
    let s = snapshot(result);
    unsafe { ok(loupe_result_destroy(result)) };
    (status, message, Some(s))
}

/// A batch through `loupe_session_inspect_batch_ex`: the call's status and message, each slot's status, and the
/// snapshots of the results (destroyed).
fn try_batch(
    session: *mut LoupeSession,
    views: &[LoupeImageView],
) -> (LoupeStatus, String, Vec<LoupeStatus>, Vec<Option<Snapshot>>) {
    let mut results = vec![null_mut(); views.len()];
    let mut statuses = vec![LoupeStatus::Ok; views.len()];
    let status = unsafe {
        loupe_session_inspect_batch_ex(
            session,
            views.as_ptr(),
            views.len(),
            null(),
            results.as_mut_ptr(),
            statuses.as_mut_ptr(),
        )
    };
    let message = last_error();
    let snapshots = results
        .iter()
        .map(|&r| {
            (!r.is_null()).then(|| {
                let s = snapshot(r);
                unsafe { ok(loupe_result_destroy(r)) };
                s
            })
        })
        .collect();
    (status, message, statuses, snapshots)
}

/// Each fault code with a part of its message (after `component fault-backbone: encode: `), for a single image.
const FAULTS: [(u8, &str); 9] = [
    (1, "panicked: injected panic at image 0 of 1"),
    (2, "inference in fault-backbone: injected error at image 0 of 1"),
    (3, "feature sets returned by the backbone for a batch of images: expected 1, found 0"),
    (4, "feature sets returned by the backbone for a batch of images: expected 1, found 2"),
    (5, "image 0 of a batch of 1: feature shape (the backbone's geometry): expected 4 layers x 8x8 grid"),
    (6, "image 0 of a batch of 1: feature shape (the backbone's geometry): expected 4 layers x 8x8 grid"),
    (7, "image 0 of a batch of 1: feature shape (the backbone's geometry): expected 4 layers x 8x8 grid"),
    (8, "image 0 of a batch of 1: its patch features hold NaN at layer 1, patch 5, channel 3"),
    (9, "image 0 of a batch of 1: its global feature holds inf at channel 0"),
];

#[test]
fn backbone_faults_give_a_status_and_the_same_session_goes_on_exactly() {
    let faulty = faulty_engine();
    let clean = fixture_engine(COMMON);
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let (s, c) = (c_session(faulty), c_session(clean));
    let expected: Vec<Snapshot> = views.iter().map(|v| inspect_in(c, v)).collect();
    for (code, says) in FAULTS {
        let bad = marked(&images[2], code);
        let (status, message, result) = try_inspect(s, &view_of(&bad));
        assert_eq!(status, LoupeStatus::Component, "fault {code}: {message}");
        assert!(result.is_none());
        assert!(message.starts_with("component fault-backbone: encode: "), "fault {code}: {message}");
        assert!(message.contains(says), "fault {code}: `{message}` should contain `{says}`");
        for (i, view) in views.iter().enumerate() {
            assert_eq!(inspect_in(s, view), expected[i], "fault {code}, then image {i}");
        }
    }
    unsafe {
        ok(loupe_session_destroy(s));
        ok(loupe_session_destroy(c));
        ok(loupe_engine_destroy(faulty));
        ok(loupe_engine_destroy(clean));
    }
}

/// A fault in the middle of a batch: the backbone runs the 4 images at once, so every image of that backbone batch
/// fails with the component's status (the call returns it: every image failed alike), no result is left to
/// release, and the next batch on the same session equals the clean engine's.
#[test]
fn a_backbone_fault_in_a_batch_fails_its_images_and_the_next_batch_is_exact() {
    let faulty = faulty_engine();
    let clean = fixture_engine(COMMON);
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let (s, c) = (c_session(faulty), c_session(clean));
    let (status, message, _, expected) = try_batch(c, &views);
    assert_eq!(status, LoupeStatus::Ok, "{message}");
    let (status, message, _, before) = try_batch(s, &views);
    assert_eq!(status, LoupeStatus::Ok, "{message}");
    assert_eq!(before, expected, "unmarked images: the fixture is the DAPO backbone, bit for bit");
    for code in [1, 2, 3, 5, 8] {
        let bad = marked(&images[2], code);
        let mut batch = views.clone();
        batch[2] = view_of(&bad);
        let (status, message, statuses, results) = try_batch(s, &batch);
        assert_eq!(status, LoupeStatus::Component, "fault {code}: {message}");
        assert_eq!(statuses, vec![LoupeStatus::Component; 4], "fault {code}: {message}");
        assert!(results.iter().all(Option::is_none));
        assert!(
            message.starts_with("4 of 4 images failed: images[0]: component fault-backbone: encode: "),
            "{message}"
        );
        if code == 1 {
            assert!(message.contains("panicked: injected panic at image 2 of 4"), "{message}");
        }
        let (status, message, statuses, after) = try_batch(s, &views);
        assert_eq!((status, statuses), (LoupeStatus::Ok, vec![LoupeStatus::Ok; 4]), "{message}");
        assert_eq!(after, expected, "fault {code}: the next batch");
    }
    unsafe {
        ok(loupe_session_destroy(s));
        ok(loupe_session_destroy(c));
        ok(loupe_engine_destroy(faulty));
        ok(loupe_engine_destroy(clean));
    }
}

/// A C++ exception inside a post-processor plugin, caught at its boundary, is `LOUPE_STATUS_COMPONENT` naming the
/// component and the exception (a std::exception's `what()`, or "unknown" for anything else); the engine goes on.
#[test]
fn a_cpp_exception_in_a_postprocessor_is_a_status_and_the_engine_goes_on_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(lib) = throwing_plugin(tmp.path()) else { return };
    let extra = format!(
        "{COMMON}[components]\npostprocessor = 'fault-hysteresis'\n[plugins]\nuse_env = false\npaths = ['{}']\n",
        lib.display()
    );
    let engine = fixture_engine(&extra);
    let clean = fixture_engine(&extra);
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let (s, c) = (c_session(engine), c_session(clean));
    let expected: Vec<Snapshot> = views.iter().map(|v| inspect_in(c, v)).collect();
    for (width, says) in [(61, "injected fault: a 61-pixel-wide map"), (67, "unknown C++ exception")] {
        let bad = widened(&images[3], width);
        let (status, message, _) = try_inspect(s, &view_of(&bad));
        assert_eq!(status, LoupeStatus::Component, "{message}");
        assert!(message.starts_with("component fault-hysteresis: process: fault-hysteresis: "), "{message}");
        assert!(message.contains(says), "`{message}` should contain `{says}`");
        let mut batch = views.clone();
        batch[1] = view_of(&bad);
        let (status, message, statuses, _) = try_batch(s, &batch);
        assert_eq!((status, statuses), (LoupeStatus::Component, vec![LoupeStatus::Component; 4]), "{message}");
        for (i, view) in views.iter().enumerate() {
            assert_eq!(inspect_in(s, view), expected[i], "after the {width}-wide throw, image {i}");
        }
    }
    unsafe {
        ok(loupe_session_destroy(s));
        ok(loupe_session_destroy(c));
        ok(loupe_engine_destroy(engine));
        ok(loupe_engine_destroy(clean));
    }
}

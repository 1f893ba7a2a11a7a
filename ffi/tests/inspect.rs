//! Results through the C ABI equal the Rust API's, whatever the view's layout (stride padding, BGR, batches), and
//! the overlay writer writes a PNG of the map's size.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::ffi::{CStr, CString};

use common::*;
use loupe::*;
use loupe_sdk::{OwnedImage, PixelFormat};

#[test]
fn c_results_equal_the_rust_api_on_every_fixture_image() {
    let extra = "[postprocess]\nimage_threshold = 0.046\n";
    let engine = fixture_engine(extra);
    let rust = rust_engine(extra);
    let mut labels = Vec::new();
    for path in fixture_images() {
        let image = OwnedImage::open(&path).unwrap();
        let from_c = inspect_once(engine, &view_of(&image));
        let from_rust = snapshot_of(&rust.inspect_one(&image.view()).unwrap());
        assert_eq!(from_c, from_rust, "{}", path.display());
        assert_eq!(from_c.size, (image.width, image.height), "maps have the input's size by default");
        assert_eq!(from_c.classes, ["normal", "hole", "scratch", "crack"]);
        labels.push(from_c.anomalous);
    }
    // The threshold sits between the fixture scores, so both labels are exercised.
    assert!(labels.contains(&true) && labels.contains(&false), "{labels:?}");
    unsafe {
        let mut n = 0;
        ok(loupe_engine_class_count(engine, &mut n));
        assert_eq!(n, 4);
        let mut name = std::ptr::null();
        ok(loupe_engine_class_name(engine, 3, &mut name));
        assert_eq!(CStr::from_ptr(name), c"crack");
        assert_eq!(loupe_engine_class_name(engine, 4, &mut name), LoupeStatus::OutOfRange);
        assert!(name.is_null());
        assert!(last_error().contains("expected < 4, found 4"), "{}", last_error());
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn padded_strides_and_bgr_views_give_the_same_result() {
    let engine = fixture_engine("");
    let image = OwnedImage::open(&fixture_dir().join("images/rgb.png")).unwrap();
    assert_eq!(image.format, PixelFormat::Rgb8);
    let packed = inspect_once(engine, &view_of(&image));

    // Same pixels, rows padded to a 256-byte stride with junk (as in a cv::Mat ROI), and as BGR.
    let (w, h) = (image.width as usize, image.height as usize);
    let stride = 256;
    assert!(stride > 3 * w);
    let mut padded = vec![0xABu8; stride * h];
    let mut bgr = vec![0u8; stride * h];
    for y in 0..h {
        let row = &image.data[3 * w * y..3 * w * (y + 1)];
        padded[stride * y..stride * y + 3 * w].copy_from_slice(row);
        for x in 0..w {
            for c in 0..3 {
                bgr[stride * y + 3 * x + c] = row[3 * x + 2 - c];
            }
        }
    }
    let view =
        |data: &[u8], format| LoupeImageView { data: data.as_ptr(), width: w as u32, height: h as u32, stride, format };
    assert_eq!(inspect_once(engine, &view(&padded, LOUPE_FORMAT_RGB8)), packed);
    assert_eq!(inspect_once(engine, &view(&bgr, LOUPE_FORMAT_BGR8)), packed);
    unsafe { ok(loupe_engine_destroy(engine)) };
}

#[test]
fn a_batch_equals_the_rust_batch_and_failures_clear_every_output() {
    let extra = "[engine]\nbatch_size = 3\n";
    let engine = fixture_engine(extra);
    let images: Vec<OwnedImage> = fixture_images().iter().map(|p| OwnedImage::open(p).unwrap()).collect();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let rust_views: Vec<_> = images.iter().map(OwnedImage::view).collect();
    let rust = rust_engine(extra).inspect(&rust_views).unwrap();
    unsafe {
        let mut session = std::ptr::null_mut();
        ok(loupe_session_create(engine, &mut session));
        let mut results = vec![std::ptr::null_mut(); views.len()];
        ok(loupe_session_inspect_batch(session, views.as_ptr(), views.len(), results.as_mut_ptr()));
        for ((r, v), d) in results.iter().zip(&views).zip(&rust) {
            let batched = snapshot(*r);
            // Batches of 3 and 1 (4 images) give exactly the Rust API's batched results...
            assert_eq!(batched, snapshot_of(d));
            // ...and, up to float rounding in batched matrix products, the one-by-one results.
            let single = inspect_once(engine, v);
            assert!((batched.score - single.score).abs() < 1e-5, "{} vs {}", batched.score, single.score);
            let diff =
                batched.anomaly_map.iter().zip(&single.anomaly_map).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-4, "anomaly maps differ by {diff}");
            ok(loupe_result_destroy(*r));
        }
        // One bad view fails the whole batch, names it, and leaves no result to free.
        let mut bad = views.clone();
        bad[2].format = 99;
        let status = loupe_session_inspect_batch(session, bad.as_ptr(), bad.len(), results.as_mut_ptr());
        assert_eq!(status, LoupeStatus::Image);
        assert!(last_error().contains("images[2].format") && last_error().contains("found 99"), "{}", last_error());
        assert!(results.iter().all(|r| r.is_null()));
        ok(loupe_session_inspect_batch(session, std::ptr::null(), 0, std::ptr::null_mut()));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn sessions_outlive_their_engine_handle_and_results_their_session() {
    let engine = fixture_engine("");
    let image = OwnedImage::open(&fixture_dir().join("images/gray_hole.png")).unwrap();
    let expected = inspect_once(engine, &view_of(&image));
    unsafe {
        let mut session = std::ptr::null_mut();
        ok(loupe_session_create(engine, &mut session));
        ok(loupe_engine_destroy(engine));
        let mut result = std::ptr::null_mut();
        ok(loupe_session_inspect(session, &view_of(&image), &mut result));
        ok(loupe_session_destroy(session));
        assert_eq!(snapshot(result), expected);
        ok(loupe_result_destroy(result));
    }
}

#[test]
fn the_overlay_is_a_png_of_the_map_size() {
    let engine = fixture_engine("");
    let image = OwnedImage::open(&fixture_dir().join("images/gray_hole.png")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    unsafe {
        let mut session = std::ptr::null_mut();
        ok(loupe_session_create(engine, &mut session));
        let mut result = std::ptr::null_mut();
        ok(loupe_session_inspect(session, &view_of(&image), &mut result));
        // The extension does not choose the format: it is always PNG.
        let path = dir.path().join("overlay.img");
        let c_path = CString::new(path.to_str().unwrap()).unwrap();
        ok(loupe_result_write_overlay(result, &view_of(&image), c_path.as_ptr()));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), image::ImageFormat::Png);
        let written = image::load_from_memory(&bytes).unwrap();
        assert_eq!((written.width(), written.height()), (image.width, image.height));
        // The overlay is the SDK's rendering of this result, not the input.
        assert_ne!(written.to_rgb8().into_raw(), image.view().to_rgb().into_raw());

        let missing = CString::new(dir.path().join("no/such/dir/o.png").to_str().unwrap()).unwrap();
        assert_eq!(loupe_result_write_overlay(result, &view_of(&image), missing.as_ptr()), LoupeStatus::Io);
        assert!(last_error().contains("no/such/dir/o.png"), "{}", last_error());
        ok(loupe_result_destroy(result));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn a_session_used_from_two_threads_reports_busy_or_completes() {
    let engine = fixture_engine("");
    let image = OwnedImage::open(&fixture_dir().join("images/rgba.png")).unwrap();
    let expected = inspect_once(engine, &view_of(&image));
    let mut session = std::ptr::null_mut();
    unsafe { ok(loupe_session_create(engine, &mut session)) };
    let session_addr = session as usize;
    let statuses: Vec<(LoupeStatus, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let image = &image;
                let expected = &expected;
                s.spawn(move || {
                    let session = session_addr as *mut LoupeSession;
                    let mut out = Vec::new();
                    for _ in 0..4 {
                        let mut result = std::ptr::null_mut();
                        let status = unsafe { loupe_session_inspect(session, &view_of(image), &mut result) };
                        if status == LoupeStatus::Ok {
                            assert_eq!(&snapshot(result), expected);
                            unsafe { ok(loupe_result_destroy(result)) };
                        } else {
                            assert!(result.is_null());
                        }
                        out.push((status, last_error()));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    for (status, message) in &statuses {
        assert!(matches!(status, LoupeStatus::Ok | LoupeStatus::Busy), "{status:?}: {message}");
        if *status == LoupeStatus::Busy {
            assert!(message.contains("one session per thread"), "{message}");
        }
    }
    assert!(statuses.iter().any(|(s, _)| *s == LoupeStatus::Ok));
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

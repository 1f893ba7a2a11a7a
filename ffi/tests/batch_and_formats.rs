//! Camera pixel formats against RGB8, and batches with a status per image, through the C ABI.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use loupe::*;
use loupe_sdk::OwnedImage;

/// The image's pixels as `format` with `pad` bytes after each row: (bytes, stride).
fn as_format(rgb: &image::RgbImage, format: u32, pad: usize) -> (Vec<u8>, usize) {
    let (w, h) = rgb.dimensions();
    let mut out = Vec::new();
    let mut stride = 0;
    for y in 0..h {
        let start = out.len();
        for x in 0..w {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            match format {
                LOUPE_FORMAT_BGRA8 => out.extend([b, g, r, 200]),
                LOUPE_FORMAT_BGRX8 => out.extend([b, g, r, 0]),
                LOUPE_FORMAT_RGBX8 => out.extend([r, g, b, 77]),
                other => panic!("not a colour format of this test: {other}"),
            }
        }
        out.extend(std::iter::repeat_n(0xAB, pad));
        stride = out.len() - start;
    }
    (out, stride)
}

/// The gray image as 16-bit words of `bits` significant bits (`g << (bits - 8)`), padded rows.
fn as_gray16(gray: &image::GrayImage, bits: u32, pad_words: usize) -> (Vec<u8>, usize) {
    let (w, h) = gray.dimensions();
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            out.extend((u16::from(gray.get_pixel(x, y).0[0]) << (bits - 8)).to_ne_bytes());
        }
        out.extend(std::iter::repeat_n(0xCD, 2 * pad_words));
    }
    (out, 2 * (w as usize + pad_words))
}

fn view(data: &[u8], w: u32, h: u32, stride: usize, format: u32) -> LoupeImageView {
    LoupeImageView { data: data.as_ptr(), width: w, height: h, stride, format }
}

#[test]
fn every_new_pixel_format_inspects_as_the_same_image_in_rgb8_or_gray8() {
    let engine = fixture_engine("");
    for path in fixture_images().iter().take(2) {
        let image = OwnedImage::open(path).unwrap();
        let rgb = image.view().to_rgb();
        let (w, h) = rgb.dimensions();
        let reference = inspect_once(engine, &view(rgb.as_raw(), w, h, 0, LOUPE_FORMAT_RGB8));
        for format in [LOUPE_FORMAT_BGRA8, LOUPE_FORMAT_BGRX8, LOUPE_FORMAT_RGBX8] {
            let (data, stride) = as_format(&rgb, format, 12);
            assert_eq!(inspect_once(engine, &view(&data, w, h, stride, format)), reference, "format {format}");
        }
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let gray_reference = inspect_once(engine, &view(gray.as_raw(), w, h, 0, LOUPE_FORMAT_GRAY8));
        for (format, bits) in
            [(LOUPE_FORMAT_GRAY10, 10), (LOUPE_FORMAT_GRAY12, 12), (LOUPE_FORMAT_GRAY14, 14), (LOUPE_FORMAT_GRAY16, 16)]
        {
            let (data, stride) = as_gray16(&gray, bits, 3);
            assert_eq!(inspect_once(engine, &view(&data, w, h, stride, format)), gray_reference, "{bits} bits");
        }
        // A 16-bit view whose stride cannot hold a row of 2-byte pixels is refused with the numbers.
        let (data, _) = as_gray16(&gray, 12, 0);
        let mut session = std::ptr::null_mut();
        ok(unsafe { loupe_session_create(engine, &mut session) });
        let mut result = std::ptr::null_mut();
        let short = view(&data, w, h, w as usize, LOUPE_FORMAT_GRAY12);
        assert_eq!(unsafe { loupe_session_inspect(session, &short, &mut result) }, LoupeStatus::Image);
        assert!(last_error().contains(&format!("= {} bytes", 2 * w)), "{}", last_error());
        let unknown = view(&data, w, h, 0, 12);
        assert_eq!(unsafe { loupe_session_inspect(session, &unknown, &mut result) }, LoupeStatus::Image);
        assert!(last_error().contains("GRAY16 (11), found 12"), "{}", last_error());
        ok(unsafe { loupe_session_destroy(session) });
    }
    ok(unsafe { loupe_engine_destroy(engine) });
}

/// Runs `loupe_session_inspect_batch_ex`; (status, results, statuses).
fn batch_ex(
    session: *mut LoupeSession,
    views: &[LoupeImageView],
    options: *const LoupeInspectOptions,
) -> (LoupeStatus, Vec<*mut LoupeResult>, Vec<LoupeStatus>) {
    let mut results = vec![std::ptr::dangling_mut::<LoupeResult>(); views.len()];
    let mut statuses = vec![LoupeStatus::Panic; views.len()];
    let status = unsafe {
        loupe_session_inspect_batch_ex(
            session,
            views.as_ptr(),
            views.len(),
            options,
            results.as_mut_ptr(),
            statuses.as_mut_ptr(),
        )
    };
    (status, results, statuses)
}

#[test]
fn a_corrupt_view_fails_only_its_own_slot() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let mut views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let good: Vec<Snapshot> = {
        let (status, results, statuses) = batch_ex(session, &views, std::ptr::null());
        ok(status);
        assert!(statuses.iter().all(|&s| s == LoupeStatus::Ok));
        results
            .into_iter()
            .map(|r| {
                let s = snapshot(r);
                ok(unsafe { loupe_result_destroy(r) });
                s
            })
            .collect()
    };
    views[1].format = 0;
    views[2].data = std::ptr::null();
    let (status, results, statuses) = batch_ex(session, &views, std::ptr::null());
    assert_eq!(status, LoupeStatus::BatchPartial);
    let message = last_error();
    assert!(
        message.contains("2 of 4 images failed") && message.contains("images[1]") && message.contains("images[2]"),
        "{message}"
    );
    assert_eq!(&statuses[..3], &[LoupeStatus::Ok, LoupeStatus::Image, LoupeStatus::NullArgument]);
    assert!(results[1].is_null() && results[2].is_null());
    for i in [0, 3] {
        assert_eq!(statuses[i], LoupeStatus::Ok);
        // The other images' results do not depend on which images failed (text scoring is per image).
        let s = snapshot(results[i]);
        assert!((s.score - good[i].score).abs() <= 1e-6, "{} vs {}", s.score, good[i].score);
        ok(unsafe { loupe_result_destroy(results[i]) });
    }
    // Every image failing alike gives that status, not a partial one.
    let bad: Vec<LoupeImageView> = views.iter().map(|v| LoupeImageView { format: 0, ..*v }).collect();
    let (status, results, statuses) = batch_ex(session, &bad, std::ptr::null());
    assert_eq!(status, LoupeStatus::Image);
    assert!(results.iter().all(|r| r.is_null()) && statuses.iter().all(|&s| s == LoupeStatus::Image));
    // Failures of the call itself are every slot's.
    let mut results = vec![std::ptr::null_mut(); 4];
    let status = unsafe {
        loupe_session_inspect_batch_ex(
            session,
            views.as_ptr(),
            4,
            std::ptr::null(),
            results.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, LoupeStatus::NullArgument);
    assert!(last_error().contains("out_statuses"), "{}", last_error());
    let (status, _, statuses) = batch_ex(engine.cast(), &views, std::ptr::null());
    assert_eq!(status, LoupeStatus::InvalidHandle);
    assert!(statuses.iter().all(|&s| s == LoupeStatus::InvalidHandle));
    let (status, _, _) = batch_ex(session, &[], std::ptr::null());
    ok(status);
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn batch_and_single_results_agree_within_the_documented_bound() {
    let engine = fixture_engine("");
    let session = c_session(engine);
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let (status, results, _) = batch_ex(session, &views, std::ptr::null());
    ok(status);
    let (mut score, mut map) = (0.0f32, 0.0f32);
    for (v, r) in views.iter().zip(results) {
        let batch = snapshot(r);
        let single = inspect_once(engine, v);
        score = score.max((batch.score - single.score).abs());
        map = batch.anomaly_map.iter().zip(&single.anomaly_map).map(|(a, b)| (a - b).abs()).fold(map, f32::max);
        assert_eq!(batch.classes, single.classes);
        ok(unsafe { loupe_result_destroy(r) });
    }
    // Bound stated in loupe_session_inspect_batch_ex's documentation and docs/c-api.md.
    assert!(score <= 1e-6, "image scores differ by {score}");
    assert!(map <= 1e-4, "anomaly maps differ by {map}");
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

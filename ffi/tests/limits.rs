//! Resource limits through the C ABI: a batch over `limits.max_batch_images` fails as a whole with
//! `LOUPE_STATUS_LIMIT`; an oversized view fails alone in a batch, its neighbours still inspected.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use common::*;
use loupe::*;
use loupe_sdk::OwnedImage;

#[test]
fn limits_refuse_oversized_calls_and_views_by_name() {
    let images: Vec<OwnedImage> = fixture_images().iter().take(3).map(|p| OwnedImage::open(p).unwrap()).collect();
    let pixels = images.iter().map(|i| u64::from(i.width) * u64::from(i.height)).max().unwrap();
    // Room for every fixture image but one pixel short of a doubled-width copy of the first.
    let limits = format!("[limits]\nmax_batch_images = 2\nmax_image_pixels = {pixels}\n");
    let engine = fixture_engine(&limits);
    let session = c_session(engine);
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();

    let mut results = vec![std::ptr::null_mut(); 3];
    let status = unsafe { loupe_session_inspect_batch(session, views.as_ptr(), 3, results.as_mut_ptr()) };
    assert_eq!(status, LoupeStatus::Limit);
    let message = last_error();
    assert!(message.contains("max_batch_images") && message.contains("found 3"), "{message}");
    assert!(message.contains("LOUPE_LIMITS__MAX_BATCH_IMAGES"), "names how to raise it: {message}");
    assert!(results.iter().all(|r| r.is_null()), "nothing was made");

    // A view twice as wide as the first image (its rows repeated side by side) is over max_image_pixels.
    let first = &images[0];
    let bpp = first.format.bytes_per_pixel();
    let row = first.width as usize * bpp;
    let wide: Vec<u8> = first.data.chunks(row).flat_map(|r| r.iter().chain(r.iter()).copied()).collect();
    let wide_view = LoupeImageView { data: wide.as_ptr(), width: first.width * 2, stride: 0, ..views[0] };
    let batch = [views[1], wide_view];
    let mut results = vec![std::ptr::null_mut(); 2];
    let mut statuses = vec![LoupeStatus::Ok; 2];
    let status = unsafe {
        loupe_session_inspect_batch_ex(
            session,
            batch.as_ptr(),
            2,
            std::ptr::null(),
            results.as_mut_ptr(),
            statuses.as_mut_ptr(),
        )
    };
    assert_eq!(status, LoupeStatus::BatchPartial, "one image failed, the other has a result");
    assert_eq!(statuses, [LoupeStatus::Ok, LoupeStatus::Limit]);
    let message = last_error();
    assert!(message.contains("images[1]") && message.contains("max_image_pixels"), "{message}");
    let expected = inspect_in(session, &views[1]);
    unsafe {
        assert_eq!(snapshot(results[0]), expected, "the neighbour was inspected as usual");
        ok(loupe_result_destroy(results[0]));
        assert!(results[1].is_null());
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

//! One engine used from 4 threads at once through the C ABI (one session per thread) gives exactly the results
//! of a single thread.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::sync::Barrier;

use common::*;
use loupe::*;
use loupe_sdk::OwnedImage;

const THREADS: usize = 4;
const ROUNDS: usize = 3;

#[test]
fn four_threads_on_one_engine_match_a_single_thread() {
    let engine = fixture_engine("");
    let images: Vec<OwnedImage> = fixture_images().iter().map(|p| OwnedImage::open(p).unwrap()).collect();
    let single: Vec<Snapshot> = images.iter().map(|i| inspect_once(engine, &view_of(i))).collect();
    // The images differ, so "identical" below cannot pass by every result being the same.
    assert!(single.windows(2).all(|w| w[0].anomaly_map != w[1].anomaly_map));

    // Raw pointers are not Send; the handle is a token meant to be shared, so pass its address.
    let engine_addr = engine as usize;
    let barrier = Barrier::new(THREADS);
    let per_thread: Vec<Vec<Snapshot>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (images, barrier) = (&images, &barrier);
                s.spawn(move || {
                    let engine = engine_addr as *const LoupeEngine;
                    let mut session = std::ptr::null_mut();
                    unsafe { ok(loupe_session_create(engine, &mut session)) };
                    barrier.wait();
                    let mut out = Vec::new();
                    for round in 0..ROUNDS {
                        // Each thread starts at another image so that different inputs overlap in time.
                        for k in 0..images.len() {
                            let i = (k + t + round) % images.len();
                            let mut result = std::ptr::null_mut();
                            unsafe {
                                ok(loupe_session_inspect(session, &view_of(&images[i]), &mut result));
                                out.push((i, snapshot(result)));
                                ok(loupe_result_destroy(result));
                            }
                        }
                    }
                    unsafe { ok(loupe_session_destroy(session)) };
                    out.sort_by_key(|(i, _)| *i);
                    out.into_iter().map(|(_, s)| s).collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (t, results) in per_thread.iter().enumerate() {
        assert_eq!(results.len(), images.len() * ROUNDS);
        for (k, snap) in results.iter().enumerate() {
            let i = k / ROUNDS;
            assert!(snap == &single[i], "thread {t}, image {i}: differs from the single-thread result");
        }
    }
    unsafe { ok(loupe_engine_destroy(engine)) };
}

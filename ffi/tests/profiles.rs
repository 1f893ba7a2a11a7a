//! Profiles and mutual scoring through the C ABI: profiles made or loaded through C give exactly the Rust API's
//! results; save and load round-trip; files for another model and corrupt files are refused with
//! `LOUPE_STATUS_PROFILE` naming the file; several profiles share one engine; a session's mutual window fills,
//! then scores; mutual batches need enough images; the evidence and options structs' sizes are checked.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::sync::Arc;

use common::*;
use loupe::*;
use loupe_sdk::profile::{Augmentation, ProfileOptions, ReferenceImage};
use loupe_sdk::{ImageView, OwnedImage, Profile, Session};

/// The references of every profile test: three of the four fixture images (gray, rgb, rgba), in name order.
fn references(images: &[OwnedImage]) -> Vec<&OwnedImage> {
    let names: Vec<String> =
        fixture_images().iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["gray.png", "gray_hole.png", "rgb.png", "rgba.png"]);
    vec![&images[0], &images[2], &images[3]]
}

/// The Rust API's profile from the same references, named as the C API names them.
fn rust_profile(engine: &loupe_sdk::Engine, refs: &[&OwnedImage], options: &ProfileOptions) -> Profile {
    let names: Vec<String> = (0..refs.len()).map(|i| format!("references[{i}]")).collect();
    let refs: Vec<ReferenceImage<'_>> =
        refs.iter().zip(&names).map(|(image, name)| ReferenceImage { name, image: image.view() }).collect();
    loupe_sdk::profile::create(engine, &refs, options).unwrap()
}

fn options(name: &CStr, augmentation: u32, coreset_fraction: f32, seed: u64) -> LoupeProfileOptions {
    LoupeProfileOptions {
        struct_size: size_of::<LoupeProfileOptions>() as u32,
        name: name.as_ptr(),
        augmentation,
        coreset_fraction,
        seed,
    }
}

fn profile_name(p: *const LoupeProfile) -> String {
    let mut name = null();
    ok(unsafe { loupe_profile_name(p, &mut name) });
    unsafe { CStr::from_ptr(name) }.to_str().unwrap().to_string()
}

fn has_references(p: *const LoupeProfile) -> bool {
    let mut b = false;
    ok(unsafe { loupe_profile_has_references(p, &mut b) });
    b
}

#[test]
fn profiles_made_and_loaded_through_c_score_as_the_rust_api_bit_for_bit() {
    let engine = fixture_engine("");
    let rust = rust_engine("");
    let images = fixture_owned_images();
    let refs = references(&images);
    let ref_views: Vec<LoupeImageView> = refs.iter().map(|i| view_of(i)).collect();
    let dir = tempfile::tempdir().unwrap();

    let acme = c"acme";
    let cases = [
        // NULL options: the defaults.
        (None, ProfileOptions::default()),
        (
            Some(options(acme, LOUPE_AUGMENTATION_FLIPS, 0.5, 3)),
            ProfileOptions {
                name: "acme".into(),
                augmentation: Augmentation::Flips,
                coreset_fraction: 0.5,
                seed: 3,
                ..ProfileOptions::default()
            },
        ),
    ];
    for (c_options, rust_options) in &cases {
        let profile = c_profile(engine, &ref_views, c_options.as_ref());
        assert_eq!(profile_name(profile), rust_options.name);
        assert!(has_references(profile));
        let made = rust_profile(&rust, &refs, rust_options);
        let bound = rust.bind_profile(made.clone()).unwrap();
        let expected: Vec<Snapshot> = images
            .iter()
            .map(|i| snapshot_of(&rust.inspect_with(&[i.view()], Some(&bound)).unwrap().remove(0)))
            .collect();
        for s in &expected {
            assert_eq!(s.evidence.mode, LOUPE_MODE_GOLDEN);
            assert_eq!(s.evidence.pool, 3, "three references");
            assert!(s.evidence.reference_score.is_some());
            assert_eq!(s.map_range, 1.0, "fused maps range over [0, 1]");
        }

        // The session's profile, and the profile for one call, give the Rust API's results exactly.
        let session = c_session(engine);
        ok(unsafe { loupe_session_set_profile(session, profile) });
        let other = c_session(engine);
        for (image, want) in images.iter().zip(&expected) {
            assert_eq!(&inspect_in(session, &view_of(image)), want);
            let mut r = null_mut();
            ok(unsafe { loupe_session_inspect_with_profile(other, profile, &view_of(image), &mut r) });
            assert_eq!(&snapshot(r), want);
            ok(unsafe { loupe_result_destroy(r) });
            // The per-call profile left `other` on the engine's default: text only.
            assert_eq!(inspect_in(other, &view_of(image)).evidence.mode, LOUPE_MODE_TEXT);
        }
        // A batch with the session's profile equals the Rust batch.
        let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
        let rust_views: Vec<ImageView<'_>> = images.iter().map(OwnedImage::view).collect();
        let rust_batch = rust.inspect_with(&rust_views, Some(&bound)).unwrap();
        let mut results = vec![null_mut(); views.len()];
        ok(unsafe { loupe_session_inspect_batch(session, views.as_ptr(), views.len(), results.as_mut_ptr()) });
        for (r, d) in results.iter().zip(&rust_batch) {
            assert_eq!(snapshot(*r), snapshot_of(d));
            ok(unsafe { loupe_result_destroy(*r) });
        }

        // Saved through C: the file holds the Rust API's profile; loaded back through C: the same results.
        let path = dir.path().join(format!("{}.safetensors", rust_options.name));
        ok(unsafe { loupe_profile_save(profile, c_path(&path).as_ptr()) });
        assert_eq!(Profile::load(&path).unwrap(), made, "the saved profile is the Rust API's");
        let mut loaded = null_mut();
        ok(unsafe { loupe_profile_load(engine, c_path(&path).as_ptr(), &mut loaded) });
        assert_eq!(profile_name(loaded), rust_options.name);
        assert!(has_references(loaded));
        // The session holds its profile: destroying the handle takes nothing away from it.
        ok(unsafe { loupe_profile_destroy(profile) });
        ok(unsafe { loupe_session_set_profile(other, loaded) });
        ok(unsafe { loupe_profile_destroy(loaded) });
        for (image, want) in images.iter().zip(&expected) {
            assert_eq!(&inspect_in(other, &view_of(image)), want, "loaded profile");
            assert_eq!(&inspect_in(session, &view_of(image)), want, "after the handle was destroyed");
        }
        ok(unsafe { loupe_session_destroy(session) });
        ok(unsafe { loupe_session_destroy(other) });
    }
    unsafe { ok(loupe_engine_destroy(engine)) };
}

/// Status and message of `loupe_profile_load(engine, path)`; the output must be NULL on failure.
fn load_error(engine: *const LoupeEngine, path: &Path) -> (LoupeStatus, String) {
    let mut p = std::ptr::dangling_mut::<u8>().cast::<LoupeProfile>();
    let status = unsafe { loupe_profile_load(engine, c_path(path).as_ptr(), &mut p) };
    assert!(p.is_null(), "a failed load leaves no handle");
    (status, last_error())
}

#[test]
fn profile_files_for_another_model_and_corrupt_files_are_refused_naming_the_file() {
    let engine = fixture_engine("");
    let images = fixture_owned_images();
    let ref_views: Vec<LoupeImageView> = references(&images).iter().map(|i| view_of(i)).collect();
    let profile = c_profile(engine, &ref_views, None);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    ok(unsafe { loupe_profile_save(profile, c_path(&good).as_ptr()) });
    let bytes = std::fs::read(&good).unwrap();

    // Another model: the model_id in the JSON metadata field `profile` edited in place (same length, so the
    // safetensors header stays valid).
    let model_id = rust_engine("").backbone().info().id;
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let needle = format!("\\\"model_id\\\":\\\"{model_id}\\\"");
    assert_eq!(header.matches(&needle).count(), 1, "model_id once in the metadata: {header}");
    let other_id: String = model_id.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let edited = header.replace(&needle, &format!("\\\"model_id\\\":\\\"{other_id}\\\""));
    assert_eq!(edited.len(), header_len);
    let mut other = bytes.clone();
    other[8..8 + header_len].copy_from_slice(edited.as_bytes());
    let other_path = dir.path().join("other-model.safetensors");
    std::fs::write(&other_path, &other).unwrap();
    assert_eq!(Profile::load(&other_path).unwrap().meta.model_id, other_id, "still a valid profile file");
    let (status, message) = load_error(engine, &other_path);
    assert_eq!(status, LoupeStatus::Profile, "{message}");
    assert!(
        message.contains("other-model.safetensors") && message.contains(&other_id) && message.contains(&model_id),
        "{message}"
    );

    // Truncated, and not a profile at all.
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (status, message) = load_error(engine, &truncated);
    assert_eq!(status, LoupeStatus::Profile, "{message}");
    assert!(message.contains("truncated.safetensors"), "{message}");
    let short = dir.path().join("short.safetensors");
    std::fs::write(&short, &bytes[..header_len / 2]).unwrap();
    let (status, message) = load_error(engine, &short);
    assert_eq!(status, LoupeStatus::Profile, "{message}");
    assert!(message.contains("short.safetensors"), "{message}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a profile").unwrap();
    let (status, message) = load_error(engine, &junk);
    assert_eq!(status, LoupeStatus::Profile, "{message}");
    assert!(message.contains("junk.safetensors"), "{message}");
    // A missing file is an I/O error, named.
    let (status, message) = load_error(engine, &dir.path().join("absent.safetensors"));
    assert_eq!(status, LoupeStatus::Io, "{message}");
    assert!(message.contains("absent.safetensors"), "{message}");
    assert_eq!(
        unsafe { loupe_profile_save(profile, c_path(&dir.path().join("no/such/dir/p.safetensors")).as_ptr()) },
        LoupeStatus::Io
    );
    assert!(last_error().contains("no/such/dir/p.safetensors"), "{}", last_error());
    unsafe {
        ok(loupe_profile_destroy(profile));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn a_profile_bound_to_another_model_is_refused_by_sessions() {
    let engine = fixture_engine("");
    let trained_dir = fixture_dir().join("../parity-trained");
    let text = CString::new(config_toml_in(&trained_dir, "")).unwrap();
    let mut trained = null_mut();
    ok(unsafe { loupe_engine_create_from_string(text.as_ptr(), LOUPE_CONFIG_TOML, &mut trained) });
    let images = fixture_owned_images();
    let ref_views: Vec<LoupeImageView> = references(&images).iter().map(|i| view_of(i)).collect();
    let foreign = c_profile(trained, &ref_views, Some(&options(c"trained-part", 0, 0.0, 0)));
    let session = c_session(engine);
    let view = view_of(&images[1]);
    let before = inspect_in(session, &view);
    unsafe {
        assert_eq!(loupe_session_set_profile(session, foreign), LoupeStatus::Profile);
        let message = last_error();
        assert!(message.contains("trained-part") && message.contains("model_id"), "{message}");
        let mut r = std::ptr::dangling_mut::<u8>().cast();
        assert_eq!(loupe_session_inspect_with_profile(session, foreign, &view, &mut r), LoupeStatus::Profile);
        assert!(r.is_null());
        assert!(last_error().contains("trained-part"), "{}", last_error());
    }
    // The refused profile left the session as it was.
    assert_eq!(inspect_in(session, &view), before);
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_profile_destroy(foreign));
        ok(loupe_engine_destroy(trained));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn profiles_per_session_on_one_engine_and_the_engine_default() {
    let dir = tempfile::tempdir().unwrap();
    let engine = fixture_engine("");
    let images = fixture_owned_images();
    let ref_views: Vec<LoupeImageView> = references(&images).iter().map(|i| view_of(i)).collect();
    let golden = c_profile(engine, &ref_views, Some(&options(c"golden-part", 0, 0.0, 0)));
    let (customer_a, customer_b) = (c_session(engine), c_session(engine));
    ok(unsafe { loupe_session_set_profile(customer_a, golden) });
    let view = view_of(&images[1]);
    let a = inspect_in(customer_a, &view);
    let b = inspect_in(customer_b, &view);
    assert_eq!((a.evidence.mode, b.evidence.mode), (LOUPE_MODE_GOLDEN, LOUPE_MODE_TEXT));
    assert_ne!(a.thresholds, b.thresholds, "each mode has its thresholds");
    assert_eq!((a.map_range, b.map_range), (1.0, 4.0), "fused maps range over [0, 1], text over the 4 layers");
    assert_eq!(b.evidence.reference_score, None);
    assert_eq!(b.evidence.pool, 0);
    assert_ne!(a.score, b.score);
    // NULL: back to the engine's default profile (none here: text).
    ok(unsafe { loupe_session_set_profile(customer_a, null()) });
    assert_eq!(inspect_in(customer_a, &view), b);

    // An engine whose configuration names a profile: sessions start with it, and NULL returns to it.
    let path = dir.path().join("golden.safetensors");
    ok(unsafe { loupe_profile_save(golden, c_path(&path).as_ptr()) });
    let with_default = fixture_engine(&format!("profile = '{}'\n", path.display()));
    let session = c_session(with_default);
    assert_eq!(inspect_in(session, &view), a, "the configured default profile is the saved one");
    // A profile without golden samples (as a vocabulary- or calibration-only profile is).
    let text_only_path = dir.path().join("text-only.safetensors");
    let mut text_only = Profile::load(&path).unwrap();
    text_only.memory = None;
    text_only.meta.references = None;
    text_only.meta.name = "text-only".into();
    text_only.save(&text_only_path).unwrap();
    let mut text_only_profile = null_mut();
    ok(unsafe { loupe_profile_load(with_default, c_path(&text_only_path).as_ptr(), &mut text_only_profile) });
    assert!(!has_references(text_only_profile));
    ok(unsafe { loupe_session_set_profile(session, text_only_profile) });
    assert_eq!(inspect_in(session, &view), b, "a profile without golden samples scores by text");
    ok(unsafe { loupe_session_set_profile(session, null()) });
    assert_eq!(inspect_in(session, &view), a, "NULL is the engine's default profile");
    unsafe {
        ok(loupe_profile_destroy(text_only_profile));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(with_default));
        ok(loupe_session_destroy(customer_a));
        ok(loupe_session_destroy(customer_b));
        ok(loupe_profile_destroy(golden));
        ok(loupe_engine_destroy(engine));
    }
}

/// The fixture images and their mirror images: 8 images of one "product" for mutual scoring.
fn stream() -> Vec<OwnedImage> {
    let images = fixture_owned_images();
    let mut all: Vec<OwnedImage> = images.iter().map(mirrored).collect();
    all.splice(0..0, images);
    all
}

fn window_len(session: *const LoupeSession) -> usize {
    let mut n = usize::MAX;
    ok(unsafe { loupe_session_window_len(session, &mut n) });
    n
}

#[test]
fn a_mutual_window_fills_then_scores_as_the_rust_session() {
    let engine = fixture_engine("");
    let rust = Arc::new(rust_engine(""));
    let images = stream();
    let min_pool = 4; // reference.mutual_min_pool's default
    let session = c_session(engine);
    assert_eq!(window_len(session), 0);
    unsafe {
        assert_eq!(loupe_session_set_mutual(session, 3), LoupeStatus::InvalidArgument);
        assert!(last_error().contains("mutual_min_pool = 4") && last_error().contains("found 3"), "{}", last_error());
        ok(loupe_session_set_mutual(session, 8));
    }
    let mut rust_session = Session::new(rust.clone()).unwrap();
    rust_session.set_window(8).unwrap();
    rust_session.set_mutual(true);
    for (i, image) in images.iter().enumerate() {
        let s = inspect_in(session, &view_of(image));
        assert_eq!(s, snapshot_of(&rust_session.inspect(&image.view()).unwrap()), "image {i}");
        if i < min_pool {
            assert!(s.evidence.window_filling, "image {i}: the window is filling");
            assert_eq!((s.evidence.mode, s.evidence.pool), (LOUPE_MODE_TEXT, 0));
        } else {
            assert!(!s.evidence.window_filling, "image {i}");
            assert_eq!((s.evidence.mode, s.evidence.pool), (LOUPE_MODE_MUTUAL, i as u32), "pool = images seen");
            assert!(s.evidence.reference_score.is_some());
        }
        assert_eq!(window_len(session), i + 1);
    }
    // A full window rolls: it keeps the last 4 images and scores against them.
    ok(unsafe { loupe_session_set_mutual(session, 4) });
    assert_eq!(window_len(session), 0, "a new window starts empty");
    for image in &images {
        inspect_in(session, &view_of(image));
    }
    assert_eq!(window_len(session), 4);
    assert_eq!(inspect_in(session, &view_of(&images[0])).evidence.pool, 4);
    // A golden profile takes precedence over the window, and switching profile clears it.
    let refs: Vec<LoupeImageView> = images[..3].iter().map(view_of).collect();
    let golden = c_profile(engine, &refs, None);
    ok(unsafe { loupe_session_set_profile(session, golden) });
    assert_eq!(window_len(session), 0);
    let s = inspect_in(session, &view_of(&images[5]));
    assert_eq!((s.evidence.mode, s.evidence.pool, s.evidence.window_filling), (LOUPE_MODE_GOLDEN, 3, false));
    assert_eq!(window_len(session), 0, "golden inspections do not fill the window");
    // Off: text only, nothing flagged, the window freed.
    ok(unsafe { loupe_session_set_profile(session, null()) });
    for image in &images[..5] {
        inspect_in(session, &view_of(image));
    }
    ok(unsafe { loupe_session_set_mutual(session, 0) });
    assert_eq!(window_len(session), 0);
    let s = inspect_in(session, &view_of(&images[0]));
    assert_eq!((s.evidence.mode, s.evidence.window_filling), (LOUPE_MODE_TEXT, false));
    unsafe {
        ok(loupe_profile_destroy(golden));
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn mutual_batches_score_each_image_against_the_others_and_need_enough_images() {
    let engine = fixture_engine("");
    let rust = Arc::new(rust_engine(""));
    let images = stream();
    let session = c_session(engine);
    ok(unsafe { loupe_session_set_mutual(session, 8) });
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    unsafe {
        let mut results = vec![std::ptr::dangling_mut::<u8>().cast::<LoupeResult>(); 4];
        for n in [1, 4] {
            let status = loupe_session_inspect_batch(session, views.as_ptr(), n, results.as_mut_ptr());
            assert_eq!(status, LoupeStatus::Mismatch, "{n} images");
            let message = last_error();
            assert!(message.contains("mutual_min_pool") && message.contains(&format!("found {n}")), "{message}");
            assert!(results[..n].iter().all(|r| r.is_null()));
        }
    }
    let mut rust_session = Session::new(rust).unwrap();
    rust_session.set_mutual(true);
    for n in [5, images.len()] {
        let mut results = vec![null_mut(); n];
        ok(unsafe { loupe_session_inspect_batch(session, views.as_ptr(), n, results.as_mut_ptr()) });
        let rust_views: Vec<ImageView<'_>> = images[..n].iter().map(OwnedImage::view).collect();
        let expected = rust_session.inspect_batch(&rust_views).unwrap();
        for (r, d) in results.iter().zip(&expected) {
            let s = snapshot(*r);
            assert_eq!(s, snapshot_of(d));
            assert_eq!(
                (s.evidence.mode, s.evidence.pool, s.evidence.window_filling),
                (LOUPE_MODE_MUTUAL, n as u32 - 1, false)
            );
            ok(unsafe { loupe_result_destroy(*r) });
        }
    }
    assert_eq!(window_len(session), 0, "batches neither use nor fill the window");
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn the_evidence_struct_size_is_checked_and_failures_clear_it() {
    let engine = fixture_engine("");
    let image = OwnedImage::open(&fixture_dir().join("images/gray.png")).unwrap();
    let session = c_session(engine);
    let mut result = null_mut();
    ok(unsafe { loupe_session_inspect(session, &view_of(&image), &mut result) });
    unsafe {
        // Too small (0, or one byte short of this version's fields): refused, nothing written.
        let fields_end = std::mem::offset_of!(LoupeEvidence, window_filling) + 1;
        for size in [0, fields_end - 1] {
            let mut e = evidence_out();
            e.struct_size = size as u32;
            assert_eq!(loupe_result_evidence(result, &mut e), LoupeStatus::InvalidArgument);
            assert!(last_error().contains("struct_size") && last_error().contains(&format!("found {size}")));
            assert_eq!((e.mode, e.pool, e.window_filling, e.text_score), (77, 77, true, -7.0), "untouched");
        }
        // Exactly the fields, or the whole struct (with its padding), or more: written.
        for size in [fields_end, size_of::<LoupeEvidence>(), 64] {
            let mut e = evidence_out();
            e.struct_size = size as u32;
            ok(loupe_result_evidence(result, &mut e));
            assert_eq!((e.mode, e.pool, e.window_filling), (LOUPE_MODE_TEXT, 0, false));
            assert!(e.reference_score.is_nan() && (0.0..=1.0).contains(&e.text_score));
            assert_eq!(e.struct_size as usize, size, "struct_size is never written");
        }
        // A stale result with a valid struct: the fields are cleared.
        ok(loupe_result_destroy(result));
        let mut e = evidence_out();
        assert_eq!(loupe_result_evidence(result, &mut e), LoupeStatus::InvalidHandle);
        assert_eq!((e.mode, e.pool, e.window_filling, e.text_score), (LOUPE_MODE_TEXT, 0, false, 0.0));
        assert!(e.reference_score.is_nan());
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn profile_options_and_references_are_checked_and_named() {
    let engine = fixture_engine("");
    let images = fixture_owned_images();
    let views: Vec<LoupeImageView> = images.iter().map(view_of).collect();
    let create = |refs: &[LoupeImageView], count: usize, o: Option<&LoupeProfileOptions>| {
        let mut p = std::ptr::dangling_mut::<u8>().cast::<LoupeProfile>();
        let o = o.map_or(null(), |o| o as *const LoupeProfileOptions);
        let ptr = if refs.is_empty() { null() } else { refs.as_ptr() };
        let status = unsafe { loupe_profile_create(engine, ptr, count, o, &mut p) };
        assert!(p.is_null(), "a failed create leaves no handle");
        (status, last_error())
    };
    let name = c"part";
    let mut bad = options(name, 0, 0.0, 0);
    bad.struct_size = 8;
    let (status, message) = create(&views, 2, Some(&bad));
    assert_eq!(status, LoupeStatus::InvalidArgument);
    assert!(message.contains("options->struct_size") && message.contains("found 8"), "{message}");
    let (status, message) = create(&views, 2, Some(&options(name, 7, 0.0, 0)));
    assert_eq!(status, LoupeStatus::InvalidArgument);
    assert!(message.contains("options->augmentation") && message.contains("found 7"), "{message}");
    for fraction in [1.5, -0.25, f32::NAN] {
        let (status, message) = create(&views, 2, Some(&options(name, 0, fraction, 0)));
        assert_eq!(status, LoupeStatus::InvalidArgument, "{fraction}");
        assert!(message.contains("options->coreset_fraction"), "{message}");
    }
    let not_utf8 = [0xFFu8, 0];
    let mut o = options(name, 0, 0.0, 0);
    o.name = not_utf8.as_ptr().cast();
    let (status, message) = create(&views, 2, Some(&o));
    assert_eq!(status, LoupeStatus::InvalidArgument);
    assert!(message.contains("options->name") && message.contains("UTF-8"), "{message}");
    // Fewer than two references; NULL references; a bad view, named by its index.
    let (status, message) = create(&views, 1, None);
    assert_eq!(status, LoupeStatus::Mismatch);
    assert!(message.contains("at least 2") && message.contains("found 1"), "{message}");
    let (status, _) = create(&[], 0, None);
    assert_eq!(status, LoupeStatus::Mismatch);
    let (status, message) = create(&[], 2, None);
    assert_eq!(status, LoupeStatus::NullArgument);
    assert!(message.contains("`references` is NULL"), "{message}");
    let mut bad_views = views.clone();
    bad_views[1].format = 0;
    let (status, message) = create(&bad_views, 3, None);
    assert_eq!(status, LoupeStatus::Image);
    assert!(message.contains("references[1].format"), "{message}");
    // The name is copied: the options may die right after the call.
    let p = {
        let owned = CString::new("copied name").unwrap();
        c_profile(engine, &views[..2], Some(&options(&owned, 0, 0.0, 0)))
    };
    assert_eq!(profile_name(p), "copied name");
    unsafe {
        ok(loupe_profile_destroy(p));
        ok(loupe_engine_destroy(engine));
    }
}

#[test]
fn a_session_queried_while_it_inspects_reports_busy_or_answers() {
    let engine = fixture_engine("");
    let images = stream();
    let session = c_session(engine);
    ok(unsafe { loupe_session_set_mutual(session, 8) });
    // Raw pointers are not Send; the handle is a token, so pass its address.
    let addr = session as usize;
    let statuses: Vec<LoupeStatus> = std::thread::scope(|s| {
        let inspector = s.spawn(|| {
            let mut seen = Vec::new();
            for image in &images {
                let mut r = null_mut();
                let status = unsafe { loupe_session_inspect(addr as *mut LoupeSession, &view_of(image), &mut r) };
                if status == LoupeStatus::Ok {
                    ok(unsafe { loupe_result_destroy(r) });
                }
                seen.push(status);
            }
            seen
        });
        let mut seen = Vec::new();
        while !inspector.is_finished() {
            let mut n = 0;
            seen.push(unsafe { loupe_session_window_len(addr as *const LoupeSession, &mut n) });
            seen.push(unsafe { loupe_session_set_profile(addr as *mut LoupeSession, null()) });
            std::thread::yield_now();
        }
        seen.extend(inspector.join().unwrap());
        seen
    });
    assert!(statuses.iter().all(|s| matches!(s, LoupeStatus::Ok | LoupeStatus::Busy)), "{statuses:?}");
    assert!(statuses.contains(&LoupeStatus::Ok));
    unsafe {
        ok(loupe_session_destroy(session));
        ok(loupe_engine_destroy(engine));
    }
}

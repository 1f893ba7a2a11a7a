//! Sessions: one per thread, created from a shared engine; each wraps a `loupe_sdk::Session`, which holds the
//! session's profile and its mutual-scoring window, and runs the inspections.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use loupe_sdk::{ImageView, Session};

use crate::args;
use crate::engine::{EngineData, LoupeEngine};
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::image::LoupeImageView;
use crate::options::{self, LoupeInspectOptions};
use crate::profile::LoupeProfile;
use crate::result::{LoupeResult, ResultData};
use crate::status::{FfiError, LoupeStatus};

/// A per-thread inspection context: its profile and its mutual-scoring window. Opaque; create with
/// `loupe_session_create`, destroy with `loupe_session_destroy`.
pub struct LoupeSession {
    _private: [u8; 0],
}

/// What a session handle refers to.
pub(crate) struct SessionData {
    /// Keeps the engine handle's data (its class-name strings) alive for as long as the session, even if the
    /// engine handle is destroyed first; the SDK session holds the engine itself.
    engine: Arc<EngineData>,
    /// The SDK session. Its lock is only ever tried, never waited for: two threads on one session is a bug in
    /// the caller, and blocking would hide it.
    session: Mutex<Session>,
}

impl SessionData {
    /// The session, or `LOUPE_STATUS_BUSY` when another thread is using it.
    fn lock(&self) -> Result<MutexGuard<'_, Session>, FfiError> {
        match self.session.try_lock() {
            Ok(session) => Ok(session),
            Err(TryLockError::Poisoned(poisoned)) => {
                // A panic in an earlier call was reported then (LOUPE_STATUS_PANIC). It may have left the window
                // half-updated: start it afresh; the profile and settings are replaced whole, never half-set.
                let mut session = poisoned.into_inner();
                session.clear_window();
                self.session.clear_poison();
                Ok(session)
            }
            Err(TryLockError::WouldBlock) => Err(FfiError::new(
                LoupeStatus::Busy,
                "`session` is in use by another thread: create one session per thread (engines are shared)",
            )),
        }
    }
}

/// Borrows a batch of C views as SDK views, naming them `images[i]` in errors.
///
/// # Safety
/// Each view's pixels are readable, unchanged, for `'a` (the entry point's call).
unsafe fn borrow_all<'a>(images: &[LoupeImageView]) -> Result<Vec<ImageView<'a>>, FfiError> {
    images
        .iter()
        .enumerate()
        // SAFETY: forwarded from this function's contract.
        .map(|(i, image)| unsafe { image.borrow(&format!("images[{i}]")) })
        .collect()
}

/// Registers one result handle; it keeps the engine's component identities for `loupe_result_to_json`.
fn result_handle(data: &SessionData, detection: loupe_sdk::Detection) -> *mut LoupeResult {
    handles::insert(Object::Result(Arc::new(ResultData::new(detection, data.engine.components.clone()))))
}

/// The part both single-image inspections share: lock the session, borrow the caller's view for this call, run
/// `inspect` and store its detection as a new result in `*out`.
///
/// # Safety
/// `image` is NULL or a view as for `loupe_session_inspect`.
unsafe fn inspect_view(
    data: &SessionData,
    image: *const LoupeImageView,
    out: &mut *mut LoupeResult,
    inspect: impl FnOnce(&mut Session, &ImageView<'_>) -> loupe_sdk::Result<loupe_sdk::Detection>,
) -> Result<(), FfiError> {
    let mut session = data.lock()?;
    // SAFETY: non-NULL views are readable by the contract.
    let image = unsafe { image.as_ref() }.ok_or_else(|| FfiError::null("image"))?;
    // SAFETY: the pixels are readable for the whole call by the contract; the view does not outlive it.
    let view = unsafe { image.borrow("image") }?;
    *out = result_handle(data, inspect(&mut session, &view)?);
    Ok(())
}

/// Creates a session on `engine`. Make one per thread that inspects; many sessions can share one engine. The
/// session keeps the engine alive until it is destroyed. It starts with the engine's default profile (the
/// configuration's `profile`, if any) and with mutual scoring as `reference.mutual` and `reference.mutual_window`
/// say (off by default), its window empty.
///
/// On success `*out_session` receives a new handle, to be released with `loupe_session_destroy`; on failure it is
/// set to NULL.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_session` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_create(
    engine: *const LoupeEngine,
    out_session: *mut *mut LoupeSession,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_session, "out_session", std::ptr::null_mut()) }?;
        let engine = handles::engine(engine, "engine")?;
        let session = Session::new(engine.engine.clone())?;
        let data = SessionData { engine, session: Mutex::new(session) };
        *out = handles::insert(Object::Session(Arc::new(data)));
        Ok(())
    })
}

/// Destroys a session, with its mutual window. Results it produced stay valid. NULL is accepted and does nothing;
/// a handle that is not a live session gives `LOUPE_STATUS_INVALID_HANDLE`.
///
/// Thread-safety: safe from any thread; an inspection running on the session at the same time completes
/// normally, later calls get `LOUPE_STATUS_INVALID_HANDLE`.
///
/// # Safety
/// None beyond passing a value received from Loupe (any value is checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_destroy(session: *mut LoupeSession) -> LoupeStatus {
    guard(|| handles::remove(session, "session", handles::session))
}

/// Inspects one image: detection (score, label, type) and segmentation (maps, mask, regions) in one call, with
/// the session's profile. The pixels are read during the call only, never copied beyond the model's input.
///
/// The evidence (`loupe_result_evidence`): the profile's golden samples when it holds them; otherwise, with mutual
/// scoring on (`loupe_session_set_mutual`), the session's window of the last images: while it holds fewer than
/// `reference.mutual_min_pool` (default 4) images the result is text only and flagged `window_filling`; then the
/// image joins the window (the oldest leaves when it is full); otherwise text only.
///
/// On success `*out_result` receives a new result, to be released with `loupe_result_destroy`; on failure it is
/// set to NULL.
///
/// Thread-safety: one thread at a time per session (a second concurrent call gets `LOUPE_STATUS_BUSY`); use one
/// session per thread.
///
/// # Safety
/// `image` is NULL or points to a view whose `data` holds `stride * (height - 1) + width * channels` readable
/// bytes, unchanged during the call; `out_result` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect(
    session: *mut LoupeSession,
    image: *const LoupeImageView,
    out_result: *mut *mut LoupeResult,
) -> LoupeStatus {
    // SAFETY: forwarded from this function's contract; NULL options are the engine's configuration.
    unsafe { loupe_session_inspect_ex(session, image, std::ptr::null(), out_result) }
}

/// `loupe_session_inspect` with per-call options (`LoupeInspectOptions`; NULL: the engine's configuration):
/// thresholds, minimum region area, segment rule, a subset of the vocabulary and outputs to skip, without a new
/// engine. Thresholds given here replace the engine's or the profile's for this call; the result reports them
/// (`loupe_result_thresholds`).
///
/// Thread-safety: as `loupe_session_inspect`.
///
/// # Safety
/// As `loupe_session_inspect`; `options` is NULL or a `LoupeInspectOptions` as its documentation says.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect_ex(
    session: *mut LoupeSession,
    image: *const LoupeImageView,
    options: *const LoupeInspectOptions,
    out_result: *mut *mut LoupeResult,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_result, "out_result", std::ptr::null_mut()) }?;
        let data = handles::session(session, "session")?;
        // SAFETY: as above.
        let options = unsafe { options::read(options) }?;
        // SAFETY: as above.
        unsafe { inspect_view(&data, image, out, |session, view| session.inspect_options(view, &options)) }
    })
}

/// Inspects `count` images in batches of the configured `engine.batch_size` (faster than one by one on large
/// models), with the session's profile. `out_results` must have room for `count` pointers; on success each
/// receives a new result (release each with `loupe_result_destroy`), on failure all are set to NULL and none needs
/// releasing. `count` 0 succeeds and writes nothing (then `images` and `out_results` may be NULL).
///
/// The evidence: the profile's golden samples when it holds them; otherwise, with mutual scoring on, each image
/// against the other images of this batch (pool `count - 1`): a batch needs more than `reference.mutual_min_pool`
/// images (default: at least 5), a smaller one is refused with `LOUPE_STATUS_MISMATCH` naming that setting. The
/// session's window is neither used nor changed.
///
/// Thread-safety: as `loupe_session_inspect`.
///
/// # Safety
/// `images` is NULL or points to `count` views, each as for `loupe_session_inspect`; `out_results` is NULL or
/// valid for writing `count` pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect_batch(
    session: *mut LoupeSession,
    images: *const LoupeImageView,
    count: usize,
    out_results: *mut *mut LoupeResult,
) -> LoupeStatus {
    guard(|| {
        if count > 0 && !out_results.is_null() {
            // SAFETY: non-NULL and valid for `count` pointers by the contract.
            unsafe { std::slice::from_raw_parts_mut(out_results, count) }.fill(std::ptr::null_mut());
        }
        let data = handles::session(session, "session")?;
        let mut session = data.lock()?;
        if count == 0 {
            return Ok(());
        }
        if out_results.is_null() {
            return Err(FfiError::null("out_results"));
        }
        if images.is_null() {
            return Err(FfiError::null("images"));
        }
        // SAFETY: non-NULL and `count` views long by the contract.
        let images = unsafe { std::slice::from_raw_parts(images, count) };
        // SAFETY: the pixels are readable for the whole call by the contract; the views do not outlive it.
        let views = unsafe { borrow_all(images) }?;
        let results = session.inspect_batch(&views)?;
        if results.len() != count {
            return Err(FfiError::new(
                LoupeStatus::Inference,
                format!("the engine returned {} results for {count} images", results.len()),
            ));
        }
        // SAFETY: as above.
        let outs = unsafe { std::slice::from_raw_parts_mut(out_results, count) };
        for (slot, result) in outs.iter_mut().zip(results) {
            *slot = result_handle(&data, result);
        }
        Ok(())
    })
}

/// Inspects `count` images as `loupe_session_inspect_batch` does, with per-call options (NULL: the engine's
/// configuration) and a status per image: an invalid view fails only its own slot. `out_results` and
/// `out_statuses` must each have room for `count` entries; slot `i` receives a new result and
/// `LOUPE_STATUS_OK`, or NULL and the status of what went wrong with image `i`.
///
/// Returns `LOUPE_STATUS_OK` when every image succeeded; when every image failed with one status (for example a
/// batch-wide inference error, or a NULL argument), that status; otherwise `LOUPE_STATUS_BATCH_PARTIAL`, with
/// `loupe_last_error()` naming each failed image and why. With mutual scoring the valid images are each other's
/// pool.
///
/// Batch and single inspections differ slightly: the backbone runs the images of a batch as one tensor, whose
/// matrix products round differently from one image's. Measured on the embedded default model: image scores
/// within 1e-6, anomaly maps within 1e-4 (tested: `ffi/tests/batch_status.rs`); labels and masks agree except
/// for values that close to a threshold. Use `loupe_session_inspect_ex` one image at a time where results must
/// be bit-identical to a single inspection.
///
/// Thread-safety: as `loupe_session_inspect`.
///
/// # Safety
/// `images` is NULL or points to `count` views, each as for `loupe_session_inspect`; `options` is NULL or a
/// `LoupeInspectOptions` as its documentation says; `out_results` and `out_statuses` are NULL or valid for writing
/// `count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect_batch_ex(
    session: *mut LoupeSession,
    images: *const LoupeImageView,
    count: usize,
    options: *const LoupeInspectOptions,
    out_results: *mut *mut LoupeResult,
    out_statuses: *mut LoupeStatus,
) -> LoupeStatus {
    guard(|| {
        let (mut results, mut statuses) = (None, None);
        if count > 0 && !out_results.is_null() {
            // SAFETY: non-NULL and valid for `count` pointers by the contract.
            let r = unsafe { std::slice::from_raw_parts_mut(out_results, count) };
            r.fill(std::ptr::null_mut());
            results = Some(r);
        }
        if count > 0 && !out_statuses.is_null() {
            // SAFETY: non-NULL and valid for `count` statuses by the contract.
            let s = unsafe { std::slice::from_raw_parts_mut(out_statuses, count) };
            s.fill(LoupeStatus::Error);
            statuses = Some(s);
        }
        // Failures of the call itself (arguments, handle, options) are every image's.
        let prepared = (|| -> Result<_, FfiError> {
            let data = handles::session(session, "session")?;
            if count == 0 {
                return Ok(None);
            }
            if results.is_none() {
                return Err(FfiError::null("out_results"));
            }
            if statuses.is_none() {
                return Err(FfiError::null("out_statuses"));
            }
            if images.is_null() {
                return Err(FfiError::null("images"));
            }
            // SAFETY: forwarded from this function's contract.
            let options = unsafe { options::read(options) }?;
            // SAFETY: non-NULL and `count` views long by the contract.
            Ok(Some((data, options, unsafe { std::slice::from_raw_parts(images, count) })))
        })();
        let (data, options, images) = match prepared {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let Some(s) = statuses {
                    s.fill(e.status);
                }
                return Err(e);
            }
        };
        let (Some(results), Some(statuses)) = (results, statuses) else {
            return Err(FfiError::null("out_results"));
        };
        let mut session = match data.lock() {
            Ok(session) => session,
            Err(e) => {
                statuses.fill(e.status);
                return Err(e);
            }
        };
        let mut failures: Vec<(usize, FfiError)> = Vec::new();
        let mut valid: Vec<(usize, ImageView<'_>)> = Vec::with_capacity(count);
        for (i, image) in images.iter().enumerate() {
            // Limits are checked here too, so an oversized view fails alone instead of failing the batch.
            // SAFETY: the pixels are readable for the whole call by the contract; the views do not outlive it.
            let view = unsafe { image.borrow(&format!("images[{i}]")) }.and_then(|view| {
                session.engine().limits().check_view("the view", &view).map(|()| view).map_err(FfiError::from)
            });
            match view {
                Ok(view) => valid.push((i, view)),
                Err(e) => failures.push((i, e)),
            }
        }
        if !valid.is_empty() {
            let views: Vec<ImageView<'_>> = valid.iter().map(|(_, v)| *v).collect();
            let outcome = session.inspect_batch_options(&views, &options).map_err(FfiError::from).and_then(|d| {
                if d.len() == views.len() {
                    Ok(d)
                } else {
                    let message = format!("the engine returned {} results for {} images", d.len(), views.len());
                    Err(FfiError::new(LoupeStatus::Inference, message))
                }
            });
            match outcome {
                Ok(detections) => {
                    for ((i, _), d) in valid.iter().zip(detections) {
                        results[*i] = result_handle(&data, d);
                        statuses[*i] = LoupeStatus::Ok;
                    }
                }
                Err(e) => failures.extend(valid.iter().map(|(i, _)| (*i, FfiError::new(e.status, e.message.clone())))),
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort_by_key(|(i, _)| *i);
        for (i, e) in &failures {
            statuses[*i] = e.status;
        }
        let first = failures[0].1.status;
        let status = if failures.len() == count && failures.iter().all(|(_, e)| e.status == first) {
            first
        } else {
            LoupeStatus::BatchPartial
        };
        let listed: Vec<String> = failures.iter().map(|(i, e)| format!("images[{i}]: {}", e.message)).collect();
        Err(FfiError::new(status, format!("{} of {count} images failed: {}", failures.len(), listed.join("; "))))
    })
}

/// Chooses the profile the session inspects with from now on: `profile`, or NULL for the engine's default profile
/// (the configuration's `profile`; none: the engine's vocabulary and thresholds, no golden samples). The session
/// holds the profile: the handle may be destroyed while the session uses it. The mutual window is cleared (it held
/// another product's images). A profile bound by an engine with another backbone model, prompt bank or vocabulary
/// than the session's gives `LOUPE_STATUS_PROFILE` and leaves the session as it was: a profile carries the text
/// matrix of the engine it was bound to (its own vocabulary, or that engine's), so use it with sessions of that
/// engine.
///
/// Thread-safety: one thread at a time per session (a concurrent call on the same session gets
/// `LOUPE_STATUS_BUSY`); a profile may be set on any number of sessions, from any threads.
///
/// # Safety
/// None beyond passing values received from Loupe (handles are checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_set_profile(
    session: *mut LoupeSession,
    profile: *const LoupeProfile,
) -> LoupeStatus {
    guard(|| {
        let data = handles::session(session, "session")?;
        let profile = if profile.is_null() {
            data.engine.engine.default_profile().cloned()
        } else {
            Some(handles::profile(profile, "profile")?.profile.clone())
        };
        data.lock()?.set_profile(profile)?;
        Ok(())
    })
}

/// Inspects one image with `profile` for this call only (its golden samples, or text alone when it has none),
/// as `loupe_session_inspect` otherwise: the session's own profile and its mutual window are neither used nor
/// changed. A profile bound by an engine with another model, prompt bank or vocabulary gives
/// `LOUPE_STATUS_PROFILE`.
///
/// On success `*out_result` receives a new result, to be released with `loupe_result_destroy`; on failure it is
/// set to NULL.
///
/// Thread-safety: one thread at a time per session (a concurrent call on the same session gets
/// `LOUPE_STATUS_BUSY`); the profile may be used by other sessions at the same time.
///
/// # Safety
/// `image` is NULL or a view as for `loupe_session_inspect`; `out_result` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect_with_profile(
    session: *mut LoupeSession,
    profile: *const LoupeProfile,
    image: *const LoupeImageView,
    out_result: *mut *mut LoupeResult,
) -> LoupeStatus {
    // SAFETY: forwarded from this function's contract; NULL options are the engine's configuration.
    unsafe { loupe_session_inspect_with_profile_ex(session, profile, image, std::ptr::null(), out_result) }
}

/// `loupe_session_inspect_with_profile` with per-call options (`LoupeInspectOptions`; NULL: the profile's and the
/// engine's settings). A vocabulary subset is taken from the profile's vocabulary.
///
/// Thread-safety: as `loupe_session_inspect_with_profile`.
///
/// # Safety
/// As `loupe_session_inspect_with_profile`; `options` is NULL or a `LoupeInspectOptions` as its documentation
/// says.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_inspect_with_profile_ex(
    session: *mut LoupeSession,
    profile: *const LoupeProfile,
    image: *const LoupeImageView,
    options: *const LoupeInspectOptions,
    out_result: *mut *mut LoupeResult,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_result, "out_result", std::ptr::null_mut()) }?;
        let data = handles::session(session, "session")?;
        let profile = handles::profile(profile, "profile")?;
        // SAFETY: as above.
        let options = unsafe { options::read(options) }?;
        // SAFETY: as above.
        unsafe {
            inspect_view(&data, image, out, |session, view| {
                session.inspect_with_options(view, &profile.profile, &options)
            })
        }
    })
}

/// Turns mutual scoring of single inspections on or off for this session (whatever `reference.mutual` says).
/// `window` 0 turns it off and frees the window; `window` N turns it on with a new, empty window of the last N
/// images: each image given to `loupe_session_inspect` is scored against the images in the window (text only,
/// flagged `window_filling`, while it holds fewer than `reference.mutual_min_pool` images), then joins it. N must be
/// at least `reference.mutual_min_pool` (default 4; a smaller window would never score): otherwise
/// `LOUPE_STATUS_INVALID_ARGUMENT`. It also makes `loupe_session_inspect_batch` score each image against the others
/// of its batch. Mutual scoring applies only while the session's profile holds no golden samples (they take
/// precedence). Memory: N x layers x patches x feature dimension x 4 bytes.
///
/// Thread-safety: one thread at a time per session (a concurrent call on the same session gets
/// `LOUPE_STATUS_BUSY`).
///
/// # Safety
/// None beyond passing a value received from Loupe (handles are checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_set_mutual(session: *mut LoupeSession, window: u32) -> LoupeStatus {
    guard(|| {
        let data = handles::session(session, "session")?;
        let mut session = data.lock()?;
        if window == 0 {
            session.set_mutual(false);
            session.clear_window();
            return Ok(());
        }
        let min_pool = data.engine.engine.mutual_settings().min_pool;
        let window = usize::try_from(window).unwrap_or(usize::MAX);
        if window < min_pool {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                format!(
                    "`window`: expected 0 (off) or at least reference.mutual_min_pool = {min_pool} (a smaller window \
                     never holds enough images to score), found {window}"
                ),
            ));
        }
        session.set_window(window)?;
        session.set_mutual(true);
        Ok(())
    })
}

/// The number of images in the session's mutual window (0 when mutual scoring is off or the window was just
/// cleared; at most the window size).
///
/// Thread-safety: one thread at a time per session (a concurrent call on the same session gets
/// `LOUPE_STATUS_BUSY`).
///
/// # Safety
/// `out_count` is NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_session_window_len(session: *const LoupeSession, out_count: *mut usize) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_count, "out_count", 0) }?;
        *out = handles::session(session, "session")?.lock()?.window_len();
        Ok(())
    })
}

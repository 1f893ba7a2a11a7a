//! Sessions: one per thread, created from a shared engine; they run the inspections.

use std::sync::{Arc, Mutex, TryLockError};

use crate::args;
use crate::engine::{EngineData, LoupeEngine};
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::image::LoupeImageView;
use crate::result::{LoupeResult, ResultData};
use crate::status::{FfiError, LoupeStatus};

/// A per-thread inspection context. Opaque; create with `loupe_session_create`, destroy with
/// `loupe_session_destroy`.
pub struct LoupeSession {
    _private: [u8; 0],
}

/// What a session handle refers to.
pub(crate) struct SessionData {
    /// Keeps the engine alive for as long as the session, even if the engine handle is destroyed first.
    engine: Arc<EngineData>,
    /// Held during an inspection, to detect concurrent use of one session.
    in_use: Mutex<()>,
}

impl SessionData {
    /// Runs `images` through the engine (`batch`: name them `images[i]` in errors, not `image`). Concurrent use
    /// of the session is refused instead of waited for: two threads on one session is a bug in the caller, and
    /// blocking would hide it.
    fn inspect(&self, images: &[LoupeImageView], batch: bool) -> Result<Vec<ResultData>, FfiError> {
        let _in_use = match self.in_use.try_lock() {
            Ok(guard) => guard,
            // A panic in an earlier call was already reported; the lock guards no data.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(FfiError::new(
                    LoupeStatus::Busy,
                    "`session` is in use by another thread: create one session per thread (engines are shared)",
                ));
            }
        };
        let views = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let what = if batch { format!("images[{i}]") } else { "image".to_string() };
                // SAFETY: the caller of the entry point guarantees the pixels are readable for the whole call,
                // and the views do not outlive it.
                unsafe { image.borrow(&what) }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let detections = self.engine.engine.inspect(&views)?;
        Ok(detections.into_iter().map(|d| ResultData::new(d, self.engine.map_range)).collect())
    }
}

/// Creates a session on `engine`. Make one per thread that inspects; many sessions can share one engine. The
/// session keeps the engine alive until it is destroyed.
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
        let data = SessionData { engine, in_use: Mutex::new(()) };
        *out = handles::insert(Object::Session(Arc::new(data)));
        Ok(())
    })
}

/// Destroys a session. Results it produced stay valid. NULL is accepted and does nothing; a handle that is not a
/// live session gives `LOUPE_STATUS_INVALID_HANDLE`.
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

/// Inspects one image: detection (score, label, type) and segmentation (maps, mask, regions) in one call. The
/// pixels are read during the call only, never copied beyond the model's input.
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
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_result, "out_result", std::ptr::null_mut()) }?;
        let session = handles::session(session, "session")?;
        // SAFETY: non-NULL views are readable by the contract.
        let image = unsafe { image.as_ref() }.ok_or_else(|| FfiError::null("image"))?;
        let mut results = session.inspect(std::slice::from_ref(image), false)?;
        let result =
            results.pop().ok_or_else(|| FfiError::new(LoupeStatus::Inference, "the engine returned no result"))?;
        *out = handles::insert(Object::Result(Arc::new(result)));
        Ok(())
    })
}

/// Inspects `count` images in batches of the configured `engine.batch_size` (faster than one by one on large
/// models). `out_results` must have room for `count` pointers; on success each receives a new result (release
/// each with `loupe_result_destroy`), on failure all are set to NULL and none needs releasing. `count` 0 succeeds
/// and writes nothing (then `images` and `out_results` may be NULL).
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
        let session = handles::session(session, "session")?;
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
        let results = session.inspect(images, true)?;
        if results.len() != count {
            return Err(FfiError::new(
                LoupeStatus::Inference,
                format!("the engine returned {} results for {count} images", results.len()),
            ));
        }
        // SAFETY: as above.
        let outs = unsafe { std::slice::from_raw_parts_mut(out_results, count) };
        for (slot, result) in outs.iter_mut().zip(results) {
            *slot = handles::insert(Object::Result(Arc::new(result)));
        }
        Ok(())
    })
}

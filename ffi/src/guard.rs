//! The wrapper every entry point runs its body in: panics are caught (an unwinding panic must never cross
//! `extern "C"`: since Rust 1.81 it aborts the host process), errors become a status, and the message goes to a
//! thread-local slot read by `loupe_last_error()`.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{FfiError, LoupeStatus};

thread_local! {
    /// Message of this thread's last call; empty after a successful call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Runs `body`, returning its status and recording its message (empty on success) for `loupe_last_error()`.
///
/// `AssertUnwindSafe`: what a panic can leave half-done is local to the call; shared state (engines, results) is
/// immutable, and the handle registry and session locks recover from poisoning.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> LoupeStatus {
    let (status, message) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => (LoupeStatus::Ok, String::new()),
        Ok(Err(e)) => (e.status, e.message),
        Err(payload) => (
            LoupeStatus::Panic,
            format!("internal error: Loupe panicked ({}); please report this message", panic_text(&*payload)),
        ),
    };
    set_last_error(message);
    status
}

/// Runs `body` for an entry point that returns a value instead of a status: a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn set_last_error(message: String) {
    // Interior NULs would cut the message short in C: replace them.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; the status still reports the failure.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

/// Returns the message of the last failed call made on this thread, or an empty string when the last call
/// succeeded. The message names what was wrong and where (file, field, expected vs found).
///
/// The returned string is owned by Loupe: do not free it. It stays valid until the next Loupe call on the same
/// thread (copy it to keep it). Never returns NULL.
///
/// Thread-safety: safe from any thread; each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn loupe_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr()))
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last() -> String {
        // SAFETY: loupe_last_error never returns NULL and the string lives until the next call on this thread.
        unsafe { CStr::from_ptr(loupe_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, LoupeStatus::Panic);
        assert!(last().contains("boom 42"), "{}", last());
        assert_eq!(guard(|| Ok(())), LoupeStatus::Ok);
        assert_eq!(last(), "");
        assert_eq!(guard_value(7, || panic!("static message")), 7);
    }

    #[test]
    fn errors_keep_their_status_and_message_per_thread() {
        let status = guard(|| Err(FfiError::new(LoupeStatus::Config, "field `x`\0tail")));
        assert_eq!(status, LoupeStatus::Config);
        assert_eq!(last(), "field `x`\\0tail");
        let other = std::thread::spawn(last).join().unwrap();
        assert_eq!(other, "", "another thread has its own message");
    }
}

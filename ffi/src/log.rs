//! Routing Loupe's log messages (GPU fallback, backend choice, plugin loading; and those of the libraries it uses,
//! such as wgpu) into the host's logger through one C callback. Without a callback Loupe logs nothing.

use std::ffi::{CString, c_char, c_void};
use std::sync::{OnceLock, RwLock};

use crate::guard::guard;
use crate::status::{FfiError, LoupeStatus};

/// Log level: no messages (the callback is removed).
pub const LOUPE_LOG_OFF: u32 = 0;
/// Log level: errors.
pub const LOUPE_LOG_ERROR: u32 = 1;
/// Log level: warnings (GPU failures that fell back to the CPU, ...) and errors.
pub const LOUPE_LOG_WARN: u32 = 2;
/// Log level: informational messages (which post-processing backend was chosen, ...) and above.
pub const LOUPE_LOG_INFO: u32 = 3;
/// Log level: debugging messages and above.
pub const LOUPE_LOG_DEBUG: u32 = 4;
/// Log level: everything.
pub const LOUPE_LOG_TRACE: u32 = 5;

/// A log callback: `level` (`LOUPE_LOG_ERROR` .. `LOUPE_LOG_TRACE`), `target` (the module the message comes from,
/// e.g. `loupe_dapo::postprocess::gpu`), the message, and the `user_data` given to `loupe_set_log_callback`. Both
/// strings are valid during the call only. Called from whichever thread logs (an inspecting thread, or a thread
/// of the GPU driver); it must not throw, and it must not call `loupe_set_log_callback`.
pub type LoupeLogFn =
    Option<unsafe extern "C" fn(level: u32, target: *const c_char, message: *const c_char, user_data: *mut c_void)>;

/// The installed callback and its user data (an address: the host owns what it points to).
#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(u32, *const c_char, *const c_char, *mut c_void),
    user_data: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// The `log` facade's logger for the whole library: forwards to the sink, if any.
struct CallbackLogger;

static LOGGER: CallbackLogger = CallbackLogger;

impl log::Log for CallbackLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Copied out so that the lock is not held while host code runs.
        let sink = *SINK.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(sink) = sink else { return };
        let level = match record.level() {
            log::Level::Error => LOUPE_LOG_ERROR,
            log::Level::Warn => LOUPE_LOG_WARN,
            log::Level::Info => LOUPE_LOG_INFO,
            log::Level::Debug => LOUPE_LOG_DEBUG,
            log::Level::Trace => LOUPE_LOG_TRACE,
        };
        let text = |s: String| CString::new(s.replace('\0', "\\0")).unwrap_or_default();
        let (target, message) = (text(record.target().to_string()), text(record.args().to_string()));
        // SAFETY: the host gave this function pointer for exactly this signature; the strings live until it
        // returns.
        unsafe { (sink.callback)(level, target.as_ptr(), message.as_ptr(), sink.user_data as *mut c_void) };
    }

    fn flush(&self) {}
}

/// The `log` filter of a `LOUPE_LOG_*` level.
fn filter(level: u32) -> Result<log::LevelFilter, FfiError> {
    Ok(match level {
        LOUPE_LOG_OFF => log::LevelFilter::Off,
        LOUPE_LOG_ERROR => log::LevelFilter::Error,
        LOUPE_LOG_WARN => log::LevelFilter::Warn,
        LOUPE_LOG_INFO => log::LevelFilter::Info,
        LOUPE_LOG_DEBUG => log::LevelFilter::Debug,
        LOUPE_LOG_TRACE => log::LevelFilter::Trace,
        other => {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                format!("`level`: expected LOUPE_LOG_OFF (0) .. LOUPE_LOG_TRACE (5), found {other}"),
            ));
        }
    })
}

/// Routes the library's log messages of `level` and more severe to `callback` (replacing any earlier callback),
/// with `user_data` passed back on each call. `LOUPE_LOG_OFF` or a NULL `callback` removes the callback: Loupe
/// then logs nothing (the default; Loupe never writes to stdout or stderr itself). Messages come from Loupe (which
/// post-processing backend was chosen, a GPU failure that fell back to the CPU) and from the libraries it runs
/// (wgpu, the GPU driver layer); `target` says which.
///
/// Fails with `LOUPE_STATUS_ERROR` if the process already has another logger of Rust's `log` facade installed in
/// this copy of the library (only possible when a Rust program links the library and installs its own).
///
/// Thread-safety: safe from any thread; messages being delivered on other threads may still reach the old callback
/// while it is replaced.
///
/// # Safety
/// `callback`, when not NULL, is a function of the `LoupeLogFn` signature that stays callable, with `user_data`,
/// until it is replaced or removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_set_log_callback(
    level: u32,
    callback: LoupeLogFn,
    user_data: *mut c_void,
) -> LoupeStatus {
    guard(|| {
        let filter = filter(level)?;
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
            return Err(FfiError::new(
                LoupeStatus::Error,
                "another logger of Rust's `log` facade is installed in this process: Loupe's messages go to it",
            ));
        }
        let sink = callback.filter(|_| filter != log::LevelFilter::Off);
        *SINK.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            sink.map(|callback| Sink { callback, user_data: user_data as usize });
        log::set_max_level(if sink.is_some() { filter } else { log::LevelFilter::Off });
        Ok(())
    })
}

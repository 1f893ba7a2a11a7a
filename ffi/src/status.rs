//! Status codes returned by every fallible C function, and the internal error that carries one with its message.

use std::ffi::{CStr, c_char};

use loupe_sdk::LoupeError;

/// Outcome of a C API call. `LOUPE_STATUS_OK` is 0; every other value comes with a message in
/// `loupe_last_error()`. The numbers are stable: new codes are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoupeStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A handle is not live: already destroyed, never created by Loupe, or of another kind (a session passed
    /// where an engine is expected).
    InvalidHandle = 2,
    /// An argument is outside its domain (unknown configuration format, text that is not UTF-8, ...).
    InvalidArgument = 3,
    /// An index is past the end (class, region).
    OutOfRange = 4,
    /// The configuration is invalid or could not be parsed; the message names the file and field.
    Config = 5,
    /// A file could not be read or written; the message names it.
    Io = 6,
    /// A model file is missing, malformed or inconsistent.
    Model = 7,
    /// A prompt bank is missing, malformed, or made for another model.
    PromptBank = 8,
    /// An image view is invalid (size, stride, format) or an image could not be decoded.
    Image = 9,
    /// Two components disagree (sizes, dimensions, class counts).
    Mismatch = 10,
    /// The defect vocabulary cannot be served.
    Vocabulary = 11,
    /// Inference failed at run time.
    Inference = 12,
    /// A component or plugin failed.
    Component = 13,
    /// A shared-library plugin was refused or failed to register.
    Plugin = 14,
    /// A session was used from two threads at once; use one session per thread.
    Busy = 15,
    /// Loupe panicked inside this call (a bug: please report the message). The call had no effect on handles.
    Panic = 16,
    /// Any other error.
    Error = 17,
    /// A product profile is missing, malformed (truncated, not a profile), or made for another backbone model;
    /// the message names the file (or the profile).
    Profile = 18,
    /// Images of a batch failed (`loupe_session_inspect_batch_ex`), not all for the same reason: each image's own
    /// status is in the status array, the others have results; the message names the failed images and why.
    BatchPartial = 19,
    /// An input is over a configured resource limit (image pixels or bytes, batch, vocabulary, model input,
    /// file size); nothing was done. The message names the limit, the value found and how to raise it
    /// (`[limits]` in the configuration).
    Limit = 20,
}

/// Every status, in numeric order (for `loupe_status_name`).
const ALL_STATUSES: [LoupeStatus; 21] = [
    LoupeStatus::Ok,
    LoupeStatus::NullArgument,
    LoupeStatus::InvalidHandle,
    LoupeStatus::InvalidArgument,
    LoupeStatus::OutOfRange,
    LoupeStatus::Config,
    LoupeStatus::Io,
    LoupeStatus::Model,
    LoupeStatus::PromptBank,
    LoupeStatus::Image,
    LoupeStatus::Mismatch,
    LoupeStatus::Vocabulary,
    LoupeStatus::Inference,
    LoupeStatus::Component,
    LoupeStatus::Plugin,
    LoupeStatus::Busy,
    LoupeStatus::Panic,
    LoupeStatus::Error,
    LoupeStatus::Profile,
    LoupeStatus::BatchPartial,
    LoupeStatus::Limit,
];

impl LoupeStatus {
    /// The C name of the status (`LOUPE_STATUS_OK`, ...), NUL-terminated.
    pub fn name(self) -> &'static CStr {
        match self {
            Self::Ok => c"LOUPE_STATUS_OK",
            Self::NullArgument => c"LOUPE_STATUS_NULL_ARGUMENT",
            Self::InvalidHandle => c"LOUPE_STATUS_INVALID_HANDLE",
            Self::InvalidArgument => c"LOUPE_STATUS_INVALID_ARGUMENT",
            Self::OutOfRange => c"LOUPE_STATUS_OUT_OF_RANGE",
            Self::Config => c"LOUPE_STATUS_CONFIG",
            Self::Io => c"LOUPE_STATUS_IO",
            Self::Model => c"LOUPE_STATUS_MODEL",
            Self::PromptBank => c"LOUPE_STATUS_PROMPT_BANK",
            Self::Image => c"LOUPE_STATUS_IMAGE",
            Self::Mismatch => c"LOUPE_STATUS_MISMATCH",
            Self::Vocabulary => c"LOUPE_STATUS_VOCABULARY",
            Self::Inference => c"LOUPE_STATUS_INFERENCE",
            Self::Component => c"LOUPE_STATUS_COMPONENT",
            Self::Plugin => c"LOUPE_STATUS_PLUGIN",
            Self::Busy => c"LOUPE_STATUS_BUSY",
            Self::Panic => c"LOUPE_STATUS_PANIC",
            Self::Error => c"LOUPE_STATUS_ERROR",
            Self::Profile => c"LOUPE_STATUS_PROFILE",
            Self::BatchPartial => c"LOUPE_STATUS_BATCH_PARTIAL",
            Self::Limit => c"LOUPE_STATUS_LIMIT",
        }
    }
}

/// Returns the name of a status code (`"LOUPE_STATUS_CONFIG"`), or `"LOUPE_STATUS_UNKNOWN"` for a number that is
/// not one. The string is static: never free it.
///
/// Thread-safety: safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn loupe_status_name(status: i32) -> *const c_char {
    ALL_STATUSES.iter().find(|s| **s as i32 == status).map_or(c"LOUPE_STATUS_UNKNOWN".as_ptr(), |s| s.name().as_ptr())
}

/// A failed call: the status to return and the message for `loupe_last_error()`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: LoupeStatus,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(status: LoupeStatus, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// A NULL pointer where `what` was required.
    pub(crate) fn null(what: &str) -> Self {
        Self::new(LoupeStatus::NullArgument, format!("`{what}` is NULL"))
    }
}

impl From<LoupeError> for FfiError {
    fn from(err: LoupeError) -> Self {
        Self::new(status_of(&err), err.to_string())
    }
}

/// The status of an SDK error.
pub(crate) fn status_of(err: &LoupeError) -> LoupeStatus {
    // LoupeError grows with the SDK; a variant without its own code yet is reported as LOUPE_STATUS_ERROR.
    #[allow(unreachable_patterns)]
    match err {
        LoupeError::Io { .. } => LoupeStatus::Io,
        LoupeError::Image { .. } => LoupeStatus::Image,
        LoupeError::Config { .. } | LoupeError::ConfigSyntax { .. } => LoupeStatus::Config,
        LoupeError::Model { .. } => LoupeStatus::Model,
        LoupeError::PromptBank { .. } => LoupeStatus::PromptBank,
        LoupeError::Mismatch { .. } => LoupeStatus::Mismatch,
        LoupeError::Vocabulary(_) => LoupeStatus::Vocabulary,
        LoupeError::Inference { .. } => LoupeStatus::Inference,
        LoupeError::Component { .. } => LoupeStatus::Component,
        LoupeError::Plugin { .. } => LoupeStatus::Plugin,
        LoupeError::Profile { .. } => LoupeStatus::Profile,
        LoupeError::Limit { .. } => LoupeStatus::Limit,
        _ => LoupeStatus::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_named() {
        for (i, s) in ALL_STATUSES.iter().enumerate() {
            assert_eq!(*s as i32, i as i32, "{s:?}");
            // SAFETY: loupe_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(loupe_status_name(i as i32)) };
            assert_eq!(name, s.name());
        }
        assert_eq!(LoupeStatus::Profile as i32, 18, "numbers are stable: new codes are appended");
        assert_eq!(LoupeStatus::BatchPartial as i32, 19);
        assert_eq!(LoupeStatus::Limit as i32, 20);
        assert_eq!(ALL_STATUSES.last(), Some(&LoupeStatus::Limit));
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(loupe_status_name(99)) };
        assert_eq!(unknown, c"LOUPE_STATUS_UNKNOWN");
    }

    #[test]
    fn profile_errors_have_their_own_status() {
        let err = FfiError::from(LoupeError::profile("/p/acme.safetensors", "made for another backbone"));
        assert_eq!(err.status, LoupeStatus::Profile);
        assert!(err.message.contains("/p/acme.safetensors"), "{}", err.message);
    }
}

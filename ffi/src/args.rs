//! Reading arguments from C: strings, paths and out-pointers, each refused with a status naming the argument.

use std::ffi::{CStr, c_char};
use std::path::PathBuf;

use crate::status::{FfiError, LoupeStatus};

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map_err(|e| FfiError::new(LoupeStatus::InvalidArgument, format!("`{what}`: expected UTF-8 text, found {e}")))
}

/// A NUL-terminated path argument: any bytes on Unix, UTF-8 elsewhere.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn path(ptr: *const c_char, what: &str) -> Result<PathBuf, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: non-NULL, NUL-terminated by the caller's contract.
        let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        if bytes.is_empty() {
            return Err(FfiError::new(LoupeStatus::InvalidArgument, format!("`{what}`: expected a path, found \"\"")));
        }
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded contract.
        let s = unsafe { text(ptr, what) }?;
        if s.is_empty() {
            return Err(FfiError::new(LoupeStatus::InvalidArgument, format!("`{what}`: expected a path, found \"\"")));
        }
        Ok(PathBuf::from(s))
    }
}

/// Checks an out-pointer and clears what it points to, so that callers see NULL/zero after a failure.
///
/// # Safety
/// `ptr` is NULL or valid for writing one `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: &str, cleared: T) -> Result<&'a mut T, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and writable by the caller's contract; `write` does not read the (maybe uninitialised)
    // old value.
    unsafe {
        ptr.write(cleared);
        Ok(&mut *ptr)
    }
}

/// An index below `len`, or `LOUPE_STATUS_OUT_OF_RANGE` naming the argument.
pub(crate) fn index(i: usize, len: usize, what: &str) -> Result<usize, FfiError> {
    if i < len {
        Ok(i)
    } else {
        Err(FfiError::new(LoupeStatus::OutOfRange, format!("`{what}`: expected < {len}, found {i}")))
    }
}

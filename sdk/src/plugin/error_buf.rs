//! Passing error messages across the plugin boundary in caller-owned buffers, so no allocation crosses it.

use std::ffi::{CStr, c_char};

use super::abi::LoupeErrorBuf;

/// Host side: a buffer to hand to a plugin call.
pub struct HostErrorBuf {
    bytes: Vec<u8>,
}

impl Default for HostErrorBuf {
    fn default() -> Self {
        Self { bytes: vec![0; 1024] }
    }
}

impl HostErrorBuf {
    /// The C view of the buffer, valid while `self` is.
    pub fn raw(&mut self) -> LoupeErrorBuf {
        LoupeErrorBuf { message: self.bytes.as_mut_ptr().cast(), capacity: self.bytes.len() }
    }

    /// What the plugin wrote, or a placeholder when it wrote nothing.
    pub fn message(&self) -> String {
        let end = self.bytes.iter().position(|&b| b == 0).unwrap_or(self.bytes.len());
        let text = String::from_utf8_lossy(&self.bytes[..end]).trim().to_string();
        if text.is_empty() { "failed without a message".to_string() } else { text }
    }
}

/// Plugin side: writes `message` into `buf` (truncated at a character boundary, NUL-terminated).
///
/// # Safety
/// `buf` is null or points to a valid `LoupeErrorBuf` whose `message` has `capacity` writable bytes.
pub unsafe fn write_error(buf: *mut LoupeErrorBuf, message: &str) {
    // SAFETY: the caller guarantees `buf` is null or valid.
    let Some(buf) = (unsafe { buf.as_mut() }) else { return };
    if buf.message.is_null() || buf.capacity == 0 {
        return;
    }
    let mut n = message.len().min(buf.capacity - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n + 1 <= capacity` bytes are writable per the contract above.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), buf.message.cast::<u8>(), n);
        *buf.message.add(n) = 0;
    }
}

/// Reads a C string the other side owns; `None` for null or non-UTF-8.
///
/// # Safety
/// `ptr` is null or a valid NUL-terminated string.
pub unsafe fn read_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(ptr) }.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_truncated_at_character_boundaries() {
        let mut host = HostErrorBuf { bytes: vec![0; 6] };
        let mut raw = host.raw();
        unsafe { write_error(&mut raw, "ééé") };
        assert_eq!(host.message(), "éé");
        let mut raw = host.raw();
        unsafe { write_error(&mut raw, "") };
        assert_eq!(host.message(), "failed without a message");
        unsafe { write_error(std::ptr::null_mut(), "ignored") };
    }
}

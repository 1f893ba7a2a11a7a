//! `loupe_set_log_callback`: Loupe's messages reach the host's logger at the level asked, and stop when removed.
//! Its own test binary: the logger is global to the process.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;

use common::*;
use loupe::*;

/// What the callback received: (level, target, message, user data).
static SEEN: Mutex<Vec<(u32, String, String, usize)>> = Mutex::new(Vec::new());

unsafe extern "C" fn record(level: u32, target: *const c_char, message: *const c_char, user_data: *mut c_void) {
    let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    SEEN.lock().unwrap().push((level, text(target), text(message), user_data as usize));
}

fn take() -> Vec<(u32, String, String, usize)> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

/// Builds and destroys an engine on the CPU backend (whose choice Loupe logs at info level).
fn build_cpu_engine() {
    let engine = fixture_engine("[postprocess]\nbackend = 'cpu'\n");
    ok(unsafe { loupe_engine_destroy(engine) });
}

#[test]
fn messages_follow_the_level_and_stop_when_removed() {
    build_cpu_engine();
    assert!(take().is_empty(), "no callback: nothing is delivered");
    let tag = 0x5eed_usize as *mut c_void;
    ok(unsafe { loupe_set_log_callback(LOUPE_LOG_INFO, Some(record), tag) });
    build_cpu_engine();
    let seen = take();
    let choice = seen.iter().find(|(_, _, m, _)| m.contains("post-processing on the CPU"));
    let (level, target, _, user) = choice.unwrap_or_else(|| panic!("the backend choice was not logged: {seen:?}"));
    assert_eq!((*level, *user), (LOUPE_LOG_INFO, 0x5eed));
    assert!(target.starts_with("loupe_dapo"), "{target}");
    // At warning level the info message is filtered out.
    ok(unsafe { loupe_set_log_callback(LOUPE_LOG_WARN, Some(record), tag) });
    build_cpu_engine();
    assert!(take().iter().all(|(level, ..)| *level <= LOUPE_LOG_WARN));
    // Removed: nothing more.
    ok(unsafe { loupe_set_log_callback(LOUPE_LOG_INFO, None, std::ptr::null_mut()) });
    build_cpu_engine();
    assert!(take().is_empty());
    ok(unsafe { loupe_set_log_callback(LOUPE_LOG_OFF, Some(record), tag) });
    build_cpu_engine();
    assert!(take().is_empty(), "LOUPE_LOG_OFF removes the callback");
    assert_eq!(unsafe { loupe_set_log_callback(9, Some(record), tag) }, LoupeStatus::InvalidArgument);
    assert!(last_error().contains("LOUPE_LOG_TRACE (5), found 9"), "{}", last_error());
}

//! Plugins: components in shared libraries (Rust, C or C++) behind a C ABI, and the registry that names every
//! component, built in or loaded.
//!
//! - [`abi`]: the `#[repr(C)]` declaration and function tables (`include/loupe_plugin.h`);
//! - [`guest`]: for Rust plugin authors: [`crate::export_plugin!`] and adapters that catch panics;
//! - [`foreign`]: host-side adapters that make a plugin's tables look like ordinary trait objects;
//! - [`registry`]: named factories per role and engine assembly; loading libraries is in `loader.rs`.

pub mod abi;
pub mod error_buf;
pub mod foreign;
pub mod guest;
mod loader;
pub mod registry;

use std::ffi::CStr;

pub use loader::sdk_compatible;
pub use registry::{Listing, Origin, PluginInfo, Registry, Role};

/// The SDK version plugins are checked against.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// [`SDK_VERSION`] as a C string, for plugin declarations.
pub const SDK_VERSION_C: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(s) => s,
    Err(_) => panic!("package version contains a NUL byte"),
};

//! The ONNX Runtime shared library: which file, which version, and the one environment per process.
//!
//! Before `ort` sees a library, [`probe`] opens it itself and reads its version through `OrtGetApiBase`, so a
//! missing file, a library that is not ONNX Runtime and one too old for this plugin are each an error naming the
//! path (and the version found) instead of a panic inside `ort`. ONNX Runtime is loaded once per process: asking
//! for a second, different library afterwards is refused naming both.

use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use loupe_sdk::{LoupeError, Result};
use ort::environment::Environment;

/// Environment variable naming the ONNX Runtime library when the configuration does not.
pub const LIBRARY_ENV: &str = "LOUPE_ORT_LIBRARY";

/// The library the system loader is asked for when neither the configuration nor the environment names one.
pub const DEFAULT_LIBRARY: &str = if cfg!(windows) {
    "onnxruntime.dll"
} else if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else {
    "libonnxruntime.so"
};

/// The oldest ONNX Runtime minor version (1.x) this plugin's `ort` speaks to.
pub const MIN_MINOR: u32 = ort::MINOR_VERSION;

/// `OrtApiBase` of ONNX Runtime's C API (`onnxruntime_c_api.h`): the two entries every version has.
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "system" fn(version: u32) -> *const c_void,
    get_version_string: unsafe extern "system" fn() -> *const c_char,
}

/// An ONNX Runtime library that was opened and whose version fits.
pub struct Probed {
    /// The path as given (or the default name).
    pub path: PathBuf,
    /// Its version string, e.g. `1.32.0`.
    pub version: String,
    /// Kept open for the process once `ort` uses it (unloading ONNX Runtime is not safe while sessions live).
    _library: libloading::Library,
}

fn refuse(path: &Path, reason: impl std::fmt::Display) -> LoupeError {
    LoupeError::Component {
        component: "ort-clip-onnx".into(),
        message: format!(
            "ONNX Runtime library {}: {reason} (set components.options.ort-clip-onnx.library or {LIBRARY_ENV} to a \
             libonnxruntime of version 1.{MIN_MINOR} or newer, e.g. onnxruntime/capi/libonnxruntime.so.* of a \
             pip-installed onnxruntime)",
            path.display()
        ),
    }
}

/// Parses `1.<minor>.<patch>` into its minor version.
fn minor_of(version: &str) -> Option<u32> {
    let mut parts = version.trim().split('.');
    match (parts.next(), parts.next()) {
        (Some("1"), Some(minor)) => minor.parse().ok(),
        _ => None,
    }
}

/// Opens `path` and checks that it is ONNX Runtime 1.[`MIN_MINOR`] or newer.
pub fn probe(path: &Path) -> Result<Probed> {
    // A bare file name is left to the system loader's search path; a path must exist.
    if path.components().count() > 1 && !path.exists() {
        return Err(refuse(path, "no such file"));
    }
    // SAFETY: loading a shared library runs its initialisers; ONNX Runtime's are what any user of it runs.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| refuse(path, format!("cannot be loaded: {e}")))?;
    // SAFETY: the symbol's type is OrtGetApiBase's in onnxruntime_c_api.h.
    let get_base = unsafe { library.get::<unsafe extern "system" fn() -> *const OrtApiBase>(b"OrtGetApiBase\0") }
        .map_err(|_| refuse(path, "not ONNX Runtime: it exports no `OrtGetApiBase`"))?;
    // SAFETY: OrtGetApiBase takes nothing and returns a pointer to a static table (checked for null).
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(refuse(path, "`OrtGetApiBase` returned nothing"));
    }
    // SAFETY: `base` points to the library's static OrtApiBase; the version string is static and NUL-terminated.
    let version = unsafe {
        let s = ((*base).get_version_string)();
        if s.is_null() { String::new() } else { CStr::from_ptr(s).to_string_lossy().into_owned() }
    };
    match minor_of(&version) {
        Some(minor) if minor >= MIN_MINOR => {}
        _ => return Err(refuse(path, format!("version {version:?} found, 1.{MIN_MINOR} or newer needed"))),
    }
    // SAFETY: GetApi takes a version number and returns a static table or null.
    if unsafe { ((*base).get_api)(MIN_MINOR) }.is_null() {
        return Err(refuse(path, format!("version {version} does not provide C API version {MIN_MINOR}")));
    }
    Ok(Probed { path: path.to_path_buf(), version, _library: library })
}

/// The ONNX Runtime this process uses.
pub struct Runtime {
    /// The library's path and version.
    pub library: Probed,
    /// The `ort` environment sessions are made in.
    pub environment: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The process's ONNX Runtime, loading `path` (or [`DEFAULT_LIBRARY`]) on first use. A later call naming another
/// library is refused: ONNX Runtime cannot be loaded twice.
pub fn runtime(path: Option<&Path>) -> Result<&'static Runtime> {
    let wanted = path.unwrap_or(Path::new(DEFAULT_LIBRARY));
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get().filter(|rt| same_library(&rt.library.path, wanted)) {
        return Ok(rt);
    }
    // What is wrong with the library itself comes first, whatever was loaded before.
    let library = probe(wanted)?;
    if let Some(rt) = RUNTIME.get() {
        return Err(refuse(
            wanted,
            format!(
                "this process already uses ONNX Runtime {} from {}, and only one can be loaded",
                rt.library.version,
                rt.library.path.display()
            ),
        ));
    }
    let fail = |e: &dyn std::fmt::Display| refuse(wanted, e);
    // The path `ort` gets is absolute, so it never resolves it against the executable's folder.
    let absolute = if wanted.components().count() > 1 {
        std::path::absolute(wanted).map_err(|e| fail(&e))?
    } else {
        wanted.to_path_buf()
    };
    let environment = ort::init_from(&absolute)
        .map_err(|e| fail(&e))?
        .with_name("loupe")
        .with_telemetry(false)
        .build()
        .map_err(|e| fail(&e))?;
    log::info!("ONNX Runtime {} loaded from {}", library.version, library.path.display());
    Ok(RUNTIME.get_or_init(|| Runtime { library, environment }))
}

fn same_library(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_to_their_minor() {
        assert_eq!(minor_of("1.32.0"), Some(32));
        assert_eq!(minor_of("1.20.1\n"), Some(20));
        assert_eq!(minor_of("2.0.0"), None);
        assert_eq!(minor_of("garbage"), None);
    }

    #[test]
    fn a_missing_file_is_refused_naming_it() {
        let err = probe(Path::new("/nonexistent/libonnxruntime.so.1.99")).err().expect("refused").to_string();
        assert!(err.contains("/nonexistent/libonnxruntime.so.1.99") && err.contains("no such file"), "{err}");
        assert!(err.contains(LIBRARY_ENV), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = probe(&fake).err().expect("refused").to_string();
        assert!(err.contains(&fake.display().to_string()) && err.contains("cannot be loaded"), "{err}");
    }
}

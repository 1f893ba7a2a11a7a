//! Build script of loupe-ffi: gives the shared library the SONAME distributions and dynamic linkers expect,
//! `libloupe.so.<C ABI version>`, so a program linked with `-lloupe` records `NEEDED libloupe.so.<version>` and an
//! incompatible later version can be installed beside it instead of silently breaking it.
//!
//! The version is `LOUPE_C_API_VERSION`, read from `src/lib.rs` (a build script cannot use the crate's constants,
//! and a copy here would drift when the C API is bumped); `tests/shared_library.rs` checks the SONAME of the built
//! library against the constant.

use std::path::{Path, PathBuf};

/// The C API version: the `N` of `pub const LOUPE_C_API_VERSION: u32 = N;` in `src/lib.rs`.
fn c_api_version() -> u32 {
    const DECLARATION: &str = "pub const LOUPE_C_API_VERSION: u32 =";
    let source = std::fs::read_to_string("src/lib.rs").unwrap_or_else(|e| panic!("cannot read src/lib.rs: {e}"));
    source
        .lines()
        .find_map(|l| l.trim().strip_prefix(DECLARATION))
        .and_then(|rest| rest.trim().strip_suffix(';'))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("src/lib.rs has no line `{DECLARATION} <number>;`, which ffi/build.rs reads"))
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/lib.rs");
    let soname = format!("libloupe.so.{}", c_api_version());
    // For the tests, which compare it with the crate's constant.
    println!("cargo::rustc-env=LOUPE_SONAME={soname}");
    // ELF SONAMEs are a Linux convention here (macOS uses install names, Windows import libraries).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    link_soname_beside_library(&soname);
}

/// Makes `target/<profile>/libloupe.so.<version> -> libloupe.so`, so a program linked against the build tree (the C/C++
/// examples, the tests, an integrator trying the library) finds the name it records at run time through
/// `-Wl,-rpath,target/<profile>` or `LD_LIBRARY_PATH`. The link is relative and may dangle until cargo puts the
/// library there, right after this script. A packaged library does not depend on it: `tools/package-c.sh` names
/// the file itself by its SONAME.
fn link_soname_beside_library(soname: &str) {
    let Some(dir) = profile_dir() else {
        println!("cargo::warning=cannot tell target/<profile>/ from OUT_DIR: no {soname} link made beside libloupe.so");
        return;
    };
    // Links this script made for an earlier C API version would let programs built against that ABI load this
    // library: remove them.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let versioned = name.strip_prefix("libloupe.so.").is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()));
            if versioned && name != soname && std::fs::read_link(&path).is_ok_and(|t| t == Path::new("libloupe.so")) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let link = dir.join(soname);
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new("libloupe.so")) {
        return;
    }
    // A stale link or a copy someone left there: replace it, it is ours to make.
    let _ = std::fs::remove_file(&link);
    #[cfg(unix)]
    if let Err(e) = std::os::unix::fs::symlink("libloupe.so", &link) {
        println!("cargo::warning=cannot link {} -> libloupe.so: {e}", link.display());
    }
}

/// `<target>/<profile>/` (or `<target>/<triple>/<profile>/`): OUT_DIR is `<that>/build/loupe-ffi-<hash>/out`.
fn profile_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    let dir = out.ancestors().nth(3)?;
    // Only where cargo's layout is the one expected: the build folder sits beside `deps/`.
    (out.ancestors().nth(2)?.file_name()? == "build" && dir.join("deps").is_dir()).then(|| dir.to_path_buf())
}

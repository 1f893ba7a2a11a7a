//! The installed C/C++ package as outside projects use it: `tools/package-c.sh PREFIX` lays out `lib/`, `include/`,
//! `lib/cmake/Loupe/` and `lib/pkgconfig/`; the prefix is moved (it must be relocatable), then programs that know
//! nothing of this repository are built from it: `examples/c/minimal.c` with CMake (`find_package(Loupe)`, shared
//! and static targets) and with pkg-config (`loupe`, `loupe-static`), and the OpenCV vision cell with its own
//! `examples/cpp/CMakeLists.txt`, whose output must equal the `build.sh` build's.
//!
//! Needs cmake, pkg-config, binutils, cc, g++ and OpenCV's headers; without them the tests skip loudly, unless
//! `REQUIRE_CPP=1` (CI), when they fail.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;
mod linking;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use linking::{SONAME, build_vision_cell, cpp_required, cpp_toolchain_present, found, package_into, readelf, run};

/// Returns false (after saying so) when a tool is missing and `REQUIRE_CPP` is not 1.
fn tools_present() -> bool {
    if !cpp_toolchain_present() {
        return false;
    }
    let missing: Vec<&str> = ["cmake", "pkg-config", "readelf"].into_iter().filter(|t| !found(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    let install = "apt-get install cmake pkgconf binutils";
    assert!(!cpp_required(), "REQUIRE_CPP=1 but {what} missing; install with: {install}");
    let _ = writeln!(
        std::io::stderr(),
        "\n========== SKIPPED: installed-package tests: missing {what} ({install}; REQUIRE_CPP=1 makes this a \
         failure) ==========\n"
    );
    false
}

/// A scratch folder and the package installed in it, or `None` (said on stderr) when a tool is missing. The tree
/// is packaged into one folder and moved to `<tmp>/moved/loupe`: everything after that must find the prefix from
/// where it now is.
fn installed() -> Option<(tempfile::TempDir, PathBuf)> {
    if !tools_present() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tmp.path().join("built");
    package_into(&built);
    let prefix = tmp.path().join("moved/loupe");
    std::fs::create_dir_all(prefix.parent().unwrap()).unwrap();
    std::fs::rename(&built, &prefix).unwrap();
    Some((tmp, prefix))
}

/// Configures and builds the CMake project `source` in `build` against `prefix`; `defines` are extra `-D` settings.
fn cmake_build(source: &Path, build: &Path, prefix: &Path, defines: &[String]) -> Output {
    let mut configure = Command::new("cmake");
    configure.arg("-S").arg(source).arg("-B").arg(build);
    configure.arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())).args(defines);
    run(&mut configure);
    run(Command::new("cmake").arg("--build").arg(build))
}

/// `pkg-config ARGS` with the prefix's `lib/pkgconfig` on the search path, split into arguments.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = run(Command::new("pkg-config").args(args).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    String::from_utf8(out.stdout).unwrap().split_whitespace().map(str::to_string).collect()
}

/// Runs `examples/c/minimal.c` built as `program` on the parity fixture's configuration, written into `tmp`.
fn assert_minimal_runs(program: &Path, tmp: &Path) {
    let config = tmp.join("loupe.toml");
    std::fs::write(&config, common::config_toml("")).unwrap();
    linking::run_minimal(program, &config, tmp);
}

/// Compiles `examples/c/minimal.c` into `program` with the flags of pkg-config module `module` from `prefix`, then
/// `extra` link arguments.
fn compile_with_pkg_config(prefix: &Path, module: &str, program: &Path, extra: &[OsString]) {
    run(Command::new("cc")
        .arg("-std=c11")
        .args(pkg_config(prefix, &["--cflags", module]))
        .arg(minimal_c())
        .arg("-o")
        .arg(program)
        .args(pkg_config(prefix, &["--libs", module]))
        .args(extra));
}

/// Whether `program` loads `libloupe.so.N` at run time (else it holds the static library).
fn needs_shared_library(program: &Path) -> bool {
    readelf(&["-dW"], program).contains(&format!("Shared library: [{SONAME}]"))
}

fn minimal_c() -> PathBuf {
    linking::workspace_root().join("examples/c/minimal.c")
}

#[test]
fn an_outside_cmake_project_links_the_installed_package_shared_and_static() {
    let Some((tmp, prefix)) = installed() else { return };
    for file in ["lib/cmake/Loupe/LoupeConfig.cmake", "lib/cmake/Loupe/LoupeConfigVersion.cmake"] {
        assert!(prefix.join(file).is_file(), "{file}");
    }
    let source = tmp.path().join("consumer");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(
        source.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.18)\n\
             project(consumer LANGUAGES C)\n\
             find_package(Loupe {version} REQUIRED)\n\
             message(STATUS \"Loupe ${{Loupe_VERSION}}, C API ${{Loupe_C_API_VERSION}}\")\n\
             add_executable(minimal_shared \"{c}\")\n\
             target_link_libraries(minimal_shared PRIVATE Loupe::loupe)\n\
             add_executable(minimal_static \"{c}\")\n\
             target_link_libraries(minimal_static PRIVATE Loupe::loupe_static)\n",
            version = env!("CARGO_PKG_VERSION"),
            c = minimal_c().display(),
        ),
    )
    .unwrap();
    let build = tmp.path().join("consumer-build");
    cmake_build(&source, &build, &prefix, &[]);
    let configured = std::fs::read_to_string(build.join("CMakeCache.txt")).unwrap();
    assert!(configured.contains(&format!("Loupe_DIR:PATH={}", prefix.join("lib/cmake/Loupe").display())));

    let shared = build.join("minimal_shared");
    assert!(needs_shared_library(&shared), "Loupe::loupe must link the shared library");
    assert_minimal_runs(&shared, tmp.path());
    let static_ = build.join("minimal_static");
    assert!(!needs_shared_library(&static_), "Loupe::loupe_static must not need {SONAME}");
    let stack = readelf(&["-lW"], &static_);
    let gnu_stack = stack.lines().find(|l| l.contains("GNU_STACK")).unwrap();
    assert!(!gnu_stack.contains("RWE"), "Loupe::loupe_static must pass -z noexecstack: {gnu_stack}");
    assert_minimal_runs(&static_, tmp.path());

    // A version the package is not: find_package fails and says which version it found.
    let newer = tmp.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    std::fs::write(
        newer.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.18)\nproject(newer LANGUAGES NONE)\nfind_package(Loupe 99.0 REQUIRED)\n",
    )
    .unwrap();
    let out = Command::new("cmake")
        .arg("-S")
        .arg(&newer)
        .arg("-B")
        .arg(tmp.path().join("newer-build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(env!("CARGO_PKG_VERSION")), "{stderr}");
}

#[test]
fn an_outside_pkg_config_build_links_the_installed_package_shared_and_static() {
    let Some((tmp, prefix)) = installed() else { return };
    assert_eq!(pkg_config(&prefix, &["--modversion", "loupe"]), [env!("CARGO_PKG_VERSION")]);
    let libdir = pkg_config(&prefix, &["--variable=libdir", "loupe"]);
    assert_eq!(Path::new(&libdir[0]).canonicalize().unwrap(), prefix.join("lib").canonicalize().unwrap(), "{libdir:?}");

    let shared = tmp.path().join("minimal-shared");
    let mut rpath = OsString::from("-Wl,-rpath,");
    rpath.push(&libdir[0]);
    compile_with_pkg_config(&prefix, "loupe", &shared, &[rpath]);
    assert!(needs_shared_library(&shared));
    assert_minimal_runs(&shared, tmp.path());

    let static_ = tmp.path().join("minimal-static");
    let libs = pkg_config(&prefix, &["--libs", "loupe-static"]);
    assert!(libs.iter().any(|f| f == "-Wl,-z,noexecstack") && libs.iter().any(|f| f.ends_with("libloupe.a")));
    compile_with_pkg_config(&prefix, "loupe-static", &static_, &[]);
    assert!(!needs_shared_library(&static_));
    assert_minimal_runs(&static_, tmp.path());
}

#[test]
fn the_vision_cell_builds_with_find_package_and_prints_what_the_build_script_build_prints() {
    let Some((tmp, prefix)) = installed() else { return };
    let build = tmp.path().join("vision-cell-build");
    let example = linking::workspace_root().join("examples/cpp");
    cmake_build(&example, &build, &prefix, &["-DLOUPE_EXAMPLE_WERROR=ON".to_string()]);
    let from_cmake = build.join("vision_cell");
    assert!(needs_shared_library(&from_cmake));
    let from_script = build_vision_cell(tmp.path());

    let config = tmp.path().join("cell.toml");
    std::fs::write(&config, common::config_toml("")).unwrap();
    let images = common::fixture_images();
    let outputs: Vec<(String, Vec<Vec<u8>>)> = [&from_cmake, &from_script]
        .iter()
        .enumerate()
        .map(|(i, program)| {
            let out_dir = tmp.path().join(format!("out-{i}"));
            std::fs::create_dir(&out_dir).unwrap();
            let out = run(Command::new(program).arg(&config).arg(&out_dir).args(&images).env_remove("LD_LIBRARY_PATH"));
            let masks = images
                .iter()
                .map(|image| {
                    let stem = image.file_stem().unwrap().to_str().unwrap();
                    std::fs::read(out_dir.join(format!("{stem}_mask.png"))).unwrap()
                })
                .collect();
            (String::from_utf8(out.stdout).unwrap(), masks)
        })
        .collect();
    assert_eq!(outputs[0].0.lines().filter(|l| l.starts_with("image ")).count(), images.len(), "{}", outputs[0].0);
    assert_eq!(outputs[0], outputs[1], "the CMake build and the build.sh build must print and write the same");
}

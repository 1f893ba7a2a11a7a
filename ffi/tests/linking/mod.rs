//! Shared by the tests that link programs against the built library (`cpp_example.rs`, `cpp_wrapper.rs`,
//! `shared_library.rs`, `install_package.rs`): building the cdylib and static library where those tests find them,
//! and the system tools they use (the C++ toolchain with OpenCV).

#![allow(dead_code, clippy::unwrap_used)] // Not every test file uses every helper; a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Whether `program --version` runs.
pub fn found(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `REQUIRE_CPP=1` (CI): a missing compiler or tool is a failure, not a skip.
pub fn cpp_required() -> bool {
    std::env::var("REQUIRE_CPP").is_ok_and(|v| v == "1")
}

#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The name a program linked with `-lloupe` records and loads: the library's SONAME (`ffi/build.rs`).
pub const SONAME: &str = env!("LOUPE_SONAME");

/// The target folder and the cargo profile this test was built with (`dev` for `target/debug`).
pub fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<this test>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("cannot tell the profile from {}", exe.display()),
    };
    (profile_dir.parent().unwrap().to_path_buf(), profile.to_string())
}

/// Builds the loupe-ffi library (cdylib, staticlib, rlib) with the profile this test was built with and returns the
/// folder holding `libloupe.so`, `libloupe.a` and, on Linux, the `libloupe.so.<C API version>` link that programs
/// linked with `-lloupe` load. `cargo test` does not put workspace cdylibs in `target/<profile>/`; the build lock is
/// free while tests run.
pub fn build_library() -> PathBuf {
    let (target_dir, profile) = target_and_profile();
    let profile_dir = target_dir.join(if profile == "dev" { "debug" } else { &profile });
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "loupe-ffi", "--lib", "--profile", &profile, "--target-dir"]).arg(&target_dir);
    cmd.current_dir(workspace_root());
    run(&mut cmd);
    let lib = profile_dir.join(if cfg!(target_os = "macos") { "libloupe.dylib" } else { "libloupe.so" });
    assert!(lib.is_file(), "{} was not built", lib.display());
    if cfg!(target_os = "linux") {
        // Made by ffi/build.rs; without it every program linked here would fail to start.
        let link = profile_dir.join(SONAME);
        assert_eq!(
            link.canonicalize().ok(),
            lib.canonicalize().ok(),
            "{} must lead to libloupe.so (made by ffi/build.rs)",
            link.display()
        );
    }
    profile_dir
}

/// Lays the library out under `prefix` with `tools/package-c.sh`, built with this test's target folder and profile.
pub fn package_into(prefix: &Path) {
    let (target_dir, profile) = target_and_profile();
    run(Command::new("bash")
        .arg(workspace_root().join("tools/package-c.sh"))
        .arg(prefix)
        .env("PROFILE", &profile)
        .env("CARGO", env!("CARGO"))
        .env("CARGO_TARGET_DIR", &target_dir));
}

/// `readelf ARGS FILE`'s output; lossy, as a section dump (`-p .gnu_debuglink`) prints the CRC's raw bytes.
pub fn readelf(args: &[&str], file: &Path) -> String {
    String::from_utf8_lossy(&run(Command::new("readelf").args(args).arg(file)).stdout).into_owned()
}

/// OpenCV's headers where Debian's `libopencv-*-dev` put them.
pub const OPENCV_HEADER: &str = "/usr/include/opencv4/opencv2/imgcodecs.hpp";

/// Whether the C/C++ example tests can run: a C++ compiler (`$CXX`, default g++), `cc` and OpenCV's headers. Returns
/// false (after saying so loudly) when one is missing and `REQUIRE_CPP` is not 1, when it panics instead.
pub fn cpp_toolchain_present() -> bool {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let mut missing = Vec::new();
    if !found(&cxx) {
        missing.push(format!("C++ compiler `{cxx}`"));
    }
    if !found("cc") {
        missing.push("C compiler `cc`".into());
    }
    if !Path::new(OPENCV_HEADER).is_file() {
        missing.push(format!("OpenCV headers ({OPENCV_HEADER})"));
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    let install = "apt-get install g++ libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev";
    if cpp_required() {
        panic!("REQUIRE_CPP=1 but {what} missing; install with: {install}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests, and a skip must
    // be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIPPED: C/C++ example tests ====================\n\
         missing: {what}. Install with: {install}\n\
         (set REQUIRE_CPP=1 to make this a failure)\n\
         ======================================================================\n"
    );
    false
}

/// Builds the C++ vision-cell example with `examples/cpp/build.sh` against [`build_library`]'s library into
/// `dir/vision_cell`; returns the program's path.
pub fn build_vision_cell(dir: &Path) -> PathBuf {
    let lib_dir = build_library();
    let program = dir.join("vision_cell");
    run(Command::new("bash")
        .arg(workspace_root().join("examples/cpp/build.sh"))
        .env("LOUPE_LIB_DIR", &lib_dir)
        .env("OUT", &program));
    program
}

/// Runs `program`, a build of `examples/c/minimal.c`, on the configuration file `config` (with no library path in
/// the environment: the program must find the library by itself) and checks its verdict and the overlay it writes
/// into `dir`.
pub fn run_minimal(program: &Path, config: &Path, dir: &Path) {
    let overlay = dir.join("overlay.png");
    let _ = std::fs::remove_file(&overlay);
    let out = run(Command::new(program).arg(config).arg(&overlay).env_remove("LD_LIBRARY_PATH"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("score="), "{}: {stdout}", program.display());
    assert!(overlay.is_file(), "{}: no overlay", program.display());
}

/// Compiles `examples/c/minimal.c` into `program` with `cc -std=c11`, `flags` (warnings, rpath) and `-lloupe` from
/// `lib_dir`.
pub fn compile_minimal_c(lib_dir: &Path, program: &Path, flags: &[std::ffi::OsString]) {
    let root = workspace_root();
    run(Command::new("cc")
        .arg("-std=c11")
        .args(flags)
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("examples/c/minimal.c"))
        .arg("-o")
        .arg(program)
        .arg("-L")
        .arg(lib_dir)
        .arg("-lloupe"));
}

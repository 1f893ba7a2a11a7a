//! Helpers shared by Loupe's integration tests: where the fixtures are, building the shared libraries a test
//! loads (cargo does not build workspace cdylibs for `cargo test`), and compiling C/C++ test plugins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use safetensors::SafeTensors;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed tiny parity fixture (model, bank, images).
pub fn parity_fixture() -> PathBuf {
    repo_root().join("tests/fixtures/parity")
}

/// The cargo profile directory of the running test binary (`target/debug` or `target/release`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps").to_path_buf()
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds the workspace's cdylib packages with the running test's profile and returns the profile directory,
/// after checking that each of `packages` is there. Serialised within the process; cargo's own lock serialises
/// between processes.
///
/// It builds the whole workspace with all targets, not `-p <package>`: that resolves dependency features as
/// `cargo test --workspace` does, so the dependencies that test build compiled are reused. A `-p` build resolves
/// features for that package alone and compiled the whole dependency tree again (7.5 minutes on 2 cores).
///
/// With `LOUPE_TEST_CDYLIB_DIR` set, nothing is built: the libraries are taken from that folder. The sanitizer
/// runs (`tools/reliability/sanitizers.sh`) use it, because their test binaries live in a `--target` folder with
/// instrumented flags that a plain `cargo build` of the workspace would not reproduce.
pub fn build_cdylibs(packages: &[&str]) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = std::env::var_os("LOUPE_TEST_CDYLIB_DIR").map(PathBuf::from) {
        check_built(&dir, packages, "LOUPE_TEST_CDYLIB_DIR");
        return dir;
    }
    let dir = profile_dir();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--workspace", "--all-targets"]).current_dir(repo_root());
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build of the workspace (for {packages:?}) failed");
    check_built(&dir, packages, "cargo build");
    dir
}

/// Asserts that `dir` holds the shared library of each of `packages` (`by` says who should have built it).
fn check_built(dir: &Path, packages: &[&str], by: &str) {
    for p in packages {
        let lib = shared_lib(dir, &p.replace('-', "_"));
        assert!(lib.is_file(), "{} is missing (expected from {by})", lib.display());
    }
}

/// `lib<name>.so` (or the platform's equivalent) in `dir`.
pub fn shared_lib(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

/// Compiles one C or C++ source into a shared library with warnings as errors, against `include/`.
/// Returns `None` (after saying so on stderr) when the compiler is missing and `REQUIRE_CPP` is not `1`.
pub fn compile_plugin(compiler: &str, source: &Path, out: &Path) -> Option<PathBuf> {
    let cpp = compiler.contains("++");
    let mut cmd = Command::new(compiler);
    if cpp {
        cmd.args(["-std=c++17", "-O2"]);
    } else {
        cmd.arg("-std=c99");
    }
    cmd.args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I"]).arg(repo_root().join("include")).arg(source);
    cmd.arg("-o").arg(out);
    match cmd.output() {
        Ok(o) if o.status.success() => Some(out.to_path_buf()),
        Ok(o) => panic!("{compiler} failed on {}:\n{}", source.display(), String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            assert!(
                std::env::var("REQUIRE_CPP").as_deref() != Ok("1"),
                "{compiler} is required (REQUIRE_CPP=1) but: {e}"
            );
            eprintln!("SKIPPED: {compiler} not available ({e}); set REQUIRE_CPP=1 to make this a failure");
            None
        }
    }
}

/// A safetensors file of expected outputs (f32 tensors) with its metadata, as the Python tools write them.
pub struct Expected {
    /// Tensors by name: shape and values.
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The file's metadata.
    pub meta: HashMap<String, String>,
}

impl Expected {
    /// Reads `dir/expected.safetensors`.
    pub fn load(dir: &Path) -> Self {
        Self::load_file(&dir.join("expected.safetensors"))
    }

    /// Reads one such file.
    pub fn load_file(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).expect("expected.safetensors parses");
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("metadata");
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, v)| {
                let data = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                (name, (v.shape().to_vec(), data))
            })
            .collect();
        Self { tensors, meta: header.metadata().clone().unwrap_or_default() }
    }

    /// The values of tensor `name` (panics if absent).
    pub fn get(&self, name: &str) -> &[f32] {
        &self.tensors.get(name).unwrap_or_else(|| panic!("expected tensor `{name}` missing")).1
    }

    /// A metadata entry holding a JSON list of strings.
    pub fn list(&self, key: &str) -> Vec<String> {
        serde_json::from_str(&self.meta[key]).unwrap_or_else(|e| panic!("metadata `{key}`: {e}"))
    }
}

/// Largest difference allowed between Loupe and a reference.
pub const TOLERANCE: f32 = 1e-4;

/// Asserts `found` equals `expected` within [`TOLERANCE`], naming the worst index.
#[track_caller]
pub fn assert_close(what: &str, found: &[f32], expected: &[f32]) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    let (i, diff) = found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |best, (i, d)| if d > best.1 || d.is_nan() { (i, d) } else { best });
    assert!(
        diff <= TOLERANCE,
        "{what}: max abs difference {diff} at index {i} (found {}, expected {})",
        found[i],
        expected[i]
    );
}

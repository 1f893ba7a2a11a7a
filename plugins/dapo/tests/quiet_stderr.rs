//! Building an engine writes nothing to the host's stderr, even where Mesa's device-select Vulkan layer would print
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` while wgpu probes adapters (a headless
//! machine, a service, a container: no XDG_RUNTIME_DIR). The host's stderr is its own log; a line starting with
//! `error:` there reads like a failure of the inspection cell.
//!
//! Each case runs in a child process (this test binary again), because the Vulkan loader and the device-select
//! layer read their variables when the first instance is created, and because only a child's stderr can be
//! captured whole (the test harness captures Rust's prints, not what C libraries write to fd 2).

#![cfg(all(feature = "gpu", feature = "default-model"))]
#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::Path;
use std::process::{Command, Output};

use loupe_dapo::postprocess::backend::build_postprocessor;
use loupe_sdk::LoupeConfig;
use loupe_sdk::config::{PostprocessBackend, PostprocessConfig};

const CHILD: &str = "LOUPE_TEST_QUIET_STDERR_CHILD";
const DONE: &str = "quiet-stderr child: done";
/// Mesa's implicit layer; where it is installed, it prints the message unless Loupe keeps it quiet.
const DEVICE_SELECT_LAYER: &str = "/usr/share/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json";

/// Runs the child half with the variables that decide whether the layer prints removed, then `extra` set.
fn run_child(extra: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "quiet_child", "--nocapture", "--test-threads=1"]).env(CHILD, "1");
    for var in [
        "NODEVICE_SELECT",
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "WAYLAND_SOCKET",
        "LOUPE_KEEP_VULKAN_LAYERS",
        "MESA_VK_DEVICE_SELECT",
        "MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE",
        "VK_LOADER_LAYERS_DISABLE",
        "VK_INSTANCE_LAYERS",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(DONE),
        "the child failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What the child reported about NODEVICE_SELECT after building: `None` when it stayed unset.
fn nodevice_select(out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest prints `test quiet_child ... ` on the same line, before the child's own output.
    let (_, rest) = stdout.split_once(DONE).unwrap();
    rest.lines().next().unwrap_or_default().trim().strip_prefix("NODEVICE_SELECT=").map(str::to_string)
}

fn layer_installed() -> bool {
    Path::new(DEVICE_SELECT_LAYER).is_file()
}

#[test]
fn building_an_engine_without_xdg_runtime_dir_writes_nothing_to_stderr() {
    if !layer_installed() {
        eprintln!("note: {DEVICE_SELECT_LAYER} is absent: this machine could not print the message anyway");
    }
    let out = run_child(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "engine creation wrote to stderr:\n{stderr}");
    if layer_installed() {
        // Documented in docs/gpu.md: the layer is turned off for the process, visibly to the host.
        assert_eq!(nodevice_select(&out).as_deref(), Some("1"));
    }
}

#[test]
fn a_usable_xdg_runtime_dir_leaves_the_layer_alone() {
    // libwayland prints only when XDG_RUNTIME_DIR is unusable; with an absolute one (no compositor listening) the
    // layer stays on, finds no display and is silent.
    let runtime = tempfile::tempdir().unwrap();
    let out = run_child(&[("XDG_RUNTIME_DIR", runtime.path())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "engine creation wrote to stderr:\n{stderr}");
    assert_eq!(nodevice_select(&out), None, "NODEVICE_SELECT set although the layer had nothing to print");
}

#[test]
fn loupe_keep_vulkan_layers_opts_out() {
    let out = run_child(&[("LOUPE_KEEP_VULKAN_LAYERS", Path::new("1"))]);
    assert_eq!(nodevice_select(&out), None, "the opt-out must leave the environment alone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if layer_installed() && std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
        // Proves the first test's machine really has the noisy layer (CI: Debian's mesa-vulkan-drivers), so its
        // empty stderr is Loupe's doing.
        assert!(stderr.contains("XDG_RUNTIME_DIR"), "the layer was expected to print with the opt-out:\n{stderr}");
    } else {
        eprintln!("opt-out child's stderr:\n{stderr}");
    }
}

/// The child half of the tests above; does nothing when run directly.
#[test]
fn quiet_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // The default configuration: backend `auto` and the embedded default model, as `loupe_engine_create_*` with an
    // empty configuration.
    let engine = loupe_dapo::build_engine(&LoupeConfig::default()).unwrap();
    drop(engine);
    // `gpu` probes again (and opens a device on lavapipe); no adapter is an error here, and not this test's concern.
    let gpu = PostprocessConfig { backend: PostprocessBackend::Gpu, ..Default::default() };
    drop(build_postprocessor(&gpu));
    match std::env::var("NODEVICE_SELECT") {
        Ok(v) => println!("{DONE} NODEVICE_SELECT={v}"),
        Err(_) => println!("{DONE} unset"),
    }
}

#!/usr/bin/env bash
# Every test of the project, on a fresh machine: Rust formatting, lints and tests (with the C/C++ examples and
# the GPU post-processing on Mesa's lavapipe), the installed C/C++ package, the fuzz targets' smoke run, and the
# Python tools' tests with and without PyTorch.
#
#   bash tools/test-all.sh                       # everything; installs what is missing, or stops naming it
#   LOUPE_SKIP=torch,fuzz bash tools/test-all.sh # leave parts out, by name
#
# Parts (the names LOUPE_SKIP takes):
#   cpp     C/C++ programs against the C ABI: examples, C++ wrapper, fault plugins, installed package (CMake and
#           pkg-config). Debian: g++ binutils cmake pkgconf libopencv-{core,imgproc,imgcodecs}-dev
#   gpu     wgpu post-processing parity on a Vulkan device (lavapipe without a GPU). Debian: mesa-vulkan-drivers
#           libvulkan1
#   fuzz    fuzz/smoke.sh: build the cargo-fuzz targets, replay seeds and regressions, a few seconds each. Needs the
#           nightly toolchain (cargo +nightly); installs cargo-fuzz
#   python  the Python tools' tests (tools/requirements-bench.txt: the light set and faiss, in the tools venv), and
#           the Python package (python/): its wheel built and installed there, its tests, mypy on its stubs
#   torch   their PyTorch tests too: export, reference, training (tools/requirements-torch.txt, installed into the
#           tools venv: 7.2 GB, 4 min from PyPI here, once). Without it those tests skip themselves
#   ort     the ONNX Runtime backbone plugin's tests (tests/tests/onnxruntime.rs) against the libonnxruntime of
#           PyPI's onnxruntime wheel (tools/requirements-ort.txt, installed into the tools venv before cargo test)
# The Rust workspace's own tests always run. Missing Debian packages are installed when run as root with apt-get
# (as on CI); otherwise the script stops before building anything, with the command that installs them. A skipped
# part's Rust tests skip themselves loudly instead of failing (REQUIRE_CPP / REQUIRE_GPU are set only for parts
# that run). The summary at the end says what ran.
#
# Environment: LOUPE_SKIP (above); LOUPE_TOOLS_VENV (default target/tools-venv); CARGO_TARGET_DIR as for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

all_parts=(cpp gpu fuzz python torch ort)
declare -A skip=()
IFS=',' read -r -a asked <<<"${LOUPE_SKIP:-}"
for name in "${asked[@]}"; do
  name="${name// /}"
  [ -z "$name" ] && continue
  if [[ " ${all_parts[*]} " != *" $name "* ]]; then
    echo "LOUPE_SKIP: unknown part \`$name\`; the parts are: ${all_parts[*]}" >&2
    exit 2
  fi
  skip[$name]=1
done
runs() { [ -z "${skip[$1]:-}" ]; }

# --- What the parts need, checked (and installed where allowed) before anything is built.
declare -A debian=(
  [cpp]="g++ binutils cmake pkgconf libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev"
  [gpu]="mesa-vulkan-drivers libvulkan1"
)
problems=()
if command -v dpkg-query >/dev/null; then
  wanted=()
  for part in cpp gpu; do
    runs "$part" && read -r -a list <<<"${debian[$part]}" && wanted+=("${list[@]}")
  done
  # The tools venv needs Debian's venv package when python3 is Debian's own (a pyenv or conda python has venv).
  if { runs python || runs torch || runs ort; } && command -v python3 >/dev/null &&
    dpkg-query -S "$(readlink -f "$(command -v python3)")" >/dev/null 2>&1; then
    wanted+=(python3-venv)
  fi
  missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "== installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
      problems+=("Debian packages ${missing[*]} (as root: apt-get install ${missing[*]})")
    fi
  fi
else
  echo "(no dpkg: system packages not checked; the C/C++ and GPU tests name what they miss)"
fi
command -v python3 >/dev/null || problems+=("python3 (for the Python tools' tests)")
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --version >/dev/null 2>&1 || problems+=("rustfmt (rustup component add rustfmt)")
cargo clippy --version >/dev/null 2>&1 || problems+=("clippy (rustup component add clippy)")
if runs fuzz && ! cargo +nightly --version >/dev/null 2>&1; then
  problems+=("the nightly toolchain for the fuzz targets (rustup toolchain install nightly)")
fi
if [ "${#problems[@]}" -gt 0 ]; then
  echo "tools/test-all.sh cannot run every test; missing:" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  echo "Install them, or leave parts out by name: LOUPE_SKIP=<comma-separated: ${all_parts[*]}>" >&2
  exit 1
fi

# --- The tests.
ran=(rust)
if runs cpp; then export REQUIRE_CPP=1; ran+=(cpp); else export REQUIRE_CPP=0; fi
if runs gpu; then export REQUIRE_GPU=1; ran+=(gpu); else export REQUIRE_GPU=0; fi

venv="${LOUPE_TOOLS_VENV:-target/tools-venv}"
make_venv() {
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
}
if runs ort; then
  # Before cargo test: the ONNX Runtime backbone's tests load this library (REQUIRE_ORT=1: none may skip).
  echo "== ONNX Runtime for the ort-clip-onnx backbone's tests (tools/requirements-ort.txt in the tools venv)"
  make_venv
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tools/requirements-ort.txt
  LOUPE_ORT_LIBRARY="$(cd "$venv" && pwd)/$(cd "$venv" && ls lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | head -1)"
  export LOUPE_ORT_LIBRARY REQUIRE_ORT=1
  ran+=(ort)
else
  export REQUIRE_ORT=0
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== loupe-dapo without the gpu feature (CPU post-processing only)"
cargo test -p loupe-dapo --no-default-features --lib --locked

if runs fuzz; then
  echo "== fuzz targets: build, replay the seeds and regressions, a few seconds of fuzzing each (fuzz/smoke.sh)"
  # Its own target folder: the fuzz build is nightly and instrumented, so it shares nothing with the builds above.
  # Unoptimised: the optimised build took 811 s of a fresh clone's CI run on 2 cores, for 6 s of fuzzing per target.
  FUZZ_BUILD="${FUZZ_BUILD:-dev}" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz" bash fuzz/smoke.sh
  ran+=(fuzz)
fi

if runs python || runs torch; then
  make_venv
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" -r tools/requirements-bench.txt
  if runs torch; then
    # One run covers both parts: the torch set adds to the light one, and its tests then run instead of skipping.
    echo "== python tools with torch, open_clip and onnxruntime (pytest; a missing module is an error)"
    "${pip[@]}" -r tools/requirements-torch.txt
    LOUPE_TOOLS_REQUIRE_ALL=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider tools
    ran+=(torch)
  else
    echo "== python tools without torch (pytest; the torch tests skip themselves)"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tools
  fi
  if runs python; then
    echo "== the Python package (python/): the module as the workspace built it, pytest against the CLI, mypy"
    "${pip[@]}" -r python/requirements-dev.txt
    # The workspace build with the tests' feature resolution (what ffi's tests built already), so nothing is
    # compiled again; `pip install ./python` (maturin) would resolve features for the package alone and rebuild the
    # dependency tree. The files are laid out as maturin's wheel lays them (python/README.md).
    target="${CARGO_TARGET_DIR:-target}"
    cargo build --workspace --all-targets --locked
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
    rm -rf "$site/loupe" "$site"/loupe-*.dist-info
    cp -r python/python/loupe "$site/loupe"
    cp "$target/debug/libloupe_python.so" "$site/loupe/_loupe.abi3.so"
    LOUPE_CLI="$target/debug/loupe" "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
    # The tests type-check against the shipped stubs, and the stubs against the built module.
    "$venv/bin/python" -m mypy --strict --no-incremental python/tests
    "$venv/bin/python" -m mypy.stubtest loupe
    ran+=(python)
  fi
fi

skipped=()
for part in "${all_parts[@]}"; do
  runs "$part" || skipped+=("$part")
done
echo "== all tests passed; ran: ${ran[*]}${skipped[*]:+; skipped by LOUPE_SKIP: ${skipped[*]}}"

#!/usr/bin/env bash
# Every test of the project: Rust formatting, lints and tests, then the Python tools' tests.
# Usage: bash tools/test-all.sh   (from anywhere; needs cargo and python3)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== loupe-dapo without the gpu feature (CPU post-processing only)"
cargo test -p loupe-dapo --no-default-features --lib --locked

echo "== fuzz targets: build, replay the seeds and regressions, a few seconds of fuzzing each (fuzz/smoke.sh)"
if cargo +nightly --version >/dev/null 2>&1; then
  # Its own target folder: the fuzz build is nightly and instrumented, so it shares nothing with the builds above.
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz" bash fuzz/smoke.sh
elif [ "${REQUIRE_FUZZ:-0}" = 1 ]; then
  echo "REQUIRE_FUZZ=1 but there is no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
else
  echo "skipped: no nightly toolchain (rustup toolchain install nightly; REQUIRE_FUZZ=1 makes this an error)"
fi

echo "== python tools (pytest)"
venv="${LOUPE_TOOLS_VENV:-target/tools-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tools/requirements.txt
# Torch-dependent tests skip themselves here; run them with the torch venv (see tools/README.md).
"$venv/bin/python" -m pytest -q tools

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

echo "== python tools (pytest)"
venv="${LOUPE_TOOLS_VENV:-target/tools-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tools/requirements.txt
# Torch-dependent tests skip themselves here; run them with the torch venv (see tools/README.md).
"$venv/bin/python" -m pytest -q tools

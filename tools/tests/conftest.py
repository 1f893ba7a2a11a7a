"""Shared paths for the tools' tests, and the torch set's guard."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

# The modules without which some tests skip themselves (pytest.importorskip): the torch set
# (requirements-torch.txt) and faiss (requirements-bench.txt).
OPTIONAL_MODULES = ("torch", "open_clip", "onnxruntime", "onnx", "faiss")


def pytest_configure(config: pytest.Config) -> None:
    """With LOUPE_TOOLS_REQUIRE_ALL=1 (tools/test-all.sh's torch part) a missing optional module is an error,
    not a skip, so that "passed" means every test ran."""
    if os.environ.get("LOUPE_TOOLS_REQUIRE_ALL") != "1":
        return
    missing = []
    for name in OPTIONAL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as e:
            missing.append(f"{name} ({e})")
    if missing:
        raise pytest.UsageError(
            "LOUPE_TOOLS_REQUIRE_ALL=1 but these cannot be imported: "
            + ", ".join(missing)
            + " (pip install -r tools/requirements-torch.txt -r tools/requirements-bench.txt)"
        )

REPO = Path(__file__).resolve().parents[2]
PARITY = REPO / "tests" / "fixtures" / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The committed tiny parity fixture folder."""
    if not (PARITY / "expected.safetensors").exists():
        pytest.skip(f"no parity fixtures at {PARITY} (run: PYTHONPATH=tools python -m loupe_tools.make_fixtures)")
    return PARITY

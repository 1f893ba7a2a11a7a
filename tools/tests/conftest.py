"""Shared paths for the tools' tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARITY = REPO / "tests" / "fixtures" / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The committed tiny parity fixture folder."""
    if not (PARITY / "expected.safetensors").exists():
        pytest.skip(f"no parity fixtures at {PARITY} (run: PYTHONPATH=tools python -m loupe_tools.make_fixtures)")
    return PARITY

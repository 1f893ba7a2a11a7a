"""The committed parity fixtures are exactly what `make_fixtures` writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("open_clip")

from fixture_check import assert_fixture_matches  # noqa: E402
from loupe_tools import make_fixtures  # noqa: E402


def test_regenerated_fixtures_match_committed(tmp_path: Path, parity_dir: Path) -> None:
    out = tmp_path / "parity"
    make_fixtures.main(["--out", str(out), "--no-verify"])
    assert_fixture_matches(out, parity_dir)

"""The committed parity fixtures are exactly what `make_fixtures` writes today."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("open_clip")

from safetensors import safe_open  # noqa: E402

from loupe_tools import make_fixtures  # noqa: E402


def test_regenerated_fixtures_match_committed(tmp_path: Path, parity_dir: Path) -> None:
    out = tmp_path / "parity"
    make_fixtures.main(["--out", str(out), "--no-verify"])
    for rel in ["model/loupe-model.json", "model/image_encoder.onnx", "model/text_encoder.onnx",
                "model/token_embedding.safetensors",
                "images/gray.png", "images/rgb.png", "images/rgba.png", "images/gray_hole.png"]:
        assert (out / rel).read_bytes() == (parity_dir / rel).read_bytes(), rel
    # safetensors files with metadata are not byte-stable (the metadata map's order varies): compare contents
    for rel in ["bank.safetensors", "expected.safetensors", "reference_weights.safetensors"]:
        with safe_open(str(out / rel), "numpy") as new, safe_open(str(parity_dir / rel), "numpy") as old:
            assert new.metadata() == old.metadata(), rel
            assert sorted(new.keys()) == sorted(old.keys()), rel
            for k in old.keys():
                np.testing.assert_allclose(new.get_tensor(k), old.get_tensor(k), atol=1e-6, err_msg=f"{rel}:{k}")

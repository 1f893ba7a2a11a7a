"""Comparison of a regenerated fixture folder with the committed one (shared by the regeneration tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open

MODEL_FILES = ["model/loupe-model.json", "model/image_encoder.onnx", "model/text_encoder.onnx",
               "model/token_embedding.safetensors"]
SAFETENSORS_FILES = ["bank.safetensors", "expected.safetensors", "reference_weights.safetensors"]


def assert_fixture_matches(new: Path, committed: Path) -> None:
    """Model files and images byte for byte; safetensors files by metadata and tensors (within 1e-6), because
    files with metadata are not byte-stable (the metadata map's order varies)."""
    images = sorted(p.relative_to(committed).as_posix() for p in (committed / "images").glob("*.png"))
    assert images, f"{committed}: no fixture images"
    for rel in MODEL_FILES + images:
        assert (new / rel).read_bytes() == (committed / rel).read_bytes(), rel
    for rel in SAFETENSORS_FILES:
        with safe_open(str(new / rel), "numpy") as fresh, safe_open(str(committed / rel), "numpy") as old:
            assert fresh.metadata() == old.metadata(), rel
            assert sorted(fresh.keys()) == sorted(old.keys()), rel
            for k in old.keys():
                np.testing.assert_allclose(fresh.get_tensor(k), old.get_tensor(k), atol=1e-6, err_msg=f"{rel}:{k}")

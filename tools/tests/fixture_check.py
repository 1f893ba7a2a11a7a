"""Comparison of a regenerated fixture folder with the committed one (shared by the regeneration tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open

MODEL_FILES = ["model/loupe-model.json", "model/image_encoder.onnx", "model/text_encoder.onnx",
               "model/token_embedding.safetensors"]
SAFETENSORS_FILES = ["bank.safetensors", "expected.safetensors", "reference_weights.safetensors"]
TRAINED_WEIGHTS_ATOL = 3e-4
TRAINED_TENSORS_ATOL = 1e-3


def assert_fixture_matches(new: Path, committed: Path, trained: bool = False) -> None:
    """Model files and images byte for byte; safetensors files by metadata and tensors (within 1e-6), because
    files with metadata are not byte-stable (the metadata map's order varies).

    ``trained``: the weights come out of a training run, whose float rounding depends on the CPU's kernels. The
    committed trained fixture regenerated on an AVX2-only AMD EPYC differed by 1e-7 in the weights and 2e-5 in the
    expected outputs; on an AVX-512 Intel Xeon by 2.8e-5 in the weights and 8.7e-5 in the outputs (some weights are
    near 0.17: the difference grows with the training steps). Then the ONNX graphs must have the same nodes and
    initializers within ``TRAINED_WEIGHTS_ATOL``, ``loupe-model.json`` may differ only in ``model_id`` (a hash of
    those bytes, which the bank's and the expected outputs' metadata repeat), and the tensors within
    ``TRAINED_TENSORS_ATOL``: about ten times what was measured, far below what a change to the recipe moves
    (1e-2 and more)."""
    images = sorted(p.relative_to(committed).as_posix() for p in (committed / "images").glob("*.png"))
    assert images, f"{committed}: no fixture images"
    model_ids = (None, None)
    for rel in MODEL_FILES + images:
        fresh_bytes, old_bytes = (new / rel).read_bytes(), (committed / rel).read_bytes()
        if fresh_bytes == old_bytes or not trained:
            assert fresh_bytes == old_bytes, rel
        elif rel.endswith(".onnx"):
            assert_onnx_close(new / rel, committed / rel, TRAINED_WEIGHTS_ATOL)
        elif rel.endswith("loupe-model.json"):
            fresh_json, old_json = json.loads(fresh_bytes), json.loads(old_bytes)
            model_ids = (fresh_json.pop("model_id"), old_json.pop("model_id"))
            assert fresh_json == old_json, rel
        else:
            raise AssertionError(rel)
    # Through the temperature-0.07 softmax a weight difference grows on the maps (1e-7 -> 2e-5, 2.8e-5 -> 8.7e-5).
    tol = TRAINED_TENSORS_ATOL if trained else 1e-6
    for rel in SAFETENSORS_FILES:
        with safe_open(str(new / rel), "numpy") as fresh, safe_open(str(committed / rel), "numpy") as old:
            fresh_meta = {k: v.replace(str(model_ids[0]), str(model_ids[1])) for k, v in (fresh.metadata() or {}).items()}
            assert fresh_meta == (old.metadata() or {}), rel
            assert sorted(fresh.keys()) == sorted(old.keys()), rel
            for k in old.keys():
                np.testing.assert_allclose(fresh.get_tensor(k), old.get_tensor(k), atol=tol, err_msg=f"{rel}:{k}")


def assert_onnx_close(fresh: Path, old: Path, atol: float) -> None:
    """Two ONNX files with the same nodes and initializer names, the initializers within ``atol``."""
    import onnx
    from onnx import numpy_helper

    a, b = onnx.load(str(fresh)).graph, onnx.load(str(old)).graph
    assert [(n.op_type, list(n.input), list(n.output)) for n in a.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in b.node
    ], fresh.name
    ia = {i.name: numpy_helper.to_array(i) for i in a.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in b.initializer}
    assert sorted(ia) == sorted(ib), fresh.name
    for k in ib:
        np.testing.assert_allclose(ia[k], ib[k], atol=atol, err_msg=f"{fresh.name}:{k}")

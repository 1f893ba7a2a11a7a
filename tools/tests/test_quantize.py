"""``loupe_tools.quantize``: the int8 encoder is written beside the fp32 one and named in ``loupe-model.json``,
the model id stays, its outputs approximate fp32's and its matrix products really are int8; calibration image
choice and refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from loupe_tools.model_dir import read_model_json  # noqa: E402
from loupe_tools.quantize import INT8_FILE, add_int8_encoder, collect_images, compare, main  # noqa: E402


def test_the_int8_encoder_is_named_keeps_the_model_id_and_approximates_fp32(parity_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(parity_dir / "model", model)
    before = read_model_json(model)
    chosen = add_int8_encoder(model, [parity_dir / "images"], count=8)
    assert chosen, "calibration images were used"
    info = read_model_json(model)
    assert info["files"]["image_encoder_int8"] == INT8_FILE and (model / INT8_FILE).is_file()
    assert info["model_id"] == before["model_id"]
    graph = onnx.load(str(model / INT8_FILE)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "the weights are stored as int8"
    from loupe_tools.images import encoder_input

    inputs = [encoder_input(p, info) for p in chosen]
    diff = compare(model, info, inputs)
    import onnxruntime as ort

    fp32 = ort.InferenceSession(str(model / info["files"]["image_encoder"]), providers=["CPUExecutionProvider"])
    scale = max(float(np.abs(np.asarray(fp32.run(["patch_tokens"], {"image": x})[0])).max()) for x in inputs)
    # Approximate, not equal: within 10 % of the features' range on this tiny random model, and not zero.
    assert 0.0 < diff["patch_tokens"] < 0.1 * scale, (diff, scale)


def test_calibration_images_are_spread_and_missing_ones_named(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"img{i:02d}.png").write_bytes(b"")
    picked = collect_images([tmp_path], 3)
    assert [p.name for p in picked] == ["img00.png", "img04.png", "img09.png"]  # first, middle, last
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        collect_images([tmp_path / "nowhere.png"], 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        collect_images([empty], 3)


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(SystemExit, match="--count"):
        main(["--model", "m", "--images", "x", "--count", "0"])

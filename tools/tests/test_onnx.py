"""The exported ONNX files (onnxruntime) against the PyTorch module, on the tiny architecture; and the
committed fixture's ONNX files against its expected outputs (the computation the Rust side does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from safetensors import safe_open  # noqa: E402

from loupe_tools.bank import read_bank  # noqa: E402
from loupe_tools.export import export_from_args, parse_args  # noqa: E402
from loupe_tools.images import load_rgb8, normalize  # noqa: E402
from loupe_tools.model_dir import read_model_json  # noqa: E402

TOL = 1e-5


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "extra",
    [
        [],  # tiny defaults: 2 visual prompts, 2 text deep prompts, adapters, 56 -> 64 resize
        ["--visual-prompts", "0", "--text-deep-prompts", "0", "--patch-features", "ln_post_proj", "--feature-layers", "2,4"],
    ],
    ids=["dapo", "plain"],
)
def test_onnx_matches_torch(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "model"
    built, info = export_from_args(parse_args(["--out", str(out), "--random-init", "3", "--arch", "tiny", "--no-verify", *extra]))
    model = built.model
    assert read_model_json(out) == info
    rng = np.random.default_rng(0)
    img_sess = _session(out / "image_encoder.onnx")
    txt_sess = _session(out / "text_encoder.onnx")
    assert [i.name for i in img_sess.get_inputs()] == ["image"]
    assert [o.name for o in img_sess.get_outputs()] == ["global", "patch_tokens"]
    n_deep = info["text"]["deep_prompts"]
    assert [i.name for i in txt_sess.get_inputs()] == ["prompt_embeddings", "eot_index"] + (["deep_prompts"] if n_deep else [])
    layers, grid = len(info["image"]["feature_layers"]), 64
    for batch in (1, 3):
        image = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        g, p = img_sess.run(None, {"image": image})
        with torch.no_grad():
            g_t, p_t = model.encode_image(torch.from_numpy(image))
        assert g.shape == (batch, 16) and p.shape == (batch, layers, grid, 16)
        assert np.abs(g - g_t.numpy()).max() < TOL
        assert np.abs(p - p_t.numpy()).max() < TOL
    for prompts in (1, 5):
        emb = (0.05 * rng.standard_normal((prompts, 24, 16))).astype(np.float32)
        eot = rng.integers(8, 24, prompts).astype(np.int64)
        feeds = {"prompt_embeddings": emb, "eot_index": eot}
        deep = None
        if n_deep:
            feeds["deep_prompts"] = (0.05 * rng.standard_normal((2, n_deep, 16))).astype(np.float32)
            deep = torch.from_numpy(feeds["deep_prompts"])
        (t,) = txt_sess.run(None, feeds)
        with torch.no_grad():
            t_t = model.encode_text_embeddings(torch.from_numpy(emb), torch.from_numpy(eot), deep)
        assert t.shape == (prompts, 16)
        assert np.abs(t - t_t.numpy()).max() < TOL


def test_export_is_deterministic(tmp_path: Path) -> None:
    infos = []
    for name in ("a", "b"):
        _, info = export_from_args(parse_args(["--out", str(tmp_path / name), "--random-init", "0", "--arch", "tiny", "--no-verify"]))
        infos.append(info)
    assert infos[0]["model_id"] == infos[1]["model_id"]


def test_fixture_onnx_reproduces_expected(parity_dir: Path) -> None:
    """What the Rust side does: preprocess the PNGs, run image_encoder.onnx, build the hybrid prompts, run
    text_encoder.onnx; compare with the PyTorch reference's expected.safetensors."""
    pytest.importorskip("open_clip")
    from loupe_tools.onnx_text import OnnxTextFeatures

    model_dir = parity_dir / "model"
    info = read_model_json(model_dir)
    with safe_open(str(parity_dir / "expected.safetensors"), framework="numpy") as f:
        meta = f.metadata()
        expected = {k: f.get_tensor(k) for k in f.keys()}
    sess = _session(model_dir / "image_encoder.onnx")
    stems = json.loads(meta["images"])
    batch = np.stack([
        normalize(load_rgb8(parity_dir / "images" / f"{s}.png"), info["image"]["mean"], info["image"]["std"]) for s in stems
    ])
    g, p = sess.run(None, {"image": batch})
    for i, s in enumerate(stems):
        assert np.abs(g[i] - expected[f"{s}/global"]).max() < TOL, s
        assert np.abs(p[i] - expected[f"{s}/patch_tokens"]).max() < TOL, s
    bank = read_bank(parity_dir / "bank.safetensors")
    text = OnnxTextFeatures(model_dir)
    t = text.features(bank, json.loads(meta["words"]))
    t_ext = text.features(bank, json.loads(meta["extended_words"]))
    assert np.abs(t - expected["text_features"]).max() < TOL
    assert np.abs(t_ext - expected["text_features_extended"]).max() < TOL
    assert bank.text_features is not None and np.abs(bank.text_features - expected["text_features"]).max() < TOL

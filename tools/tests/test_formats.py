"""Format tests that need only numpy, safetensors and pillow: they must not import torch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from loupe_tools.archs import EOT_TOKEN, SOT_TOKEN
from loupe_tools.bank import PromptBank, random_bank, read_bank, write_bank
from loupe_tools.images import load_rgb8, normalize
from loupe_tools.model_dir import compute_model_id, read_model_json, read_token_embedding
from loupe_tools.prompts import layout_prompt, prompt_embedding

TOOLS = Path(__file__).resolve().parents[1]
LIGHT_MODULES = [
    "archs", "model_dir", "bank", "prompts", "images", "text_features", "synth_images", "metrics_reference",
    "make_mvtec_mini", "bench", "quantize", "train.dataset", "train.synth", "train.synth_eval",
]


def test_light_modules_do_not_import_torch() -> None:
    code = "import sys\n" + "".join(f"import loupe_tools.{m}\n" for m in LIGHT_MODULES) + (
        "bad = [m for m in ('torch', 'open_clip', 'onnxruntime') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=TOOLS)


def _bank(n_deep: int, with_features: bool) -> PromptBank:
    bank = random_bank(7, groups=3, n_ctx=5, text_width=8, text_layers=2, n_deep=n_deep,
                       words=["hole", "scratch"], model_id="0123456789abcdef", embed_dim=4)
    if with_features:
        f = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
        bank.text_features = f / np.linalg.norm(f, axis=1, keepdims=True)
    return bank


@pytest.mark.parametrize("n_deep,with_features", [(0, False), (3, True)])
def test_bank_round_trip(tmp_path: Path, n_deep: int, with_features: bool) -> None:
    bank = _bank(n_deep, with_features)
    path = tmp_path / "bank.safetensors"
    write_bank(path, bank)
    back = read_bank(path)
    np.testing.assert_array_equal(back.normal_context, bank.normal_context)
    np.testing.assert_array_equal(back.defect_context, bank.defect_context)
    assert (back.text_deep_prompts is None) == (n_deep == 0)
    if n_deep:
        np.testing.assert_array_equal(back.text_deep_prompts, bank.text_deep_prompts)
    if with_features:
        np.testing.assert_array_equal(back.text_features, bank.text_features)
    assert (back.words, back.model_id, back.embed_dim) == (bank.words, bank.model_id, bank.embed_dim)
    assert (back.normal_suffix, back.defect_suffix) == ("flawless object", "anomaly object")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "loupe-prompt-bank" and meta["format_version"] == "1"
    assert json.loads(meta["words"]) == ["hole", "scratch"]
    assert meta["text_width"] == "8" and meta["embed_dim"] == "4"
    assert ("text_deep_prompts" in keys) == (n_deep > 0) and ("text_features" in keys) == with_features


def test_random_bank_is_deterministic() -> None:
    a, b = _bank(2, False), _bank(2, False)
    np.testing.assert_array_equal(a.normal_context, b.normal_context)
    assert not np.array_equal(a.normal_context, a.defect_context)


def test_bank_rejects_bad_shapes(tmp_path: Path) -> None:
    bank = _bank(0, False)
    bank.defect_context = bank.defect_context[:, :4]
    with pytest.raises(ValueError):
        write_bank(tmp_path / "x.safetensors", bank)


def test_prompt_layout() -> None:
    lay = layout_prompt([11, 12], [21, 22], n_deep=2, n_ctx=5, context_length=16)
    want = [SOT_TOKEN, 0, 0, 0, 0, 0, 0, 0, 11, 12, 21, 22, EOT_TOKEN, 0, 0, 0]
    assert lay.ids.tolist() == want and lay.eot_index == 12 and lay.ctx_start == 3
    normal = layout_prompt([], [21, 22], n_deep=0, n_ctx=5, context_length=16)
    assert normal.ids.tolist()[:9] == [SOT_TOKEN, 0, 0, 0, 0, 0, 21, 22, EOT_TOKEN] and normal.eot_index == 8


def test_prompt_truncation_keeps_eot_last() -> None:
    lay = layout_prompt(list(range(100, 120)), [21, 22], n_deep=1, n_ctx=5, context_length=16)
    assert lay.eot_index == 15 and lay.ids[15] == EOT_TOKEN
    assert lay.ids[7:13].tolist() == [100, 101, 102, 103, 104, 105] and lay.ids[13:15].tolist() == [21, 22]
    with pytest.raises(ValueError):
        layout_prompt([], [1] * 20, n_deep=0, n_ctx=5, context_length=16)


def test_prompt_embedding() -> None:
    table = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    lay = layout_prompt([7], [8], n_deep=2, n_ctx=2, context_length=10, sot=48, eot=49)
    ctx = -np.ones((2, 3), dtype=np.float32)
    emb = prompt_embedding(lay, table, ctx)
    np.testing.assert_array_equal(emb[0], table[48])
    np.testing.assert_array_equal(emb[1:3], 0)
    np.testing.assert_array_equal(emb[3:5], ctx)
    np.testing.assert_array_equal(emb[5:8], table[[7, 8, 49]])
    np.testing.assert_array_equal(emb[8:], table[[0, 0]])


def test_image_modes(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    g = load_rgb8(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and all(np.array_equal(g[:, :, c], gray) for c in range(3))
    np.testing.assert_array_equal(load_rgb8(tmp_path / "a.png"), rgba[:, :, :3])
    x = normalize(g, [0.5, 0.25, 0.0], [0.5, 0.25, 1.0])
    assert x.shape == (3, 3, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], (gray / 255.0 - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_allclose(x[2], gray / 255.0, atol=1e-6)


# --- the committed fixtures -------------------------------------------------------------------------------

def test_fixture_model_dir(parity_dir: Path) -> None:
    model = parity_dir / "model"
    info = read_model_json(model)
    assert sorted(p.name for p in model.iterdir()) == sorted(["loupe-model.json", *info["files"].values()])
    digest = hashlib.sha256()
    for key in ("image_encoder", "text_encoder", "token_embedding"):
        digest.update((model / info["files"][key]).read_bytes())
    assert info["model_id"] == digest.hexdigest()[:16] == compute_model_id(model, info["files"])
    img, txt = info["image"], info["text"]
    assert img["input_size"] == [64, 64] and img["grid"] == [8, 8] and img["patch_size"] == 8
    assert (img["width"], img["layers"], img["heads"], img["visual_prompts"]) == (32, 4, 2, 2)
    assert img["feature_layers"] == [1, 2, 3, 4] and img["patch_features"] == "adapter"
    assert (txt["width"], txt["layers"], txt["heads"], txt["context_length"], txt["deep_prompts"]) == (16, 2, 2, 24, 2)
    assert info["embed_dim"] == 16
    assert read_token_embedding(model).shape == (49408, 16)


def test_fixture_bank(parity_dir: Path) -> None:
    bank = read_bank(parity_dir / "bank.safetensors")
    info = read_model_json(parity_dir / "model")
    assert bank.model_id == info["model_id"] and bank.words == ["hole", "scratch", "crack"]
    assert bank.normal_context.shape == (2, 5, 16) and bank.text_deep_prompts is not None
    assert bank.text_deep_prompts.shape == (2, 2, 16)
    assert bank.text_features is not None and bank.text_features.shape == (4, 16)


def test_fixture_images(parity_dir: Path) -> None:
    modes = {}
    for p in sorted((parity_dir / "images").glob("*.png")):
        with Image.open(p) as im:
            modes[p.stem] = im.mode
            assert im.size == (64, 64)
    assert modes == {"gray": "L", "rgb": "RGB", "rgba": "RGBA", "gray_hole": "L"}


def test_fixture_size_budget(parity_dir: Path) -> None:
    total = sum(p.stat().st_size for p in parity_dir.rglob("*") if p.is_file())
    assert total < 5_000_000, total


def _bilinear_align_corners(m: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Hand-written bilinear upsampling, align_corners=True, float64."""
    h, w = m.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        y = i * (h - 1) / (out_h - 1)
        y0 = min(int(np.floor(y)), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(out_w):
            x = j * (w - 1) / (out_w - 1)
            x0 = min(int(np.floor(x)), w - 1)
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = m[y0, x0] * (1 - fx) + m[y0, x1] * fx
            bot = m[y1, x0] * (1 - fx) + m[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bot * fy
    return out


def _gauss_reflect(img: np.ndarray, sigma: float) -> np.ndarray:
    """Hand-written separable Gaussian, radius ceil(4 sigma), scipy 'reflect' border, float64."""
    r = int(np.ceil(4 * sigma))
    w = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
    w /= w.sum()

    def refl(i: int, n: int) -> int:
        m = i % (2 * n)
        return 2 * n - 1 - m if m >= n else m

    def along0(a: np.ndarray) -> np.ndarray:
        n = a.shape[0]
        return np.stack([sum(w[k] * a[refl(i + k - r, n)] for k in range(2 * r + 1)) for i in range(n)])

    return along0(along0(img).T).T


def test_fixture_expected_is_consistent(parity_dir: Path) -> None:
    """Recompute the post-processing of expected.safetensors from its own patch tokens and text features with
    hand-written numpy (doc section 3), so the conventions are checked without torch."""
    with safe_open(str(parity_dir / "expected.safetensors"), framework="numpy") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    words = json.loads(meta["words"])
    assert json.loads(meta["extended_words"]) == words + ["burr"]
    stems = json.loads(meta["images"])
    assert stems == ["gray", "rgb", "rgba", "gray_hole"]
    sigma = float(meta["smoothing_sigma"])
    text = t["text_features"].astype(np.float64)
    k = len(words)
    assert text.shape == (1 + k, 16) and t["text_features_extended"].shape == (2 + k, 16)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(t["text_features_extended"][: 1 + k], text, atol=1e-6)
    for s in stems:
        g = t[f"{s}/global"].astype(np.float64)
        p = t[f"{s}/patch_tokens"].astype(np.float64)
        assert g.shape == (16,) and p.shape == (4, 64, 16)
        g = g / np.linalg.norm(g)
        a = text[1:].mean(0)
        a /= np.linalg.norm(a)
        logits = np.array([g @ text[0], g @ a]) / 0.07
        score = np.exp(logits[1]) / np.exp(logits).sum()
        np.testing.assert_allclose(t[f"{s}/image_score"], [score], atol=1e-5)
        pr = np.exp(text @ g / 0.07)
        np.testing.assert_allclose(t[f"{s}/image_probs"], pr / pr.sum(), atol=1e-5)
        pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
        e = np.exp(pn @ text.T / 0.07)
        grid = (e / e.sum(-1, keepdims=True)).sum(0)  # [G, 1+K]
        maps = np.stack([_bilinear_align_corners(grid[:, c].reshape(8, 8), 64, 64) for c in range(1 + k)])
        np.testing.assert_allclose(t[f"{s}/class_maps"], maps, atol=1e-5)
        anomaly = maps[1:].sum(0)
        np.testing.assert_allclose(t[f"{s}/anomaly_map"], anomaly, atol=1e-5)
        np.testing.assert_allclose(t[f"{s}/anomaly_map_smoothed"], _gauss_reflect(anomaly, sigma), atol=1e-5)

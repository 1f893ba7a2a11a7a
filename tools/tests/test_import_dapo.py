"""The DAPO authors' convention (text tower, positional resize) and the importer of their checkpoints.

The checkpoints here are built with the shapes their ``train.py`` saves, without their code; the parity with
their code itself is ``tests/tests/authors_parity.rs`` (fixture made by ``loupe_tools.authors_parity``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402

from loupe_tools.archs import get_arch  # noqa: E402
from loupe_tools.bank import read_bank  # noqa: E402
from loupe_tools.clip_model import LoupeClip, resize_positional_embedding  # noqa: E402
from loupe_tools.import_dapo import CheckpointError, import_checkpoint, parse_args, parse_parts  # noqa: E402
from loupe_tools.model_dir import read_model_json  # noqa: E402
from loupe_tools.weights import random_init_  # noqa: E402

ARCH = "tiny-authors"


def _authors_model(depth: int) -> LoupeClip:
    model = LoupeClip(get_arch(ARCH), text_deep_prompts=4, text_convention="dapo-authors", text_deep_layers=depth)
    random_init_(model, 1)
    return model.eval()


def test_authors_text_tower_inserts_unmasked_prompts_and_drops_them_after_their_depth() -> None:
    """Written out as the authors' Transformer.forward (text path) runs: insert after SOT, no mask, mix on blocks
    2..depth, drop after block depth + 1, pool at the given index of whatever sequence is left."""
    gen = torch.Generator().manual_seed(5)
    emb = 0.02 * torch.randn(2, 77, 16, generator=gen)
    eot = torch.tensor([9, 12])
    deep = 0.5 * torch.randn(2, 4, 16, generator=gen)
    model = _authors_model(depth=2)
    blocks = model.transformer.resblocks
    with torch.no_grad():
        out = model.encode_text_embeddings(emb, eot, deep)
        x = emb + model.positional_embedding
        x = torch.cat([x[:, :1], deep[0].expand(2, -1, -1), x[:, 1:]], dim=1)  # 81 tokens
        x = blocks[0](x, None)
        x = torch.cat([x[:, :1], 0.01 * x[:, 1:5] + 0.99 * deep[1], x[:, 5:]], dim=1)
        x = blocks[1](x, None)
        x = blocks[2](x, None)  # block depth + 1 still sees the prompts, unmixed
        x = torch.cat([x[:, :1], x[:, 5:]], dim=1)  # then they are dropped: 77 tokens
        want = model.ln_final(x[torch.arange(2), eot]) @ model.text_projection
        torch.testing.assert_close(out, want)
        # No mask: tokens after the end of text change the result (they cannot under Loupe's causal mask).
        late = emb.clone()
        late[:, 40:] += torch.randn(2, 37, 16, generator=gen)  # (a constant would vanish in LayerNorm)
        assert (model.encode_text_embeddings(late, eot, deep) - out).abs().max() > 1e-3
        # Depth = all blocks: never dropped, the pool index points into the 81-token sequence.
        full = LoupeClip(get_arch(ARCH), text_deep_prompts=4, text_convention="dapo-authors")
        full.load_state_dict(model.state_dict())
        deep3 = torch.cat([deep, deep[:1]])
        x = emb + full.positional_embedding
        x = torch.cat([x[:, :1], deep3[0].expand(2, -1, -1), x[:, 1:]], dim=1)
        for b, block in enumerate(full.transformer.resblocks):
            if b > 0:
                x = torch.cat([x[:, :1], 0.01 * x[:, 1:5] + 0.99 * deep3[b], x[:, 5:]], dim=1)
            x = block(x, None)
        assert x.shape[1] == 81
        want = full.ln_final(x[torch.arange(2), eot]) @ full.text_projection
        torch.testing.assert_close(full.encode_text_embeddings(emb, eot, deep3), want)
    assert model.text_placeholders == 0 and full.text_placeholders == 0


def test_unknown_convention_and_depth_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown text convention"):
        LoupeClip(get_arch(ARCH), text_convention="theirs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of 1..3"):
        LoupeClip(get_arch(ARCH), text_deep_layers=4)


def test_antialiased_resize_is_open_clips_and_differs_from_plain() -> None:
    pos = torch.randn(1 + 49, 8)
    aa = resize_positional_embedding(pos, (7, 7), (8, 8), antialias=True)
    grid = pos[1:].reshape(1, 7, 7, 8).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(8, 8), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(aa[1:], want.permute(0, 2, 3, 1).reshape(64, 8))
    assert (aa - resize_positional_embedding(pos, (7, 7), (8, 8))).abs().max() > 1e-3


def _checkpoint(depth: int = 2, prompts: int = 3, layout: str = "train") -> dict[str, Any]:
    """A checkpoint with the keys and shapes the authors' train.py saves for tiny-authors."""
    a = get_arch(ARCH)
    gen = torch.Generator().manual_seed(7)
    prompt = {"learnable_normal_tokens": 0.3 * torch.randn(prompts, 5, a.text_width, generator=gen),
              "learnable_abnormal_tokens": 0.3 * torch.randn(prompts, 5, a.text_width, generator=gen),
              "meta_net.0.weight": torch.zeros(1, a.text_width), "meta_net.0.bias": torch.zeros(1),
              "meta_net.2.weight": torch.zeros(a.text_width, 1), "meta_net.2.bias": torch.zeros(a.text_width)}
    for i in range(depth):
        prompt[f"learnable_layer_tokens.{i}"] = 0.3 * torch.randn(4, a.text_width, generator=gen)
    visual = {"learnable_visual_tokens": 0.2 * torch.randn(a.layers, 4, a.width, generator=gen)}
    adapter: dict[str, Any] = {}
    for j in range(4):
        adapter[f"fc.{j}.weight"] = 0.2 * torch.randn(a.embed_dim, a.width, generator=gen)
        adapter[f"fc.{j}.bias"] = 0.1 * torch.randn(a.embed_dim, generator=gen)
    if layout == "train":
        return {"epoch": 3, "prompt_learner": prompt, "visual_prompt": visual, "linear_adapter": adapter, "optimizer_state_dict": {}}
    return {"epoch": 3, "prompt_learner_state_dict": prompt, "visual_prompt_state_dict": visual, "trainable_adapter_state_dict": adapter}


def _clip_file(tmp: Path) -> Path:
    model = LoupeClip(get_arch(ARCH))
    random_init_(model, 0)
    path = tmp / "clip.pt"
    torch.save(model.state_dict(), str(path))
    return path


def _import(tmp: Path, ckpt: dict[str, Any]) -> tuple[argparse.Namespace, dict[str, Any]]:
    ckpt_path = tmp / "epoch_3.pth"
    torch.save(ckpt, str(ckpt_path))
    args = parse_args(["--checkpoint", str(ckpt_path), "--open-clip", ARCH, "--checkpoint-clip", str(_clip_file(tmp)),
                       "--defects", "hole,scratch", "--out", str(tmp / "out"), "--image-size", "64",
                       "--feature-layers", "1,2,3,4"])
    return args, import_checkpoint(args)


@pytest.mark.parametrize("layout", ["train", "state_dict"])
def test_import_maps_every_tensor_and_records_the_source(tmp_path: Path, layout: str) -> None:
    ckpt = _checkpoint(layout=layout)
    args, summary = _import(tmp_path, ckpt)
    info = read_model_json(tmp_path / "out" / "model")
    assert info["text"]["prompt_convention"] == "dapo-authors" and info["text"]["deep_prompt_layers"] == 2
    assert info["image"]["input_size"] == [64, 64] and info["image"]["visual_prompts"] == 4
    assert summary["sha256"] in info["source"]
    bank = read_bank(tmp_path / "out" / "bank.safetensors")
    assert bank.prompt_convention == "dapo-authors" and bank.words == ["hole", "scratch"]
    hp = json.loads(bank.extra_metadata["authors_hyper_parameters"])
    assert (hp["prompt_count"], hp["text_depth"], hp["visual_depth"], hp["epoch"]) == (3, 2, 4, 3)
    prompt = ckpt["prompt_learner" if layout == "train" else "prompt_learner_state_dict"]
    np.testing.assert_array_equal(bank.normal_context, prompt["learnable_normal_tokens"].numpy())
    np.testing.assert_array_equal(bank.text_deep_prompts[1], prompt["learnable_layer_tokens.1"].numpy())
    assert summary["onnx_vs_torch"]["text_features"] < 1e-4 and summary["onnx_vs_torch"]["patch_tokens"] < 1e-4
    assert bank.text_features is not None and np.allclose(np.linalg.norm(bank.text_features, axis=1), 1.0, atol=1e-5)


def _refusal(ckpt: dict[str, Any]) -> str:
    model = LoupeClip(get_arch(ARCH), (1, 2, 3, 4), patch_features="adapter")
    with pytest.raises(CheckpointError) as err:
        parse_parts(ckpt, model)
    return str(err.value)


def test_malformed_checkpoints_are_refused_naming_the_key_and_shapes() -> None:
    ckpt = _checkpoint()
    del ckpt["visual_prompt"]
    assert "visual_prompt" in _refusal(ckpt) and "found" in _refusal(ckpt)

    ckpt = _checkpoint()
    ckpt["linear_adapter"]["fc.2.weight"] = torch.zeros(16, 64)
    msg = _refusal(ckpt)
    assert "linear_adapter.fc.2.weight" in msg and "[16, 32]" in msg and "[16, 64]" in msg

    ckpt = _checkpoint()
    ckpt["visual_prompt"]["learnable_visual_tokens"] = torch.zeros(3, 4, 32)
    msg = _refusal(ckpt)
    assert "learnable_visual_tokens" in msg and "[4, n, 32]" in msg and "[3, 4, 32]" in msg

    ckpt = _checkpoint()
    ckpt["prompt_learner"]["learnable_layer_tokens.0"] = torch.zeros(2, 16)
    msg = _refusal(ckpt)
    assert "learnable_layer_tokens.0" in msg and "[4, 16]" in msg and "[2, 16]" in msg

    ckpt = _checkpoint()
    ckpt["prompt_learner"]["extra"] = torch.zeros(1)
    assert "unknown keys ['extra']" in _refusal(ckpt)

    ckpt = _checkpoint()
    del ckpt["linear_adapter"]["fc.3.bias"]
    assert "linear_adapter.fc.3.bias" in _refusal(ckpt)

    assert "deep-prompt blocks" in _refusal(_checkpoint(depth=4))


def test_the_cli_exits_with_the_reason(tmp_path: Path) -> None:
    from loupe_tools.import_dapo import main

    ckpt = _checkpoint()
    ckpt["prompt_learner"]["learnable_normal_tokens"] = torch.zeros(3, 5, 8)
    path = tmp_path / "bad.pth"
    torch.save(ckpt, str(path))
    with pytest.raises(SystemExit) as err:
        main(["--checkpoint", str(path), "--open-clip", ARCH, "--checkpoint-clip", str(_clip_file(tmp_path)),
              "--defects", "hole", "--out", str(tmp_path / "out"), "--feature-layers", "1,2,3,4", "--image-size", "64"])
    assert "learnable_normal_tokens" in str(err.value) and "[3, 5, 8]" in str(err.value)

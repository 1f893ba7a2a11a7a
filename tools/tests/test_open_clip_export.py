"""`export --open-clip NAME --checkpoint PATH`: an open_clip model's outputs survive the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
ort = pytest.importorskip("onnxruntime")

from loupe_tools.export import export_from_args, parse_args  # noqa: E402
from loupe_tools.model_dir import read_model_json, read_token_embedding  # noqa: E402


def test_export_from_open_clip_checkpoint(tmp_path: Path) -> None:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    # widths of 64 so that the shape-inferred head count (width / 64, open_clip's rule) is right
    oc = CLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32),
              text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=1, layers=2),
              quick_gelu=False).eval()
    with torch.no_grad():
        for p in oc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = tmp_path / "custom.pt"
    torch.save({"state_dict": oc.state_dict()}, ckpt)
    out = tmp_path / "model"
    export_from_args(parse_args(["--out", str(out), "--open-clip", "custom-clip", "--checkpoint", str(ckpt),
                                 "--activation", "gelu", "--input-size", "48", "--feature-layers", "1,2"]))
    info = read_model_json(out)
    assert info["image"]["grid"] == [6, 6] and info["image"]["patch_features"] == "ln_post_proj"
    assert info["image"]["visual_prompts"] == 0 and info["text"]["deep_prompts"] == 0
    # text: the ONNX text encoder on the token embeddings of tokenised text == open_clip's encode_text
    tokens = open_clip.tokenize(["a photo of a scratch", "flawless object"], context_length=16)
    table = read_token_embedding(out)
    emb = table[tokens.numpy()]
    sess = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    (t,) = sess.run(None, {"prompt_embeddings": emb, "eot_index": tokens.argmax(-1).numpy()})
    with torch.no_grad():
        want = oc.encode_text(tokens).numpy()
    assert np.abs(t - want).max() < 1e-5
    # image at the trained size would match open_clip exactly; here check the resized export runs and is finite
    img = ort.InferenceSession(str(out / "image_encoder.onnx"), providers=["CPUExecutionProvider"])
    g, p = img.run(None, {"image": np.zeros((1, 3, 48, 48), np.float32)})
    assert g.shape == (1, 32) and p.shape == (1, 2, 36, 32) and np.isfinite(p).all()


def test_export_open_clip_at_trained_size_matches(tmp_path: Path) -> None:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(1)
    oc = CLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32),
              text_cfg=CLIPTextCfg(context_length=16, vocab_size=49408, width=64, heads=1, layers=2),
              quick_gelu=True).eval()
    ckpt = tmp_path / "custom.pt"
    torch.save(oc.state_dict(), ckpt)
    out = tmp_path / "model"
    export_from_args(parse_args(["--out", str(out), "--open-clip", "custom-clip", "--checkpoint", str(ckpt),
                                 "--activation", "quick_gelu", "--feature-layers", "2"]))
    image = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    sess = ort.InferenceSession(str(out / "image_encoder.onnx"), providers=["CPUExecutionProvider"])
    g, _ = sess.run(None, {"image": image})
    with torch.no_grad():
        want = oc.encode_image(torch.from_numpy(image)).numpy()
    assert np.abs(g - want).max() < 1e-5

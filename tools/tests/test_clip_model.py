"""The CLIP module: open_clip compatibility, DAPO prompt rules as the doc states them, positional resize."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402

from loupe_tools.archs import ArchConfig, get_arch  # noqa: E402
from loupe_tools.clip_model import LoupeClip, resize_positional_embedding  # noqa: E402
from loupe_tools.weights import load_open_clip_state_dict, random_init_  # noqa: E402

SMALL = ArchConfig(name="small", image_size=32, patch_size=8, width=32, layers=2, heads=2, text_width=16,
                   text_layers=2, text_heads=2, embed_dim=16, context_length=24, default_input_size=32,
                   default_feature_layers=(1, 2))


def _open_clip_model(quick_gelu: bool) -> "torch.nn.Module":
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    vision = CLIPVisionCfg(layers=2, width=32, head_width=16, patch_size=8, image_size=32)
    text = CLIPTextCfg(context_length=24, vocab_size=49408, width=16, heads=2, layers=2)
    model = CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu).eval()
    with torch.no_grad():  # open_clip inits biases and LayerNorms trivially; perturb everything
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_matches_open_clip(quick_gelu: bool) -> None:
    oc = _open_clip_model(quick_gelu)
    ours = LoupeClip(replace(SMALL, quick_gelu=quick_gelu), feature_layers=(2,), patch_features="ln_post_proj")
    load_open_clip_state_dict(ours, oc.state_dict())
    ours.eval()
    image = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = open_clip.tokenize(["a photo of a hole", "flawless object"], context_length=24)
    with torch.no_grad():
        g, patches = ours.encode_image(image)
        torch.testing.assert_close(g, oc.encode_image(image), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_text_tokens(tokens), oc.encode_text(tokens), atol=1e-5, rtol=1e-5)
        oc.visual.output_tokens = True
        _, oc_tokens = oc.visual(image)  # ln_post'ed patch tokens of the last block
        torch.testing.assert_close(patches[:, 0], oc_tokens @ oc.visual.proj, atol=1e-5, rtol=1e-5)


def test_load_rejects_wrong_architecture() -> None:
    oc = _open_clip_model(True)
    ours = LoupeClip(replace(SMALL, width=64, heads=2))
    with pytest.raises(Exception):
        load_open_clip_state_dict(ours, oc.state_dict())


def _tiny(seed: int = 0) -> LoupeClip:
    model = LoupeClip(get_arch("tiny"), visual_prompts=2, text_deep_prompts=2, patch_features="adapter")
    random_init_(model, seed)
    model.set_input_size((64, 64))
    return model.eval()


def test_visual_deep_prompts_follow_the_doc() -> None:
    """Written from docs/model-format.md: after ln_pre the sequence is [CLS, P[1], patches]; before block b >= 2
    the prompt positions become 0.01 * h + 0.99 * P[b]; features drop CLS and prompts."""
    model = _tiny()
    v = model.visual
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = v.conv1(image).flatten(2).transpose(1, 2)  # [N, 64, 32], row-major grid
        cls = v.class_embedding.expand(2, 1, 32)
        x = v.ln_pre(torch.cat([cls, x], 1) + v.positional_embedding)
        n = 2
        x = torch.cat([x[:, :1], v.deep_prompts[0].expand(2, n, 32), x[:, 1:]], 1)
        feats = []
        for b, block in enumerate(v.transformer.resblocks, start=1):
            if b >= 2:
                x = x.clone()
                x[:, 1 : 1 + n] = 0.01 * x[:, 1 : 1 + n] + 0.99 * v.deep_prompts[b - 1]
            x = block(x)
            feats.append(v.adapters[b - 1](x[:, 1 + n :]))
        g_want = v.ln_post(x[:, 0]) @ v.proj
        g, patches = model.encode_image(image)
    assert patches.shape == (2, 4, 64, 16)
    torch.testing.assert_close(g, g_want)
    torch.testing.assert_close(patches, torch.stack(feats, 1))


def test_text_deep_prompts_follow_the_doc() -> None:
    """Before block 1 positions 1..=n are replaced by deep[0]; before block b >= 2 by 0.01 h + 0.99 deep[b-1];
    causal mask; pooled at eot_index after ln_final, times text_projection."""
    model = _tiny()
    gen = torch.Generator().manual_seed(3)
    emb = 0.02 * torch.randn(3, 24, 16, generator=gen)
    eot = torch.tensor([9, 12, 23])
    deep = 0.02 * torch.randn(2, 2, 16, generator=gen)
    with torch.no_grad():
        out = model.encode_text_embeddings(emb, eot, deep)
        x = emb + model.positional_embedding
        x = x.clone()
        x[:, 1:3] = deep[0]
        mask = torch.full((24, 24), float("-inf")).triu(1)
        x = model.transformer.resblocks[0](x, mask)
        x = x.clone()
        x[:, 1:3] = 0.01 * x[:, 1:3] + 0.99 * deep[1]
        x = model.transformer.resblocks[1](x, mask)
        want = model.ln_final(x[torch.arange(3), eot]) @ model.text_projection
        torch.testing.assert_close(out, want)
        # placeholder inputs are overwritten; tokens after EOT cannot reach it (causal)
        emb2 = emb.clone()
        emb2[:, 1:3] = 5.0
        emb2[0, 10:] = 7.0
        torch.testing.assert_close(model.encode_text_embeddings(emb2, eot, deep)[0], out[0])


def test_attention_matches_torch_mha() -> None:
    model = _tiny()
    block = model.visual.transformer.resblocks[0]
    mha = torch.nn.MultiheadAttention(32, 2, batch_first=True)
    mha.load_state_dict(block.attn.state_dict())
    x = torch.randn(2, 5, 32)
    mask = torch.full((5, 5), float("-inf")).triu(1)
    with torch.no_grad():
        torch.testing.assert_close(block.attn(x, mask), mha(x, x, x, need_weights=False, attn_mask=mask)[0])


def test_positional_resize() -> None:
    pos = torch.randn(1 + 49, 8)
    same = resize_positional_embedding(pos, (7, 7), (7, 7))
    torch.testing.assert_close(same, pos)
    out = resize_positional_embedding(pos, (7, 7), (8, 8))
    assert out.shape == (65, 8)
    torch.testing.assert_close(out[0], pos[0])
    grid = pos[1:].reshape(1, 7, 7, 8).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(8, 8), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(64, 8)
    torch.testing.assert_close(out[1:], want)
    model = LoupeClip(get_arch("tiny"))
    assert model.visual.positional_embedding.shape == (50, 32)  # trained for 56 x 56
    random_init_(model, 0)
    model.set_input_size((64, 64))
    assert model.visual.positional_embedding.shape == (65, 32) and model.input_size == (64, 64)


def test_random_init_is_deterministic_and_not_trivial() -> None:
    a, b, c = _tiny(0), _tiny(0), _tiny(1)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name
    ln = a.visual.transformer.resblocks[0].ln_1.weight.detach()
    assert 0.7 < float(ln.mean()) < 1.3 and float(ln.std()) > 0.01

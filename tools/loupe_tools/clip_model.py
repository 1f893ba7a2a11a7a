"""A CLIP two-tower model in the OpenAI layout, with DAPO's extras.

Parameter names follow open_clip's ``CLIP`` class, so ``load_open_clip_state_dict`` can take an open_clip
state dict as is: ``visual.conv1.weight``, ``visual.class_embedding``, ``visual.positional_embedding``,
``visual.ln_pre.*``, ``visual.transformer.resblocks.{i}.{ln_1,attn,ln_2,mlp}.*``, ``visual.ln_post.*``,
``visual.proj``; text tower at top level: ``token_embedding.weight``, ``positional_embedding``,
``transformer.resblocks.{i}.*``, ``ln_final.*``, ``text_projection``.

DAPO extras (see docs/model-format.md, section 1):
- ``visual.deep_prompts`` ``[layers, n, width]``: visual deep prompts. After ``ln_pre`` the sequence is
  ``[CLS, P[1], patches]``; before block ``b >= 2`` the prompt positions become
  ``0.01 * h + 0.99 * P[b]``.
- text deep prompts are an *input* of the text encoder (they live in the prompt bank): before block 1
  positions ``1..=n`` are replaced by ``deep[0]``, before block ``b >= 2`` by ``0.01 * h + 0.99 * deep[b-1]``
  (``b <= deep_layers``), under the causal mask. The ``dapo-authors`` text convention (``TextConvention``) computes
  what the DAPO authors' code computes instead; docs/model-format.md, section 1.
- ``visual.adapters.{j}``: one ``Linear(width, embed_dim)`` per feature layer, on the raw residual stream.
- positional-embedding resize (bicubic, ``align_corners=False``, optionally antialiased as open_clip does) to a
  new grid.
- intermediate layer outputs (``feature_layers``, 1-based).

Attention is written out with plain tensor ops (no fused kernels), so tracing to ONNX gives the same graph
on every machine; its parameters are laid out as ``nn.MultiheadAttention``'s (``in_proj_weight``,
``in_proj_bias``, ``out_proj``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .archs import ArchConfig

PatchFeatures = Literal["adapter", "ln_post_proj"]
# How the text tower runs hybrid prompts with deep prompts:
# - "loupe": deep prompts replace n placeholder tokens of the prompt, causal mask, pooled at the end of text.
# - "dapo-authors": as the DAPO authors' code (open_clip fork, `Transformer.forward` text path): no attention mask;
#   before block 1 the n deep prompts are inserted after the start token (context length + n tokens, no positional
#   embedding on them); blocks 2..deep_layers mix them progressively; after block deep_layers + 1 they are dropped
#   again (never, when deep_layers equals the tower's layers); pooled at the end-of-text index of the prompt
#   *without* them, in whatever the sequence is at the end.
TextConvention = Literal["loupe", "dapo-authors"]
TEXT_CONVENTIONS: tuple[TextConvention, ...] = ("loupe", "dapo-authors")
PROMPT_KEEP = 0.01  # weight of the previous block's output at prompt positions
PROMPT_NEW = 0.99  # weight of the layer's learned prompt


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``-compatible parameters (batch first)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads != 0:
            raise ValueError(f"width {width} not divisible by heads {heads}")
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``[N, S, width]``; ``attn_mask``: additive ``[S, S]`` or None."""
        n, s = x.shape[0], x.shape[1]
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.chunk(3, dim=-1)
        q = q.reshape(n, s, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(n, s, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(n, s, self.heads, self.head_dim).transpose(1, 2)
        q = q * (float(self.head_dim) ** -0.5)
        attn = torch.matmul(q, k.transpose(-2, -1))
        if attn_mask is not None:
            attn = attn + attn_mask
        attn = attn.softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(n, s, self.width)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1 x)``, then ``x + mlp(ln_2 x)``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        act: nn.Module = QuickGELU() if quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", act), ("c_proj", nn.Linear(hidden, width))])
        )

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks (``resblocks``)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)]
        )


def _progressive_prompts(x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Set positions ``1..=n`` of ``x`` to ``0.01 * x[1..=n] + 0.99 * prompt`` (``prompt``: ``[n, width]``)."""
    mixed = PROMPT_KEEP * x[:, 1 : 1 + n] + PROMPT_NEW * prompt.unsqueeze(0)
    return torch.cat([x[:, :1], mixed, x[:, 1 + n :]], dim=1)


def _broadcast_prompt(prompt: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``prompt [n, width]`` broadcast to ``like``'s batch (``like``: ``[N, n, width]``).

    Adding a zero tensor (instead of ``expand``) keeps the traced graph free of shape arithmetic; adding 0.0
    leaves the values unchanged.
    """
    return prompt.unsqueeze(0) + torch.zeros_like(like)


def _replace_prompts(x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """Set positions ``1..=n`` of ``x`` (placeholders) to ``prompt`` (``[n, width]``)."""
    fill = _broadcast_prompt(prompt, x[:, 1 : 1 + n])
    return torch.cat([x[:, :1], fill, x[:, 1 + n :]], dim=1)


def _insert_prompts(x: torch.Tensor, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """``[CLS, rest]`` -> ``[CLS, prompt, rest]`` (``prompt``: ``[n, width]``)."""
    fill = _broadcast_prompt(prompt, x[:, 1 : 1 + n])
    return torch.cat([x[:, :1], fill, x[:, 1:]], dim=1)


def _drop_prompts(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[SOT, prompt (n), rest]`` -> ``[SOT, rest]``."""
    return torch.cat([x[:, :1], x[:, 1 + n :]], dim=1)


def resize_positional_embedding(
    pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], antialias: bool = False
) -> torch.Tensor:
    """Resize a ``[1 + gh*gw, width]`` positional embedding (class token first) to a new grid.

    Bicubic interpolation, ``align_corners=False``; the class token's row is kept. ``antialias=True`` is what
    open_clip's ``resize_pos_embed`` does (and so the DAPO authors' models): PyTorch's antialiased bicubic uses a
    different kernel (``a = -0.5``) even when enlarging, so the two differ whenever the grid changes.
    """
    if old_grid == new_grid:
        return pos.clone()
    width = pos.shape[1]
    cls_pos, grid_pos = pos[:1], pos[1:]
    if grid_pos.shape[0] != old_grid[0] * old_grid[1]:
        raise ValueError(f"positional embedding has {grid_pos.shape[0]} grid rows, expected {old_grid}")
    img = grid_pos.reshape(1, old_grid[0], old_grid[1], width).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=new_grid, mode="bicubic", align_corners=False, antialias=antialias)
    grid_pos = img.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], width)
    return torch.cat([cls_pos, grid_pos], dim=0)


class VisionTransformer(nn.Module):
    """Image tower: patch embedding, class token, transformer, ``ln_post`` + ``proj``, plus DAPO extras."""

    def __init__(
        self,
        arch: ArchConfig,
        feature_layers: tuple[int, ...],
        visual_prompts: int,
        patch_features: PatchFeatures,
    ) -> None:
        super().__init__()
        if any(not 1 <= b <= arch.layers for b in feature_layers):
            raise ValueError(f"feature layers {feature_layers} out of 1..{arch.layers}")
        if patch_features not in ("adapter", "ln_post_proj"):
            raise ValueError(f"unknown patch_features {patch_features!r}")
        self.patch_size = arch.patch_size
        self.width = arch.width
        self.layers = arch.layers
        self.embed_dim = arch.embed_dim
        self.grid: tuple[int, int] = (arch.trained_grid, arch.trained_grid)
        self.feature_layers = tuple(feature_layers)
        self.n_prompts = visual_prompts
        self.patch_features: PatchFeatures = patch_features

        w = arch.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=arch.patch_size, stride=arch.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(w))
        self.positional_embedding = nn.Parameter(torch.empty(self.grid[0] * self.grid[1] + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, arch.layers, arch.heads, arch.mlp_ratio, arch.quick_gelu)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.empty(w, arch.embed_dim))
        self.deep_prompts: Optional[nn.Parameter] = (
            nn.Parameter(torch.empty(arch.layers, visual_prompts, w)) if visual_prompts > 0 else None
        )
        self.adapters = nn.ModuleList(
            [nn.Linear(w, arch.embed_dim) for _ in feature_layers] if patch_features == "adapter" else []
        )

    def set_grid(self, grid: tuple[int, int], antialias: bool = False) -> None:
        """Resize the positional embedding to ``grid`` (``[gh, gw]``) in place."""
        new = resize_positional_embedding(self.positional_embedding.data, self.grid, grid, antialias)
        self.positional_embedding = nn.Parameter(new)
        self.grid = grid

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> ``[N, 1 + G, width]``: class token + patches + positions, then ``ln_pre``."""
        x = self.conv1(image)
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.reshape(1, 1, -1) + torch.zeros_like(x[:, :1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.unsqueeze(0)
        return self.ln_pre(x)

    def forward_blocks(self, image: torch.Tensor) -> list[torch.Tensor]:
        """All block outputs ``h_1 .. h_layers``, each ``[N, 1 + n_prompts + G, width]`` (raw residual stream)."""
        x = self.embed(image)
        n = self.n_prompts
        if self.deep_prompts is not None:
            x = _insert_prompts(x, self.deep_prompts[0], n)  # [CLS, P[1], patches]
        outs: list[torch.Tensor] = []
        for b, block in enumerate(self.transformer.resblocks):
            if self.deep_prompts is not None and b >= 1:
                x = _progressive_prompts(x, self.deep_prompts[b], n)
            x = block(x)
            outs.append(x)
        return outs

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """``ln_post`` then ``proj``."""
        return self.ln_post(tokens) @ self.proj

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``global [N, embed_dim]`` and ``patch_tokens [N, L, G, embed_dim]`` (not normalised)."""
        outs = self.forward_blocks(image)
        start = 1 + self.n_prompts
        end = start + self.grid[0] * self.grid[1]  # a static end keeps G static in the ONNX graph
        feats: list[torch.Tensor] = []
        for j, layer in enumerate(self.feature_layers):
            patches = outs[layer - 1][:, start:end]
            if self.patch_features == "adapter":
                feats.append(self.adapters[j](patches))
            else:
                feats.append(self.project(patches))
        global_feature = self.project(outs[-1][:, 0])
        return global_feature, torch.stack(feats, dim=1)


def causal_mask(context_length: int) -> torch.Tensor:
    """CLIP's additive causal mask: ``-inf`` above the diagonal, 0 elsewhere."""
    mask = torch.full((context_length, context_length), float("-inf"))
    return mask.triu_(1)


class LoupeClip(nn.Module):
    """CLIP with DAPO extras; the text tower lives at top level, as in open_clip's ``CLIP``."""

    def __init__(
        self,
        arch: ArchConfig,
        feature_layers: Optional[tuple[int, ...]] = None,
        visual_prompts: int = 0,
        text_deep_prompts: int = 0,
        patch_features: PatchFeatures = "ln_post_proj",
        text_convention: TextConvention = "loupe",
        text_deep_layers: Optional[int] = None,
    ) -> None:
        super().__init__()
        if text_convention not in TEXT_CONVENTIONS:
            raise ValueError(f"unknown text convention {text_convention!r}; known: {list(TEXT_CONVENTIONS)}")
        deep_layers = arch.text_layers if text_deep_layers is None else text_deep_layers
        if not 1 <= deep_layers <= arch.text_layers:
            raise ValueError(f"text deep-prompt layers {deep_layers} out of 1..{arch.text_layers}")
        self.arch = arch
        layers = tuple(feature_layers) if feature_layers else arch.default_feature_layers
        self.visual = VisionTransformer(arch, layers, visual_prompts, patch_features)
        self.text_deep_prompts = text_deep_prompts
        self.text_convention: TextConvention = text_convention
        self.text_deep_layers = deep_layers
        self.context_length = arch.context_length
        self.token_embedding = nn.Embedding(arch.vocab_size, arch.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(arch.context_length, arch.text_width))
        self.transformer = Transformer(arch.text_width, arch.text_layers, arch.text_heads, arch.mlp_ratio, arch.quick_gelu)
        self.ln_final = nn.LayerNorm(arch.text_width)
        self.text_projection = nn.Parameter(torch.empty(arch.text_width, arch.embed_dim))
        self.register_buffer("attn_mask", causal_mask(arch.context_length), persistent=False)

    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image [N, 3, H, W]`` (normalised) -> ``(global [N, D], patch_tokens [N, L, G, D])``."""
        return self.visual(image)

    def encode_text_embeddings(
        self,
        prompt_embeddings: torch.Tensor,
        eot_index: torch.Tensor,
        deep_prompts: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Text encoder on token embeddings (positional embeddings not yet added) -> ``[P, D]``.

        ``deep_prompts``: ``[text_deep_layers, n, width]``; how they enter depends on ``text_convention``.
        """
        n = self.text_deep_prompts
        if n > 0 and deep_prompts is None:
            raise ValueError("this model has text deep prompts: pass deep_prompts")
        authors = self.text_convention == "dapo-authors"
        depth = self.text_deep_layers
        mask = None if authors else self.attn_mask
        x = prompt_embeddings + self.positional_embedding.unsqueeze(0)
        for b, block in enumerate(self.transformer.resblocks):
            if n > 0 and deep_prompts is not None:
                if b == 0:
                    x = _insert_prompts(x, deep_prompts[0], n) if authors else _replace_prompts(x, deep_prompts[0], n)
                elif b < depth:
                    x = _progressive_prompts(x, deep_prompts[b], n)
            x = block(x, mask)
            if authors and n > 0 and b == depth:
                x = _drop_prompts(x, n)
        pooled = x[torch.arange(x.shape[0]), eot_index]
        return self.ln_final(pooled) @ self.text_projection

    @property
    def text_placeholders(self) -> int:
        """Placeholder tokens a prompt reserves for the deep prompts (none when they are inserted)."""
        return self.text_deep_prompts if self.text_convention == "loupe" else 0

    def encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text encoding of token ids ``[P, C]`` (EOT = argmax id), without deep prompts."""
        if self.text_deep_prompts > 0:
            raise ValueError("encode_text_tokens is for models without text deep prompts")
        return self.encode_text_embeddings(self.token_embedding(tokens), tokens.argmax(dim=-1))

    def set_input_size(self, input_size: tuple[int, int], antialias: bool = False) -> None:
        """Resize the visual positional embedding for an ``[H, W]`` input (see ``resize_positional_embedding``)."""
        p = self.visual.patch_size
        if input_size[0] % p or input_size[1] % p:
            raise ValueError(f"input size {input_size} not a multiple of the patch size {p}")
        self.visual.set_grid((input_size[0] // p, input_size[1] // p), antialias)

    @property
    def input_size(self) -> tuple[int, int]:
        """Current ``[H, W]`` input size (grid times patch size)."""
        p = self.visual.patch_size
        return (self.visual.grid[0] * p, self.visual.grid[1] * p)


class ImageEncoder(nn.Module):
    """Export wrapper: ``image -> (global, patch_tokens)``."""

    def __init__(self, model: LoupeClip) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_image(image)


class TextEncoder(nn.Module):
    """Export wrapper: ``(prompt_embeddings, eot_index[, deep_prompts]) -> text_features``."""

    def __init__(self, model: LoupeClip) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, prompt_embeddings: torch.Tensor, eot_index: torch.Tensor, deep_prompts: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return self.model.encode_text_embeddings(prompt_embeddings, eot_index, deep_prompts)

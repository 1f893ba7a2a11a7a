"""Hybrid prompts as trainable PyTorch parameters (docs/model-format.md, section 2).

Per group g: normal ``[SOT] [deep]*n V_g "flawless object" [EOT]`` and, per defect word D,
``[SOT] [deep]*n W_g D "anomaly object" [EOT]``. A state's feature is the mean over groups of the text encoder's
outputs, L2-normalised. The token layout is the one of :mod:`loupe_tools.prompts`, so the Rust prompt bank builds
the same prompts from the exported bank.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bank import DEFECT_SUFFIX, NORMAL_SUFFIX, PromptBank
from ..clip_model import LoupeClip
from ..prompts import Encode, layout_prompt

CONTEXT_STD = 0.02


class HybridPrompts(nn.Module):
    """V (normal context), W (defect context, shared by all words) and the deep text prompts."""

    def __init__(
        self,
        model: LoupeClip,
        encode: Encode,
        words: Sequence[str],
        groups: int = 10,
        n_ctx: int = 5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        arch = model.arch
        gen = torch.Generator().manual_seed(seed)
        width = arch.text_width
        self.words = list(words)
        self.groups = groups
        self.n_ctx = n_ctx
        self.n_deep = model.text_deep_prompts
        self.normal_context = nn.Parameter(torch.randn(groups, n_ctx, width, generator=gen) * CONTEXT_STD)
        self.defect_context = nn.Parameter(torch.randn(groups, n_ctx, width, generator=gen) * CONTEXT_STD)
        self.deep: Optional[nn.Parameter] = (
            nn.Parameter(torch.randn(model.text_deep_layers, self.n_deep, width, generator=gen) * CONTEXT_STD)
            if self.n_deep > 0
            else None
        )
        self.convention = model.text_convention
        holes = model.text_placeholders
        layouts = [layout_prompt([], encode(NORMAL_SUFFIX), holes, n_ctx, arch.context_length)]
        layouts += [layout_prompt(encode(w), encode(DEFECT_SUFFIX), holes, n_ctx, arch.context_length) for w in words]
        self.ctx_start = layouts[0].ctx_start
        self.ids: torch.Tensor  # buffers: annotated so type checkers know they are tensors
        self.eot: torch.Tensor
        self.register_buffer("ids", torch.from_numpy(np.stack([lay.ids for lay in layouts])), persistent=False)
        self.register_buffer("eot", torch.tensor([lay.eot_index for lay in layouts], dtype=torch.int64), persistent=False)

    def features(self, model: LoupeClip, rows: Optional[Sequence[int]] = None) -> torch.Tensor:
        """``[1 + K, D]`` L2-normalised state features (row 0 normal), or only the given ``rows``."""
        states = list(range(1 + len(self.words))) if rows is None else list(rows)
        g = self.groups
        ids = self.ids[states]  # [S, C]
        emb = model.token_embedding(ids)  # [S, C, W]
        emb = emb.unsqueeze(1).expand(-1, g, -1, -1)  # [S, G, C, W]
        ctx = torch.stack([self.normal_context if s == 0 else self.defect_context for s in states])  # [S, G, n, W]
        a, b = self.ctx_start, self.ctx_start + self.n_ctx
        zeros = torch.zeros_like(emb[:, :, 1:a])  # deep placeholders (the encoder overwrites them)
        emb = torch.cat([emb[:, :, :1], zeros, ctx, emb[:, :, b:]], dim=2)
        flat = emb.reshape(len(states) * g, emb.shape[2], emb.shape[3])
        eot = self.eot[states].repeat_interleave(g)
        out = model.encode_text_embeddings(flat, eot, self.deep)
        return F.normalize(out.reshape(len(states), g, -1).mean(dim=1), dim=-1)

    def to_bank(self, model_id: str, embed_dim: int, name: str, text_features: Optional[np.ndarray] = None) -> PromptBank:
        """The prompt bank file content for these prompts."""
        return PromptBank(
            normal_context=self.normal_context.detach().cpu().numpy().astype(np.float32),
            defect_context=self.defect_context.detach().cpu().numpy().astype(np.float32),
            words=list(self.words),
            model_id=model_id,
            embed_dim=embed_dim,
            text_deep_prompts=None if self.deep is None else self.deep.detach().cpu().numpy().astype(np.float32),
            text_features=text_features,
            name=name,
            prompt_convention=self.convention,
        )

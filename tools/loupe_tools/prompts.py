"""Hybrid prompt layout (docs/model-format.md, section 2). No torch needed: token ids come from a tokenizer
function passed in (see ``tokenizer.clip_encode``).

Layout of group g (positions 0-based, length ``context_length``)::

    [SOT] [deep placeholder] x n_deep [ctx_1 .. ctx_nctx] bpe(word) bpe(suffix) [EOT] [0 ...]

The normal prompt has no word. Placeholders and context positions hold id 0 in ``ids``; their embeddings are
zeros (deep placeholders) or the bank's context vectors. ``n_deep`` counts placeholders: the prompt bank's
``n_deep`` in Loupe's convention, 0 in the DAPO authors' (their text tower inserts the deep prompts after SOT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .archs import EOT_TOKEN, SOT_TOKEN

Encode = Callable[[str], list[int]]


@dataclass(frozen=True)
class PromptLayout:
    """Token ids of one prompt and where its learned parts go."""

    ids: np.ndarray  # int64 [context_length]
    n_deep: int
    ctx_start: int
    n_ctx: int
    eot_index: int


def layout_prompt(
    word_tokens: Sequence[int],
    suffix_tokens: Sequence[int],
    n_deep: int,
    n_ctx: int,
    context_length: int,
    sot: int = SOT_TOKEN,
    eot: int = EOT_TOKEN,
) -> PromptLayout:
    """Lay out one hybrid prompt; the word's tokens are cut so that EOT is at most the last position."""
    fixed = 1 + n_deep + n_ctx + len(suffix_tokens) + 1
    room = context_length - fixed
    if room < 0:
        raise ValueError(f"prompt does not fit: {fixed} fixed positions > context length {context_length}")
    body = list(word_tokens[:room]) + list(suffix_tokens)
    ids = np.zeros(context_length, dtype=np.int64)
    ids[0] = sot
    ctx_start = 1 + n_deep
    start = ctx_start + n_ctx
    ids[start : start + len(body)] = body
    eot_index = start + len(body)
    ids[eot_index] = eot
    return PromptLayout(ids=ids, n_deep=n_deep, ctx_start=ctx_start, n_ctx=n_ctx, eot_index=eot_index)


def prompt_embedding(layout: PromptLayout, token_embedding: np.ndarray, context: np.ndarray) -> np.ndarray:
    """``[context_length, text_width]`` embeddings: table rows, zeros at deep placeholders, ``context``
    (``[n_ctx, text_width]``) at the context positions. Positional embeddings are not added."""
    emb = token_embedding[layout.ids].astype(np.float32, copy=True)
    emb[1 : 1 + layout.n_deep] = 0.0
    emb[layout.ctx_start : layout.ctx_start + layout.n_ctx] = context
    return emb


def state_prompts(
    encode: Encode,
    word: Optional[str],
    suffix: str,
    contexts: np.ndarray,
    token_embedding: np.ndarray,
    n_deep: int,
    context_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Prompts of one state (a defect word, or ``None`` for normal) for every group.

    ``contexts``: ``[groups, n_ctx, text_width]``. Returns embeddings ``[groups, C, W]`` and EOT indices
    ``[groups]`` (int64).
    """
    word_tokens = encode(word) if word is not None else []
    layout = layout_prompt(word_tokens, encode(suffix), n_deep, contexts.shape[1], context_length)
    emb = np.stack([prompt_embedding(layout, token_embedding, ctx) for ctx in contexts])
    eot = np.full(contexts.shape[0], layout.eot_index, dtype=np.int64)
    return emb, eot

"""State text features from hybrid prompts (docs/model-format.md, section 2), for any text-encoder backend.

``feature = normalize(mean_g(encoder(prompt_g)))``; row 0 = normal, rows 1..K = the words in order. No torch
needed here: the encoder is a callable (PyTorch module in ``reference``, onnxruntime in ``onnx_text``).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .bank import PromptBank
from .prompts import Encode, state_prompts

# (prompt_embeddings [P, C, W], eot_index [P], deep_prompts [deep layers, n, W] or None) -> [P, D]
TextEncoderFn = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], np.ndarray]


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """``x / max(||x||, eps)`` along ``axis`` (as ``torch.nn.functional.normalize``), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return (x / np.maximum(norm, np.float32(eps))).astype(np.float32)


def state_text_features(
    encoder: TextEncoderFn,
    encode: Encode,
    bank: PromptBank,
    token_embedding: np.ndarray,
    context_length: int,
    words: Sequence[str],
) -> np.ndarray:
    """``[1 + K, D]`` L2-normalised features of ``normal`` followed by ``words``."""
    rows: list[np.ndarray] = []
    states: list[tuple[Optional[str], str, np.ndarray]] = [(None, bank.normal_suffix, bank.normal_context)]
    states += [(w, bank.defect_suffix, bank.defect_context) for w in words]
    for word, suffix, contexts in states:
        emb, eot = state_prompts(encode, word, suffix, contexts, token_embedding, bank.placeholders, context_length)
        out = np.asarray(encoder(emb, eot, bank.text_deep_prompts), dtype=np.float32)
        rows.append(out.mean(axis=0, dtype=np.float32))
    return l2_normalize(np.stack(rows))

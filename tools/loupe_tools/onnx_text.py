"""Text features computed with onnxruntime from a model directory's ``text_encoder.onnx`` (what the SDK does);
used to fill a bank's ``text_features`` cache and by the self-checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .bank import PromptBank
from .model_dir import read_model_json, read_token_embedding
from .text_features import state_text_features
from .tokenizer import clip_encode


class OnnxTextFeatures:
    """Runs a model directory's text encoder with onnxruntime (CPU)."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort

        self.info: dict[str, Any] = read_model_json(model_dir)
        self.token_embedding = read_token_embedding(model_dir)
        self.session = ort.InferenceSession(
            str(model_dir / self.info["files"]["text_encoder"]), providers=["CPUExecutionProvider"]
        )

    def encode(self, emb: np.ndarray, eot: np.ndarray, deep: Optional[np.ndarray]) -> np.ndarray:
        """Raw (unnormalised) text features ``[P, D]``."""
        feeds: dict[str, np.ndarray] = {"prompt_embeddings": emb.astype(np.float32), "eot_index": eot.astype(np.int64)}
        if self.info["text"]["deep_prompts"] > 0:
            if deep is None:
                raise ValueError("model has text deep prompts but the bank has none")
            feeds["deep_prompts"] = deep.astype(np.float32)
        return np.asarray(self.session.run(["text_features"], feeds)[0])

    def features(self, bank: PromptBank, words: Sequence[str]) -> np.ndarray:
        """``[1 + K, D]`` L2-normalised state features."""
        return state_text_features(
            self.encode, clip_encode, bank, self.token_embedding, self.info["text"]["context_length"], words
        )

"""Export a trained model and its prompts: Loupe model directory, prompt bank (with the text-feature cache) and
the PyTorch reference weights used by the parity tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bank import PromptBank, write_bank
from ..clip_model import LoupeClip
from ..export import write_model_dir
from ..model_dir import share_files
from ..reference import DapoReference
from ..weights import save_reference_weights
from .prompt_learner import HybridPrompts

MODEL_DIR = "model"
BANK_FILE = "bank.safetensors"
REFERENCE_WEIGHTS = "reference_weights.safetensors"


def export_trained(
    model: LoupeClip, prompts: HybridPrompts, out: Path, name: str, source: str
) -> tuple[dict[str, Any], PromptBank]:
    """Write ``out/model/``, ``out/bank.safetensors`` and ``out/reference_weights.safetensors``; returns the model
    JSON and the bank written."""
    model = model.eval()
    info = write_model_dir(model, out / MODEL_DIR, name, source)
    save_reference_weights(model, out / REFERENCE_WEIGHTS)
    table = model.token_embedding.weight.detach().numpy().copy()
    bank = prompts.to_bank(info["model_id"], model.arch.embed_dim, name)
    bank.text_features = DapoReference(model, info, bank, table).text_features(bank.words)
    write_bank(out / BANK_FILE, bank)
    share_files(out)
    return info, bank


def freeze_backbone(model: LoupeClip) -> int:
    """Freeze everything but DAPO's visual parts (deep visual prompts, adapters); returns the trainable count."""
    trainable = 0
    for name, p in model.named_parameters():
        keep = name == "visual.deep_prompts" or name.startswith("visual.adapters.")
        p.requires_grad_(keep)
        trainable += p.numel() if keep else 0
    return trainable

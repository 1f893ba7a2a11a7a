"""Prompt bank files (docs/model-format.md, section 2): read, write, random init. No torch needed.

CLI::

    python -m loupe_tools.bank --model MODEL_DIR --out bank.safetensors --words hole,scratch \
        (--random-init SEED [--groups 10] [--n-ctx 5] | --dapo-weights FILE) [--cache-features] [--name TEXT]

``--cache-features`` stores the optional ``text_features`` cache, computed with onnxruntime from the model
directory's text encoder (needs open_clip for the tokenizer).
"""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from .model_dir import read_model_json

FORMAT = "loupe-prompt-bank"
FORMAT_VERSION = "1"
NORMAL_SUFFIX = "flawless object"
DEFECT_SUFFIX = "anomaly object"
CONTEXT_STD = 0.02
DEEP_PROMPT_STD = 0.02
# Prompt conventions (clip_model.TextConvention); "loupe" is what a bank without the metadata field means.
LOUPE_CONVENTION = "loupe"
AUTHORS_CONVENTION = "dapo-authors"
PROMPT_CONVENTIONS = (LOUPE_CONVENTION, AUTHORS_CONVENTION)


@dataclass
class PromptBank:
    """A prompt bank in memory."""

    normal_context: np.ndarray  # [groups, n_ctx, text_width]
    defect_context: np.ndarray  # [groups, n_ctx, text_width]
    words: list[str]
    model_id: str
    embed_dim: int
    text_deep_prompts: Optional[np.ndarray] = None  # [deep-prompt layers, n_deep, text_width]
    text_features: Optional[np.ndarray] = None  # [1 + K, embed_dim], L2-normalised
    normal_suffix: str = NORMAL_SUFFIX
    defect_suffix: str = DEFECT_SUFFIX
    name: str = ""
    extra_metadata: dict[str, str] = field(default_factory=dict)
    prompt_convention: str = LOUPE_CONVENTION  # must equal the model's text convention

    @property
    def groups(self) -> int:
        """Number of independent (V, W) context groups."""
        return int(self.normal_context.shape[0])

    @property
    def n_ctx(self) -> int:
        """Number of learned context vectors per prompt."""
        return int(self.normal_context.shape[1])

    @property
    def text_width(self) -> int:
        """Width of the text tower."""
        return int(self.normal_context.shape[2])

    @property
    def n_deep(self) -> int:
        """Number of deep text prompt tokens (0 if none)."""
        return 0 if self.text_deep_prompts is None else int(self.text_deep_prompts.shape[1])

    @property
    def placeholders(self) -> int:
        """Tokens a prompt reserves for the deep prompts: ``n_deep`` in Loupe's convention, 0 in the authors'
        (their text tower inserts the deep prompts instead)."""
        return self.n_deep if self.prompt_convention == LOUPE_CONVENTION else 0

    def validate(self) -> None:
        """Check shapes against each other; raises ``ValueError``."""
        if self.prompt_convention not in PROMPT_CONVENTIONS:
            raise ValueError(f"unknown prompt_convention {self.prompt_convention!r}; known: {list(PROMPT_CONVENTIONS)}")
        if self.normal_context.ndim != 3 or self.normal_context.shape != self.defect_context.shape:
            raise ValueError(f"context shapes differ: {self.normal_context.shape} vs {self.defect_context.shape}")
        if self.text_deep_prompts is not None and (
            self.text_deep_prompts.ndim != 3 or self.text_deep_prompts.shape[2] != self.text_width
        ):
            raise ValueError(f"text_deep_prompts shape {self.text_deep_prompts.shape} vs text width {self.text_width}")
        if self.text_features is not None and self.text_features.shape != (1 + len(self.words), self.embed_dim):
            raise ValueError(f"text_features shape {self.text_features.shape} != {(1 + len(self.words), self.embed_dim)}")


def write_bank(path: Path, bank: PromptBank) -> None:
    """Write ``bank`` as a safetensors file with the documented metadata."""
    bank.validate()
    tensors: dict[str, np.ndarray] = {
        "normal_context": np.ascontiguousarray(bank.normal_context, dtype=np.float32),
        "defect_context": np.ascontiguousarray(bank.defect_context, dtype=np.float32),
    }
    if bank.text_deep_prompts is not None:
        tensors["text_deep_prompts"] = np.ascontiguousarray(bank.text_deep_prompts, dtype=np.float32)
    if bank.text_features is not None:
        tensors["text_features"] = np.ascontiguousarray(bank.text_features, dtype=np.float32)
    meta = dict(bank.extra_metadata)
    if bank.prompt_convention != LOUPE_CONVENTION:  # absent means Loupe's: older readers see no new field
        meta["prompt_convention"] = bank.prompt_convention
    meta.update(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_id": bank.model_id,
            "embed_dim": str(bank.embed_dim),
            "text_width": str(bank.text_width),
            "words": json.dumps(bank.words),
            "normal_suffix": bank.normal_suffix,
            "defect_suffix": bank.defect_suffix,
            "name": bank.name,
        }
    )
    save_file(tensors, str(path), metadata=meta)


def read_bank(path: Path) -> PromptBank:
    """Read and validate a prompt bank file."""
    with safe_open(str(path), framework="numpy") as f:
        meta: dict[str, str] = dict(f.metadata() or {})
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} file")
    t = load_file(str(path))
    known = {"format", "format_version", "model_id", "embed_dim", "text_width", "words", "normal_suffix", "defect_suffix", "name",
             "prompt_convention"}
    bank = PromptBank(
        normal_context=t["normal_context"],
        defect_context=t["defect_context"],
        words=list(json.loads(meta["words"])),
        model_id=meta["model_id"],
        embed_dim=int(meta["embed_dim"]),
        text_deep_prompts=t.get("text_deep_prompts"),
        text_features=t.get("text_features"),
        normal_suffix=meta["normal_suffix"],
        defect_suffix=meta["defect_suffix"],
        name=meta.get("name", ""),
        extra_metadata={k: v for k, v in meta.items() if k not in known},
        prompt_convention=meta.get("prompt_convention", LOUPE_CONVENTION),
    )
    if int(meta["text_width"]) != bank.text_width:
        raise ValueError(f"{path}: text_width metadata {meta['text_width']} != tensors' {bank.text_width}")
    bank.validate()
    return bank


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(("bank/" + name).encode("utf-8"))])
    return (std * rng.standard_normal(shape)).astype(np.float32)


def random_bank(
    seed: int,
    *,
    groups: int,
    n_ctx: int,
    text_width: int,
    text_layers: int,
    n_deep: int,
    words: Sequence[str],
    model_id: str,
    embed_dim: int,
    name: str = "",
) -> PromptBank:
    """A bank with generated (untrained) parameters, deterministic in ``seed``."""
    return PromptBank(
        normal_context=_normal(seed, "normal_context", (groups, n_ctx, text_width), CONTEXT_STD),
        defect_context=_normal(seed, "defect_context", (groups, n_ctx, text_width), CONTEXT_STD),
        text_deep_prompts=_normal(seed, "text_deep_prompts", (text_layers, n_deep, text_width), DEEP_PROMPT_STD)
        if n_deep > 0
        else None,
        words=list(words),
        model_id=model_id,
        embed_dim=embed_dim,
        name=name or f"random-init seed {seed}",
    )


def bank_from_dapo_weights(path: Path, words: Sequence[str], model_id: str, embed_dim: int, name: str = "") -> PromptBank:
    """A bank from a DAPO weights file (tensors ``normal_context``, ``defect_context``, optional
    ``text_deep_prompts``)."""
    t = load_file(str(path))
    return PromptBank(
        normal_context=t["normal_context"],
        defect_context=t["defect_context"],
        text_deep_prompts=t.get("text_deep_prompts"),
        words=list(words),
        model_id=model_id,
        embed_dim=embed_dim,
        name=name or f"dapo weights {path.name}",
    )


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loupe_tools.bank", description="Write a Loupe prompt bank.")
    p.add_argument("--model", type=Path, required=True, help="Loupe model directory the bank is for")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--words", required=True, help="comma-separated defect words")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-init", type=int, metavar="SEED")
    src.add_argument("--dapo-weights", type=Path)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--n-ctx", type=int, default=5)
    p.add_argument("--name", default="")
    p.add_argument("--cache-features", action="store_true", help="store text_features (onnxruntime + open_clip)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = _parse_args(argv)
    info = read_model_json(args.model)
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    text = info["text"]
    if args.random_init is not None:
        bank = random_bank(
            args.random_init,
            groups=args.groups,
            n_ctx=args.n_ctx,
            text_width=text["width"],
            text_layers=text.get("deep_prompt_layers", text["layers"]),
            n_deep=text["deep_prompts"],
            words=words,
            model_id=info["model_id"],
            embed_dim=info["embed_dim"],
            name=args.name,
        )
    else:
        bank = bank_from_dapo_weights(args.dapo_weights, words, info["model_id"], info["embed_dim"], args.name)
    bank.prompt_convention = text.get("prompt_convention", LOUPE_CONVENTION)
    if bank.n_deep != text["deep_prompts"]:
        raise SystemExit(f"bank has {bank.n_deep} deep text prompts, model wants {text['deep_prompts']}")
    if args.cache_features:
        from .onnx_text import OnnxTextFeatures

        bank.text_features = OnnxTextFeatures(args.model).features(bank, words)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bank(args.out, bank)
    print(f"wrote {args.out} ({bank.groups} groups, n_ctx {bank.n_ctx}, words {words})")


if __name__ == "__main__":
    main()

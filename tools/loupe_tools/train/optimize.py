"""DAPO prompt optimisation on a frozen backbone, for any exported model and any MVTec-layout data set with masks.

    python -m loupe_tools.train.optimize --model MODEL_DIR --torch-weights reference_weights.safetensors \
        --data DATASET [--include 'exp0*,exp1*'] [--words a,b] --out OUT [--steps 300] [--batch 8] [--seed 0]

The model directory and its reference weights are what ``loupe_tools.export --torch-weights`` writes (any
checkpoint: open_clip, OpenAI, or random weights); it must have DAPO's visual parts (adapters, visual deep
prompts) and text deep prompts. Trained: hybrid prompts V and W (10 groups), deep text and visual prompts, the
per-layer adapters; the loss is the method's at pixel level. Writes ``OUT/model``, ``OUT/bank.safetensors``,
``OUT/reference_weights.safetensors`` and the loss log.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..clip_model import LoupeClip
from ..model_dir import read_model_json, read_token_embedding
from ..tokenizer import clip_encode
from ..weights import load_reference_weights
from .batches import BatchSampler
from .dataset import Preloaded, defect_words, list_samples, preload
from .export_trained import export_trained, freeze_backbone
from .loop import StageConfig, train_stage
from .prompt_learner import HybridPrompts


def prompt_stage(steps: int, lr: float = 5e-4, balanced_weight: float = 0.0) -> StageConfig:
    """The method's optimiser settings (Adam betas 0.5/0.999, no weight decay) with a short warm-up;
    ``balanced_weight`` > 0 adds the class-balanced cross-entropy to the method's loss."""
    return StageConfig("prompts", steps, lr=lr, pixel_level=True, warmup=min(20, max(1, steps // 10)),
                       weight_decay=0.0, betas=(0.5, 0.999), checkpoint_every=max(1, min(100, steps)),
                       balanced_weight=balanced_weight)


def check_dapo_parts(model: LoupeClip, where: Path) -> None:
    """A model without adapters or deep prompts has nothing for prompt optimisation to train there."""
    missing = []
    if model.visual.patch_features != "adapter":
        missing.append("adapters (patch_features = adapter)")
    if model.visual.deep_prompts is None:
        missing.append("visual deep prompts")
    if model.text_deep_prompts == 0:
        missing.append("text deep prompts")
    if missing:
        raise ValueError(f"{where}: the model has no {', '.join(missing)}; export it with DAPO's parts "
                         "(loupe_tools.export --visual-prompts N --text-deep-prompts N)")


def optimize(model: LoupeClip, pools: Sequence[Preloaded], words: Sequence[str], out: Path, steps: int,
             batch: int, seed: int, lr: float = 5e-4, groups: int = 10) -> HybridPrompts:
    """Train the prompts and DAPO's visual parts of ``model`` in place; returns the prompts."""
    prompts = HybridPrompts(model, clip_encode, words, groups=groups, seed=seed)
    freeze_backbone(model)
    sampler = BatchSampler(pools, [1.0] * len(pools), batch, seed)
    train_stage(model, prompts, sampler, prompt_stage(steps, lr), out / "checkpoints")
    return prompts


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (``argv``, or ``sys.argv`` when None)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.train.optimize", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="Loupe model directory")
    p.add_argument("--torch-weights", type=Path, required=True, help="its reference weights (export --torch-weights)")
    p.add_argument("--data", type=Path, required=True, help="MVTec-layout data set with masks")
    p.add_argument("--include", default="", help="comma-separated globs on file stems (e.g. exp0*,exp1*)")
    p.add_argument("--exclude", default="")
    p.add_argument("--words", default="", help="defect words; default: the data set's type folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="")
    return p.parse_args(argv)


def _globs(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t = time.perf_counter()
    info = read_model_json(args.model)
    model = load_reference_weights(args.torch_weights, read_token_embedding(args.model))
    check_dapo_parts(model, args.torch_weights)
    samples = list_samples(args.data, _globs(args.include), _globs(args.exclude))
    words = _globs(args.words) or defect_words(samples)
    data = preload(samples, model.input_size[0], words)
    prompts = optimize(model, [data], words, args.out, args.steps, args.batch, args.seed, args.lr, args.groups)
    name = args.name or f"{info['name']}+dapo-prompts"
    export_trained(model, prompts, args.out, name, f"{info['source']} | DAPO prompts trained on {args.data.name}")
    print(f"wrote {args.out} in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()

"""Train Loupe's compact default model from scratch, in one command.

    python -m loupe_tools.train.recipe --data ../shared/data --out target/train/default [--seed 0] \
        [--install plugins/default-model]

The defaults are the settings of the shipped default model (42 min on a 2-core CPU, docs/training.md).

1. Data: the Magnetic-Tile train split (capture runs exp0..exp4; test runs exp5, exp6 are never read) at the
   model's input size, and a pool of synthetic defects (hole, scratch, cut) with exact masks painted onto the
   train split's good tiles and onto texture photos. "stain" is painted only for evaluation (a never-trained
   word).
2. Stage "pretrain": the whole CLIP-shaped two-tower model (image ViT, text transformer, token table) and the
   hybrid prompts trained jointly from random weights with the DAPO loss on patch-level targets.
3. Stage "prompts": DAPO prompt optimisation: the backbone frozen, the hybrid prompts (V, W), deep text and
   visual prompts and the per-layer adapters trained with the method's loss at pixel level (plus, by default,
   the class-balanced term: ``--prompt-balanced 0`` gives the method's loss alone).
4. Export: Loupe model directory, prompt bank, reference weights, and ``training.json`` (times, losses, seed).

Deterministic for a given seed and thread count (``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..archs import get_arch
from ..clip_model import LoupeClip
from ..tokenizer import clip_encode
from ..weights import random_init_
from .batches import BatchSampler
from .dataset import list_samples, preload
from .export_trained import BANK_FILE, MODEL_DIR, export_trained, freeze_backbone
from .loop import StageConfig, train_stage
from .optimize import prompt_stage
from .prompt_learner import HybridPrompts
from .synth import load_textures, synthetic_set

MT_WORDS = ["blowhole", "break", "crack", "fray", "uneven"]
SYNTHETIC_WORDS = ["hole", "scratch", "cut"]
TRAIN_RUNS = ["exp0*", "exp1*", "exp2*", "exp3*", "exp4*"]


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (``argv``, or ``sys.argv`` when None)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.train.recipe", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding mt/magnetic_tile and textures")
    p.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, export, logs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default="loupe-mt-s8")
    p.add_argument("--threads", type=int, default=1, help="torch threads (one is faster on a busy 2-core machine)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pretrain-steps", type=int, default=1200)
    p.add_argument("--prompt-steps", type=int, default=250)
    p.add_argument("--prompt-balanced", type=float, default=1.0,
                   help="weight of the class-balanced cross-entropy added to the method's loss in the prompt stage "
                        "(0 = the method's loss alone)")
    p.add_argument("--prompt-batch", type=int, default=8, help="batch of the prompt stage (the method's 8)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of the pre-training stage")
    p.add_argument("--synthetic", type=int, default=1500, help="size of the synthetic-defect pool")
    p.add_argument("--name", default="loupe-mt-s8-default")
    p.add_argument("--install", type=Path, help="copy the exported model and bank into this folder")
    return p.parse_args(argv)


def build_model(arch_name: str, seed: int) -> LoupeClip:
    """The CLIP-shaped model with DAPO's extras, random weights from ``seed``."""
    arch = get_arch(arch_name)
    model = LoupeClip(arch, arch.default_feature_layers, arch.default_visual_prompts, arch.default_text_deep_prompts,
                      patch_features="adapter")
    model.set_input_size((arch.default_input_size, arch.default_input_size))
    random_init_(model, seed)
    return model


def run(args: argparse.Namespace) -> dict[str, object]:
    """Data, both stages, export; returns the summary written to ``training.json``."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    model = build_model(args.arch, args.seed)
    size = model.input_size[0]
    words = MT_WORDS + SYNTHETIC_WORDS
    mt = args.data / "mt" / "magnetic_tile"
    real = preload(list_samples(mt, include=TRAIN_RUNS), size, words)
    textures = load_textures(args.data / "textures")
    goods = real.images[real.labels == 0]
    synthetic = synthetic_set(goods, textures, SYNTHETIC_WORDS, words, args.synthetic, args.seed)
    timings["data"] = time.perf_counter() - t
    print(f"data: {len(real)} Magnetic-Tile train images ({int((real.labels > 0).sum())} defective), "
          f"{len(synthetic)} synthetic, {len(textures)} textures, {timings['data']:.0f} s")

    prompts = HybridPrompts(model, clip_encode, words, seed=args.seed)
    sampler = BatchSampler([real, synthetic], [0.5, 0.5], args.batch, args.seed)
    ckpt = args.out / "checkpoints"

    t = time.perf_counter()
    pretrain = StageConfig("pretrain", args.pretrain_steps, lr=args.lr, pixel_level=False, warmup=50,
                           balanced_weight=1.0)
    log1 = train_stage(model, prompts, sampler, pretrain, ckpt)
    timings["pretrain"] = _stage_seconds(log1, time.perf_counter() - t)

    export_trained(model, prompts, args.out / "stage1", args.name + "-stage1", "stage 1 (pretrain) only")
    t = time.perf_counter()
    trainable = freeze_backbone(model) + sum(p.numel() for p in prompts.parameters())
    stage2 = prompt_stage(args.prompt_steps, balanced_weight=args.prompt_balanced)
    sampler2 = BatchSampler([real, synthetic], [0.5, 0.5], args.prompt_batch, args.seed + 1)
    log2 = train_stage(model, prompts, sampler2, stage2, ckpt)
    timings["prompts"] = _stage_seconds(log2, time.perf_counter() - t)

    t = time.perf_counter()
    source = (f"trained from scratch by loupe_tools.train.recipe (seed {args.seed}) on Magnetic-Tile runs exp0-exp4 "
              f"+ synthetic defects")
    info, _ = export_trained(model, prompts, args.out, args.name, source)
    timings["export"] = time.perf_counter() - t
    summary: dict[str, object] = {
        "command": "python -m loupe_tools.train.recipe " + shlex.join(sys.argv[1:]),
        "seed": args.seed, "threads": args.threads, "batch": args.batch, "prompt_batch": args.prompt_batch,
        "prompt_balanced": args.prompt_balanced, "arch": args.arch,
        "model_id": info["model_id"], "words": words, "held_out_word": "stain",
        "parameters": sum(p.numel() for p in model.parameters()), "prompt_stage_trainable": trainable,
        "steps": {"pretrain": args.pretrain_steps, "prompts": args.prompt_steps},
        "final_loss": {"pretrain": _tail_mean(log1), "prompts": _tail_mean(log2)},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.install is not None:
        install(args.out, args.install)
    return summary


def _stage_seconds(log: list[dict[str, float]], this_run: float) -> float:
    """A stage's training time summed over the runs that made it (its log carries the time across resumes)."""
    return max(this_run, log[-1]["seconds"]) if log else this_run


def _tail_mean(log: list[dict[str, float]], n: int = 50) -> float:
    tail = [row["loss"] for row in log[-n:]]
    return round(float(np.mean(tail)), 4) if tail else float("nan")


def install(out: Path, dest: Path) -> None:
    """Copy ``out/model/*`` and ``out/bank.safetensors`` (and ``training.json``) into ``dest``."""
    (dest / MODEL_DIR).mkdir(parents=True, exist_ok=True)
    for f in (out / MODEL_DIR).iterdir():
        shutil.copy2(f, dest / MODEL_DIR / f.name)
    shutil.copy2(out / BANK_FILE, dest / BANK_FILE)
    shutil.copy2(out / "training.json", dest / "training.json")


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    t = time.perf_counter()
    summary = run(args)
    print(json.dumps(summary["seconds"]), f"total {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()

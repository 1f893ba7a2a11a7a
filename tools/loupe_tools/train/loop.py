"""The training loop shared by both stages: AdamW with warm-up and cosine decay, a progress bar with the
running loss, checkpoints every few steps, resume from the last checkpoint, and a CSV log of the losses."""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from tqdm import tqdm

from ..clip_model import LoupeClip
from .batches import BatchSampler
from .losses import dapo_loss
from .prompt_learner import HybridPrompts


@dataclass(frozen=True)
class StageConfig:
    """One training stage."""

    name: str
    steps: int
    lr: float
    pixel_level: bool
    warmup: int = 50
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    checkpoint_every: int = 100
    balanced_weight: float = 0.0  # see losses.dapo_loss


def lr_factor(step: int, cfg: StageConfig) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, object]]:
    """Trainable parameters, weight decay on matrices only (not on embeddings, norms, biases or prompts)."""
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim < 2 or "embedding" in name or "prompt" in name or "context" in name or name == "deep"
            (plain if no_decay else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def _checkpoint_path(folder: Path, cfg: StageConfig) -> Path:
    return folder / f"{cfg.name}-last.pt"


def train_stage(
    model: LoupeClip, prompts: HybridPrompts, sampler: BatchSampler, cfg: StageConfig, folder: Path
) -> list[dict[str, float]]:
    """Run (or resume) one stage; only parameters with ``requires_grad`` train. Returns the per-step log."""
    folder.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.AdamW(param_groups([model, prompts], cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    log: list[dict[str, float]] = []
    start = 0
    ckpt = _checkpoint_path(folder, cfg)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        prompts.load_state_dict(state["prompts"])
        opt.load_state_dict(state["optimizer"])
        start, log = int(state["step"]), list(state["log"])
        print(f"[{cfg.name}] resumed from {ckpt} at step {start}")
    model.train()
    grid = model.visual.grid
    running = None
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=cfg.name, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30.0)
    t0 = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)  # seconds count across resumes
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        batch = sampler.batch(step)
        global_f, patches = model.encode_image(batch.images)
        text = prompts.features(model)
        loss, parts = dapo_loss(global_f, patches, text, grid, batch.type_map, batch.labels, cfg.pixel_level,
                                balanced_weight=cfg.balanced_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        running = parts["loss"] if running is None else 0.95 * running + 0.05 * parts["loss"]
        bar.set_postfix(loss=f"{running:.3f}", image=f"{parts['image']:.3f}", pixel=f"{parts['pixel']:.3f}", refresh=False)
        log.append({"step": float(step), "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, **parts})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            torch.save({"model": model.state_dict(), "prompts": prompts.state_dict(), "optimizer": opt.state_dict(),
                        "step": step + 1, "log": log}, ckpt)
    bar.close()
    model.eval()
    write_log(folder / f"{cfg.name}-loss.csv", log)
    return log


def write_log(path: Path, log: list[dict[str, float]]) -> None:
    """The per-step losses as CSV."""
    if not log:
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(log[0]))
        writer.writeheader()
        writer.writerows(log)

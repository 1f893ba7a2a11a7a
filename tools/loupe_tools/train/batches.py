"""Seeded, augmented training batches mixing real images and synthetic defects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..archs import CLIP_MEAN, CLIP_STD
from .dataset import Preloaded


@dataclass
class Batch:
    """One batch: normalised images, per-pixel class maps (0 normal, k = class k) and image labels."""

    images: torch.Tensor  # float32 [N, 3, S, S]
    type_map: torch.Tensor  # int64 [N, S, S]
    labels: torch.Tensor  # int64 [N]


class BatchSampler:
    """Draws ``batch`` samples per step from several pools with fixed shares; within a pool, defective samples
    make up ``defect_share`` of the draws (they are rare in real data). Step ``t`` depends only on
    ``(seed, t)``, so a resumed run draws what an uninterrupted one would."""

    def __init__(self, pools: Sequence[Preloaded], shares: Sequence[float], batch: int, seed: int,
                 defect_share: float = 0.5, augment: bool = True) -> None:
        if len(pools) != len(shares) or not pools:
            raise ValueError("one share per pool, at least one pool")
        self.pools = list(pools)
        self.counts = _split(batch, shares)
        self.seed = seed
        self.defect_share = defect_share
        self.augment = augment
        self.defective = [np.flatnonzero(p.labels > 0) for p in self.pools]
        self.good = [np.flatnonzero(p.labels == 0) for p in self.pools]

    def _pick(self, rng: np.random.Generator, k: int) -> int:
        bad, good = self.defective[k], self.good[k]
        if len(bad) and (not len(good) or rng.random() < self.defect_share):
            return int(bad[rng.integers(len(bad))])
        return int(good[rng.integers(len(good))])

    def batch(self, step: int) -> Batch:
        """The batch of training step ``step``."""
        rng = np.random.default_rng([self.seed, step])
        images, maps, labels = [], [], []
        for k, count in enumerate(self.counts):
            pool = self.pools[k]
            for _ in range(count):
                i = self._pick(rng, k)
                img, mask = pool.images[i], pool.masks[i]
                if self.augment:
                    img, mask = augment(img, mask, rng)
                images.append(img)
                maps.append(mask.astype(np.int64) * int(pool.labels[i]))
                labels.append(int(pool.labels[i]))
        return Batch(normalize_batch(np.stack(images)), torch.from_numpy(np.stack(maps)), torch.tensor(labels))


def _split(total: int, shares: Sequence[float]) -> list[int]:
    raw = np.asarray(shares, dtype=np.float64)
    counts = np.floor(raw / raw.sum() * total).astype(int)
    counts[int(np.argmax(raw))] += total - int(counts.sum())
    return [int(c) for c in counts]


def augment(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flips and brightness/contrast jitter (geometry applied to the mask too)."""
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        img, mask = img[::-1], mask[::-1]
    gain = float(rng.uniform(0.8, 1.2))
    bias = float(rng.uniform(-20, 20))
    mean = float(img.mean())
    out = (img.astype(np.float32) - mean) * gain + mean + bias
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), np.ascontiguousarray(mask)


def normalize_batch(images: np.ndarray) -> torch.Tensor:
    """``uint8 [N, S, S, 3]`` -> CLIP-normalised float32 ``[N, 3, S, S]`` (as the SDK's preprocessing)."""
    x = images.astype(np.float32) / np.float32(255.0)
    normed = (x - np.asarray(CLIP_MEAN, dtype=np.float32)) / np.asarray(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(normed.transpose(0, 3, 1, 2), dtype=np.float32))

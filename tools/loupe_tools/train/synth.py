"""Synthetic defects with exact masks and type words, painted onto good images and texture photos.

Each painter draws a soft alpha map ``a`` in [0, 1] and a target intensity; the image becomes
``(1 - a) * base + a * target`` and the mask is ``a > 0.5``. Sizes are relative to the image side so the same
painters work at any input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..images import load_rgb8
from .dataset import Preloaded, resize_rgb

Painter = Callable[[np.random.Generator, int], tuple[np.ndarray, float]]  # -> (alpha [S, S], signed contrast)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _soft(dist: np.ndarray, radius: float, edge: float = 0.75) -> np.ndarray:
    """1 inside ``radius``, 0 outside, a linear ramp of width ``2 * edge`` pixels in between."""
    return np.clip((radius - dist) / (2 * edge) + 0.5, 0.0, 1.0).astype(np.float32)


def _segment_distance(yy: np.ndarray, xx: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0.0, 1.0)
    return np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))


def _polyline_distance(yy: np.ndarray, xx: np.ndarray, points: np.ndarray) -> np.ndarray:
    dist = np.full(yy.shape, np.inf, dtype=np.float32)
    for a, b in zip(points[:-1], points[1:]):
        dist = np.minimum(dist, _segment_distance(yy, xx, a, b))
    return dist


def _contrast(rng: np.random.Generator, lo: float, hi: float, dark_share: float) -> float:
    magnitude = float(rng.uniform(lo, hi))
    return -magnitude if rng.random() < dark_share else magnitude


def paint_hole(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """One to three small round pits (radius 1-3.5 % of the side)."""
    yy, xx = _grid(size)
    alpha = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        r = float(rng.uniform(0.01, 0.035)) * size
        c = rng.uniform(0.1, 0.9, size=2) * size
        alpha = np.maximum(alpha, _soft(np.hypot(yy - c[0], xx - c[1]), r))
    return alpha, _contrast(rng, 60, 140, 0.85)


def paint_scratch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A thin curved line, 20-60 % of the side long, 1-2 px wide."""
    yy, xx = _grid(size)
    start = rng.uniform(0.1, 0.9, size=2) * size
    angle = float(rng.uniform(0, np.pi))
    length = float(rng.uniform(0.2, 0.6)) * size
    bend = float(rng.uniform(-0.4, 0.4))
    points = []
    for t in np.linspace(0.0, 1.0, 8):
        a = angle + bend * t
        points.append(start + t * length * np.array([np.sin(a), np.cos(a)]))
    width = float(rng.uniform(0.6, 1.2))
    return _soft(_polyline_distance(yy, xx, np.asarray(points, dtype=np.float32)), width, 0.5), _contrast(rng, 50, 110, 0.5)


def paint_cut(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A short, straight, sharp-edged dark gash, 8-20 % of the side long and 2-4 px wide."""
    yy, xx = _grid(size)
    p = rng.uniform(0.15, 0.85, size=2) * size
    angle = float(rng.uniform(0, np.pi))
    length = float(rng.uniform(0.08, 0.2)) * size
    q = p + length * np.array([np.sin(angle), np.cos(angle)])
    width = float(rng.uniform(1.0, 2.0))
    return _soft(_segment_distance(yy, xx, p, q), width, 0.3), _contrast(rng, 80, 150, 0.9)


def paint_stain(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A diffuse blotch (a few overlapping soft disks, 5-14 % of the side), low contrast."""
    yy, xx = _grid(size)
    centre = rng.uniform(0.2, 0.8, size=2) * size
    field = np.zeros((size, size), dtype=np.float32)
    for _ in range(int(rng.integers(2, 5))):
        c = centre + rng.normal(0, 0.04, size=2) * size
        r = float(rng.uniform(0.05, 0.14)) * size
        field = np.maximum(field, np.exp(-0.5 * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / (r * r / 2.0)))
    alpha = np.clip((field - 0.35) / 0.3, 0.0, 1.0).astype(np.float32)
    return alpha, _contrast(rng, 30, 60, 0.7)


PAINTERS: dict[str, Painter] = {"hole": paint_hole, "scratch": paint_scratch, "cut": paint_cut, "stain": paint_stain}


def paint(base: np.ndarray, word: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint one ``word`` defect on ``base`` (``uint8 [S, S, 3]``); returns the image and its 0/1 mask."""
    if word not in PAINTERS:
        raise KeyError(f"no synthetic painter for {word!r}; known: {sorted(PAINTERS)}")
    size = base.shape[0]
    for _ in range(8):  # a defect that falls almost off the image is drawn again
        alpha, contrast = PAINTERS[word](rng, size)
        mask = (alpha > 0.5).astype(np.uint8)
        if mask.sum() >= 3:
            break
    img = base.astype(np.float32)
    local = img.mean()
    target = np.clip(local + contrast, 0, 255)
    out = (1.0 - alpha[:, :, None]) * img + alpha[:, :, None] * target
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def load_textures(folder: Path) -> list[np.ndarray]:
    """Every PNG under ``folder`` (recursively) as ``uint8 [H, W, 3]``, sorted by path."""
    paths = sorted(folder.rglob("*.png"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no texture PNGs")
    return [load_rgb8(p) for p in paths]


def texture_crop(texture: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of a texture (tiled first when it is small), resized to ``size``."""
    h, w = texture.shape[:2]
    side = int(rng.integers(max(16, min(h, w) // 3), max(17, min(h, w) + 1)))
    if min(h, w) < size // 2:  # small tileable patterns: tile to at least the output size
        reps = (int(np.ceil(size / h)) + 1, int(np.ceil(size / w)) + 1, 1)
        texture = np.tile(texture, reps)
        h, w = texture.shape[:2]
        side = size
    side = min(side, h, w)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    return resize_rgb(np.ascontiguousarray(texture[y : y + side, x : x + side]), size)


def synthetic_set(
    goods: np.ndarray,
    textures: Sequence[np.ndarray],
    words: Sequence[str],
    all_words: Sequence[str],
    count: int,
    seed: int,
    texture_share: float = 0.4,
    defect_share: float = 0.75,
) -> Preloaded:
    """``count`` samples: a good image (or a texture crop) with, in ``defect_share`` of them, one defect of a
    word drawn from ``words``; labels index ``all_words``. Sample ``i`` depends only on ``(seed, i)``."""
    size = goods.shape[1] if len(goods) else 0
    if size == 0:
        raise ValueError("no good images to paint on")
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    labels = np.zeros(count, dtype=np.int64)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        if textures and rng.random() < texture_share:
            base = texture_crop(textures[int(rng.integers(len(textures)))], size, rng)
        else:
            base = goods[int(rng.integers(len(goods)))]
        if rng.random() < defect_share:
            word = words[int(rng.integers(len(words)))]
            images[i], masks[i] = paint(base, word, rng)
            labels[i] = 1 + list(all_words).index(word)
        else:
            images[i] = base
    return Preloaded(images, masks, labels, list(all_words), [f"synthetic_{i:05d}" for i in range(count)])

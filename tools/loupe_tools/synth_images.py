"""Procedural test images (no external data, no torch): textures, a gray/RGB/RGBA set and a painted dark
"hole" blob. Deterministic in the seed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

IMAGE_KINDS = ("gray", "rgb", "rgba", "gray_hole")


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return y, x


def _texture(size: int, rng: np.random.Generator, period_a: float, period_b: float) -> np.ndarray:
    """A woven-looking texture in [0, 1]: two crossed sinusoid families plus fine noise."""
    y, x = _coords(size)
    scale = size / 64.0
    weave = 0.5 + 0.22 * np.sin(2 * np.pi * x / (period_a * scale)) * np.cos(2 * np.pi * y / (period_b * scale))
    weave += 0.12 * np.sin(2 * np.pi * (x + 0.5 * y) / (13.0 * scale))
    weave += 0.05 * rng.standard_normal((size, size))
    return np.clip(weave, 0.0, 1.0)


def _to_u8(v: np.ndarray) -> np.ndarray:
    return np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)


def make_gray(size: int, rng: np.random.Generator) -> np.ndarray:
    """8-bit gray texture ``[H, W]``."""
    return _to_u8(_texture(size, rng, 9.0, 7.0))


def make_rgb(size: int, rng: np.random.Generator) -> np.ndarray:
    """8-bit colour texture ``[H, W, 3]``: a different pattern per channel."""
    y, x = _coords(size)
    r = 0.3 + 0.5 * x / (size - 1) + 0.05 * rng.standard_normal((size, size))
    g = _texture(size, rng, 11.0, 5.0)
    b = 0.5 + 0.4 * np.sin(2 * np.pi * (x - y) / (17.0 * size / 64.0))
    return _to_u8(np.stack([r, g, b], axis=2))


def make_rgba(size: int, rng: np.random.Generator) -> np.ndarray:
    """8-bit RGBA ``[H, W, 4]`` with a varying alpha (which the SDK must drop, not composite)."""
    rgb = make_rgb(size, rng)
    y, x = _coords(size)
    alpha = _to_u8(0.2 + 0.8 * (y / (size - 1)))
    return np.concatenate([rgb, alpha[:, :, None]], axis=2)


def make_gray_hole(size: int, rng: np.random.Generator) -> np.ndarray:
    """Gray texture with a painted dark elliptical "hole" (soft edge) off centre."""
    tex = _texture(size, rng, 9.0, 7.0)
    y, x = _coords(size)
    cy, cx, ry, rx = 0.62 * size, 0.36 * size, 0.11 * size, 0.14 * size
    d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    blob = np.clip(1.5 - d, 0.0, 1.0)  # 1 inside, soft ramp at the rim
    return _to_u8(tex * (1.0 - blob) + 0.06 * blob)


MAKERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "gray": make_gray,
    "rgb": make_rgb,
    "rgba": make_rgba,
    "gray_hole": make_gray_hole,
}


def write_images(out_dir: Path, size: int, seed: int, kinds: tuple[str, ...] = IMAGE_KINDS) -> list[Path]:
    """Write ``{kind}.png`` for each kind (each from its own seeded stream); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, kind in enumerate(IMAGE_KINDS):
        if kind not in kinds:
            continue
        rng = np.random.default_rng([seed, i])
        arr = MAKERS[kind](size, rng)
        path = out_dir / f"{kind}.png"
        Image.fromarray(arr).save(path, format="PNG", optimize=False)
        paths.append(path)
    return paths

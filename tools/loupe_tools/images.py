"""Image loading and normalisation as the SDK does it (no torch): 8-bit only; gray is replicated to RGB,
an alpha channel is dropped (not composited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image


def load_rgb8(path: Path) -> np.ndarray:
    """Read an 8-bit image as ``uint8 [H, W, 3]`` RGB."""
    with Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode == "L":
            gray = np.asarray(img, dtype=np.uint8)
            return np.repeat(gray[:, :, None], 3, axis=2)
        if mode == "LA":
            gray = np.asarray(img, dtype=np.uint8)[:, :, 0]
            return np.repeat(gray[:, :, None], 3, axis=2)
        if mode == "RGB":
            return np.asarray(img, dtype=np.uint8).copy()
        if mode == "RGBA":
            return np.asarray(img, dtype=np.uint8)[:, :, :3].copy()
        raise ValueError(f"{path}: unsupported image mode {mode!r} (8-bit L, LA, RGB, RGBA only)")


def normalize(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> float32 ``[3, H, W]`` = ``(x / 255 - mean[c]) / std[c]``, computed in float32."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((x - m) / s).transpose(2, 0, 1))


def rgb8_at_input_size(path: Path, info: dict[str, Any]) -> np.ndarray:
    """The image at ``path`` as ``[H, W, 3]`` uint8 at the input size of the model ``info`` (its
    ``loupe-model.json``), resized with PIL bicubic where it differs (Loupe's own resize is Catmull-Rom, so pixels of
    resized images differ slightly)."""
    h, w = info["image"]["input_size"]
    rgb = load_rgb8(path)
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC))
    return rgb


def encoder_input(path: Path, info: dict[str, Any]) -> np.ndarray:
    """``[1, 3, H, W]`` float32 for the image encoder of the model ``info``: at its input size
    (:func:`rgb8_at_input_size`), CLIP-normalised."""
    img = info["image"]
    return normalize(rgb8_at_input_size(path, info), img["mean"], img["std"])[None]

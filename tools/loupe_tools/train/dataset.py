"""MVTec-layout data sets with masks, preloaded at a model's input size.

Two layouts are accepted (as ``loupe eval`` does): MVTec AD (``test/good``, ``test/<type>``, optional
``train/good``, ``ground_truth/<type>/<stem>_mask.png``) and flat (``good/``, ``<type>/``, ``ground_truth/...``),
the layout of the Magnetic-Tile copy in ``../shared/data/mt/magnetic_tile``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..images import load_rgb8

GOOD = "good"
NOT_TYPES = {"ground_truth", "train", "validation", "test"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Sample:
    """One image of a data set."""

    path: Path
    stem: str
    folder: str  # "good" or a defect type
    mask: Optional[Path]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _matches(stem: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(stem, g) for g in globs)


def list_samples(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Sample]:
    """Every image under ``root`` with its folder type and mask path; ``include``/``exclude`` are globs on stems."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (expected an MVTec-layout data set)")
    test = root / "test"
    base = test if test.is_dir() else root
    folders = sorted(p for p in base.iterdir() if p.is_dir() and p.name not in NOT_TYPES)
    if not any(f.name == GOOD for f in folders) and not (root / "train" / GOOD).is_dir():
        raise FileNotFoundError(f"{root}: no '{GOOD}' folder (expected good/ or test/good/)")
    samples: list[Sample] = []
    sources = [(f.name, f) for f in folders]
    if (root / "train" / GOOD).is_dir():
        sources.append((GOOD, root / "train" / GOOD))
    for name, folder in sources:
        for path in _images_in(folder):
            stem = path.stem
            if include and not _matches(stem, include):
                continue
            if exclude and _matches(stem, exclude):
                continue
            mask = None if name == GOOD else root / "ground_truth" / name / f"{stem}_mask.png"
            if mask is not None and not mask.is_file():
                raise FileNotFoundError(f"{path}: its mask {mask} is missing")
            samples.append(Sample(path, stem, name, mask))
    if not samples:
        raise ValueError(f"{root}: no images left after include={list(include)} exclude={list(exclude)}")
    return samples


@dataclass
class Preloaded:
    """Images and masks at one size; ``labels[i]`` = 0 (good) or 1 + index of the sample's word in ``words``."""

    images: np.ndarray  # uint8 [N, S, S, 3]
    masks: np.ndarray  # uint8 [N, S, S], 0/1
    labels: np.ndarray  # int64 [N]
    words: list[str]
    stems: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of ``uint8 [H, W, 3]`` to ``[size, size, 3]`` (the SDK resizes with Catmull-Rom too)."""
    if rgb.shape[:2] == (size, size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a 0/1 mask; a pixel is defective if at least a quarter of its area was, so a defect a few
    pixels wide keeps at least one pixel."""
    img = Image.fromarray((mask > 0).astype(np.float32))
    area = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    return (area >= 0.25).astype(np.uint8)


def load_mask(path: Path) -> np.ndarray:
    """A mask PNG as 0/1 ``uint8 [H, W]``."""
    with Image.open(path) as img:
        return (np.asarray(img.convert("L"), dtype=np.uint8) > 127).astype(np.uint8)


def preload(samples: Sequence[Sample], size: int, words: Sequence[str]) -> Preloaded:
    """Read and resize every sample; a defect folder must be one of ``words`` (with ``_`` read as a space)."""
    n = len(samples)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    labels = np.zeros(n, dtype=np.int64)
    index = {w: i for i, w in enumerate(words)}
    for i, s in enumerate(samples):
        rgb = load_rgb8(s.path)
        images[i] = resize_rgb(rgb, size)
        if s.mask is None:
            continue
        word = s.folder.replace("_", " ")
        if word not in index:
            raise ValueError(f"{s.path}: defect type {word!r} is not among the words {list(words)}")
        labels[i] = 1 + index[word]
        full = load_mask(s.mask)
        if full.shape != rgb.shape[:2]:
            raise ValueError(f"{s.mask}: mask size {full.shape} != image size {rgb.shape[:2]}")
        masks[i] = resize_mask(full, size)
    return Preloaded(images, masks, labels, list(words), [s.stem for s in samples])


def defect_words(samples: Sequence[Sample]) -> list[str]:
    """The defect types of ``samples``, sorted, ``_`` read as a space (as ``loupe eval`` names them)."""
    return sorted({s.folder.replace("_", " ") for s in samples if s.folder != GOOD})

"""Write a small MVTec-layout data set by downscaling chosen images of a larger one (``tests/fixtures/mvtec-mini``).

Images are reduced by block averaging; masks by block maximum, so that a defect smaller than a block stays in
the mask. Image and mask keep the same size (the image is first cropped to a multiple of the factor).

Usage (from the repository root)::

    PYTHONPATH=tools python -m loupe_tools.make_mvtec_mini --source /work/shared/data/mt/magnetic_tile \\
        --out tests/fixtures/mvtec-mini --factor 4 good/exp5_num_... blowhole/exp6_num_... ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image


def block_reduce(a: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Reduces a 2-D array by ``factor`` in each direction with the block ``mean`` or ``max``."""
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    blocks = a[:h, :w].reshape(h // factor, factor, w // factor, factor)
    if how == "mean":
        return blocks.mean(axis=(1, 3))
    if how == "max":
        return blocks.max(axis=(1, 3))
    raise ValueError(f"unknown reduction {how!r}")


def copy_sample(source: Path, out: Path, rel: str, factor: int) -> tuple[Path, Optional[Path]]:
    """Downscales ``source/rel`` (``<type>/<stem>.png``) and its mask into ``out``; returns the written paths."""
    folder, name = rel.split("/")
    stem = Path(name).stem
    gray = np.asarray(Image.open(source / rel).convert("L"), dtype=np.float64)
    small = np.clip(np.round(block_reduce(gray, factor, "mean")), 0, 255).astype(np.uint8)
    image_out = out / folder / f"{stem}.png"
    image_out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small, mode="L").save(image_out, optimize=True)
    if folder == "good":
        return image_out, None
    mask = np.asarray(Image.open(source / "ground_truth" / folder / f"{stem}_mask.png").convert("L")) > 0
    small_mask = block_reduce(mask, factor, "max").astype(np.uint8) * 255
    assert small_mask.shape == small.shape
    mask_out = out / "ground_truth" / folder / f"{stem}_mask.png"
    mask_out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small_mask, mode="L").save(mask_out, optimize=True)
    return image_out, mask_out


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="MVTec-layout (flat) data set to copy from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("images", nargs="+", help="images as <type>/<file name>, relative to --source")
    args = parser.parse_args(argv)
    for rel in args.images:
        written = copy_sample(args.source, args.out, rel, args.factor)
        print(" ".join(str(p) for p in written if p is not None))


if __name__ == "__main__":
    main()

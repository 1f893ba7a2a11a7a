"""A synthetic test set in MVTec layout, for what the model does with trained and never-trained defect words.

    python -m loupe_tools.train.synth_eval --data ../shared/data --out target/synth-test [--words hole,scratch,stain]

Bases are the Magnetic-Tile *test* split's good tiles (runs exp5, exp6, never seen in training) and texture
photos; each defect image carries one painted defect with its exact mask. ``stain`` is never trained by the
recipe, so ``loupe eval`` on this set shows what a new word does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .dataset import list_samples, preload
from .synth import load_textures, paint, texture_crop

TEST_RUNS = ["exp5*", "exp6*"]


def write_set(goods: np.ndarray, textures: Sequence[np.ndarray], words: Sequence[str], out: Path, per_type: int,
              good_count: int, seed: int, texture_share: float = 0.3) -> int:
    """Write ``good_count`` clean images and ``per_type`` images per word; returns the number written."""
    size = goods.shape[1]
    written = 0
    jobs = [("good", i) for i in range(good_count)] + [(w, i) for w in words for i in range(per_type)]
    for k, (folder, i) in enumerate(jobs):
        rng = np.random.default_rng([seed, k])
        if textures and rng.random() < texture_share:
            base = texture_crop(textures[int(rng.integers(len(textures)))], size, rng)
        else:
            base = goods[int(rng.integers(len(goods)))]
        stem = f"synthetic_{folder}_{i:03d}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        if folder == "good":
            Image.fromarray(base).save(out / folder / f"{stem}.png")
        else:
            image, mask = paint(base, folder, rng)
            Image.fromarray(image).save(out / folder / f"{stem}.png")
            (out / "ground_truth" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask * 255).save(out / "ground_truth" / folder / f"{stem}_mask.png")
        written += 1
    return written


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (``argv``, or ``sys.argv`` when None)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.train.synth_eval", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding mt/magnetic_tile and textures")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--words", default="hole,scratch,stain")
    p.add_argument("--per-type", type=int, default=40)
    p.add_argument("--good", type=int, default=40)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    samples = [s for s in list_samples(args.data / "mt" / "magnetic_tile", include=TEST_RUNS) if s.folder == "good"]
    goods = preload(samples, args.size, []).images
    textures = load_textures(args.data / "textures")
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    n = write_set(goods, textures, words, args.out, args.per_type, args.good, args.seed)
    print(f"wrote {n} images to {args.out}")


if __name__ == "__main__":
    main()

"""The README's picture of the scoring modes: for a few Magnetic-Tile test images, the ground truth beside
Loupe's overlays in text mode, with 16 golden samples and with mutual scoring, all from ``loupe inspect``.

    python -m loupe_tools.reference_picture --loupe target/release/loupe --data ../shared/data/mt/magnetic_tile \
        --out docs/images/reference-modes.png [--work target/reference-picture]

Golden samples: 16 good images of runs exp1-exp4 spread over their sorted list (as ``loupe eval --shots 16``).
Mutual: the shown images come last in a stream whose window holds 48 other test images spread over the sorted test
list (good and defective, as a line would mix them).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHOWN = ["blowhole/exp5_num_265149", "crack/exp5_num_249786", "break/exp6_num_117060", "fray/exp5_num_135651"]
CELL = (260, 180)


def inspect(loupe: Path, images: Sequence[Path], out: Path, extra: Sequence[str]) -> None:
    """``loupe inspect`` of ``images`` into ``out``."""
    subprocess.run([str(loupe), "inspect", *map(str, images), "--out", str(out), *extra], check=True)


def outlined(image: Path, mask: Path) -> Image.Image:
    """The image with its ground-truth mask outlined in green."""
    rgb = np.asarray(Image.open(image).convert("RGB")).copy()
    m = np.asarray(Image.open(mask).convert("L")) > 0
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    rgb[edge] = [0, 255, 0]
    return Image.fromarray(rgb)


def fit(im: Image.Image) -> Image.Image:
    """Scaled to fit a cell, aspect kept."""
    scale = min(CELL[0] / im.width, CELL[1] / im.height)
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)


def grid(rows: list[list[Image.Image]], titles: Sequence[str], labels: Sequence[str]) -> Image.Image:
    """Rows of images centred in equal cells under column titles, each row labelled, on white."""
    font = ImageFont.load_default(size=18)
    pad, head, side = 8, 30, 90
    cols = len(titles)
    out = Image.new("RGB", (side + cols * (CELL[0] + pad) + pad, head + len(rows) * (CELL[1] + pad) + pad), "white")
    draw = ImageDraw.Draw(out)
    for c, title in enumerate(titles):
        draw.text((side + pad + c * (CELL[0] + pad), 6), title, fill="black", font=font)
    for r, row in enumerate(rows):
        y = head + r * (CELL[1] + pad)
        draw.text((pad, y + CELL[1] // 2 - 10), labels[r], fill="black", font=font)
        for c, im in enumerate(row):
            x = side + pad + c * (CELL[0] + pad)
            out.paste(im, (x + (CELL[0] - im.width) // 2, y + (CELL[1] - im.height) // 2))
    return out


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loupe", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("target/reference-picture"))
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parse_args(argv)
    shown = [args.data / f"{s}.png" for s in SHOWN]
    test = sorted(
        p for folder in sorted(args.data.iterdir()) if folder.is_dir() and folder.name != "ground_truth"
        for p in folder.glob("exp[56]*.png") if p not in shown
    )
    pool = [test[i * len(test) // 48] for i in range(48)]
    refs = ["--references", str(args.data / "good" / "exp[1-4]*"), "--shots", "16"]
    work = args.work
    inspect(args.loupe, shown, work / "text", [])
    inspect(args.loupe, shown, work / "golden", refs)
    inspect(args.loupe, pool + shown, work / "mutual", ["--mutual"])
    rows = []
    for s, image in zip(SHOWN, shown):
        kind, stem = s.split("/")
        truth = outlined(image, args.data / "ground_truth" / kind / f"{stem}_mask.png")
        overlays = [Image.open(work / mode / f"{stem}_overlay.png").convert("RGB") for mode in ["text", "golden", "mutual"]]
        rows.append([fit(truth)] + [fit(o) for o in overlays])
    titles = ["ground truth", "text only", "16 golden samples", "mutual (window 48)"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture = grid(rows, titles, [s.split("/")[0] for s in SHOWN])
    # A 256-colour palette keeps the committed PNG small; overlays have few distinct colours.
    picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

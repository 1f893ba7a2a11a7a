"""``make_mvtec_mini``: downscaled images and masks keep one size, masks keep small defects, layout is MVTec's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from loupe_tools.make_mvtec_mini import block_reduce, main


def test_block_reduce_mean_and_max() -> None:
    a = np.arange(20, dtype=np.float64).reshape(4, 5)
    assert block_reduce(a, 2, "mean").tolist() == [[3.0, 5.0], [13.0, 15.0]]  # last column cropped
    m = np.zeros((4, 4), bool)
    m[3, 0] = True
    assert block_reduce(m, 2, "max").tolist() == [[False, False], [True, False]]


def test_downscaled_copy_in_mvtec_layout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for rel in ["good/exp5_a.png", "crack/exp6_b.png"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (23, 17), dtype=np.uint8), mode="L").save(src / rel)
    mask = np.zeros((23, 17), np.uint8)
    mask[9, 13] = 255  # a one-pixel defect
    (src / "ground_truth/crack").mkdir(parents=True)
    Image.fromarray(mask, mode="L").save(src / "ground_truth/crack/exp6_b_mask.png")
    out = tmp_path / "out"
    main(["--source", str(src), "--out", str(out), "--factor", "4", "good/exp5_a.png", "crack/exp6_b.png"])
    image = np.asarray(Image.open(out / "crack/exp6_b.png"))
    small_mask = np.asarray(Image.open(out / "ground_truth/crack/exp6_b_mask.png"))
    assert image.shape == small_mask.shape == (5, 4)
    assert set(np.unique(small_mask)) == {0, 255}
    assert small_mask[2, 3] == 255 and (small_mask > 0).sum() == 1, "the defect survives in its block"
    original = np.asarray(Image.open(src / "crack/exp6_b.png"), dtype=np.float64)
    assert image[0, 0] == round(original[:4, :4].mean())
    assert (out / "good/exp5_a.png").exists() and not (out / "ground_truth/good").exists()

"""Training data: data-set listing, mask resizing, synthetic defects (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loupe_tools.train.dataset import defect_words, list_samples, preload, resize_mask
from loupe_tools.train.synth import PAINTERS, paint, synthetic_set, texture_crop
from loupe_tools.train.synth_eval import write_set

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "fixtures" / "mvtec-mini"


def test_lists_the_flat_layout_with_masks_and_filters() -> None:
    samples = list_samples(MINI)
    assert {s.folder for s in samples} == {"good", "blowhole", "crack", "uneven"}
    assert all((s.mask is None) == (s.folder == "good") for s in samples)
    assert all(s.mask is None or s.mask.is_file() for s in samples)
    only = list_samples(MINI, include=["exp5*"])
    assert only and all(s.stem.startswith("exp5") for s in only)
    assert defect_words(samples) == ["blowhole", "crack", "uneven"]


def test_missing_mask_and_empty_selection_are_named(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "hole").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "hole" / "a.png")
    with pytest.raises(FileNotFoundError, match="a_mask.png"):
        list_samples(tmp_path)
    with pytest.raises(ValueError, match="no images left"):
        list_samples(MINI, include=["nothing*"])


def test_preload_labels_and_keeps_small_defects() -> None:
    samples = list_samples(MINI)
    words = defect_words(samples)
    data = preload(samples, 64, words)
    assert data.images.shape == (len(samples), 64, 64, 3)
    for s, label, mask in zip(samples, data.labels, data.masks):
        if s.folder == "good":
            assert label == 0 and mask.sum() == 0
        else:
            assert words[label - 1] == s.folder
    with pytest.raises(ValueError, match="not among the words"):
        preload(samples, 64, ["crack"])


def test_resize_mask_keeps_a_defect_a_few_pixels_wide() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[50:53, 50:53] = 1  # 3 x 3 px, downscaled 4x
    assert resize_mask(mask, 25).sum() >= 1
    assert resize_mask(np.zeros((100, 100), np.uint8), 25).sum() == 0


@pytest.mark.parametrize("word", sorted(PAINTERS))
def test_painters_change_only_the_masked_neighbourhood(word: str) -> None:
    base = np.full((96, 96, 3), 128, np.uint8)
    image, mask = paint(base, word, np.random.default_rng(3))
    assert mask.sum() >= 3
    changed = np.abs(image.astype(int) - base).max(axis=2) > 0
    assert changed[mask > 0].mean() > 0.99  # every masked pixel was painted
    grown = np.zeros_like(mask, dtype=bool)  # unmasked changes stay within 2 px of the mask (soft edges)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            grown |= np.roll(np.roll(mask > 0, dy, 0), dx, 1)
    assert not (changed & ~grown).any()


def test_synthetic_set_is_deterministic_and_labelled() -> None:
    goods = np.full((3, 48, 48, 3), 100, np.uint8)
    textures = [np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)]
    a = synthetic_set(goods, textures, ["hole", "cut"], ["x", "hole", "cut"], 20, seed=5)
    b = synthetic_set(goods, textures, ["hole", "cut"], ["x", "hole", "cut"], 20, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    assert set(np.unique(a.labels)) <= {0, 2, 3}
    assert all((m.sum() > 0) == (lab > 0) for m, lab in zip(a.masks, a.labels))
    assert texture_crop(textures[0], 48, np.random.default_rng(0)).shape == (48, 48, 3)


def test_synthetic_test_set_is_mvtec_layout(tmp_path: Path) -> None:
    goods = np.full((2, 64, 64, 3), 90, np.uint8)
    n = write_set(goods, [], ["hole", "stain"], tmp_path, per_type=2, good_count=1, seed=0)
    assert n == 5
    samples = list_samples(tmp_path)
    assert defect_words(samples) == ["hole", "stain"]
    assert sum(s.folder == "good" for s in samples) == 1

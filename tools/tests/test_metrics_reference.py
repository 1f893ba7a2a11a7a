"""The metrics reference (``loupe_tools.metrics_reference``): its AUPRO against a brute-force threshold sweep and
hand-computed values, its degenerate cases, and the committed fixtures it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from scipy.ndimage import label as nd_label  # noqa: E402

from loupe_tools import metrics_reference as mr  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "metrics"


def _brute_force_aupro(maps: list[np.ndarray], masks: list[np.ndarray], limit: float) -> float:
    """PRO and FPR recomputed from scratch at every distinct score (no cumulative sums), then the same trapezoid."""
    structure = np.ones((3, 3), dtype=int)
    regions = []
    ok = []
    for score, mask in zip(maps, masks):
        labelled, n = nd_label(mask, structure)
        regions += [score[labelled == k] for k in range(1, n + 1)]
        ok.append(score[labelled == 0])
    ok_all = np.concatenate(ok)
    thresholds = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    fpr = [0.0] + [float((ok_all >= t).mean()) for t in thresholds] + [1.0]
    pro = [0.0] + [float(np.mean([(r >= t).mean() for r in regions])) for t in thresholds] + [1.0]
    return mr.trapezoid(np.array(fpr), np.array(pro), limit) / limit


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("limit", [0.3, 0.05, 1.0])
def test_aupro_equals_a_brute_force_sweep(seed: int, limit: float) -> None:
    rng = np.random.default_rng(seed)
    masks = [np.zeros((10, 12), bool)] + [mr._blob_mask(rng, 10, 12, k) for k in (1, 2, 3)]
    # Coarse scores: many ties, the case where keeping only the last point of a tie group matters.
    maps = [np.round(rng.uniform(size=m.shape) * 0.7 + 0.3 * m, 1) for m in masks]
    assert mr.au_pro(maps, masks, limit) == pytest.approx(_brute_force_aupro(maps, masks, limit), abs=1e-12)


def test_hand_computed_pro_curve() -> None:
    # Pixels 0,1: one region; 2,3 defect-free. Scores 4, 2, 3, 1: PRO is 0.5 until FPR 0.5.
    maps = [np.array([[4.0, 2.0, 3.0, 1.0]])]
    masks = [np.array([[True, True, False, False]])]
    fpr, pro = mr.pro_curve(maps, masks)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    assert pro.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]
    assert mr.au_pro(maps, masks, 0.3) == pytest.approx(0.5)
    assert mr.trapezoid(fpr, pro, 1.0) == pytest.approx(0.75)


def test_small_regions_weigh_as_much_as_large_ones() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True  # a one-pixel region, found first
    mask[3:6, 3:6] = True  # a nine-pixel region, found last
    score = np.where(mask, 0.1, 0.5)
    score[0, 0] = 0.9
    assert mr.au_pro([score], [mask], 0.3) == pytest.approx(0.5)


def test_degenerate_cases_are_undefined_not_numbers() -> None:
    values, undefined = mr.binary_metrics(np.zeros(5, bool), np.arange(5.0))
    assert values == {"auroc": None, "average_precision": None, "f1_max": None}
    assert set(undefined) == {"auroc", "average_precision", "f1_max"}
    values, undefined = mr.binary_metrics(np.ones(5, bool), np.arange(5.0))
    assert values["auroc"] is None and values["average_precision"] == 1.0 and values["f1_max"] == 1.0
    values, undefined = mr.binary_metrics(np.array([1, 0, 1], bool), np.array([0.1, np.nan, 0.3]))
    assert all(v is None for v in values.values())
    values, undefined = mr.pixel_metrics([np.zeros((3, 3))], [np.zeros((3, 3), bool)])
    assert values["aupro@0.3"] is None and "region" in undefined["aupro@0.3"]


def test_f1_max_by_hand() -> None:
    # Scores 4,3,2,1 with labels 1,0,1,0: thresholds give F1 2/3 (top 1), 1/2, 4/5 (top 3), 2/3.
    assert mr.f1_max(np.array([1, 0, 1, 0], bool), np.array([4.0, 3.0, 2.0, 1.0])) == pytest.approx(0.8)


def test_json_scores_read_back_as_the_same_float32() -> None:
    values = np.random.default_rng(5).uniform(size=2000).astype(np.float32)
    values[:3] = [0.0, -0.0, 1e-30]
    written = mr._json_scores(values)
    assert np.array_equal(np.array(written, dtype=np.float64).astype(np.float32), values)
    assert mr._json_scores(np.array([np.nan], np.float32)) == [None]


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-12), path
    else:
        assert a == b, path


def test_committed_fixtures_are_what_the_script_writes(tmp_path: Path) -> None:
    if not (FIXTURES / "binary.json").exists():
        pytest.skip(f"no metrics fixtures at {FIXTURES}")
    written = mr.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in FIXTURES.glob("*.json"))
    for path in written:
        new = json.loads(path.read_text())
        old = json.loads((FIXTURES / path.name).read_text())
        # Library versions are recorded, not compared: values must agree whatever the pinned versions are.
        for key in ("scikit_learn", "scipy", "numpy"):
            new.pop(key), old.pop(key)
        _close(new, old, path.name)

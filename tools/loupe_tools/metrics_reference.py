"""Reference values of Loupe's evaluation metrics, for the Rust parity tests (``tests/fixtures/metrics/``).

Ranking and classification metrics come from scikit-learn (``roc_auc_score``, ``average_precision_score``,
``precision_recall_curve``, ``f1_score``, ``jaccard_score``, ``accuracy_score``, ``confusion_matrix``).
AUPRO is written here from the algorithm of the MVTec AD evaluation code (``compute_pro`` and ``trapezoid``):
8-connected ground-truth regions (scipy's ``label`` with a 3x3 structure), every distinct score a threshold, PRO
the mean region overlap, FPR over all defect-free pixels, the curve from (0, 0) to (1, 1), its area up to the
FPR limit with linear interpolation at the limit, divided by the limit. One deliberate difference: the
cumulative FPR stays in float64 (the MVTec code casts it to float32, a relative change of about 1e-7).

The inputs are generated (seeded numpy streams): score/label vectors with and without ties, sets of maps and
masks (good images, an empty mask in a defective image, one-pixel and diagonally touching regions) and
multi-type maps, plus degenerate cases (one class only, no region, a NaN). A metric that is undefined on a case
is written as ``null`` with the reason in ``undefined``; Loupe must return an error there, not a number.

Usage (from the repository root)::

    PYTHONPATH=tools python -m loupe_tools.metrics_reference            # writes tests/fixtures/metrics/
    PYTHONPATH=tools python -m loupe_tools.metrics_reference --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
from bisect import bisect_right
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import scipy
import sklearn
from scipy.ndimage import label as nd_label
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_recall_curve,
    roc_auc_score,
)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "metrics"
FPR_LIMITS = (0.3, 0.05, 1.0)
SEED = 20240501

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------- binary metrics


def f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over the thresholds of scikit-learn's precision-recall curve (0 where P + R = 0)."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return float(f1.max())


def _guarded(fn: Callable[[], float], undefined_if: Optional[str]) -> tuple[Optional[float], Optional[str]]:
    """Runs a metric unless a known degenerate condition holds; returns (value, reason)."""
    if undefined_if is not None:
        return None, undefined_if
    value = float(fn())
    if not math.isfinite(value):
        raise ValueError(f"reference produced a non-finite value {value}")
    return value, None


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> tuple[Json, Json]:
    """AUROC, AP and F1-max of a scored binary problem, and the reasons of those that are undefined.

    scikit-learn raises for a single-class AUROC and for NaN scores, and returns 0 (with a warning) for the AP of a
    set without positives; Loupe treats all three as undefined, so they are recorded as such here.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = int(labels.sum()), int((~labels).sum())
    bad = None if np.all(np.isfinite(scores)) else "a score is not finite"
    no_pos = bad or ("no positive sample" if pos == 0 else None)
    one_class = bad or ("one class only" if pos == 0 or neg == 0 else None)
    values: Json = {}
    undefined: Json = {}
    for name, fn, cond in [
        ("auroc", lambda: roc_auc_score(labels, scores), one_class),
        ("average_precision", lambda: average_precision_score(labels, scores), no_pos),
        ("f1_max", lambda: f1_max(labels, scores), no_pos),
    ]:
        values[name], reason = _guarded(fn, cond)
        if reason:
            undefined[name] = reason
    return values, undefined


# ---------------------------------------------------------------------------------------------------- AUPRO


def pro_curve(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) points of the exact curve, from (0, 0) to (1, 1), as the MVTec AD ``compute_pro``."""
    structure = np.ones((3, 3), dtype=int)
    fp_change: list[np.ndarray] = []
    pro_change: list[np.ndarray] = []
    ok_pixels = 0
    regions = 0
    for mask in masks:
        labelled, n = nd_label(mask.astype(bool), structure)
        regions += n
        ok = labelled == 0
        ok_pixels += int(ok.sum())
        weights = np.zeros(mask.shape, dtype=np.float64)
        for k in range(1, n + 1):
            region = labelled == k
            weights[region] = 1.0 / region.sum()
        fp_change.append(ok.astype(np.float64).ravel())
        pro_change.append(weights.ravel())
    if regions == 0 or ok_pixels == 0:
        raise ValueError("AUPRO needs a ground-truth region and a defect-free pixel")
    scores = np.concatenate([m.astype(np.float64).ravel() for m in maps])
    order = np.argsort(scores, kind="stable")[::-1]
    scores = scores[order]
    fprs = np.cumsum(np.concatenate(fp_change)[order]) / ok_pixels
    pros = np.cumsum(np.concatenate(pro_change)[order]) / regions
    # Keep the last point of each group of equal scores: it holds all the changes at that threshold.
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.concatenate([[0.0], fprs, [1.0]]), np.concatenate([[0.0], pros, [1.0]])


def trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under (x, y) for x in [0, x_max], the last segment interpolated at x_max (MVTec AD ``trapezoid``)."""
    correction = 0.0
    if x_max not in x:
        ins = bisect_right(list(x), x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    xs, ys = x[keep], y[keep]
    return float(np.sum(0.5 * (ys[1:] + ys[:-1]) * (xs[1:] - xs[:-1])) + correction)


def au_pro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``limit``."""
    fpr, pro = pro_curve(maps, masks)
    return trapezoid(fpr, pro, limit) / limit


def pixel_metrics(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> tuple[Json, Json]:
    """Pixel AUROC, AP, F1-max over all pixels, and AUPRO at each limit of ``FPR_LIMITS``."""
    scores = np.concatenate([m.ravel() for m in maps])
    labels = np.concatenate([m.ravel() for m in masks]).astype(bool)
    values, undefined = binary_metrics(labels, scores)
    regions = sum(nd_label(m.astype(bool), np.ones((3, 3), dtype=int))[1] for m in masks)
    cond = None
    if not np.all(np.isfinite(scores)):
        cond = "a score is not finite"
    elif regions == 0 or labels.all():
        cond = "needs a ground-truth region and a defect-free pixel"
    for limit in FPR_LIMITS:
        key = f"aupro@{limit}"
        values[key], reason = _guarded(partial(au_pro, maps, masks, limit), cond)
        if reason:
            undefined[key] = reason
    return values, undefined


# ------------------------------------------------------------------------------------------------ multi-type


def multitype_metrics(
    truth: Sequence[np.ndarray],
    predicted: Sequence[np.ndarray],
    type_scores: Sequence[Sequence[np.ndarray]],
    image_truth: Sequence[int],
    image_argmax: Sequence[int],
    image_anomalous: Sequence[bool],
    types: int,
) -> Json:
    """Pixel one-vs-rest AUROC/AP per type present in the ground truth and their macro means, per-type F1 and
    IoU of the predicted type map with their macro F1; image-level type accuracy (defective images, argmax type)
    and confusion matrix (all images; prediction 0 when not anomalous)."""
    t = np.concatenate([m.ravel() for m in truth]).astype(int)
    p = np.concatenate([m.ravel() for m in predicted]).astype(int)
    present = sorted(int(c) for c in np.unique(t) if c > 0)
    out: Json = {"present_types": present, "ovr_auroc": {}, "ovr_ap": {}, "f1": {}, "iou": {}}
    for c in present:
        s = np.concatenate([ts[c - 1].ravel() for ts in type_scores]).astype(np.float64)
        out["ovr_auroc"][str(c)] = float(roc_auc_score(t == c, s))
        out["ovr_ap"][str(c)] = float(average_precision_score(t == c, s))
    f1 = f1_score(t, p, labels=present, average=None, zero_division=0)
    iou = jaccard_score(t, p, labels=present, average=None, zero_division=0)
    for c, f, j in zip(present, f1, iou):
        out["f1"][str(c)] = float(f)
        out["iou"][str(c)] = float(j)
    out["macro_ovr_auroc"] = float(np.mean(list(out["ovr_auroc"].values())))
    out["macro_ovr_ap"] = float(np.mean(list(out["ovr_ap"].values())))
    out["macro_f1"] = float(f1_score(t, p, labels=present, average="macro", zero_division=0))
    it = np.asarray(image_truth)
    ia = np.asarray(image_argmax)
    defective = it > 0
    out["image_type_accuracy"] = float(accuracy_score(it[defective], ia[defective]))
    decided = np.where(np.asarray(image_anomalous, dtype=bool), ia, 0)
    out["image_confusion"] = confusion_matrix(it, decided, labels=list(range(types + 1))).tolist()
    return out


# ------------------------------------------------------------------------------------------------ generation


def _f32(a: Any) -> np.ndarray:
    """Values representable in float32 (the SDK's score type), held as float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _json_scores(a: np.ndarray) -> list[Optional[float]]:
    """Scores as JSON numbers: the shortest decimal that reads back as the same float32 (also when read as a
    float64 and then rounded to float32, as the Rust tests do); NaN as null."""
    out: list[Optional[float]] = []
    for v in np.asarray(a, dtype=np.float32).ravel():
        if not np.isfinite(v):
            out.append(None)
            continue
        short = float(str(v))
        out.append(short if np.float32(short) == v else float(v))
    return out


def _blob_mask(rng: np.random.Generator, h: int, w: int, blobs: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(blobs):
        cy, cx = rng.uniform(2, h - 2), rng.uniform(2, w - 2)
        ry, rx = rng.uniform(1.0, h / 5), rng.uniform(1.0, w / 5)
        mask |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
    return mask


def _scores_for(rng: np.random.Generator, mask: np.ndarray, lift: float) -> np.ndarray:
    """Scores in [0, 1): noise, higher inside the mask."""
    noise = rng.uniform(0.0, 1.0, mask.shape) * (1.0 - lift)
    return _f32(np.clip(noise + lift * mask, 0.0, 0.999))


def _binary_cases(rng: np.random.Generator) -> list[Json]:
    cases: list[tuple[str, np.ndarray, np.ndarray]] = []
    n = 240
    labels = rng.uniform(size=n) < 0.3
    cases.append(("random", _f32(rng.normal(size=n) + 0.8 * labels), labels))
    labels = rng.uniform(size=n) < 0.4
    cases.append(("heavy_ties", _f32(np.round(rng.uniform(size=n) * 4 + labels) / 5), labels))
    cases.append(("all_tied", _f32(np.full(20, 0.25)), rng.uniform(size=20) < 0.5))
    lab = np.array([1, 1, 0, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    cases.append(("perfect", _f32(np.where(lab, 0.9, 0.1) + np.arange(10) * 1e-3), lab))
    cases.append(("inverted", _f32(np.where(lab, 0.1, 0.9) + np.arange(10) * 1e-3), lab))
    cases.append(("signed_zero_ties", _f32([0.0, -0.0, 0.0, 1.0, -1.0, -0.0]),
                  np.array([1, 0, 0, 1, 0, 1], dtype=bool)))
    cases.append(("all_negative", _f32(rng.uniform(size=30)), np.zeros(30, dtype=bool)))
    cases.append(("all_positive", _f32(rng.uniform(size=30)), np.ones(30, dtype=bool)))
    cases.append(("single_positive", _f32(rng.uniform(size=25)), np.arange(25) == 7))
    with_nan = _f32(rng.uniform(size=12))
    with_nan[5] = np.nan
    cases.append(("nan_score", with_nan, np.arange(12) % 3 == 0))
    out = []
    for name, scores, labels in cases:
        values, undefined = binary_metrics(labels, scores)
        out.append({
            "name": name,
            "scores": _json_scores(scores),
            "labels": [int(v) for v in labels],
            "expected": values,
            "undefined": undefined,
        })
    return out


def _image(maps: np.ndarray, mask: np.ndarray) -> Json:
    h, w = mask.shape
    return {
        "width": int(w),
        "height": int(h),
        "scores": _json_scores(maps),
        "mask": [int(v) for v in mask.ravel()],
    }


def _pixel_cases(rng: np.random.Generator) -> list[Json]:
    h, w = 16, 24
    cases: list[tuple[str, list[np.ndarray], list[np.ndarray]]] = []
    masks = [np.zeros((h, w), bool), np.zeros((h, w), bool)] + [_blob_mask(rng, h, w, k) for k in (1, 2, 3)]
    cases.append(("blobs", [_scores_for(rng, m, 0.35) for m in masks], masks))
    masks = [np.zeros((h, w), bool)] + [_blob_mask(rng, h, w, k) for k in (2, 1, 2)]
    cases.append(("ties_on_32nds", [_f32(np.floor(_scores_for(rng, m, 0.3) * 32) / 32) for m in masks], masks))
    masks = [np.zeros((h, w), bool), _blob_mask(rng, h, w, 2), np.zeros((h, w), bool)]
    cases.append(("empty_mask_in_defect_image", [_scores_for(rng, m, 0.4) for m in masks], masks))
    tiny = np.zeros((h, w), bool)
    tiny[3, 3] = tiny[4, 4] = tiny[5, 5] = True  # one region through diagonal contact
    tiny[10, 20] = True  # a one-pixel region
    tiny[0, 0] = True  # at the border
    cases.append(("tiny_and_diagonal_regions", [_scores_for(rng, tiny, 0.2)], [tiny]))
    masks = [np.zeros((h, w), bool)] * 2
    cases.append(("no_regions", [_scores_for(rng, m, 0.0) for m in masks], masks))
    full = np.ones((4, 5), bool)
    cases.append(("all_defect", [_scores_for(rng, full, 0.0)], [full]))
    masks = [_blob_mask(rng, h, w, 1)]
    maps = [_scores_for(rng, masks[0], 0.3)]
    maps[0][2, 3] = np.nan
    cases.append(("nan_score", maps, masks))
    out = []
    for name, maps, masks in cases:
        values, undefined = pixel_metrics(maps, masks)
        out.append({
            "name": name,
            "images": [_image(m, k) for m, k in zip(maps, masks)],
            "expected": values,
            "undefined": undefined,
        })
    return out


def _multitype_case(rng: np.random.Generator, name: str, types: int, used: Sequence[int], images: int) -> Json:
    h, w = 12, 16
    truth, predicted, type_scores = [], [], []
    image_truth, image_argmax, image_anomalous = [], [], []
    for k in range(images):
        t = 0 if k < 2 else int(used[k % len(used)])
        mask = _blob_mask(rng, h, w, 1 + k % 2) if t else np.zeros((h, w), bool)
        gt = np.where(mask, t, 0)
        scores = []
        for c in range(1, types + 1):
            base = rng.uniform(0.0, 0.5, (h, w))
            lifted = base + 0.45 * (gt == c) * rng.uniform(0.3, 1.0, (h, w))
            scores.append(_f32(np.round(np.clip(lifted, 0, 0.999), 3)))
        stack = np.stack(scores)
        anomaly = stack.sum(axis=0)
        pred_mask = anomaly > np.quantile(anomaly, 0.8)
        pred = np.where(pred_mask, stack.argmax(axis=0) + 1, 0)
        truth.append(gt)
        predicted.append(pred)
        type_scores.append(scores)
        image_truth.append(t)
        image_argmax.append(int(rng.integers(1, types + 1)) if rng.uniform() < 0.4 else max(t, 1))
        image_anomalous.append(bool(rng.uniform() < (0.8 if t else 0.3)))
    expected = multitype_metrics(truth, predicted, type_scores, image_truth, image_argmax, image_anomalous, types)
    return {
        "name": name,
        "types": types,
        "images": [
            {
                "width": w,
                "height": h,
                "truth": [int(v) for v in gt.ravel()],
                "predicted": [int(v) for v in pr.ravel()],
                "type_scores": [_json_scores(s) for s in ts],
                "image_truth": it,
                "image_argmax": ia,
                "image_anomalous": an,
            }
            for gt, pr, ts, it, ia, an in zip(truth, predicted, type_scores, image_truth, image_argmax,
                                              image_anomalous)
        ],
        "expected": expected,
    }


def generate(seed: int = SEED) -> dict[str, Json]:
    """All fixture documents, by file name."""
    rng = np.random.default_rng(seed)
    header = {
        "generator": "PYTHONPATH=tools python -m loupe_tools.metrics_reference",
        "seed": seed,
        "scikit_learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
    }
    return {
        "binary.json": {**header, "cases": _binary_cases(rng)},
        "pixel.json": {**header, "fpr_limits": list(FPR_LIMITS), "cases": _pixel_cases(rng)},
        "multitype.json": {
            **header,
            "cases": [
                _multitype_case(rng, "three_types", 3, (1, 2, 3), 9),
                _multitype_case(rng, "type_2_absent_from_truth", 3, (1, 3), 7),
            ],
        },
    }


def write(out: Path, seed: int = SEED) -> list[Path]:
    """Writes the fixture files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, doc in generate(seed).items():
        path = out / name
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        paths.append(path)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for path in write(args.out, args.seed):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""The benchmark script's own pieces (no binary, no runtime): batches cycle through the images as ``loupe bench``
does, medians are per item, the tables and ratios are computed from the peers' reports."""

from __future__ import annotations

from typing import Any

from loupe_tools.bench import batches_of, markdown, median_of, ratio, speedups, time_batches


def test_batches_cycle_through_the_inputs_like_loupe_bench() -> None:
    assert batches_of(["a", "b", "c"], 2, 3) == [["a", "b"], ["c", "a"], ["b", "c"]]
    assert batches_of(["a"], 1, 2) == [["a"], ["a"]]


def test_time_batches_reports_per_item_and_skips_the_warmup() -> None:
    seen: list[int] = []
    ms = time_batches(lambda b: seen.append(len(b)), [[1, 2], [3, 4], [5, 6]], warmup=1)
    assert seen == [2, 2, 2] and ms >= 0.0


def _row(precision: str, threads: int, batch: int, tract_ips: float, ort_ms: float, tract_ms: float) -> dict[str, Any]:
    return {
        "precision": precision, "threads": threads, "batch": batch,
        "loupe-tract": {"backbone": {"median_ms": tract_ms}, "end_to_end": {"median_ms": tract_ms + 1.0},
                        "postprocess": {"median_ms": 0.5}, "images_per_s": tract_ips, "peak_rss_mb": 100.0},
        "ort": {"backbone_ms": ort_ms, "peak_rss_mb": 80.0},
    }


def test_tables_and_ratios_come_from_the_reports() -> None:
    rows = [_row("fp32", 1, 8, 10.0, 40.0, 60.0), _row("fp32", 2, 8, 18.0, 22.0, 33.0), _row("int8", 1, 8, 20.0, 20.0, 30.0)]
    table = markdown(rows)
    assert "| fp32 | 1 | 8 | 60.0 | - | 40.0 | - |" in table  # missing peers print as "-"
    assert "| fp32 | 1 | 8 | 1.50 |" in table  # tract / ORT alone
    lines = speedups(rows)
    assert "- loupe-tract fp32 batch 8: 2 threads give 1.80x the images/s of 1" in lines
    assert "- loupe-tract threads 1 batch 8: int8 encoder 2.00x faster than fp32" in lines
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None and ratio(3.0, 2.0) == 1.5


def test_rounds_combine_leaf_by_leaf_into_medians() -> None:
    rounds = [{"ort": {"backbone_ms": v}, "precision": "fp32", "threads": 1} for v in (30.0, 10.0, 20.0)]
    assert median_of(rounds) == {"ort": {"backbone_ms": 20.0}, "precision": "fp32", "threads": 1}

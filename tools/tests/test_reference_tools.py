"""The reference-scoring tools' own pieces: the benchmark (vectors, faiss side, table), the measurement tables
and the picture layout."""

from __future__ import annotations

import numpy as np
import pytest

from loupe_tools.bench_reference import DAPO, faiss_ms, generated_vectors, markdown


def test_generated_vectors_have_the_shapes_loupe_reads() -> None:
    v = generated_vectors(layers=2, cells=9, dim=16, references=3)
    assert v["queries"].shape == (2, 9, 16) and v["queries"].dtype == np.float32
    assert v["memory"].shape == (2, 27, 16)
    assert list(v["memory_owners"]) == [0] * 9 + [1] * 9 + [2] * 9
    again = generated_vectors(layers=2, cells=9, dim=16, references=3)
    assert np.array_equal(v["memory"], again["memory"]), "seeded"
    assert DAPO == {"layers": 4, "cells": 1369, "dim": 768, "references": 16}


def test_faiss_finds_the_largest_inner_products() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mem = [rng.standard_normal((30, 8)).astype(np.float32) for _ in range(2)]
    _, best = faiss_ms(q, mem, repeat=1)
    expected = np.stack([(q[layer] @ mem[layer].T).max(1) for layer in range(2)])
    assert np.allclose(best, expected, atol=1e-5)


def test_table_has_one_row_per_fraction_with_the_ratio() -> None:
    report = {
        "layers": 4,
        "queries": 1369,
        "dim": 768,
        "memory_rows": 21904,
        "fractions": [
            {"fraction": 1.0, "rows_per_layer": [21904] * 4, "memory_bytes": 2e8, "median_ms": 300.0, "coreset_ms": 0.0},
            {"fraction": 0.1, "rows_per_layer": [2191] * 4, "memory_bytes": 2e7, "median_ms": 30.0, "coreset_ms": 4e3},
        ],
    }
    table = markdown(report, [(200.0, 1e-6), (25.0, 2e-6)], threads=2)
    rows = [line for line in table.splitlines() if line.startswith("| 1.0") or line.startswith("| 0.1")]
    assert len(rows) == 2
    assert "| 1.50 |" in rows[0] and "| 1.20 |" in rows[1]


def test_reference_runs_tables_read_the_reports() -> None:
    from loupe_tools.reference_runs import TYPES, cells, comparison_table, mode_table

    def report(image: float, pixel: float) -> dict:
        per_type = {t: {"pixel_auroc": pixel} for t in TYPES}
        return {"overall": {"image_auroc": image}, "per_type": per_type}

    text = report(0.7, 0.6)
    text["baseline"] = report(0.5, 0.55)
    reports = {"text": text, "golden16": report(0.75, 0.9), "test-golden-mean": report(0.75, 0.9)}
    assert cells(report(0.7, 0.6)["overall"], report(0.7, 0.6)["per_type"]) == ["0.700"] + ["0.600"] * 5
    table = mode_table(reports)
    assert "| 16 golden samples | 0.750 | 0.900 |" in table and "baseline" in table
    assert "| golden-mean | 0.750 |" in comparison_table(reports, "test")


def test_picture_cells_keep_the_aspect_and_the_grid_has_every_row() -> None:
    from PIL import Image

    from loupe_tools.reference_picture import CELL, fit, grid

    wide = fit(Image.new("RGB", (1000, 100)))
    assert wide.width == CELL[0] and wide.height == 26
    rows = [[fit(Image.new("RGB", (50, 80), "red"))] * 4 for _ in range(2)]
    picture = grid(rows, ["a", "b", "c", "d"], ["r1", "r2"])
    assert picture.height > 2 * CELL[1] and picture.width > 4 * CELL[0]

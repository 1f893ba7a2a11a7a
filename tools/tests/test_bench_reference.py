"""The reference-scoring benchmark's own pieces: generated vectors, the faiss side, the table."""

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

"""Benchmark: Loupe's golden-sample scoring against faiss-cpu's exact inner-product index, in one script, on the
same vectors.

Per query image, all feature layers: Loupe's ``Memory::score`` (blocked SGEMM nearest-neighbour search on both
cores, ``loupe bench-reference``) against ``faiss.IndexFlatIP.search(k=1)`` per layer (faiss's own threads), on
the same L2-normalised memory rows (Loupe writes its coreset-subsampled memories so faiss searches the very same
rows). Also checks that both find the same largest inner products. Prints a Markdown table: rows, memory, time
and the ratio Loupe / faiss (below 1 = Loupe faster).

    python -m loupe_tools.bench_reference --loupe target/release/loupe --size dapo --out target/bench-ref
    python -m loupe_tools.bench_reference --loupe target/release/loupe --size default --out target/bench-ref \
        --references '../shared/data/mt/magnetic_tile/good/exp[1-4]*' --queries '../shared/data/mt/magnetic_tile/good/exp5*'

``--size dapo``: DAPO's real size, generated vectors: 4 layers, a 37 x 37 grid (1369 patches per image), dim 768,
16 reference images (21904 memory rows per layer). ``--size default``: the embedded default model's features of
real images (Loupe encodes them: 4 layers, 20 x 20 grid, dim 64), 16 references spread over the given list.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .bench import median_ms

DAPO = {"layers": 4, "cells": 37 * 37, "dim": 768, "references": 16}


def generated_vectors(layers: int, cells: int, dim: int, references: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Vectors shaped like a backbone's patch features: per layer, ``references`` images of ``cells`` patches that
    share a few hundred "normal" directions with noise (so nearest neighbours are meaningful), and one query image
    drawn the same way; float32, not normalised."""
    rng = np.random.default_rng(seed)
    queries = np.empty((layers, cells, dim), np.float32)
    memory = np.empty((layers, references * cells, dim), np.float32)
    for layer in range(layers):
        centres = rng.standard_normal((256, dim)).astype(np.float32)
        pick = rng.integers(0, len(centres), size=references * cells)
        memory[layer] = centres[pick] + 0.5 * rng.standard_normal((references * cells, dim)).astype(np.float32)
        pick = rng.integers(0, len(centres), size=cells)
        queries[layer] = centres[pick] + 0.5 * rng.standard_normal((cells, dim)).astype(np.float32)
    owners = np.repeat(np.arange(references, dtype=np.uint32), cells)
    return {"queries": queries, "memory": memory, "memory_owners": owners}


def run_loupe(loupe: Path, vectors: Path, fractions: Sequence[float], repeat: int, write: Path) -> dict[str, object]:
    """Runs ``loupe bench-reference`` and returns its JSON report."""
    cmd = [str(loupe), "bench-reference", "--vectors", str(vectors), "--repeat", str(repeat), "--write", str(write)]
    cmd += ["--fractions", ",".join(str(f) for f in fractions)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report: dict[str, object] = json.loads(out.stdout)
    return report


def faiss_ms(queries: np.ndarray, memories: Sequence[np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    """Median milliseconds of searching every layer's queries in its own ``IndexFlatIP`` (built outside the
    timing), and the largest inner products found, ``[layers, queries]``."""
    import faiss

    indexes = []
    for rows in memories:
        index = faiss.IndexFlatIP(rows.shape[1])
        index.add(np.ascontiguousarray(rows, dtype=np.float32))
        indexes.append(index)
    best = np.empty(queries.shape[:2], np.float32)

    def search() -> None:
        for layer, index in enumerate(indexes):
            distances, _ = index.search(np.ascontiguousarray(queries[layer]), 1)
            best[layer] = distances[:, 0]

    ms = median_ms(search, repeat)  # its warm-up run fills `best`
    return ms, best.copy()


def markdown(report: dict, faiss_results: Sequence[tuple[float, float]], threads: int) -> str:
    """The comparison table: one row per coreset fraction."""
    lines = [
        f"{report['layers']} layers, {report['queries']} query patches, dim {report['dim']}, "
        f"{report['memory_rows']} memory rows per layer before the coreset; {threads} threads each; median ms per "
        "query image (all layers)",
        "",
        "| coreset fraction | rows per layer | memory (MB) | Loupe (ms) | faiss-cpu IndexFlatIP (ms) | Loupe / faiss "
        "| coreset build (s) | max abs difference of the maxima |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f, (ms, diff) in zip(report["fractions"], faiss_results):
        lines.append(
            f"| {f['fraction']} | {f['rows_per_layer'][0]} | {f['memory_bytes'] / 1e6:.1f} | {f['median_ms']:.1f} "
            f"| {ms:.1f} | {f['median_ms'] / ms:.2f} | {f['coreset_ms'] / 1e3:.2f} | {diff:.1e} |"
        )
    return "\n".join(lines)


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loupe", type=Path, required=True, help="the loupe binary (a release build)")
    p.add_argument("--size", choices=["dapo", "default"], required=True)
    p.add_argument("--out", type=Path, required=True, help="working folder (vectors, Loupe's memories)")
    p.add_argument("--references", nargs="+", default=[], help="--size default: reference images or patterns")
    p.add_argument("--queries", nargs="+", default=[], help="--size default: query images (the first is timed)")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--fractions", default="1,0.25,0.1")
    p.add_argument("--repeat", type=int, default=5)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parse_args(argv)
    import faiss
    from safetensors.numpy import load_file, save_file

    args.out.mkdir(parents=True, exist_ok=True)
    vectors = args.out / f"vectors-{args.size}.safetensors"
    if args.size == "dapo":
        save_file(generated_vectors(**DAPO), str(vectors))
    else:
        cmd = [str(args.loupe), "bench-reference", "--encode", "--vectors", str(vectors), "--queries", *args.queries]
        refs = sorted({str(p) for pattern in args.references for p in _expand(pattern)})
        if len(refs) < args.shots:
            raise SystemExit(f"--references: {len(refs)} images, fewer than --shots {args.shots}")
        picked = [refs[i * len(refs) // args.shots] for i in range(args.shots)]
        subprocess.run(cmd + ["--references", *picked], check=True)
    fractions = [float(f) for f in args.fractions.split(",")]
    loupe = run_loupe(args.loupe, vectors, fractions, args.repeat, args.out)
    threads = int(loupe["threads"])  # type: ignore[arg-type]
    faiss.omp_set_num_threads(threads)
    results = []
    for f in loupe["fractions"]:  # type: ignore[attr-defined]
        written = load_file(f["file"])
        memories = [written[f"memory.{layer}"] for layer in range(int(loupe["layers"]))]  # type: ignore[arg-type]
        ms, best = faiss_ms(written["queries"], memories, args.repeat)
        results.append((ms, float(np.abs(best - written["maxima"]).max())))
    print(markdown(loupe, results, threads))


def _expand(pattern: str) -> list[Path]:
    """A folder's image files, a file, or a glob pattern's matches."""
    path = Path(pattern)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
    if path.is_file():
        return [path]
    return sorted(Path().glob(pattern)) if not path.is_absolute() else sorted(Path("/").glob(pattern.lstrip("/")))


if __name__ == "__main__":
    main()

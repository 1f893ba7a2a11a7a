"""Loupe under Ray Data: inspect folders of images on a pool of workers, writing what `loupe inspect` writes.

Each worker is a Ray actor holding one `loupe.Engine` (loaded once, reused for every image it gets); the driver
lists the images as `loupe inspect` does (folders searched recursively, sorted; same-named files get `-2`, `-3`
stems) and Ray Data hands them out in batches. Per image the four files of `loupe inspect` land in `--out`:
`<stem>.json`, `<stem>_heatmap.png`, `<stem>_mask.png`, `<stem>_overlay.png`, written by the same Rust code.

    python examples/python/ray_inspect.py /data/line3/2026-11 --out line3-out --workers 8
    python examples/python/ray_inspect.py tests/fixtures/mvtec-mini/{blowhole,crack,uneven,good} \
        --check --workers 2 --cli target/release/loupe

`--check` also runs the `loupe` CLI on the same inputs and options and compares every output file: the JSON
documents must be equal and the PNGs byte-identical (exit 1 otherwise). Text-only and golden-sample scoring (a
profile) are per-image and so independent of how images are split among workers; mutual scoring compares an image
with the ones before it in one stream, which a pool of workers does not have, so it is not offered here.

Ray starts a local cluster when none is running (`ray.init()`); on a real cluster set `RAY_ADDRESS`. See
`docs/scale-out.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def collect_images(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders expanded recursively in sorted order: the list and the order `loupe inspect` uses."""
    out: list[str] = []

    def walk(folder: str) -> None:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                walk(path)
            elif Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                out.append(path)

    for given in inputs:
        if os.path.isdir(given):
            walk(given)
        elif os.path.exists(given):
            out.append(given)
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    return out


def unique_stems(paths: Sequence[str]) -> list[str]:
    """`part`, `part-2`, ... so same-named images in different folders do not overwrite each other (as the CLI)."""
    used: set[str] = set()
    stems: list[str] = []
    for path in paths:
        stem = Path(path).stem or "image"
        name, n = stem, 2
        while name in used:
            name, n = f"{stem}-{n}", n + 1
        used.add(name)
        stems.append(name)
    return stems


class Inspector:
    """A Ray Data actor: one engine per worker, the four outputs per image, a summary row back to the driver."""

    def __init__(self, out: str, engine_kwargs: dict[str, Any]) -> None:
        import loupe  # imported in the worker process

        self.loupe = loupe
        self.out = out
        config = engine_kwargs.pop("config", None)
        self.engine = loupe.Engine(config, **engine_kwargs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {"path": [], "score": [], "label": [], "error": []}
        for path, stem in zip(batch["path"], batch["stem"]):
            rows["path"].append(str(path))
            try:
                r = self.engine.inspect_file(str(path), out=self.out, stem=str(stem))
                rows["score"].append(float(r.pred_score))
                rows["label"].append("anomalous" if r.pred_label else "normal")
                rows["error"].append("")
            except self.loupe.LoupeError as e:  # one bad image fails alone, as in the CLI
                rows["score"].append(float("nan"))
                rows["label"].append("")
                rows["error"].append(str(e))
        return rows


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"config": args.config, "model": args.model, "bank": args.bank, "profile": args.profile}
    if args.defects:
        kwargs["defects"] = args.defects.split(",")
    return {k: v for k, v in kwargs.items() if v is not None}


def cli_flags(args: argparse.Namespace) -> list[str]:
    """The same engine options for the `loupe` CLI (`--check`)."""
    flags: list[str] = []
    for name in ("config", "model", "bank", "profile", "defects"):
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name}", str(value)]
    return flags


def run_ray(images: list[str], out: str, workers: int, kwargs: dict[str, Any], batch_size: int) -> list[dict[str, Any]]:
    import ray

    os.makedirs(out, exist_ok=True)
    if not ray.is_initialized():
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
    items = [{"path": p, "stem": s} for p, s in zip(images, unique_stems(images))]
    ds = ray.data.from_items(items, override_num_blocks=max(workers, 1) * 2)
    ds = ds.map_batches(
        Inspector,
        fn_constructor_kwargs={"out": out, "engine_kwargs": kwargs},
        batch_size=batch_size,
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
    )
    return sorted(ds.take_all(), key=lambda row: images.index(row["path"]))


def compare_outputs(expected: Path, got: Path) -> list[str]:
    """What differs between two output folders: missing files, unequal JSON documents, PNGs with other bytes."""
    problems: list[str] = []
    want = sorted(p.name for p in expected.iterdir())
    have = sorted(p.name for p in got.iterdir())
    if want != have:
        problems.append(f"files differ: only CLI {sorted(set(want) - set(have))}, only Ray {sorted(set(have) - set(want))}")
    for name in sorted(set(want) & set(have)):
        a, b = expected / name, got / name
        if name.endswith(".json"):
            if json.loads(a.read_text()) != json.loads(b.read_text()):
                problems.append(f"{name}: JSON differs")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name}: bytes differ")
    return problems


def iter_errors(rows: list[dict[str, Any]]) -> Iterator[str]:
    return (f"{row['path']}: {row['error']}" for row in rows if row["error"])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", help="output folder (default: loupe-ray-out; with --check a temporary folder)")
    p.add_argument("--workers", type=int, default=2, help="Ray workers, each with its own engine (default 2)")
    p.add_argument("--batch-size", type=int, default=4, help="images per Ray Data batch (default 4)")
    p.add_argument("--config", help="Loupe configuration file")
    p.add_argument("--model", help="model directory (default: the embedded model)")
    p.add_argument("--bank", help="prompt bank file")
    p.add_argument("--profile", help="product profile file")
    p.add_argument("--defects", help="defect words, comma-separated")
    p.add_argument("--check", action="store_true", help="also run the loupe CLI and require identical outputs")
    p.add_argument("--cli", default="target/release/loupe", help="the loupe CLI for --check")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    images = collect_images(args.inputs)
    if not images:
        p.error("no images found in the given paths")

    with tempfile.TemporaryDirectory(prefix="loupe-ray-") as tmp:
        out = args.out or (os.path.join(tmp, "ray") if args.check else "loupe-ray-out")
        rows = run_ray(images, out, args.workers, engine_kwargs(args), args.batch_size)
        errors = list(iter_errors(rows))
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        anomalous = sum(row["label"] == "anomalous" for row in rows)
        print(f"inspected {len(rows) - len(errors)} of {len(images)} images on {args.workers} Ray workers "
              f"({anomalous} anomalous, {len(errors)} failed); results in {out}")
        if not args.check:
            return 1 if errors else 0
        cli_out = os.path.join(tmp, "cli")
        done = subprocess.run([args.cli, "inspect", *args.inputs, *cli_flags(args), "--out", cli_out],
                              capture_output=True, text=True)
        if done.returncode not in (0, 1):
            print(f"error: {args.cli} failed ({done.returncode}): {done.stderr.strip()}", file=sys.stderr)
            return 1
        problems = compare_outputs(Path(cli_out), Path(out))
        for line in problems:
            print(f"differs: {line}", file=sys.stderr)
        files = len(list(Path(out).iterdir()))
        if problems:
            print(f"check FAILED: {len(problems)} differences between the CLI and {args.workers} Ray workers")
            return 1
        print(f"check passed: {files} files from {args.workers} Ray workers equal the CLI's "
              "(JSON documents equal, PNGs byte-identical)")
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the backbones and the whole pipeline, in one script, on the same files and settings.

Peers, each measured in its own process (so its peak memory is its own), one after another for every setting:
- Loupe with tract (``loupe bench``): backbone, post-processing, end to end (file decode to regions), images/s;
- Loupe with ONNX Runtime (``loupe bench --backbone ort-clip-onnx``, the ``loupe-ort-backbone`` plugin);
- ONNX Runtime alone (Python, ``InferenceSession.run`` of the same ``image_encoder.onnx`` on preprocessed input);
- the PyTorch reference (``--torch-weights``): ``encode_image``, and its whole pipeline at batch 1.
Settings: every ``--threads`` x ``--batches`` pair, ``--rounds`` times over (medians); with ``--int8``, the model's int8 encoder too (and the largest
anomaly-map difference from fp32, measured by Loupe on its own maps). Prints Markdown tables and ratios; ``--json``
keeps every number.

    python -m loupe_tools.bench --loupe target/release/loupe \\
        --ort-plugin target/release/libloupe_ort_backbone.so --model DIR --bank BANK [--torch-weights W] \\
        --images IMG... [--threads 1,2] [--batches 1,8] [--repeat 5] [--int8] [--json OUT]

ONNX Runtime's library for the plugin is this Python's ``onnxruntime`` package's (``--ort-library`` to choose).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

PEERS = ("loupe-tract", "loupe-ort", "ort", "torch")


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeat`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in megabytes (``ru_maxrss`` is in kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ort_library() -> Path:
    """``libonnxruntime.so.*`` of this Python's ``onnxruntime`` package."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    found = sorted(capi.glob("libonnxruntime.so*")) + sorted(capi.glob("onnxruntime.dll")) + sorted(capi.glob("libonnxruntime*.dylib"))
    if not found:
        raise FileNotFoundError(f"no ONNX Runtime shared library in {capi}")
    return found[0]


def batches_of(inputs: list[Any], batch: int, runs: int) -> list[list[Any]]:
    """``runs`` batches of ``batch`` items, cycling through ``inputs`` (as ``loupe bench`` does)."""
    return [[inputs[(r * batch + i) % len(inputs)] for i in range(batch)] for r in range(runs)]


def time_batches(fn: Callable[[Any], object], batches: list[Any], warmup: int) -> float:
    """Median milliseconds per item of ``fn`` over ``batches`` (the first ``warmup`` untimed)."""
    times = []
    for i, b in enumerate(batches):
        t = time.perf_counter()
        fn(b)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1e3 / len(b))
    return statistics.median(times)


def worker_ort(args: argparse.Namespace) -> dict[str, Any]:
    """ONNX Runtime alone on the encoder (``--int8``: the int8 one), preprocessed input, per image."""
    import numpy as np
    import onnxruntime as ort

    from .model_dir import read_model_json
    from .images import encoder_input

    info = read_model_json(args.model)
    file = info["files"]["image_encoder_int8" if args.int8 else "image_encoder"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(args.model / file), opts, providers=["CPUExecutionProvider"])
    inputs = [encoder_input(p, info)[0] for p in args.images]
    batches = [np.stack(b) for b in batches_of(inputs, args.batch, args.warmup + args.repeat)]
    ms = time_batches(lambda x: session.run(None, {"image": x}), batches, args.warmup)
    return {"backbone_ms": ms, "peak_rss_mb": peak_rss_mb()}


def worker_torch(args: argparse.Namespace) -> dict[str, Any]:
    """The PyTorch reference: ``encode_image`` per batch, and its whole pipeline (``analyse``) at batch 1."""
    import numpy as np
    import torch

    from .model_dir import read_model_json
    from .images import encoder_input
    from .reference import load_reference

    torch.set_num_threads(args.threads)
    ref = load_reference(args.model, args.torch_weights, args.bank)
    text = ref.text_features(ref.bank.words)
    info = read_model_json(args.model)
    inputs = [encoder_input(p, info)[0] for p in args.images]
    runs = args.warmup + args.repeat
    with torch.no_grad():
        batches = [torch.from_numpy(np.stack(b)) for b in batches_of(inputs, args.batch, runs)]
        backbone = time_batches(ref.model.encode_image, batches, args.warmup)
    out: dict[str, Any] = {"backbone_ms": backbone}
    if args.batch == 1:
        out["pipeline_ms"] = time_batches(lambda b: ref.analyse(b[0], text, 0.0), batches_of(inputs, 1, runs), args.warmup)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_loupe(args: argparse.Namespace, threads: int, batch: int, ort: bool, int8: bool) -> dict[str, Any]:
    """``loupe bench`` with these settings; its JSON report."""
    cmd = [str(args.loupe), "bench", "--repeat", str(args.repeat), "--warmup", str(args.warmup), "--batch", str(batch),
           "--threads", str(threads)]
    if not args.embedded:
        cmd += ["--model", str(args.model), "--prompts", str(args.bank)]
    env = dict(os.environ)
    if ort:
        cmd += ["--backbone", "ort-clip-onnx"]
        env["LOUPE_PLUGIN_PATH"] = str(args.ort_plugin)
        env["LOUPE_ORT_LIBRARY"] = str(args.ort_library)
    if int8:
        cmd += ["--precision", "int8", "--against-fp32"]
    out = subprocess.run(cmd + [str(p) for p in args.images], check=True, capture_output=True, text=True, env=env)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def run_worker(args: argparse.Namespace, peer: str, threads: int, batch: int, int8: bool) -> dict[str, Any]:
    """A Python peer in its own process; its JSON result."""
    cmd = [sys.executable, "-m", "loupe_tools.bench", "--worker", peer, "--model", str(args.model), "--bank", str(args.bank),
           "--threads", str(threads), "--batch", str(batch), "--repeat", str(args.repeat), "--warmup", str(args.warmup),
           "--images", *[str(p) for p in args.images]]
    if args.torch_weights:
        cmd += ["--torch-weights", str(args.torch_weights)]
    if int8:
        cmd.append("--int8")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every peer at every setting; one row per (precision, threads, batch)."""
    rows = []
    precisions = [False, True] if args.int8 else [False]
    for int8 in precisions:
        for threads in args.threads:
            for batch in args.batches:
                row: dict[str, Any] = {"precision": "int8" if int8 else "fp32", "threads": threads, "batch": batch}
                print(f"... {row}", file=sys.stderr, flush=True)
                row["loupe-tract"] = run_loupe(args, threads, batch, ort=False, int8=int8)
                if args.ort_plugin:
                    row["loupe-ort"] = run_loupe(args, threads, batch, ort=True, int8=int8)
                row["ort"] = run_worker(args, "ort", threads, batch, int8)
                if args.torch_weights and not int8:
                    row["torch"] = run_worker(args, "torch", threads, batch, int8)
                rows.append(row)
    return rows


def median_of(values: list[Any]) -> Any:
    """Leaf by leaf, the median of several rounds' reports of one setting (numbers), else the first value."""
    first = values[0]
    if all(v == first for v in values):
        return first
    if isinstance(first, dict):
        return {k: median_of([v[k] for v in values if isinstance(v, dict) and k in v]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(float(v) for v in values)
    return first


def measure_rounds(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--rounds`` whole passes over every peer and setting, one after another, so that each peer meets the same
    stretches of a noisy machine; every number is the median over the rounds."""
    rounds = [measure(args) for _ in range(args.rounds)]
    return [median_of([r[i] for r in rounds]) for i in range(len(rounds[0]))]


def _f(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _get(row: dict[str, Any], peer: str, *keys: str) -> Optional[float]:
    v: Any = row.get(peer)
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return None if v is None else float(v)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """``a / b``, or ``None`` when either is missing."""
    return None if a is None or b is None or b == 0 else a / b


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables: ms per image and memory per peer, then the ratios."""
    lines = [
        "| precision | threads | batch | backbone: Loupe tract | Loupe ORT | ORT alone | PyTorch | end to end: Loupe tract "
        "| Loupe ORT | PyTorch pipeline | images/s: tract | ORT | post-processing (ms) | peak MB: tract | Loupe ORT | ORT alone | PyTorch |",
        "| --- " * 19 + "|",
    ]
    for r in rows:
        cells = [r["precision"], str(r["threads"]), str(r["batch"]),
                 _f(_get(r, "loupe-tract", "backbone", "median_ms")), _f(_get(r, "loupe-ort", "backbone", "median_ms")),
                 _f(_get(r, "ort", "backbone_ms")), _f(_get(r, "torch", "backbone_ms")),
                 _f(_get(r, "loupe-tract", "end_to_end", "median_ms")), _f(_get(r, "loupe-ort", "end_to_end", "median_ms")),
                 _f(_get(r, "torch", "pipeline_ms")),
                 _f(_get(r, "loupe-tract", "images_per_s"), 2), _f(_get(r, "loupe-ort", "images_per_s"), 2),
                 _f(_get(r, "loupe-tract", "postprocess", "median_ms"), 2),
                 _f(_get(r, "loupe-tract", "peak_rss_mb"), 0), _f(_get(r, "loupe-ort", "peak_rss_mb"), 0),
                 _f(_get(r, "ort", "peak_rss_mb"), 0), _f(_get(r, "torch", "peak_rss_mb"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| precision | threads | batch | tract / ORT alone (backbone) | Loupe ORT end to end / ORT alone "
              "| tract / PyTorch (backbone) | post-processing share of tract's end to end | int8 map max diff (range) |",
              "| --- " * 8 + "|"]
    for r in rows:
        diff = (r.get("loupe-tract") or {}).get("against_fp32")
        diff_s = "-" if not diff else f"{diff['anomaly_map_max_abs']:.2e} (0..{diff['map_range']:g})"
        cells = [r["precision"], str(r["threads"]), str(r["batch"]),
                 _f(ratio(_get(r, "loupe-tract", "backbone", "median_ms"), _get(r, "ort", "backbone_ms")), 2),
                 _f(ratio(_get(r, "loupe-ort", "end_to_end", "median_ms"), _get(r, "ort", "backbone_ms")), 2),
                 _f(ratio(_get(r, "loupe-tract", "backbone", "median_ms"), _get(r, "torch", "backbone_ms")), 2),
                 _f(ratio(_get(r, "loupe-tract", "postprocess", "median_ms"), _get(r, "loupe-tract", "end_to_end", "median_ms")), 3),
                 diff_s]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speedups(rows: list[dict[str, Any]]) -> list[str]:
    """Thread scaling (images/s at the most threads over 1 thread, per batch) and int8 over fp32 speed-ups."""
    out = []
    by = {(r["precision"], r["threads"], r["batch"]): r for r in rows}
    threads = sorted({r["threads"] for r in rows})
    for (prec, t, b), r in sorted(by.items()):
        if t == threads[-1] and len(threads) > 1 and (prec, threads[0], b) in by:
            one = by[(prec, threads[0], b)]
            for peer in ("loupe-tract", "loupe-ort"):
                s = ratio(_get(r, peer, "images_per_s"), _get(one, peer, "images_per_s"))
                if s is not None:
                    out.append(f"- {peer} {prec} batch {b}: {t} threads give {s:.2f}x the images/s of {threads[0]}")
        if prec == "int8" and ("fp32", t, b) in by:
            base = by[("fp32", t, b)]
            for peer, keys in (("loupe-tract", ("backbone", "median_ms")), ("loupe-ort", ("backbone", "median_ms")), ("ort", ("backbone_ms",))):
                s = ratio(_get(base, peer, *keys), _get(r, peer, *keys))
                if s is not None:
                    out.append(f"- {peer} threads {t} batch {b}: int8 encoder {s:.2f}x faster than fp32")
    return out


def at_input_size(images: Sequence[Path], info: dict[str, Any], folder: Path) -> list[Path]:
    """Copies of ``images`` resized to the model's input size (PNG, RGB), in ``folder``."""
    from PIL import Image

    from .images import rgb8_at_input_size

    out = []
    for i, p in enumerate(images):
        q = folder / f"{i:03d}_{p.stem}.png"
        Image.fromarray(rgb8_at_input_size(p, info)).save(q)
        out.append(q)
    return out


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (also the workers')."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--loupe", type=Path, help="the loupe binary (a release build)")
    p.add_argument("--ort-plugin", type=Path, help="libloupe_ort_backbone.so (omit to leave Loupe with ONNX Runtime out)")
    p.add_argument("--ort-library", type=Path, help="ONNX Runtime library for the plugin (default: this Python's onnxruntime's)")
    p.add_argument("--model", type=Path, required=True, help="Loupe model directory")
    p.add_argument("--bank", type=Path, required=True, help="its prompt bank")
    p.add_argument("--torch-weights", type=Path, help="reference weights of the same model (omit to leave PyTorch out)")
    p.add_argument("--images", type=Path, nargs="+", required=True)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per setting")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1, help="whole passes, alternating the peers; medians over them")
    p.add_argument("--int8", action="store_true", help="also the model's int8 encoder (python -m loupe_tools.quantize)")
    p.add_argument("--embedded", action="store_true", help="Loupe runs its embedded default model (the same files as --model)")
    p.add_argument("--at-input-size", action="store_true",
                   help="first resize the images to the model's input size (PIL bicubic, into a temporary folder), so "
                        "that no peer resamples and all see the same pixels")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--worker", choices=["ort", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None:
        if args.loupe is None:
            p.error("--loupe is required")
        args.threads = [int(x) for x in args.threads.split(",")]
        args.batches = [int(x) for x in args.batches.split(",")]
        if args.ort_plugin and args.ort_library is None:
            args.ort_library = ort_library()
    else:
        args.threads = int(args.threads)
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    if args.worker == "ort":
        print(json.dumps(worker_ort(args)))
        return
    if args.worker == "torch":
        print(json.dumps(worker_torch(args)))
        return
    info = json.loads((args.model / "loupe-model.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        if args.at_input_size:
            args.images = at_input_size(args.images, info, Path(tmp))
        rows = measure_rounds(args)
    print(f"model: {info['name']} ({info['architecture']}, input {info['image']['input_size']}), {len(args.images)} image(s), "
          f"{args.repeat} timed runs per setting, {args.rounds} round(s), median ms per image")
    print()
    print(markdown(rows))
    print()
    print("\n".join(speedups(rows)))
    if args.json:
        args.json.write_text(json.dumps({"model": info["name"], "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

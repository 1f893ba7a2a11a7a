"""Benchmark: Loupe (tract) against onnxruntime and the PyTorch reference, in one script, on the same files.

Times per image, single-threaded everywhere (tract runs on one thread; onnxruntime and torch are pinned to one):
- backbone: the image encoder alone (Loupe's ``ClipOnnxBackbone`` incl. preprocessing; onnxruntime on the same
  ``image_encoder.onnx``; the PyTorch module's ``encode_image``);
- pipeline: image -> scores, maps (Loupe: ``Engine::inspect_one`` incl. regions; reference: preprocess +
  ``DapoReference.analyse``).
Prints a Markdown table with the ratios (Loupe time / peer time; below 1 = Loupe faster).

    python -m loupe_tools.bench --loupe target/release/loupe --model DIR --torch-weights W --bank B \
        --images IMG... [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional, Sequence


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


def run_loupe(loupe: Path, model: Path, bank: Path, images: Sequence[Path], repeat: int) -> dict[str, object]:
    """Runs ``loupe bench`` and returns its JSON report."""
    cmd = [str(loupe), "bench", "--model", str(model), "--prompts", str(bank), "--repeat", str(repeat)]
    out = subprocess.run(cmd + [str(p) for p in images], check=True, capture_output=True, text=True)
    report: dict[str, object] = json.loads(out.stdout)
    return report


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loupe", type=Path, required=True, help="the loupe binary (a release build)")
    p.add_argument("--model", type=Path, required=True, help="Loupe model directory")
    p.add_argument("--torch-weights", type=Path, required=True, help="reference weights of the same model")
    p.add_argument("--bank", type=Path, required=True, help="prompt bank")
    p.add_argument("--images", type=Path, nargs="+", required=True, help="images at the model's input size")
    p.add_argument("--repeat", type=int, default=5)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    import torch

    from .reference import load_reference

    torch.set_num_threads(1)
    loupe = run_loupe(args.loupe, args.model, args.bank, args.images, args.repeat)

    ref = load_reference(args.model, args.torch_weights, args.bank)
    text = ref.text_features(ref.bank.words)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    info = json.loads((args.model / "loupe-model.json").read_text())
    session = ort.InferenceSession(str(args.model / info["files"]["image_encoder"]), opts, providers=["CPUExecutionProvider"])

    ort_ms, torch_backbone_ms, torch_pipeline_ms = [], [], []
    for path in args.images:
        x = ref.preprocess(path)
        batch = x[None]
        ort_ms.append(median_ms(lambda: session.run(None, {"image": batch}), args.repeat))
        with torch.no_grad():
            tb = torch.from_numpy(batch)
            torch_backbone_ms.append(median_ms(lambda: ref.model.encode_image(tb), args.repeat))
        torch_pipeline_ms.append(median_ms(lambda: ref.analyse(ref.preprocess(path), text, 0.0), args.repeat))

    lb = float(loupe["backbone"]["median_ms"])  # type: ignore[index]
    lp = float(loupe["pipeline"]["median_ms"])  # type: ignore[index]
    o, tb_ms, tp_ms = float(np.median(ort_ms)), float(np.median(torch_backbone_ms)), float(np.median(torch_pipeline_ms))
    print(f"model: {info['name']} ({info['architecture']}, input {info['image']['input_size']}), "
          f"{len(args.images)} image(s) x {args.repeat} runs, 1 thread each, median ms per image")
    print()
    print("| stage | Loupe (tract) | onnxruntime | PyTorch reference | Loupe / onnxruntime | Loupe / PyTorch |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| backbone | {lb:.1f} | {o:.1f} | {tb_ms:.1f} | {lb / o:.2f} | {lb / tb_ms:.2f} |")
    print(f"| whole pipeline | {lp:.1f} | - | {tp_ms:.1f} | - | {lp / tp_ms:.2f} |")


if __name__ == "__main__":
    main()

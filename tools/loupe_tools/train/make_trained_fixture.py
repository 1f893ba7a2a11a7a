"""The trained parity fixture: a tiny model whose DAPO parts were optimised on real images, so the Rust parity
test covers weights that training produced (not only random ones).

    PYTHONPATH=tools python -m loupe_tools.train.make_trained_fixture [--out tests/fixtures/parity-trained]

Backbone: the ``tiny`` architecture with random weights (seed 0). Prompt optimisation (``train.optimize``) on the
committed ``tests/fixtures/mvtec-mini`` (13 Magnetic-Tile images with masks) for a few steps, then the same
outputs as ``loupe_tools.make_fixtures`` (reference computed from the PyTorch module) on procedural images.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from safetensors.numpy import save_file

from ..model_dir import share_files
from ..reference import DapoReference, compute_expected
from ..synth_images import write_images
from .dataset import defect_words, list_samples, preload
from .export_trained import export_trained
from .optimize import optimize
from .recipe import build_model

REPO = Path(__file__).resolve().parents[3]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "parity-trained"
DEFAULT_DATA = REPO / "tests" / "fixtures" / "mvtec-mini"
NOVEL_WORD = "burr"
SIGMA = 1.0


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (``argv``, or ``sys.argv`` when None)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.train.make_trained_fixture", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _readme(command: str, model_id: str, words: list[str], steps: int, log: list[str]) -> str:
    return f"""# Trained parity fixture (tiny, generated)

Made deterministically from the repository root with:

```
PYTHONPATH=tools python -m loupe_tools.train.make_trained_fixture{command}
```

- `model/`: Loupe model directory, architecture `tiny` (random backbone, seed 0) whose adapters and visual deep
  prompts were then trained by DAPO prompt optimisation (`loupe_tools.train.optimize`, {steps} steps, batch 4) on
  `tests/fixtures/mvtec-mini` (Magnetic-Tile images, see its README for the source and citation); model_id
  `{model_id}`.
- `bank.safetensors`: the trained hybrid prompts (10 groups), words {json.dumps(words)}, with the `text_features` cache.
- `images/`, `expected.safetensors`, `reference_weights.safetensors`: as in `tests/fixtures/parity` (procedural
  images; outputs of the PyTorch reference; extended vocabulary adds `{NOVEL_WORD}`; smoothing sigma {SIGMA}).
- Loss per step: {", ".join(log)}.
"""


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = build_model("tiny", args.seed)
    samples = list_samples(args.data)
    words = defect_words(samples)
    data = preload(samples, model.input_size[0], words)
    out: Path = args.out
    prompts = optimize(model, [data], words, out / "work", args.steps, batch=4, seed=args.seed, lr=5e-3)
    info, bank = export_trained(model, prompts, out, "tiny-dapo-trained-seed0",
                                "tiny random backbone + DAPO prompts trained on mvtec-mini")
    log_path = out / "work" / "checkpoints" / "prompts-loss.csv"
    losses = [line.split(",")[3] for line in log_path.read_text(encoding="utf-8").splitlines()[1:]]
    table = model.token_embedding.weight.detach().numpy().copy()
    ref = DapoReference(model, info, bank, table)
    paths = write_images(out / "images", info["image"]["input_size"][0], args.seed)
    tensors, meta = compute_expected(ref, paths, words, [NOVEL_WORD], SIGMA)
    save_file(tensors, str(out / "expected.safetensors"), metadata=meta)
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "" if not shown else " " + shlex.join(shown)
    (out / "README.md").write_text(_readme(command, info["model_id"], words, args.steps, [f"{float(x):.3f}" for x in losses]),
                                   encoding="utf-8")
    shutil.rmtree(out / "work")  # checkpoints are not part of the fixture
    share_files(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

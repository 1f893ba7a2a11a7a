"""Write a parity-fixture folder (docs/model-format.md, section 4) in one deterministic command.

Default: the tiny model into ``<repo>/tests/fixtures/parity/``::

    PYTHONPATH=tools python -m loupe_tools.make_fixtures     # --arch tiny --seed 0

Larger architectures (used by ``tools/parity_large.sh``)::

    python -m loupe_tools.make_fixtures --out /tmp/parity/ViT-B-16 --arch ViT-B-16 --groups 10 --images gray_hole,rgb

Layout written::

    model/                      Loupe model directory (generated weights)
    bank.safetensors            prompt bank (generated), with the text_features cache
    images/*.png                procedural 8-bit images at the model's input size
    expected.safetensors        PyTorch reference outputs
    reference_weights.safetensors  the PyTorch module's weights minus the token embedding (reference input)
    README.md                   how it was made
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional, Sequence

from safetensors.numpy import save_file

from .bank import random_bank, write_bank
from .export import export_from_args, parse_args as parse_export_args
from .model_dir import share_files
from .reference import DapoReference, compute_expected
from .synth_images import IMAGE_KINDS, write_images

DEFAULT_WORDS = ("hole", "scratch", "crack")
DEFAULT_NOVEL = "burr"
REFERENCE_WEIGHTS = "reference_weights.safetensors"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity"


def _readme(command: str, args: argparse.Namespace, model_id: str) -> str:
    return f"""# Parity fixtures ({args.arch}, generated)

Made by the Python tools (`tools/loupe_tools`), deterministically, from the repository root with:

```
PYTHONPATH=tools python -m loupe_tools.make_fixtures{command}
```

Everything here is **generated**: the model's weights are random (seed {args.seed}, CLIP-like scales), not a
trained CLIP; the prompt bank is random (seed {args.seed}, {args.groups} groups, n_ctx {args.n_ctx}); the images are
procedural (no external data). Formats: `docs/model-format.md`.

- `model/`: Loupe model directory, architecture `{args.arch}`, model_id `{model_id}`.
- `bank.safetensors`: prompt bank for it, words {json.dumps([w.strip() for w in args.words.split(',') if w.strip()])}, with the `text_features` cache.
- `images/`: 8-bit PNGs at the model's input size: `gray` (L), `rgb` (RGB), `rgba` (RGBA, varying alpha that
  must be dropped), `gray_hole` (L, texture with a dark painted blob).
- `expected.safetensors`: outputs of the PyTorch reference (`loupe_tools.reference`), computed from the PyTorch
  module (not from the ONNX files); vocabulary = the bank's words, extended vocabulary adds `{args.novel_word}`;
  `anomaly_map_smoothed` uses sigma {args.sigma}. `s/global` and `s/patch_tokens` are the raw (not normalised)
  encoder outputs; all maps are at the model's input size.
- `reference_weights.safetensors`: the PyTorch module's weights except the token embedding (which is in
  `model/token_embedding.safetensors`); lets `python -m loupe_tools.reference` recompute `expected.safetensors`.
"""


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loupe_tools.make_fixtures", description="Write a parity fixture folder.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: <repo>/tests/fixtures/parity")
    p.add_argument("--arch", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", type=int, help="default: the architecture's")
    p.add_argument("--visual-prompts", type=int)
    p.add_argument("--text-deep-prompts", type=int)
    p.add_argument("--feature-layers")
    p.add_argument("--groups", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=5)
    p.add_argument("--words", default=",".join(DEFAULT_WORDS))
    p.add_argument("--novel-word", default=DEFAULT_NOVEL)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--images", default=",".join(IMAGE_KINDS), help=f"subset of {','.join(IMAGE_KINDS)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-verify", action="store_true", help="skip the export's onnxruntime check")
    return p.parse_args(argv)


def make_fixtures(args: argparse.Namespace, command: str) -> None:
    """Write the whole fixture folder described by ``args``."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    export_argv = ["--out", str(out / "model"), "--random-init", str(args.seed), "--arch", args.arch,
                   "--torch-weights", str(out / REFERENCE_WEIGHTS), "--threads", str(args.threads)]
    for flag, value in (("--input-size", args.input_size), ("--visual-prompts", args.visual_prompts),
                        ("--text-deep-prompts", args.text_deep_prompts), ("--feature-layers", args.feature_layers)):
        if value is not None:
            export_argv += [flag, str(value)]
    if args.no_verify:
        export_argv.append("--no-verify")
    built, info = export_from_args(parse_export_args(export_argv))
    model = built.model
    timings["export"] = time.perf_counter() - t

    t = time.perf_counter()
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    arch = model.arch
    bank = random_bank(
        args.seed, groups=args.groups, n_ctx=args.n_ctx, text_width=arch.text_width, text_layers=arch.text_layers,
        n_deep=model.text_deep_prompts, words=words, model_id=info["model_id"], embed_dim=arch.embed_dim,
    )
    ref = DapoReference(model, info, bank, model.token_embedding.weight.detach().numpy().copy())
    bank.text_features = ref.text_features(words)
    write_bank(out / "bank.safetensors", bank)
    timings["bank"] = time.perf_counter() - t

    t = time.perf_counter()
    kinds = tuple(k.strip() for k in args.images.split(",") if k.strip())
    unknown = set(kinds) - set(IMAGE_KINDS)
    if unknown:
        raise SystemExit(f"unknown image kinds {sorted(unknown)}; known: {IMAGE_KINDS}")
    size = info["image"]["input_size"][0]
    paths = write_images(out / "images", size, args.seed, kinds)
    tensors, meta = compute_expected(ref, paths, words, [args.novel_word], args.sigma)
    save_file(tensors, str(out / "expected.safetensors"), metadata=meta)
    timings["reference"] = time.perf_counter() - t

    (out / "README.md").write_text(_readme(command, args, info["model_id"]), encoding="utf-8")
    share_files(out)
    print(f"wrote {out}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    import shlex
    import sys

    import torch

    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "" if not shown else " " + shlex.join(shown)
    make_fixtures(args, command)


if __name__ == "__main__":
    main()

"""Import a checkpoint trained with the DAPO authors' code into a Loupe model directory and prompt bank.

Usage::

    python -m loupe_tools.import_dapo --checkpoint epoch_15.pth --open-clip ViT-L-14-336-quickgelu \
        [--checkpoint-clip ViT-L-14-336.pt] --defects hole,scratch,crack --out DIR \
        [--image-size 518] [--feature-layers 6,12,18,24] [--no-verify]

The authors' code (``boschresearch/defect-aware-prompt-optimization``) saves, from ``train.py``, a ``torch.save``
dict with the state dicts ``prompt_learner``, ``visual_prompt`` and ``linear_adapter`` (or the same under
``*_state_dict`` keys, which their ``test.py`` reads first). Their CLIP weights are not in it: they are the
open_clip checkpoint they trained on (``--checkpoint-clip``; without it, open_clip's ``openai`` weights, which
needs a network). The result runs their computation (``text.prompt_convention = "dapo-authors"``, see
``clip_model.TextConvention``) and records where it came from: the checkpoint's SHA-256 and the
hyper-parameters found in it. ``docs/authors-training.md`` walks through the whole path.

Writes ``DIR/model/`` (Loupe model directory) and ``DIR/bank.safetensors`` (with the ``text_features`` cache).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from .archs import ARCHS, get_arch
from .bank import AUTHORS_CONVENTION, PromptBank, write_bank
from .clip_model import LoupeClip
from .export import infer_arch, verify_onnx, write_model_dir
from .model_dir import share_files
from .weights import load_open_clip_state_dict, read_checkpoint

# The authors' prompt learner lays out "X X X X X flawless object" / "X X X X X <state> anomaly object": the
# learned tokens stand where Loupe puts its context vectors, with the same suffixes as Loupe's defaults.
PARTS = ("prompt_learner", "visual_prompt", "linear_adapter")
# Their text transformer hard-codes 4 deep prompt tokens (`learnable_token_length = 4`).
AUTHORS_DEEP_TOKENS = 4
# Prompt-learner tensors their forward pass never uses (an instance-conditioning net left from CoCoOp).
IGNORED_PREFIXES = ("meta_net.",)
DEFAULT_FEATURE_LAYERS = "6,12,18,24"  # their train.py / test.py default
DEFAULT_IMAGE_SIZE = 518  # their default


class CheckpointError(ValueError):
    """A checkpoint that does not fit the named CLIP, or not the authors' format; the message names the key."""


@dataclass
class AuthorsParts:
    """The learnable parts of an authors'-code checkpoint, as Loupe tensors."""

    normal_context: np.ndarray  # [prompt_count, n_normal, text_width]
    defect_context: np.ndarray  # [prompt_count, n_abnormal, text_width]
    text_deep_prompts: np.ndarray  # [text_depth, 4, text_width]
    visual_deep_prompts: torch.Tensor  # [layers, n, width]
    adapters: list[tuple[torch.Tensor, torch.Tensor]]  # per feature layer: (weight [D, width], bias [D])
    hyper_parameters: dict[str, Any]


def _part(ckpt: Mapping[str, Any], name: str) -> Mapping[str, torch.Tensor]:
    """One learnable part under its ``train.py`` key or its ``*_state_dict`` key (``trainable_adapter`` for the
    adapter in ``test.py``'s spelling)."""
    keys = [name, f"{name}_state_dict"]
    if name == "linear_adapter":
        keys.append("trainable_adapter_state_dict")
    for key in keys:
        value = ckpt.get(key)
        if value:
            if not isinstance(value, Mapping):
                raise CheckpointError(f"checkpoint key `{key}`: expected a state dict, found {type(value).__name__}")
            return value
    raise CheckpointError(f"checkpoint has none of the keys {keys} (found {sorted(ckpt)})")


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape) if hasattr(t, "shape") else ()


def _expect_shape(part: str, key: str, tensor: Any, want: tuple[int, ...]) -> None:
    if _shape(tensor) != want:
        raise CheckpointError(f"`{part}.{key}`: expected shape {list(want)} for this CLIP, found {list(_shape(tensor))}")


def parse_parts(ckpt: Mapping[str, Any], model: LoupeClip) -> AuthorsParts:
    """Check every tensor of the three parts against ``model``'s architecture and convert them.

    ``model`` gives the CLIP's widths, layers and feature layers; refused: a missing or unknown key, a shape that
    does not fit, a deep-prompt count other than their code's 4, visual prompts on fewer blocks than the tower has.
    """
    arch = model.arch
    prompt = dict(_part(ckpt, "prompt_learner"))
    visual = dict(_part(ckpt, "visual_prompt"))
    adapter = dict(_part(ckpt, "linear_adapter"))
    tw = arch.text_width

    # Prompt learner: contexts, per-block deep text prompts, the unused meta net.
    for key in ("learnable_normal_tokens", "learnable_abnormal_tokens"):
        if key not in prompt:
            raise CheckpointError(f"`prompt_learner.{key}` missing")
    normal, abnormal = prompt["learnable_normal_tokens"], prompt["learnable_abnormal_tokens"]
    if len(_shape(normal)) != 3 or _shape(normal)[2] != tw:
        raise CheckpointError(f"`prompt_learner.learnable_normal_tokens`: expected shape [prompt_count, n, {tw}], found {list(_shape(normal))}")
    pc = _shape(normal)[0]
    if len(_shape(abnormal)) != 3 or _shape(abnormal)[0] != pc or _shape(abnormal)[2] != tw:
        raise CheckpointError(
            f"`prompt_learner.learnable_abnormal_tokens`: expected shape [{pc}, n, {tw}], found {list(_shape(abnormal))}"
        )
    if _shape(abnormal)[1] != _shape(normal)[1]:
        raise CheckpointError(
            f"`prompt_learner`: normal and abnormal token counts differ ({_shape(normal)[1]} vs {_shape(abnormal)[1]}); "
            "Loupe's banks use one context length"
        )
    depth = 0
    while f"learnable_layer_tokens.{depth}" in prompt:
        depth += 1
    if depth == 0:
        raise CheckpointError("`prompt_learner.learnable_layer_tokens.0` missing (their text tower needs deep prompts)")
    if depth > arch.text_layers:
        raise CheckpointError(f"`prompt_learner.learnable_layer_tokens.{depth - 1}`: {depth} deep-prompt blocks, the text tower has {arch.text_layers}")
    deep = []
    for i in range(depth):
        key = f"learnable_layer_tokens.{i}"
        _expect_shape("prompt_learner", key, prompt[key], (AUTHORS_DEEP_TOKENS, tw))
        deep.append(prompt[key].detach().float().numpy())
    known = {"learnable_normal_tokens", "learnable_abnormal_tokens"} | {f"learnable_layer_tokens.{i}" for i in range(depth)}
    unknown = [k for k in prompt if k not in known and not k.startswith(IGNORED_PREFIXES)]
    if unknown:
        raise CheckpointError(f"`prompt_learner`: unknown keys {unknown}")

    # Visual prompts: one set per block of the image tower (their loop indexes them by block).
    if "learnable_visual_tokens" not in visual:
        raise CheckpointError("`visual_prompt.learnable_visual_tokens` missing")
    vt = visual["learnable_visual_tokens"]
    if len(_shape(vt)) != 3 or _shape(vt)[0] != arch.layers or _shape(vt)[2] != arch.width:
        raise CheckpointError(
            f"`visual_prompt.learnable_visual_tokens`: expected shape [{arch.layers}, n, {arch.width}], found {list(_shape(vt))}"
        )
    unknown = [k for k in visual if k != "learnable_visual_tokens"]
    if unknown:
        raise CheckpointError(f"`visual_prompt`: unknown keys {unknown}")

    # Linear adapter: one Linear(width, embed_dim) per feature layer.
    k = len(model.visual.feature_layers)
    adapters = []
    for j in range(k):
        for leaf, want in (("weight", (arch.embed_dim, arch.width)), ("bias", (arch.embed_dim,))):
            key = f"fc.{j}.{leaf}"
            if key not in adapter:
                raise CheckpointError(f"`linear_adapter.{key}` missing ({k} feature layers {list(model.visual.feature_layers)})")
            _expect_shape("linear_adapter", key, adapter[key], want)
        adapters.append((adapter[f"fc.{j}.weight"].detach().float(), adapter[f"fc.{j}.bias"].detach().float()))
    unknown = [key for key in adapter if key not in {f"fc.{j}.{leaf}" for j in range(k) for leaf in ("weight", "bias")}]
    if unknown:
        raise CheckpointError(f"`linear_adapter`: unknown keys {unknown} (more adapters than feature layers {list(model.visual.feature_layers)}?)")

    hp = {
        "prompt_count": pc,
        "normal_token_count": int(_shape(normal)[1]),
        "abnormal_token_count": int(_shape(abnormal)[1]),
        "text_depth": depth,
        "learnable_token_length": AUTHORS_DEEP_TOKENS,
        "visual_depth": int(_shape(vt)[0]),
        "visual_tokens": int(_shape(vt)[1]),
        "adapters": k,
    }
    if "epoch" in ckpt and isinstance(ckpt["epoch"], (int, float)):
        hp["epoch"] = int(ckpt["epoch"])
    return AuthorsParts(
        normal_context=normal.detach().float().numpy(),
        defect_context=abnormal.detach().float().numpy(),
        text_deep_prompts=np.stack(deep).astype(np.float32),
        visual_deep_prompts=vt.detach().float(),
        adapters=adapters,
        hyper_parameters=hp,
    )


def read_authors_checkpoint(path: Path) -> Mapping[str, Any]:
    """``torch.load`` of an authors'-code checkpoint (tensors and plain values only)."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report what torch said, with the file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict with {list(PARTS)}, found {type(obj).__name__}")
    return obj


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def clip_state(open_clip_name: str, checkpoint_clip: Optional[Path]) -> dict[str, torch.Tensor]:
    """The CLIP weights the authors trained on: a local file, or open_clip's ``openai`` weights (downloads)."""
    if checkpoint_clip is not None:
        return read_checkpoint(checkpoint_clip)
    import open_clip

    oc = open_clip.create_model(open_clip_name, pretrained="openai")
    return {k: v.detach() for k, v in oc.state_dict().items()}


def clip_arch(open_clip_name: str, state: Mapping[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    """The named architecture (heads as published), checked against the state dict's shapes."""
    quick_gelu = open_clip_name.endswith("-quickgelu") or open_clip_name.removesuffix("-quickgelu") in ARCHS
    inferred = infer_arch(dict(state), open_clip_name, quick_gelu)
    if open_clip_name.removesuffix("-quickgelu") not in ARCHS:
        return inferred
    named = get_arch(open_clip_name)
    keep = ("name", "heads", "text_heads", "default_input_size", "default_feature_layers", "default_visual_prompts",
            "default_text_deep_prompts", "quick_gelu")
    if replace(inferred, **{f: getattr(named, f) for f in keep}) != named:
        raise CheckpointError(f"the CLIP weights do not have the shapes of {open_clip_name}: {inferred} vs {named}")
    return named


def build_imported(
    ckpt: Mapping[str, Any], state: Mapping[str, torch.Tensor], open_clip_name: str, image_size: int, feature_layers: Sequence[int]
) -> tuple[LoupeClip, AuthorsParts]:
    """The Loupe module computing what the authors' code computes with these weights, at ``image_size``."""
    arch = clip_arch(open_clip_name, state)
    # Only its shapes are read (parse_parts): on the meta device it holds no weights (1.7 GB for ViT-L/14).
    with torch.device("meta"):
        probe = LoupeClip(arch, tuple(feature_layers), patch_features="adapter")
    parts = parse_parts(ckpt, probe)
    hp = parts.hyper_parameters
    model = LoupeClip(
        arch,
        tuple(feature_layers),
        visual_prompts=hp["visual_tokens"],
        text_deep_prompts=AUTHORS_DEEP_TOKENS,
        patch_features="adapter",
        text_convention="dapo-authors",
        text_deep_layers=hp["text_depth"],
    )
    load_open_clip_state_dict(model, state)
    with torch.no_grad():
        assert model.visual.deep_prompts is not None
        model.visual.deep_prompts.copy_(parts.visual_deep_prompts)
        for j, (w, b) in enumerate(parts.adapters):
            model.visual.adapters[j].weight.copy_(w)
            model.visual.adapters[j].bias.copy_(b)
    # open_clip resizes with antialiasing when it loads a checkpoint for another image size (their models do).
    model.set_input_size((image_size, image_size), antialias=True)
    return model.eval(), parts


def import_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    """Run the import the command line describes; returns a summary (also printed)."""
    torch.backends.mha.set_fastpath_enabled(False)
    ckpt = read_authors_checkpoint(args.checkpoint)
    state = clip_state(args.open_clip, args.checkpoint_clip)
    layers = [int(x) for x in args.feature_layers.split(",")]
    model, parts = build_imported(ckpt, state, args.open_clip, args.image_size, layers)
    del state  # the module holds its own copy; the ONNX export that follows needs the memory (ViT-L/14 at 518)
    digest = sha256(args.checkpoint)
    hp = dict(parts.hyper_parameters, image_size=args.image_size, feature_layers=layers, open_clip=args.open_clip)
    clip_name = args.checkpoint_clip.name if args.checkpoint_clip else "openai"
    source = (
        f"DAPO authors' checkpoint {args.checkpoint.name} (sha256 {digest}) on open_clip {args.open_clip} ({clip_name}), "
        "imported by loupe_tools.import_dapo"
    )
    model_dir = args.out / "model"
    info = write_model_dir(model, model_dir, args.name or f"{args.open_clip}-dapo-{args.checkpoint.stem}", source)
    words = [w.strip() for w in args.defects.split(",") if w.strip()]
    if not words:
        raise CheckpointError("--defects: give at least one defect word")
    bank = PromptBank(
        normal_context=parts.normal_context,
        defect_context=parts.defect_context,
        text_deep_prompts=parts.text_deep_prompts,
        words=words,
        model_id=info["model_id"],
        embed_dim=info["embed_dim"],
        name=f"DAPO authors' prompts from {args.checkpoint.name}",
        prompt_convention=AUTHORS_CONVENTION,
        extra_metadata={
            "source_checkpoint": args.checkpoint.name,
            "source_sha256": digest,
            "authors_hyper_parameters": json.dumps(hp, sort_keys=True),
        },
    )
    from .onnx_text import OnnxTextFeatures

    bank.text_features = OnnxTextFeatures(model_dir).features(bank, words)
    write_bank(args.out / "bank.safetensors", bank)
    share_files(args.out)
    summary: dict[str, Any] = {"model_id": info["model_id"], "hyper_parameters": hp, "sha256": digest}
    if not args.no_verify:
        summary["onnx_vs_torch"] = verify_onnx(model, model_dir)
    print(f"wrote {model_dir} and {args.out / 'bank.safetensors'}: {json.dumps(summary, sort_keys=True)}")
    return summary


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line (also used programmatically by ``authors_parity``)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.import_dapo", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="the authors' train.py checkpoint (epoch_N.pth)")
    p.add_argument("--open-clip", required=True, help="open_clip model name they trained with, e.g. ViT-L-14-336-quickgelu")
    p.add_argument("--checkpoint-clip", type=Path, help="that CLIP's weights file (default: open_clip's openai download)")
    p.add_argument("--defects", required=True, help="comma-separated defect words (their --defect_types / prompt states)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help=f"square input size (their default {DEFAULT_IMAGE_SIZE})")
    p.add_argument("--feature-layers", default=DEFAULT_FEATURE_LAYERS, help="1-based blocks, as their --feature_layers")
    p.add_argument("--name", help="model name in loupe-model.json")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point: a refused checkpoint exits with its message."""
    args = parse_args(argv)
    try:
        import_checkpoint(args)
    except CheckpointError as err:
        sys.exit(f"import_dapo: {args.checkpoint}: {err}")


if __name__ == "__main__":
    main()

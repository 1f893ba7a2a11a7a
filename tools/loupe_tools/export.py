"""Export a CLIP model (open_clip checkpoint or generated weights) to a Loupe model directory.

Usage::

    python -m loupe_tools.export --out DIR (--open-clip MODEL_NAME --checkpoint PATH | --random-init SEED --arch NAME)
        [--input-size N] [--feature-layers 6,12,18,24] [--visual-prompts N] [--text-deep-prompts N]
        [--patch-features adapter|ln_post_proj] [--dapo-weights FILE] [--activation quick_gelu|gelu]
        [--torch-weights FILE] [--name NAME] [--no-verify]

Writes ``loupe-model.json``, ``image_encoder.onnx``, ``text_encoder.onnx`` and ``token_embedding.safetensors``
(docs/model-format.md, section 1). ``--torch-weights`` also writes the module's weights for
``loupe_tools.reference``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from safetensors.numpy import load_file as load_np

from .archs import ARCHS, CLIP_MEAN, CLIP_STD, EOT_TOKEN, SOT_TOKEN, ArchConfig, get_arch
from .clip_model import LoupeClip, PatchFeatures
from .model_dir import (
    IMAGE_ENCODER,
    TEXT_ENCODER,
    TOKEN_EMBEDDING,
    FORMAT,
    FORMAT_VERSION,
    compute_model_id,
    write_model_json,
    write_token_embedding,
)
from .onnx_export import export_image_encoder, export_text_encoder
from .weights import (
    load_dapo_weights,
    load_open_clip_state_dict,
    open_clip_state_dict,
    random_init_,
    save_reference_weights,
)


@dataclass
class BuiltModel:
    """A model ready to export, with the strings describing where it came from."""

    model: LoupeClip
    name: str
    source: str


def infer_arch(state: dict[str, torch.Tensor], name: str, quick_gelu: bool) -> ArchConfig:
    """Architecture from an OpenAI-layout state dict's shapes (heads = width / 64, as open_clip)."""
    conv = state["visual.conv1.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = int(round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5))
    layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
    text_layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    text_width = int(state["ln_final.weight"].shape[0])
    hidden = int(state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
    step = max(layers // 4, 1)
    return ArchConfig(
        name=name,
        image_size=grid * patch,
        patch_size=patch,
        width=width,
        layers=layers,
        heads=width // 64,
        text_width=text_width,
        text_layers=text_layers,
        text_heads=text_width // 64,
        embed_dim=int(state["text_projection"].shape[1]),
        context_length=int(state["positional_embedding"].shape[0]),
        vocab_size=int(state["token_embedding.weight"].shape[0]),
        quick_gelu=quick_gelu,
        mlp_ratio=hidden / width,
        default_input_size=grid * patch,
        default_feature_layers=tuple(range(step, layers + 1, step))[:4],
    )


def _dapo_counts(path: Optional[Path]) -> tuple[Optional[int], Optional[int]]:
    """(visual prompts, text deep prompts) found in a DAPO weights file, None where absent."""
    if path is None:
        return None, None
    t = load_np(str(path))
    vis = int(t["visual_deep_prompts"].shape[1]) if "visual_deep_prompts" in t else 0
    txt = int(t["text_deep_prompts"].shape[1]) if "text_deep_prompts" in t else 0
    return vis, txt


def build_model(args: argparse.Namespace) -> BuiltModel:
    """Create and fill the module described by the command line (at its trained grid, not yet resized)."""
    dapo_vis, dapo_txt = _dapo_counts(args.dapo_weights)
    quick_gelu: Optional[bool] = None if args.activation is None else args.activation == "quick_gelu"
    state: Optional[dict[str, torch.Tensor]] = None
    if args.random_init is not None:
        arch = get_arch(args.arch)
        default_vis, default_txt = arch.default_visual_prompts, arch.default_text_deep_prompts
    else:
        known = args.open_clip in ARCHS or args.open_clip.removesuffix("-quickgelu") in ARCHS
        qg = quick_gelu if quick_gelu is not None else (get_arch(args.open_clip).quick_gelu if known else False)
        state = open_clip_state_dict(args.open_clip, args.checkpoint, qg)
        inferred = infer_arch(state, args.open_clip, qg)
        if known:
            named = replace(get_arch(args.open_clip), quick_gelu=qg)
            same = replace(named, heads=inferred.heads, text_heads=inferred.text_heads, name=inferred.name,
                           default_input_size=inferred.default_input_size,
                           default_feature_layers=inferred.default_feature_layers)
            arch = named if same == inferred else inferred
        else:
            arch = inferred
        default_vis, default_txt = 0, 0
    if quick_gelu is not None:
        arch = replace(arch, quick_gelu=quick_gelu)
    vis = args.visual_prompts if args.visual_prompts is not None else (dapo_vis if dapo_vis is not None else default_vis)
    txt = args.text_deep_prompts if args.text_deep_prompts is not None else (dapo_txt if dapo_txt is not None else default_txt)
    if state is not None and args.dapo_weights is None and vis > 0:
        raise SystemExit("--visual-prompts > 0 needs --dapo-weights (or --random-init): nothing to fill them with")
    patch_features: PatchFeatures = args.patch_features or (
        "adapter" if (args.random_init is not None or args.dapo_weights is not None) else "ln_post_proj"
    )
    if state is not None and args.dapo_weights is None and patch_features == "adapter":
        raise SystemExit("--patch-features adapter needs --dapo-weights (or --random-init)")
    layers = tuple(int(x) for x in args.feature_layers.split(",")) if args.feature_layers else arch.default_feature_layers
    model = LoupeClip(arch, layers, visual_prompts=vis, text_deep_prompts=txt, patch_features=patch_features)
    if args.random_init is not None:
        random_init_(model, args.random_init)
        name, source = f"{arch.name}-random-seed{args.random_init}", f"random-init seed {args.random_init} (generated weights, not a trained model)"
    else:
        assert state is not None
        load_open_clip_state_dict(model, state)
        name, source = f"{arch.name}-{args.checkpoint.stem}", f"open_clip {args.open_clip} ({args.checkpoint.name})"
    if args.dapo_weights is not None:
        load_dapo_weights(model, args.dapo_weights)
        source += f" + DAPO weights {args.dapo_weights.name}"
    return BuiltModel(model.eval(), args.name or name, source)


def text_convention_json(model: LoupeClip) -> dict[str, Any]:
    """The optional ``text`` fields: written only when they differ from Loupe's defaults, so that models exported
    before they existed keep their JSON (and model id) unchanged."""
    out: dict[str, Any] = {}
    if model.text_convention != "loupe":
        out["prompt_convention"] = model.text_convention
    if model.text_deep_layers != model.arch.text_layers:
        out["deep_prompt_layers"] = model.text_deep_layers
    return out


def model_json(model: LoupeClip, name: str, source: str, model_id: str) -> dict[str, Any]:
    """The ``loupe-model.json`` content for an exported model."""
    arch = model.arch
    h, w = model.input_size
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "model_id": model_id,
        "architecture": arch.name,
        "source": source,
        "embed_dim": arch.embed_dim,
        "image": {
            "input_size": [h, w],
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "patch_size": arch.patch_size,
            "grid": list(model.visual.grid),
            "width": arch.width,
            "layers": arch.layers,
            "heads": arch.heads,
            "feature_layers": list(model.visual.feature_layers),
            "visual_prompts": model.visual.n_prompts,
            "patch_features": model.visual.patch_features,
        },
        "text": {
            "context_length": arch.context_length,
            "width": arch.text_width,
            "layers": arch.text_layers,
            "heads": arch.text_heads,
            "vocab_size": arch.vocab_size,
            "sot_token": SOT_TOKEN,
            "eot_token": EOT_TOKEN,
            "deep_prompts": model.text_deep_prompts,
            **text_convention_json(model),
        },
        "files": {"image_encoder": IMAGE_ENCODER, "text_encoder": TEXT_ENCODER, "token_embedding": TOKEN_EMBEDDING},
    }


def write_model_dir(model: LoupeClip, out: Path, name: str, source: str) -> dict[str, Any]:
    """Write the four files of a model directory; returns the JSON written."""
    out.mkdir(parents=True, exist_ok=True)
    export_image_encoder(model, out / IMAGE_ENCODER)
    export_text_encoder(model, out / TEXT_ENCODER)
    write_token_embedding(out / TOKEN_EMBEDDING, model.token_embedding.weight.detach().numpy())
    files = {"image_encoder": IMAGE_ENCODER, "text_encoder": TEXT_ENCODER, "token_embedding": TOKEN_EMBEDDING}
    info = model_json(model, name, source, compute_model_id(out, files))
    write_model_json(out, info)
    return info


def verify_onnx(model: LoupeClip, out: Path, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Max abs difference between the ONNX files (onnxruntime) and the module on random inputs."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    arch = model.arch
    h, w = model.input_size
    image = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
    sess = ort.InferenceSession(str(out / IMAGE_ENCODER), providers=["CPUExecutionProvider"])
    g_onnx, p_onnx = sess.run(["global", "patch_tokens"], {"image": image})
    with torch.no_grad():
        g_t, p_t = model.encode_image(torch.from_numpy(image))
    p = 3
    emb = (0.02 * rng.standard_normal((p, arch.context_length, arch.text_width))).astype(np.float32)
    eot = np.array([min(5 + i, arch.context_length - 1) for i in range(p)], dtype=np.int64)
    feeds: dict[str, np.ndarray] = {"prompt_embeddings": emb, "eot_index": eot}
    deep_t: Optional[torch.Tensor] = None
    if model.text_deep_prompts > 0:
        deep = (0.02 * rng.standard_normal((model.text_deep_layers, model.text_deep_prompts, arch.text_width))).astype(np.float32)
        feeds["deep_prompts"] = deep
        deep_t = torch.from_numpy(deep)
    tsess = ort.InferenceSession(str(out / TEXT_ENCODER), providers=["CPUExecutionProvider"])
    (t_onnx,) = tsess.run(["text_features"], feeds)
    with torch.no_grad():
        t_t = model.encode_text_embeddings(torch.from_numpy(emb), torch.from_numpy(eot), deep_t)
    want = (batch, len(model.visual.feature_layers), model.visual.grid[0] * model.visual.grid[1], arch.embed_dim)
    if p_onnx.shape != want or tuple(p_t.shape) != want or t_onnx.shape != (p, arch.embed_dim):
        raise AssertionError(f"unexpected shapes: patch_tokens {p_onnx.shape} / {tuple(p_t.shape)} (want {want}), text {t_onnx.shape}")
    return {
        "global": float(np.abs(g_onnx - g_t.numpy()).max()),
        "patch_tokens": float(np.abs(p_onnx - p_t.numpy()).max()),
        "text_features": float(np.abs(t_onnx - t_t.numpy()).max()),
    }


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the export command line (also used programmatically by ``make_fixtures``)."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.export", description="Export a Loupe model directory.")
    p.add_argument("--out", type=Path, required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--open-clip", metavar="MODEL_NAME", help="open_clip model name, e.g. ViT-B-16")
    src.add_argument("--random-init", type=int, metavar="SEED", help="generated weights (needs --arch)")
    p.add_argument("--checkpoint", type=Path, help="open_clip checkpoint file (with --open-clip)")
    p.add_argument("--arch", choices=sorted(ARCHS), help="architecture (with --random-init)")
    p.add_argument("--input-size", type=int, help="square input size (default: the architecture's)")
    p.add_argument("--feature-layers", help="comma-separated 1-based block indices")
    p.add_argument("--visual-prompts", type=int)
    p.add_argument("--text-deep-prompts", type=int)
    p.add_argument("--patch-features", choices=["adapter", "ln_post_proj"])
    p.add_argument("--dapo-weights", type=Path, help="safetensors with visual_deep_prompts and adapters.{j}.*")
    p.add_argument("--activation", choices=["quick_gelu", "gelu"], help="default: quick_gelu for the named (OpenAI) archs")
    p.add_argument("--torch-weights", type=Path, help="also write the module's weights for loupe_tools.reference")
    p.add_argument("--name", help="model name in loupe-model.json")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.random_init is not None and not args.arch:
        p.error("--random-init needs --arch")
    if args.open_clip and not args.checkpoint:
        p.error("--open-clip needs --checkpoint (no network: nothing can be downloaded)")
    return args


def export_from_args(args: argparse.Namespace) -> tuple[BuiltModel, dict[str, Any]]:
    """Build, resize and export as the command line says; returns the model and the JSON written."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.mha.set_fastpath_enabled(False)
    t0 = time.perf_counter()
    built = build_model(args)
    size = args.input_size or built.model.arch.default_input_size
    built.model.set_input_size((size, size))
    t1 = time.perf_counter()
    info = write_model_dir(built.model, args.out, built.name, built.source)
    t2 = time.perf_counter()
    print(f"wrote {args.out} (model_id {info['model_id']}, grid {info['image']['grid']}); build {t1 - t0:.1f}s, export {t2 - t1:.1f}s")
    if args.torch_weights:
        save_reference_weights(built.model, args.torch_weights)
        print(f"wrote {args.torch_weights}")
    if not args.no_verify:
        diffs = verify_onnx(built.model, args.out)
        print("onnxruntime vs PyTorch max abs diff: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) + f" ({time.perf_counter() - t2:.1f}s)")
    return built, info


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    export_from_args(parse_args(argv))


if __name__ == "__main__":
    main()

"""Parity against the DAPO authors' own code: their model and inference path, run as an oracle.

Usage (their repository is AGPL-3.0: take a local copy of it; it is run, never copied into Loupe)::

    pip install -r tools/requirements-authors.txt        # what their modules import, beside requirements-torch.txt
    python -m loupe_tools.authors_parity --authors-repo PATH/defect-aware-prompt-optimization --arch ViT-B-16 \
        --image-size 224 --out DIR [--defects hole,scratch,crack] [--text-depth 12] [--seed 0]
    LOUPE_AUTHORS_PARITY_DIR=DIR cargo test -p loupe-tests --test authors_parity -- --nocapture

Steps: generated CLIP weights (``weights.random_init_``) saved as an open_clip checkpoint; their model built from
it by their ``open_clip.create_model_and_transforms(..., force_image_size=...)``; their ``LearnablePrompt``,
``VisualPromptTuning`` and ``LinearAdapter`` filled from ``--seed``; a checkpoint saved as their ``train.py``
saves it; on a few generated images, the image score and anomaly map of their ``test.py``
(``Tester.forward_pass``) and the per-class maps and per-pixel argmax of ``test_multi_defect.py``'s loop (its
calls brought up to date: ``encode_image`` takes the feature layers); then ``loupe_tools.import_dapo`` on that
checkpoint, in a separate process so their vendored ``open_clip`` stays out of it. ``DIR`` then holds
``images/``, ``model/``, ``bank.safetensors`` and ``authors_outputs.safetensors``: the layout of
``tests/fixtures/authors-parity``, which the Rust test compares within 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, Sequence

import numpy as np

from .archs import get_arch
from .synth_images import IMAGE_KINDS, write_images

# Their modules this driver runs (hashed into the provenance).
AUTHORS_FILES = ("learnable_prompt.py", "visual_prompt_tuning.py", "adapter.py", "test.py", "train.py",
                 "open_clip/transformer.py", "open_clip/model.py", "open_clip/factory.py")
AUTHORS_TOKENS = 4  # deep prompt tokens their text tower hard-codes; their default for the visual ones
CONTEXT_TOKENS = 5  # their default normal / abnormal token counts
OUTPUTS = "authors_outputs.safetensors"


@dataclass
class AuthorsCode:
    """Their modules, imported from the local copy."""

    open_clip: ModuleType
    test: ModuleType
    train: ModuleType
    learnable_prompt: ModuleType
    visual_prompt_tuning: ModuleType
    adapter: ModuleType


def import_authors(repo: Path) -> AuthorsCode:
    """Import their modules with their vendored ``open_clip`` (must not be imported from elsewhere first)."""
    if "open_clip" in sys.modules and not str(Path(sys.modules["open_clip"].__file__ or "")).startswith(str(repo)):
        raise RuntimeError("another open_clip is already imported in this process; run this module on its own")
    for f in AUTHORS_FILES:
        if not (repo / f).is_file():
            raise FileNotFoundError(f"{repo / f}: not found: --authors-repo must be a copy of their repository")
    sys.path.insert(0, str(repo))
    import importlib

    mods = {name: importlib.import_module(name) for name in ("open_clip", "test", "train", "learnable_prompt", "visual_prompt_tuning", "adapter")}
    return AuthorsCode(**mods)  # type: ignore[arg-type]


def open_clip_config(arch_name: str, image_size: int) -> dict[str, Any]:
    """An open_clip model config for a Loupe architecture (for the tiny ones their configs lack)."""
    a = get_arch(arch_name)
    return {
        "embed_dim": a.embed_dim,
        "quick_gelu": a.quick_gelu,
        "vision_cfg": {"image_size": a.image_size, "layers": a.layers, "width": a.width, "patch_size": a.patch_size,
                       "head_width": a.width // a.heads, "mlp_ratio": a.mlp_ratio},
        "text_cfg": {"context_length": a.context_length, "vocab_size": a.vocab_size, "width": a.text_width,
                     "heads": a.text_heads, "layers": a.text_layers, "mlp_ratio": a.mlp_ratio},
    }


def write_clip_checkpoint(arch_name: str, seed: int, path: Path) -> None:
    """Generated CLIP weights in open_clip's layout (what their ``create_model(pretrained=path)`` loads)."""
    import torch

    from .clip_model import LoupeClip
    from .weights import random_init_

    model = LoupeClip(get_arch(arch_name))
    random_init_(model, seed)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    torch.save(state, str(path))


def fill_parts(parts: Sequence[Any], seed: int) -> None:
    """Redraw their learnable parts from ``seed`` at scales that make the states and layers tell apart (their
    own init is close to the token-embedding mean, which on generated weights leaves every class alike)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for part in parts:
            for name, p in sorted(part.named_parameters()):
                if name.startswith("meta_net."):
                    continue
                std = 0.5 if "tokens" in name else 2.0 / math.sqrt(p.shape[-1])
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def run_authors(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Build their model and parts, save the checkpoint, run their inference; returns tensors and provenance."""
    import torch

    code = import_authors(args.authors_repo)
    oc = code.open_clip
    torch.manual_seed(args.seed)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    a = get_arch(args.arch)
    name = args.arch + "-quickgelu" if args.arch in ("ViT-B-16", "ViT-L-14-336") else args.arch
    if name not in oc.list_models():
        cfg_path = work / f"{name}.json"
        cfg_path.write_text(json.dumps(open_clip_config(args.arch, args.image_size)))
        oc.add_model_config(cfg_path)
    clip_path = work / "clip.pt"
    write_clip_checkpoint(args.arch, args.seed, clip_path)
    model, _, preprocess = oc.create_model_and_transforms(name, pretrained=str(clip_path), force_image_size=args.image_size)
    model.eval()
    tokenizer = oc.get_tokenizer(name)
    words = [w.strip() for w in args.defects.split(",") if w.strip()]
    layers = [int(x) for x in args.feature_layers.split(",")] if args.feature_layers else list(a.default_feature_layers)
    depth = args.text_depth or a.text_layers
    prompt_learner = code.learnable_prompt.LearnablePrompt(
        model, prompt_state=words, normal_token_count=CONTEXT_TOKENS, abnormal_token_count=CONTEXT_TOKENS,
        prompt_count=args.prompt_count, token_depth=depth, learnable_token_length=AUTHORS_TOKENS, device="cpu",
        tokenizer=tokenizer,
    )
    visual_prompt = code.visual_prompt_tuning.VisualPromptTuning(model=model, total_d_layer=a.layers, num_tokens=AUTHORS_TOKENS, device="cpu")
    adapter = code.adapter.LinearAdapter(dim_in=a.width, dim_out=a.embed_dim, k=len(layers))
    fill_parts([prompt_learner, visual_prompt, adapter], args.seed)
    for part in (prompt_learner, visual_prompt, adapter):
        part.eval()
    # As their train.py's save_checkpoint writes it.
    ckpt_path = work / "epoch_1.pth"
    torch.save({"epoch": 1, "prompt_learner": prompt_learner.state_dict(), "visual_prompt": visual_prompt.state_dict(),
                "linear_adapter": adapter.state_dict(), "optimizer_state_dict": {}}, str(ckpt_path))

    # test.py's scoring: its Tester.forward_pass on a Tester holding these parts.
    tester = code.test.Tester.__new__(code.test.Tester)
    tester.args = argparse.Namespace(feature_layers=layers, image_size=args.image_size)
    tester.model_components = {"model": model}
    tester.learnable_components = {"visual_prompt": visual_prompt, "prompt_learner": prompt_learner, "trainable_adapter": adapter}
    kinds = tuple(k.strip() for k in args.images.split(",") if k.strip())
    paths = write_images(out / "images", args.image_size, args.seed, kinds)
    tensors: dict[str, np.ndarray] = {}
    from PIL import Image

    with torch.no_grad():
        for path in paths:
            stem = path.stem
            image = preprocess(Image.open(path).convert("RGB")).unsqueeze(0)
            anomaly_map, score = tester.forward_pass(image)
            class_maps, text_features = multi_defect_maps(code, model, prompt_learner, visual_prompt, adapter, image, layers, args.image_size)
            tensors[f"{stem}/image_score"] = score.reshape(1).numpy().astype(np.float32)
            tensors[f"{stem}/anomaly_map"] = anomaly_map[0].numpy().astype(np.float32)
            tensors[f"{stem}/class_maps"] = np.ascontiguousarray(class_maps.permute(2, 0, 1).numpy(), dtype=np.float32)
            tensors[f"{stem}/type_map"] = class_maps.argmax(dim=-1).numpy().astype(np.float32)
            tensors["text_features"] = text_features.numpy().astype(np.float32)
    return {"tensors": tensors, "words": words, "images": [p.stem for p in paths], "checkpoint": ckpt_path,
            "clip": clip_path, "open_clip_name": name, "feature_layers": layers, "text_depth": depth}


def multi_defect_maps(code: AuthorsCode, model: Any, prompt_learner: Any, visual_prompt: Any, adapter: Any, image: Any,
                      layers: list[int], image_size: int) -> tuple[Any, Any]:
    """The per-class maps of their ``test_multi_defect.py`` loop (``[H, W, 1 + K]``, sum over layers of the
    upsampled per-patch class softmax) and their normalised text features; the calls as their current modules
    take them."""
    import torch

    visual_tokens = visual_prompt()
    image_features, patch_features, _ = model.encode_image([image, visual_tokens], layers)
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    prompt, learnable_tokens, template_tokens = prompt_learner(image_features)
    text_features, _ = model.encode_learn_prompts(prompt, learnable_tokens, template_tokens)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    patch_features = adapter(patch_features)
    maps = []
    for patch in patch_features:
        patch = patch / patch.norm(dim=-1, keepdim=True)
        similarity = code.train.compute_similarity(patch, text_features).softmax(dim=-1)
        maps.append(code.train.compute_similarity_map(similarity, image_size))
    return torch.stack(maps).sum(dim=0)[0], text_features


def file_sha(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_outputs(out: Path, result: dict[str, Any], args: argparse.Namespace, command: str) -> None:
    """``authors_outputs.safetensors``: their outputs, with where they came from."""
    from safetensors.numpy import save_file

    repo: Path = args.authors_repo
    meta = {
        "format": "loupe-authors-outputs",
        "words": json.dumps(result["words"]),
        "images": json.dumps(result["images"]),
        "arch": args.arch,
        "open_clip": result["open_clip_name"],
        "image_size": str(args.image_size),
        "feature_layers": json.dumps(result["feature_layers"]),
        "text_depth": str(result["text_depth"]),
        "prompt_count": str(args.prompt_count),
        "seed": str(args.seed),
        "command": command,
        "authors_files_sha256": json.dumps({f: file_sha(repo / f) for f in AUTHORS_FILES}, sort_keys=True),
        "checkpoint_sha256": file_sha(result["checkpoint"]),
    }
    save_file(result["tensors"], str(out / OUTPUTS), metadata=meta)


def import_into_loupe(out: Path, result: dict[str, Any], args: argparse.Namespace) -> None:
    """``loupe_tools.import_dapo`` on their checkpoint, in its own process (their open_clip is loaded here)."""
    cmd = [sys.executable, "-m", "loupe_tools.import_dapo", "--checkpoint", str(result["checkpoint"]),
           "--open-clip", result["open_clip_name"], "--checkpoint-clip", str(result["clip"]), "--defects",
           ",".join(result["words"]), "--out", str(out), "--image-size", str(args.image_size),
           "--feature-layers", ",".join(str(x) for x in result["feature_layers"])]
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m loupe_tools.authors_parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--authors-repo", type=Path, required=True, help="local copy of boschresearch/defect-aware-prompt-optimization")
    p.add_argument("--arch", default="tiny-authors", choices=["tiny-authors", "ViT-B-16", "ViT-L-14-336"])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--defects", default="hole,scratch,crack")
    p.add_argument("--feature-layers", help="1-based blocks (default: the architecture's)")
    p.add_argument("--text-depth", type=int, help="blocks with deep text prompts (default: all)")
    p.add_argument("--prompt-count", type=int, default=10, help="their prompt_count (groups)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", default=",".join(IMAGE_KINDS), help="generated image kinds to run")
    p.add_argument("--keep-work", action="store_true", help="keep DIR/work (their checkpoint and the CLIP weights)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = parse_args(argv)
    args.authors_repo = args.authors_repo.resolve()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m loupe_tools.authors_parity " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(args).items())
        if v is not None and k not in ("authors_repo", "out", "keep_work")
    )
    result = run_authors(args, out)
    write_outputs(out, result, args, command)
    import_into_loupe(out, result, args)
    if not args.keep_work:
        import shutil

        shutil.rmtree(out / "work")
    print(f"wrote {out}: their outputs ({OUTPUTS}) and Loupe's import (model/, bank.safetensors)")


if __name__ == "__main__":
    main()

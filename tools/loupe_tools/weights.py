"""Filling a :class:`LoupeClip` with weights: deterministic random init, open_clip checkpoints, DAPO weights,
and the reference-weights file the PyTorch reference reloads.

Random init draws each tensor from its own numpy ``PCG64`` stream seeded by ``(seed, crc32(name))``, so a
tensor's values depend only on the seed, its name and its shape.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np
import torch
from safetensors.numpy import load_file as load_np, save_file as save_np

from .archs import ArchConfig
from .clip_model import LoupeClip, PatchFeatures, TextConvention

REFERENCE_WEIGHTS_FORMAT = "loupe-reference-weights"
TOKEN_EMBEDDING_KEY = "token_embedding.weight"
# Keys of an open_clip CLIP state dict that the Loupe model does not use.
OPEN_CLIP_IGNORED = ("logit_scale", "logit_bias", "attn_mask")
# Keys the Loupe model has that an open_clip checkpoint lacks (DAPO extras).
DAPO_EXTRA_PREFIXES = ("visual.deep_prompts", "visual.adapters.")
LAYER_NORMS = ("ln_1", "ln_2", "ln_pre", "ln_post", "ln_final")


def _std_for(name: str, arch: ArchConfig) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """The random-init rule of one parameter (CLIP-like scales; LayerNorm weights near 1)."""
    visual = name.startswith("visual.")
    width = arch.width if visual else arch.text_width
    layers = arch.layers if visual else arch.text_layers
    attn_std = width**-0.5
    proj_std = width**-0.5 * (2 * layers) ** -0.5
    fc_std = (2 * width) ** -0.5

    def normal(std: float, mean: float = 0.0) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
        return lambda rng, shape: mean + std * rng.standard_normal(shape)

    parts = name.split(".")
    leaf = parts[-1]
    is_norm = len(parts) >= 2 and parts[-2] in LAYER_NORMS
    if is_norm:
        return normal(0.1, 1.0) if leaf == "weight" else normal(0.05)
    if leaf == "bias" or leaf == "in_proj_bias":
        return normal(0.02)
    if name == "visual.conv1.weight":
        return normal((3 * arch.patch_size * arch.patch_size) ** -0.5)
    if name in ("visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.deep_prompts"):
        return normal(arch.width**-0.5)
    if name.startswith("visual.adapters."):
        return normal(arch.width**-0.5)
    if name == TOKEN_EMBEDDING_KEY:
        return normal(0.02)
    if name == "positional_embedding":
        return normal(0.01)
    if name == "text_projection":
        return normal(arch.text_width**-0.5)
    if name.endswith("attn.in_proj_weight"):
        return normal(attn_std)
    if name.endswith("attn.out_proj.weight") or name.endswith("mlp.c_proj.weight"):
        return normal(proj_std)
    if name.endswith("mlp.c_fc.weight"):
        return normal(fc_std)
    raise KeyError(f"no random-init rule for parameter {name!r}")


def random_array(seed: int, name: str, shape: tuple[int, ...], sampler: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]) -> np.ndarray:
    """Draw one float32 array from the stream ``(seed, crc32(name))``."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    return np.asarray(sampler(rng, shape), dtype=np.float32)


def random_init_(model: LoupeClip, seed: int) -> None:
    """Fill every parameter of ``model`` (at its current grid) deterministically from ``seed``."""
    arch = model.arch
    with torch.no_grad():
        for name, param in model.named_parameters():
            arr = random_array(seed, name, tuple(param.shape), _std_for(name, arch))
            param.copy_(torch.from_numpy(arr))


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel ``module.`` prefix if every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_open_clip_state_dict(model: LoupeClip, state: Mapping[str, torch.Tensor]) -> None:
    """Copy an open_clip ``CLIP`` state dict (OpenAI layout) into ``model``.

    The model must be at the checkpoint's trained grid (resize afterwards). Raises on any missing key other
    than DAPO extras and on any unexpected key other than ``logit_scale``/``logit_bias``/``attn_mask``.
    """
    state = {k: v for k, v in _strip_prefix(state).items() if k not in OPEN_CLIP_IGNORED}
    state = {k: v.float() for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(DAPO_EXTRA_PREFIXES)]
    if missing or result.unexpected_keys:
        raise ValueError(f"checkpoint does not match the architecture: missing {missing}, unexpected {result.unexpected_keys}")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a raw state dict: ``.safetensors``, a ``torch.save`` dict (optionally under ``state_dict``), or an
    OpenAI TorchScript archive."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # OpenAI's released files are TorchScript archives
        obj = torch.jit.load(str(path), map_location="cpu").state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a state dict")
    return _strip_prefix(obj)


def open_clip_state_dict(model_name: str, checkpoint: Path, quick_gelu: bool) -> dict[str, torch.Tensor]:
    """State dict of an open_clip model built by ``open_clip.create_model(model_name, pretrained=checkpoint)``;
    falls back to reading ``checkpoint`` as a raw state dict when open_clip cannot build it."""
    try:
        import open_clip

        oc = open_clip.create_model(model_name, pretrained=str(checkpoint), force_quick_gelu=quick_gelu)
        return {k: v.detach() for k, v in oc.state_dict().items()}
    except Exception as err:  # noqa: BLE001 - fall back to the raw file, report both on failure
        try:
            return read_checkpoint(checkpoint)
        except Exception as err2:
            raise ValueError(f"cannot load {checkpoint}: open_clip said {err!r}; raw read said {err2!r}") from err2


def dapo_weight_names(model: LoupeClip) -> dict[str, str]:
    """Map of DAPO-weights-file tensor names to the model's parameter names."""
    names: dict[str, str] = {}
    if model.visual.deep_prompts is not None:
        names["visual_deep_prompts"] = "visual.deep_prompts"
    for j in range(len(model.visual.adapters)):
        names[f"adapters.{j}.weight"] = f"visual.adapters.{j}.weight"
        names[f"adapters.{j}.bias"] = f"visual.adapters.{j}.bias"
    return names


def load_dapo_weights(model: LoupeClip, path: Path) -> None:
    """Copy the visual DAPO parameters of a DAPO weights file (see tools/README.md) into ``model``."""
    tensors = load_np(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for file_name, param_name in dapo_weight_names(model).items():
            if file_name not in tensors:
                raise KeyError(f"{path}: missing tensor {file_name!r}")
            arr = tensors[file_name]
            if tuple(arr.shape) != tuple(params[param_name].shape):
                raise ValueError(f"{path}: {file_name} has shape {arr.shape}, model wants {tuple(params[param_name].shape)}")
            params[param_name].copy_(torch.from_numpy(arr.astype(np.float32)))


def save_reference_weights(model: LoupeClip, path: Path) -> None:
    """Write every parameter except the token embedding (which the model directory holds) plus the
    configuration needed to rebuild the module, at its current (resized) grid."""
    tensors = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items() if k != TOKEN_EMBEDDING_KEY}
    meta = {
        "format": REFERENCE_WEIGHTS_FORMAT,
        "arch": model.arch.to_json(),
        "input_size": json.dumps(list(model.input_size)),
        "feature_layers": json.dumps(list(model.visual.feature_layers)),
        "visual_prompts": str(model.visual.n_prompts),
        "text_deep_prompts": str(model.text_deep_prompts),
        "patch_features": model.visual.patch_features,
    }
    # Only where they differ from Loupe's defaults, so that files written before these fields existed stay equal.
    if model.text_convention != "loupe":
        meta["text_convention"] = model.text_convention
    if model.text_deep_layers != model.arch.text_layers:
        meta["text_deep_layers"] = str(model.text_deep_layers)
    save_np(tensors, str(path), metadata=meta)


def load_reference_weights(path: Path, token_embedding: np.ndarray) -> LoupeClip:
    """Rebuild the module written by :func:`save_reference_weights`; ``token_embedding`` comes from the model
    directory's ``token_embedding.safetensors``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta: Optional[dict[str, str]] = f.metadata()
    if not meta or meta.get("format") != REFERENCE_WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not a {REFERENCE_WEIGHTS_FORMAT} file")
    arch = ArchConfig.from_json(meta["arch"])
    patch_features: PatchFeatures = "adapter" if meta["patch_features"] == "adapter" else "ln_post_proj"
    convention: TextConvention = "dapo-authors" if meta.get("text_convention") == "dapo-authors" else "loupe"
    model = LoupeClip(
        arch,
        feature_layers=tuple(json.loads(meta["feature_layers"])),
        visual_prompts=int(meta["visual_prompts"]),
        text_deep_prompts=int(meta["text_deep_prompts"]),
        patch_features=patch_features,
        text_convention=convention,
        text_deep_layers=int(meta["text_deep_layers"]) if "text_deep_layers" in meta else None,
    )
    h, w = json.loads(meta["input_size"])
    model.set_input_size((h, w))
    state = {k: torch.from_numpy(v) for k, v in load_np(str(path)).items()}
    state[TOKEN_EMBEDDING_KEY] = torch.from_numpy(np.ascontiguousarray(token_embedding, dtype=np.float32))
    model.load_state_dict(state, strict=True)
    return model.eval()

"""PyTorch reference of DAPO inference (``../shared/design/dapo-method.md``, docs/model-format.md).

Computes everything from the PyTorch module (not from the ONNX files): preprocessing, hybrid prompts, state
text features, image score, image-type probabilities, per-class maps, anomaly map and its smoothed version.

CLI (writes ``expected.safetensors`` as docs/model-format.md section 4)::

    python -m loupe_tools.reference --model MODEL_DIR --torch-weights reference_weights.safetensors \
        --bank bank.safetensors --images IMG_DIR_OR_FILES... --novel-word burr --sigma 1.0 --out expected.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

from . import postprocess as pp
from .bank import PromptBank, read_bank
from .clip_model import LoupeClip
from .images import load_rgb8, normalize
from .model_dir import read_model_json, read_token_embedding
from .text_features import state_text_features
from .tokenizer import clip_encode
from .weights import load_reference_weights

EXPECTED_FORMAT = "loupe-parity-expected"


class DapoReference:
    """DAPO inference on one PyTorch :class:`LoupeClip` and one prompt bank."""

    def __init__(self, model: LoupeClip, info: dict[str, Any], bank: PromptBank, token_embedding: np.ndarray) -> None:
        self.model = model.eval()
        self.info = info
        self.bank = bank
        self.token_embedding = token_embedding
        if bank.n_deep != model.text_deep_prompts:
            raise ValueError(f"bank has {bank.n_deep} deep text prompts, model wants {model.text_deep_prompts}")
        if bank.prompt_convention != model.text_convention:
            raise ValueError(f"bank prompt_convention {bank.prompt_convention!r} != model's {model.text_convention!r}")

    @torch.no_grad()
    def _encode_text(self, emb: np.ndarray, eot: np.ndarray, deep: Optional[np.ndarray]) -> np.ndarray:
        deep_t = torch.from_numpy(deep) if deep is not None else None
        out = self.model.encode_text_embeddings(torch.from_numpy(emb), torch.from_numpy(eot), deep_t)
        return out.numpy()

    def text_features(self, words: Sequence[str]) -> np.ndarray:
        """``[1 + K, D]`` L2-normalised: normal, then ``words``."""
        return state_text_features(
            self._encode_text, clip_encode, self.bank, self.token_embedding, self.model.context_length, words
        )

    def preprocess(self, path: Path) -> np.ndarray:
        """8-bit image at the model's input size -> normalised float32 ``[3, H, W]``."""
        rgb = load_rgb8(path)
        want = tuple(self.info["image"]["input_size"])
        if rgb.shape[:2] != want:
            raise ValueError(f"{path}: size {rgb.shape[:2]} != model input size {want} (the reference does not resize)")
        return normalize(rgb, self.info["image"]["mean"], self.info["image"]["std"])

    @torch.no_grad()
    def analyse(self, image: np.ndarray, text: np.ndarray, sigma: float) -> dict[str, np.ndarray]:
        """All per-image outputs for a normalised ``[3, H, W]`` image and text matrix ``[1 + K, D]``."""
        global_f, patches = self.model.encode_image(torch.from_numpy(image).unsqueeze(0))
        global_f, patches = global_f[0], patches[0]
        t = torch.from_numpy(text)
        g = F.normalize(global_f, dim=-1)
        size = (image.shape[1], image.shape[2])
        grid_maps = pp.grid_class_maps(patches, t, self.model.visual.grid)
        class_maps = pp.upsample_bilinear(grid_maps, size)
        anomaly = class_maps[1:].sum(dim=0)
        return {
            "global": global_f.numpy(),
            "patch_tokens": patches.numpy(),
            "image_score": pp.image_score(g, t).numpy(),
            "image_probs": pp.image_probs(g, t).numpy(),
            "class_maps": class_maps.numpy(),
            "anomaly_map": anomaly.numpy(),
            "anomaly_map_smoothed": pp.gaussian_smooth(anomaly, sigma).numpy(),
        }


def load_reference(model_dir: Path, torch_weights: Path, bank_path: Path) -> DapoReference:
    """Build the reference from a model directory, its reference weights and a bank."""
    info = read_model_json(model_dir)
    table = read_token_embedding(model_dir)
    model = load_reference_weights(torch_weights, table)
    bank = read_bank(bank_path)
    if bank.model_id != info["model_id"]:
        raise ValueError(f"bank is for model {bank.model_id}, model directory is {info['model_id']}")
    return DapoReference(model, info, bank, table)


def compute_expected(
    ref: DapoReference,
    images: Sequence[Path],
    words: Sequence[str],
    novel_words: Sequence[str],
    sigma: float,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of ``expected.safetensors`` (docs/model-format.md, section 4)."""
    text = ref.text_features(words)
    extended = list(words) + list(novel_words)
    tensors: dict[str, np.ndarray] = {
        "text_features": text,
        "text_features_extended": ref.text_features(extended),
    }
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        raise ValueError(f"image stems are not unique: {stems}")
    for path in images:
        for key, value in ref.analyse(ref.preprocess(path), text, sigma).items():
            tensors[f"{path.stem}/{key}"] = np.ascontiguousarray(value, dtype=np.float32)
    meta = {
        "format": EXPECTED_FORMAT,
        "format_version": "1",
        "model_id": ref.info["model_id"],
        "words": json.dumps(list(words)),
        "extended_words": json.dumps(extended),
        "images": json.dumps(stems),
        "smoothing_sigma": repr(float(sigma)),
        "temperature": repr(pp.TEMPERATURE),
    }
    return tensors, meta


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Expand directories to their ``*.png`` files (sorted by name)."""
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("*.png")) if p.is_dir() else [p])
    return out


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loupe_tools.reference", description="PyTorch reference of DAPO inference.")
    p.add_argument("--model", type=Path, required=True, help="Loupe model directory")
    p.add_argument("--torch-weights", type=Path, required=True, help="reference weights written by export --torch-weights")
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--images", type=Path, nargs="+", required=True, help="PNG files or folders of PNGs")
    p.add_argument("--words", default=None, help="comma-separated vocabulary (default: the bank's words)")
    p.add_argument("--novel-word", default="burr", help="comma-separated word(s) added for text_features_extended")
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma of anomaly_map_smoothed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (results do not depend on it beyond ~1e-7)")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = load_reference(args.model, args.torch_weights, args.bank)
    words = [w.strip() for w in args.words.split(",")] if args.words else ref.bank.words
    novel = [w.strip() for w in args.novel_word.split(",") if w.strip()]
    tensors, meta = compute_expected(ref, collect_images(args.images), words, novel, args.sigma)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=meta)
    print(f"wrote {args.out}: {len(tensors)} tensors, images {meta['images']}")


if __name__ == "__main__":
    main()

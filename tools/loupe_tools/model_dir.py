"""The Loupe model directory (docs/model-format.md, section 1): ``loupe-model.json``, the model id, the
token-embedding file. No torch needed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

MODEL_JSON = "loupe-model.json"
FORMAT = "loupe-model"
FORMAT_VERSION = 1
IMAGE_ENCODER = "image_encoder.onnx"
TEXT_ENCODER = "text_encoder.onnx"
TOKEN_EMBEDDING = "token_embedding.safetensors"
TOKEN_EMBEDDING_TENSOR = "token_embedding"


def compute_model_id(model_dir: Path, files: dict[str, str]) -> str:
    """First 16 hex digits of SHA-256 over the image encoder, text encoder and token embedding bytes, in that
    order."""
    digest = hashlib.sha256()
    for key in ("image_encoder", "text_encoder", "token_embedding"):
        with open(model_dir / files[key], "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def write_token_embedding(path: Path, table: np.ndarray) -> None:
    """Write ``token_embedding`` ``[vocab_size, text_width]`` float32."""
    save_file({TOKEN_EMBEDDING_TENSOR: np.ascontiguousarray(table, dtype=np.float32)}, str(path))


def read_token_embedding(model_dir: Path) -> np.ndarray:
    """Read the token-embedding table named by the model's ``loupe-model.json``."""
    info = read_model_json(model_dir)
    return load_file(str(model_dir / info["files"]["token_embedding"]))[TOKEN_EMBEDDING_TENSOR]


def share_files(folder: Path) -> None:
    """Make every file under ``folder`` world-readable: safetensors writes 0600 files, and exports and fixtures
    are meant to be shared."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def write_model_json(model_dir: Path, info: dict[str, Any]) -> None:
    """Write ``loupe-model.json`` (2-space indent, trailing newline)."""
    (model_dir / MODEL_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_model_json(model_dir: Path) -> dict[str, Any]:
    """Read and check ``loupe-model.json``."""
    info: dict[str, Any] = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{model_dir}: not a {FORMAT} v{FORMAT_VERSION} directory")
    img = info["image"]
    grid = [img["input_size"][0] // img["patch_size"], img["input_size"][1] // img["patch_size"]]
    if img["grid"] != grid:
        raise ValueError(f"{model_dir}: grid {img['grid']} != input_size / patch_size {grid}")
    return info

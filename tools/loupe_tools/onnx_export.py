"""Tracing a :class:`LoupeClip` to the two ONNX graphs of docs/model-format.md (opset 17, TorchScript
exporter, dynamic batch / prompt count)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import torch

from .clip_model import ImageEncoder, LoupeClip, TextEncoder

OPSET = 17


def set_output_shapes(path: Path, shapes: dict[str, list[Union[int, str]]]) -> None:
    """Write the known output shapes (ints static, strings symbolic) into the graph's signature; tracing loses
    some static sizes behind the dynamic-batch ``Expand`` of the prompt tokens."""
    import onnx

    model = onnx.load(str(path))
    for out in model.graph.output:
        if out.name not in shapes:
            continue
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for d in shapes[out.name]:
            dim = dims.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_image_encoder(model: LoupeClip, path: Path, trace_batch: int = 2) -> None:
    """Write ``image_encoder.onnx``: ``image [N, 3, H, W] -> global [N, D], patch_tokens [N, L, G, D]``."""
    h, w = model.input_size
    dummy = torch.zeros(trace_batch, 3, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ImageEncoder(model).eval(),
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["global", "patch_tokens"],
            dynamic_axes={"image": {0: "N"}, "global": {0: "N"}, "patch_tokens": {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    grid = model.visual.grid
    layers = len(model.visual.feature_layers)
    d = model.arch.embed_dim
    set_output_shapes(path, {"global": ["N", d], "patch_tokens": ["N", layers, grid[0] * grid[1], d]})


def export_text_encoder(model: LoupeClip, path: Path, trace_prompts: int = 3) -> None:
    """Write ``text_encoder.onnx``: ``prompt_embeddings [P, C, W], eot_index [P][, deep_prompts] ->
    text_features [P, D]``."""
    arch = model.arch
    emb = torch.zeros(trace_prompts, arch.context_length, arch.text_width)
    eot = torch.arange(trace_prompts, dtype=torch.int64) + 2
    names = ["prompt_embeddings", "eot_index"]
    args: tuple[torch.Tensor, ...] = (emb, eot)
    if model.text_deep_prompts > 0:
        args = args + (torch.zeros(model.text_deep_layers, model.text_deep_prompts, arch.text_width),)
        names.append("deep_prompts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TextEncoder(model).eval(),
            args,
            str(path),
            input_names=names,
            output_names=["text_features"],
            dynamic_axes={"prompt_embeddings": {0: "P"}, "eot_index": {0: "P"}, "text_features": {0: "P"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    set_output_shapes(path, {"text_features": ["P", arch.embed_dim]})

"""Named CLIP architectures known to the exporter (no torch needed).

An :class:`ArchConfig` describes the backbone as trained (``image_size`` is the size its positional
embedding was trained for); the size the exported model runs at is chosen at export time.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
SOT_TOKEN = 49406
EOT_TOKEN = 49407


@dataclass(frozen=True)
class ArchConfig:
    """Shape of a CLIP two-tower model (OpenAI layout)."""

    name: str
    image_size: int  # size the positional embedding was trained for (square)
    patch_size: int
    width: int
    layers: int
    heads: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int
    context_length: int = 77
    vocab_size: int = 49408
    quick_gelu: bool = True
    mlp_ratio: float = 4.0
    default_input_size: int = 224
    default_feature_layers: tuple[int, ...] = ()
    default_visual_prompts: int = 4  # used with --random-init only
    default_text_deep_prompts: int = 4  # used with --random-init only

    @property
    def trained_grid(self) -> int:
        """Side of the patch grid the positional embedding was trained for."""
        return self.image_size // self.patch_size

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in reference weight files)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "ArchConfig":
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        data["default_feature_layers"] = tuple(data["default_feature_layers"])
        return ArchConfig(**data)


ARCHS: dict[str, ArchConfig] = {
    "ViT-B-16": ArchConfig(
        name="ViT-B-16", image_size=224, patch_size=16, width=768, layers=12, heads=12,
        text_width=512, text_layers=12, text_heads=8, embed_dim=512,
        default_input_size=224, default_feature_layers=(3, 6, 9, 12),
    ),
    "ViT-L-14-336": ArchConfig(
        name="ViT-L-14-336", image_size=336, patch_size=14, width=1024, layers=24, heads=16,
        text_width=768, text_layers=12, text_heads=12, embed_dim=768,
        default_input_size=518, default_feature_layers=(6, 12, 18, 24),
    ),
    # Loupe's compact default model, trained from scratch by `python -m loupe_tools.train.recipe`: patch 8 at
    # 160 px (a 20 x 20 grid) because Magnetic-Tile defects are often a few pixels wide; 160 rather than 192 to
    # fit the training into the CPU budget.
    "loupe-mt-s8": ArchConfig(
        name="loupe-mt-s8", image_size=160, patch_size=8, width=128, layers=6, heads=4,
        text_width=64, text_layers=3, text_heads=2, embed_dim=64, context_length=20,
        default_input_size=160, default_feature_layers=(3, 4, 5, 6),
    ),
    "tiny": ArchConfig(
        name="tiny", image_size=56, patch_size=8, width=32, layers=4, heads=2,
        text_width=16, text_layers=2, text_heads=2, embed_dim=16, context_length=24,
        default_input_size=64, default_feature_layers=(1, 2, 3, 4),
        default_visual_prompts=2, default_text_deep_prompts=2,
    ),
    # `tiny` as the DAPO authors' code can run it (their prompt learner hard-codes 77 text positions), with 3 text
    # blocks so that deep text prompts on 2 of them exercise their drop-after-depth path: the committed fixture of
    # `loupe_tools.authors_parity`.
    "tiny-authors": ArchConfig(
        name="tiny-authors", image_size=56, patch_size=8, width=32, layers=4, heads=2,
        text_width=16, text_layers=3, text_heads=2, embed_dim=16, context_length=77,
        default_input_size=64, default_feature_layers=(1, 2, 3, 4),
    ),
}


def get_arch(name: str) -> ArchConfig:
    """Look up a named architecture; accepts open_clip's ``-quickgelu`` suffix."""
    key = name[: -len("-quickgelu")] if name.endswith("-quickgelu") else name
    if key not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(ARCHS)}")
    return ARCHS[key]

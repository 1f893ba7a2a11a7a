"""The CLIP BPE tokenizer: open_clip's ``SimpleTokenizer().encode`` (lower-cased, whitespace-cleaned, no
SOT/EOT). Imported lazily because open_clip imports torch."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def clip_encode(text: str) -> list[int]:
    """BPE token ids of ``text`` (without SOT/EOT)."""
    return [int(t) for t in _tokenizer().encode(text)]

"""Loupe: zero-shot defect detection and segmentation (DAPO) on NumPy images, run by Loupe's Rust engine."""

from collections.abc import Iterable
from os import PathLike
from typing import Literal, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = ["Engine", "LoupeError", "Region", "Result", "__version__"]
__version__: str

_Format = Literal["gray", "rgb", "bgr", "rgba", "bgra", "gray16"]
_StrPath = str | PathLike[str]
_Image = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]

class LoupeError(Exception):
    """An error reported by Loupe; the message names what was wrong and where."""

@final
class Region:
    """One connected region of the mask."""

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) in map pixels."""
    @property
    def area(self) -> int: ...
    @property
    def defect_type(self) -> str: ...
    @property
    def mean_score(self) -> float: ...
    @property
    def max_score(self) -> float: ...

@final
class Result:
    """The result of inspecting one image: anomalib's names, then Loupe's."""

    @property
    def pred_score(self) -> float:
        """Image anomaly score (the raw score Loupe's JSON reports as `score`)."""
    @property
    def pred_label(self) -> bool:
        """Whether the image is anomalous: pred_score > thresholds["image"]."""
    @property
    def anomaly_map(self) -> npt.NDArray[np.float32]:
        """Per-pixel anomaly score, (H, W) at the map size."""
    @property
    def pred_mask(self) -> npt.NDArray[np.bool_]:
        """The defect mask, (H, W)."""
    @property
    def normalized_score(self) -> float:
        """The score on a scale where the image threshold is 0.5, in [0, 1]."""
    @property
    def image_type(self) -> str: ...
    @property
    def type_map(self) -> npt.NDArray[np.uint16]:
        """Per-pixel type id: 0 outside the mask, else an index into `classes`."""
    @property
    def classes(self) -> list[str]: ...
    @property
    def class_probabilities(self) -> dict[str, float]: ...
    @property
    def regions(self) -> list[Region]: ...
    @property
    def thresholds(self) -> dict[str, float]:
        """{"image": ..., "pixel": ...}"""
    @property
    def map_range(self) -> float: ...
    @property
    def mode(self) -> Literal["text", "golden", "mutual"]: ...
    def to_json(self, image: str = "") -> str:
        """The JSON document `loupe inspect` writes for this result."""

@final
class Engine:
    """A loaded model, prompt bank and post-processor, with an optional product profile."""

    def __new__(
        cls,
        config: _StrPath | None = None,
        *,
        model: _StrPath | None = None,
        bank: _StrPath | None = None,
        profile: _StrPath | None = None,
        defects: list[str] | None = None,
        image_threshold: float | None = None,
        pixel_threshold: float | None = None,
    ) -> Self: ...
    def inspect(self, image: _Image, *, format: _Format | None = None, bits: int = 16) -> Result: ...
    def inspect_batch(
        self,
        images: Iterable[_Image],
        *,
        format: _Format | None = None,
        bits: int = 16,
    ) -> list[Result]: ...
    def inspect_file(self, path: _StrPath, *, out: _StrPath | None = None, stem: str | None = None) -> Result:
        """Decodes and inspects an image file; with `out`, writes the four files `loupe inspect` writes there."""
    @property
    def classes(self) -> list[str]: ...
    @property
    def info(self) -> dict[str, dict[str, str] | str | None]: ...

"""Loupe: zero-shot defect detection and segmentation (DAPO) on NumPy images, run by Loupe's Rust engine.

`Engine` loads a model (the embedded default, or a model directory, bank, configuration and profile) and inspects
NumPy arrays; `Result` carries anomalib's names (`pred_score`, `pred_label`, `anomaly_map`, `pred_mask`) and
Loupe's own; errors are `LoupeError`. See python/README.md.
"""

from ._loupe import Engine, LoupeError, Region, Result, __version__

__all__ = ["Engine", "LoupeError", "Region", "Result", "__version__"]

"""DAPO post-processing in PyTorch (docs/model-format.md, section 3): scores, class maps, bilinear
upsampling with ``align_corners=True``, Gaussian smoothing with scipy's ``reflect`` border."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TEMPERATURE = 0.07


def image_score(g: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``softmax([g.T0, g.a] / 0.07)[1]`` with ``a = normalize(mean(T[1..K]))``; ``g`` and ``text`` normalised.
    Returns shape ``[1]``."""
    a = F.normalize(text[1:].mean(dim=0), dim=-1)
    logits = torch.stack([g @ text[0], g @ a]) / TEMPERATURE
    return logits.softmax(dim=0)[1:]


def image_probs(g: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``softmax(g . T^T / 0.07)`` over the ``1 + K`` states."""
    return ((text @ g) / TEMPERATURE).softmax(dim=0)


def grid_class_maps(patch_tokens: torch.Tensor, text: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``patch_tokens [L, G, D]`` (raw) -> ``[1 + K, gh, gw]``: sum over layers of
    ``softmax(normalize(P_l) T^T / 0.07)``, at grid resolution."""
    p = F.normalize(patch_tokens, dim=-1)
    probs = ((p @ text.T) / TEMPERATURE).softmax(dim=-1)  # [L, G, 1+K]
    summed = probs.sum(dim=0)  # [G, 1+K]
    return summed.T.reshape(text.shape[0], grid[0], grid[1])


def upsample_bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[C, h, w]`` -> ``[C, H, W]``, bilinear, ``align_corners=True``: output pixel ``y`` samples input
    coordinate ``y * (h - 1) / (H - 1)``."""
    return F.interpolate(maps.unsqueeze(0), size=size, mode="bilinear", align_corners=True).squeeze(0)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Weights ``exp(-x^2 / (2 sigma^2))`` for ``x = -r..r``, ``r = ceil(4 sigma)``, normalised to sum 1
    (float64)."""
    radius = int(math.ceil(4.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return w / w.sum()


def reflect_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """scipy's ``reflect`` (half-sample symmetric, ``d c b a | a b c d | d c b a``) for any offset."""
    period = 2 * n
    m = torch.remainder(i, period)
    return torch.where(m >= n, period - 1 - m, m)


def _smooth_axis(x: torch.Tensor, w: torch.Tensor, axis: int) -> torch.Tensor:
    n = x.shape[axis]
    r = (w.numel() - 1) // 2
    idx = reflect_index(torch.arange(-r, n + r), n)
    padded = torch.index_select(x, axis, idx)
    out = torch.zeros_like(x)
    for t in range(w.numel()):
        out = out + w[t] * padded.narrow(axis, t, n)
    return out


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of a ``[H, W]`` map, along axis 0 (vertical) first, then axis 1; float64 inside,
    returned in the input dtype. ``sigma <= 0`` returns a copy."""
    if sigma <= 0:
        return image.clone()
    w = gaussian_kernel1d(sigma)
    x = image.to(torch.float64)
    x = _smooth_axis(x, w, 0)
    x = _smooth_axis(x, w, 1)
    return x.to(image.dtype)

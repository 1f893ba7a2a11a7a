"""The DAPO loss (``../shared/design/dapo-method.md``): image cross-entropy + ``pixel_weight`` x the sum over
feature layers of [focal loss over the 1+K classes (gamma 2) + Dice(normal channel, 1 - mask) + Dice(sum of the
defect channels, mask)]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TEMPERATURE = 0.07


def focal_loss(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, eps: float = 1e-6) -> torch.Tensor:
    """``probs [N, C, H, W]`` (softmax over C), ``target [N, H, W]`` class indices; mean over pixels."""
    p_true = probs.gather(1, target.unsqueeze(1)).squeeze(1).clamp(eps, 1.0)
    return (-((1.0 - p_true) ** gamma) * torch.log(p_true)).mean()


def dice_loss(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2 |P.T| + s) / (|P| + |T| + s)`` over each image, averaged over the batch (``[N, H, W]``)."""
    inter = (pred * target).flatten(1).sum(1)
    total = pred.flatten(1).sum(1) + target.flatten(1).sum(1)
    return (1.0 - (2.0 * inter + smooth) / (total + smooth)).mean()


def class_probs(patch_tokens: torch.Tensor, text: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``patch_tokens [N, G, D]``, ``text [1+K, D]`` (normalised) -> softmax maps ``[N, 1+K, gh, gw]``."""
    logits = F.normalize(patch_tokens, dim=-1) @ text.t() / TEMPERATURE
    n = patch_tokens.shape[0]
    return logits.softmax(dim=-1).transpose(1, 2).reshape(n, text.shape[0], grid[0], grid[1])


def image_logits(global_feature: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``[N, 2]``: (normal, any defect) logits, "any defect" = normalised mean of the defect rows."""
    g = F.normalize(global_feature, dim=-1)
    anomaly = F.normalize(text[1:].mean(dim=0), dim=-1)
    return torch.stack([g @ text[0], g @ anomaly], dim=1) / TEMPERATURE


def patch_targets(type_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per-pixel class map ``[N, H, W]`` -> per-patch ``[N, gh, gw]``: a patch takes the class of any defect
    pixel it holds (one defect type per image), else normal."""
    pooled = F.adaptive_max_pool2d(type_map.unsqueeze(1).float(), grid)
    return pooled.squeeze(1).long()


def pixel_terms(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Focal + Dice(normal, not defect) + Dice(sum of defect channels, defect) for one layer."""
    defect = (target > 0).float()
    return focal_loss(probs, target) + dice_loss(probs[:, 0], 1.0 - defect) + dice_loss(probs[:, 1:].sum(1), defect)


def balanced_cross_entropy(probs: torch.Tensor, target: torch.Tensor, max_weight: float = 50.0) -> torch.Tensor:
    """Cross-entropy with each defect class weighted by (normal count / that class's count), at most
    ``max_weight``: a batch whose defects cover 2 % of the patches, most of them one large type, still pulls
    toward every defect class present."""
    weight = torch.ones_like(target, dtype=probs.dtype)
    n_normal = max(1, int((target == 0).sum()))
    for c in torch.unique(target).tolist():
        if c > 0:
            at = target == c
            weight[at] = min(max_weight, n_normal / int(at.sum()))
    nll = -torch.log(probs.gather(1, target.unsqueeze(1)).squeeze(1).clamp_min(1e-6))
    return (weight * nll).sum() / weight.sum()


def dapo_loss(
    global_feature: torch.Tensor,
    patch_tokens: torch.Tensor,
    text: torch.Tensor,
    grid: tuple[int, int],
    type_map: torch.Tensor,
    labels: torch.Tensor,
    pixel_level: bool,
    pixel_weight: float = 4.0,
    balanced_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss and its parts.

    ``patch_tokens [N, L, G, D]``; ``type_map [N, H, W]`` (0 normal, k = class k); ``labels [N]`` (0 good).
    ``pixel_level``: maps upsampled to ``H x W`` (bilinear, align_corners, as inference) as the method trains;
    otherwise targets are pooled to the patch grid (a patch is defective if any of its pixels is), which is what
    learns within CPU-minutes from scratch (see ../shared/design/default-model-notes.md).
    ``balanced_weight`` adds a class-balanced cross-entropy per layer (pre-training from scratch only: with the
    method's terms alone a from-scratch model sat at "all normal" for hundreds of steps here).
    """
    image = F.cross_entropy(image_logits(global_feature, text), (labels > 0).long())
    target = type_map if pixel_level else patch_targets(type_map, grid)
    pixel = torch.zeros((), dtype=global_feature.dtype)
    balanced = torch.zeros((), dtype=global_feature.dtype)
    for layer in range(patch_tokens.shape[1]):
        probs = class_probs(patch_tokens[:, layer], text, grid)
        if pixel_level:
            probs = F.interpolate(probs, size=type_map.shape[-2:], mode="bilinear", align_corners=True)
        pixel = pixel + pixel_terms(probs, target)
        if balanced_weight:
            balanced = balanced + balanced_cross_entropy(probs, target)
    total = image + pixel_weight * pixel + balanced_weight * balanced
    return total, {"loss": total.item(), "image": image.item(), "pixel": pixel.item(), "balanced": balanced.item()}


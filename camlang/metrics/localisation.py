"""Localisation metrics against ground-truth masks: pointing game, energy, IoU, point tests.

Maps `L` are [B, H, W] or [M, B, H, W]; `masks` are bool [B, H, W] at the same resolution and
are shared by all M candidate maps. Results have the maps' leading shape [..., B].
"""

from __future__ import annotations

import torch

from camlang.errors import CamlangError


def _check(L: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        got = list(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise CamlangError(f"masks must be a bool tensor [B, H, W], got {got}")
    if not isinstance(L, torch.Tensor) or L.dim() not in (3, 4) or L.shape[-3:] != masks.shape:
        got = list(L.shape) if isinstance(L, torch.Tensor) else type(L).__name__
        raise CamlangError(
            f"saliency maps must have shape [B, H, W] = {list(masks.shape)} or [M, B, H, W] "
            f"to match the masks, got {got}"
        )
    if not torch.isfinite(L).all():
        raise CamlangError("saliency maps contain NaN or infinite values")
    return masks.bool().to(L.device)


def argmax_points(L: torch.Tensor) -> torch.Tensor:
    """Long [..., 2] (row, column) of each map's maximum; ties: smallest row-major index."""
    w = L.shape[-1]
    flat = L.reshape(*L.shape[:-2], -1)
    best = flat.max(dim=-1, keepdim=True).values
    idx = (flat == best).int().argmax(dim=-1)  # first maximal entry, a deterministic tie-break
    return torch.stack([idx // w, idx % w], dim=-1)


def pointing_game(L: torch.Tensor, masks: torch.Tensor, tolerance: float = 15.0) -> torch.Tensor:
    """Bool [..., B]: hit when the map's maximum lies within `tolerance` pixels (Euclidean) of the mask.

    Zhang et al. 2018 ("Top-down neural attention by excitation backprop"), whose evaluation
    uses a 15-pixel tolerance. An empty mask is always a miss. Higher hit rate is better.
    """
    masks = _check(L, masks)
    if tolerance < 0:
        raise CamlangError(f"pointing game tolerance must be >= 0 pixels, got {tolerance}")
    h, w = masks.shape[-2:]
    pts = argmax_points(L).float()
    ys = torch.arange(h, dtype=torch.float32, device=L.device).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=L.device).view(1, w)
    d2 = (ys - pts[..., 0, None, None]) ** 2 + (xs - pts[..., 1, None, None]) ** 2
    d2 = torch.where(masks, d2, torch.full_like(d2, float("inf")))
    return d2.flatten(-2).min(dim=-1).values <= float(tolerance) ** 2


def energy_pointing_game(L: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Float [..., B]: `sum(L * mask) / sum(L)`, the share of saliency energy inside the mask.

    Wang et al. 2020 (Score-CAM), there with bounding boxes (see `boxes_to_masks`). Maps are
    expected non-negative (normalised CAMs); an all-zero map scores 0. Higher is better.
    """
    masks = _check(L, masks)
    if (L < 0).any():
        raise CamlangError(
            "energy pointing game needs non-negative saliency maps", hint="normalise the maps first"
        )
    total = L.flatten(-2).sum(-1)
    inside = (L * masks).flatten(-2).sum(-1)
    return torch.where(
        total > 0, inside / total.clamp(min=torch.finfo(L.dtype).tiny), torch.zeros_like(total)
    )


def iou_at(L: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Float [..., B]: IoU of `{L >= threshold}` with the mask; 1 when both are empty. Higher is better."""
    masks = _check(L, masks)
    pred = L >= threshold
    inter = (pred & masks).flatten(-2).sum(-1).float()
    union = (pred | masks).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def inside(points: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Bool [..., B]: whether each (row, column) point of `points` [..., B, 2] lies in its image's mask.

    Points outside the image are not inside.
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        raise CamlangError("masks must be a bool tensor [B, H, W]")
    if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[-2:] != (masks.shape[0], 2):
        got = list(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise CamlangError(f"points must have shape [..., {masks.shape[0]}, 2] (row, column), got {got}")
    h, w = masks.shape[-2:]
    p = points.long()
    ok = (p[..., 0] >= 0) & (p[..., 0] < h) & (p[..., 1] >= 0) & (p[..., 1] < w)
    r = p[..., 0].clamp(0, h - 1)
    c = p[..., 1].clamp(0, w - 1)
    b = torch.arange(masks.shape[0], device=masks.device).expand_as(r)
    return ok & masks.bool()[b, r, c]


def boxes_to_masks(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bool [B, H, W] masks of boxes [B, 4] given as (x0, y0, x1, y1) pixel bounds, end-exclusive."""
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise CamlangError("boxes must be a tensor [B, 4] of (x0, y0, x1, y1)")
    b = boxes.long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    return (
        (ys >= b[:, 1, None, None])
        & (ys < b[:, 3, None, None])
        & (xs >= b[:, 0, None, None])
        & (xs < b[:, 2, None, None])
    )

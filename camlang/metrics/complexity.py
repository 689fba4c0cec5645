"""Complexity of a map: sparsity (Gini index) and Shannon entropy.

Both work on the absolute values of maps `[..., H, W]` and return `[...]`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from camlang.errors import CamlangError


def _flat_abs(L: torch.Tensor) -> torch.Tensor:
    if not isinstance(L, torch.Tensor) or L.dim() < 2:
        got = list(L.shape) if isinstance(L, torch.Tensor) else type(L).__name__
        raise CamlangError(f"saliency maps must have shape [..., H, W], got {got}")
    if not torch.isfinite(L).all():
        raise CamlangError("saliency maps contain NaN or infinite values")
    return L.abs().reshape(*L.shape[:-2], -1).double()


def sparsity(L: torch.Tensor) -> torch.Tensor:
    """Gini index of |L| per map (Chalasani et al. 2020, after Hurley & Rickard 2009).

    With the n values sorted ascending, `G = 1 - 2 * sum_k (v_k / sum(v)) * (n - k + 1/2) / n`
    (k = 1..n). G lies in [0, 1 - 1/n]: 0 for a constant map (also for an all-zero map, by
    definition), near 1 when one pixel carries everything. Higher means sparser, which is
    usually read as better (more concise).
    """
    v = _flat_abs(L)
    n = v.shape[-1]
    v, _ = torch.sort(v, dim=-1)
    total = v.sum(-1)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    weighted = (v * (n - k + 0.5) / n).sum(-1)
    gini = 1 - 2 * weighted / total.clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(total > 0, gini, torch.zeros_like(gini)).float()


def entropy(L: torch.Tensor, unit: Literal["nats", "bits"] = "nats") -> torch.Tensor:
    """Shannon entropy of |L| normalised to sum 1, per map; `0 log 0 = 0`.

    In nats (natural log) by default or bits. Ranges over [0, log n]; an all-zero map is taken
    as uniform (log n), matching a constant map. Lower means more concentrated (usually better).
    """
    if unit not in ("nats", "bits"):
        raise CamlangError(f"entropy unit must be 'nats' or 'bits', got {unit!r}")
    v = _flat_abs(L)
    n = v.shape[-1]
    total = v.sum(-1, keepdim=True)
    p = torch.where(
        total > 0, v / total.clamp(min=torch.finfo(torch.float64).tiny), torch.full_like(v, 1.0 / n)
    )
    terms = torch.where(
        p > 0, -p * torch.log(p.clamp(min=torch.finfo(torch.float64).tiny)), torch.zeros_like(p)
    )
    h = terms.sum(-1)
    if unit == "bits":
        h = h / math.log(2)
    return h.float()

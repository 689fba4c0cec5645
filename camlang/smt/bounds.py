"""Bound propagation in torch float64: interval, linear relaxation (CROWN / DeepPoly) and gradient.

Everything here is an over-approximation of the exact real-arithmetic network over an input box:
a bound that says ``z <= u`` holds for every input in the box. The rounding of float64
arithmetic is far below the margins the verifier relies on (see docs/smt.md, "Float caveat").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from camlang.smt.network import ReluNet

__all__ = ["NetBounds", "compute_bounds", "spec_bounds", "gradient_bounds", "ACTIVE", "INACTIVE", "UNDECIDED"]

ACTIVE, INACTIVE, UNDECIDED = 1, 0, -1


@dataclass(frozen=True)
class NetBounds:
    """Pre-activation bounds per hidden layer and the phase of every ReLU.

    ``phase[k][i]`` is ACTIVE when ``lower > 0`` (the ReLU and its gradient gate are 1 on the whole
    box), INACTIVE when ``upper <= 0`` (both are 0: torch's relu'(0) = 0), UNDECIDED otherwise.
    """

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    phase: tuple[np.ndarray, ...]

    def n_undecided(self) -> int:
        return int(sum(int((p == UNDECIDED).sum()) for p in self.phase))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def _relax(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear relaxation of relu on [lo, up]: upper slope/intercept and adaptive lower slope."""
    active = lo >= 0
    inactive = up <= 0
    cross = ~(active | inactive)
    denom = torch.where(cross, up - lo, torch.ones_like(up))
    up_slope = torch.where(active, torch.ones_like(up), torch.where(cross, up / denom, torch.zeros_like(up)))
    up_icpt = torch.where(cross, -up * lo / denom, torch.zeros_like(up))
    low_slope = torch.where(active, torch.ones_like(up), torch.zeros_like(up))
    low_slope = torch.where(cross & (up > -lo), torch.ones_like(up), low_slope)
    return up_slope, up_icpt, low_slope


def _backsubstitute(
    C: torch.Tensor,
    const: torch.Tensor,
    layer: int,
    Ws: list[torch.Tensor],
    bs: list[torch.Tensor],
    relax: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    x_lo: torch.Tensor,
    x_hi: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of ``C @ z_layer + const`` (``z_layer = Ws[layer] h + bs[layer]``) over the input box."""
    A_up = C @ Ws[layer]
    A_lo = A_up.clone()
    c_up = C @ bs[layer] + const
    c_lo = c_up.clone()
    for k in range(layer - 1, -1, -1):
        us, ui, ls = relax[k]
        pos, neg = A_up.clamp(min=0), A_up.clamp(max=0)
        c_up = c_up + pos @ ui
        A_up = pos * us + neg * ls
        pos, neg = A_lo.clamp(min=0), A_lo.clamp(max=0)
        c_lo = c_lo + neg @ ui
        A_lo = pos * ls + neg * us
        c_up = c_up + A_up @ bs[k]
        c_lo = c_lo + A_lo @ bs[k]
        A_up = A_up @ Ws[k]
        A_lo = A_lo @ Ws[k]
    mid, rad = (x_hi + x_lo) / 2, (x_hi - x_lo) / 2
    upper = A_up @ mid + A_up.abs() @ rad + c_up
    lower = A_lo @ mid - A_lo.abs() @ rad + c_lo
    return lower, upper


def compute_bounds(net: ReluNet, lo: np.ndarray, hi: np.ndarray) -> NetBounds:
    """Interval bounds intersected with CROWN bounds for every hidden pre-activation over [lo, hi]."""
    Ws = [_t(W) for W in net.Ws]
    bs = [_t(b) for b in net.bs]
    x_lo, x_hi = _t(lo), _t(hi)
    lowers: list[torch.Tensor] = []
    uppers: list[torch.Tensor] = []
    relax: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    h_lo, h_hi = x_lo, x_hi
    for k in range(net.n_hidden):
        W, b = Ws[k], bs[k]
        mid, rad = (h_hi + h_lo) / 2, (h_hi - h_lo) / 2
        i_lo = W @ mid - W.abs() @ rad + b
        i_hi = W @ mid + W.abs() @ rad + b
        if k > 0:
            eye = torch.eye(W.shape[0], dtype=torch.float64)
            c_lo, c_hi = _backsubstitute(
                eye, torch.zeros(W.shape[0], dtype=torch.float64), k, Ws, bs, relax, x_lo, x_hi
            )
            i_lo, i_hi = torch.maximum(i_lo, c_lo), torch.minimum(i_hi, c_hi)
        lowers.append(i_lo)
        uppers.append(i_hi)
        relax.append(_relax(i_lo, i_hi))
        h_lo, h_hi = i_lo.clamp(min=0), i_hi.clamp(min=0)
    phases = []
    for l, u in zip(lowers, uppers):
        p = np.full(l.shape[0], UNDECIDED, dtype=np.int8)
        p[(l > 0).numpy()] = ACTIVE
        p[(u <= 0).numpy()] = INACTIVE
        phases.append(p)
    return NetBounds(tuple(l.numpy() for l in lowers), tuple(u.numpy() for u in uppers), tuple(phases))


def spec_bounds(
    net: ReluNet,
    bounds: NetBounds,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CROWN bounds of ``C @ logits + d`` over [lo, hi] (one row per output specification)."""
    Ws = [_t(W) for W in net.Ws]
    bs = [_t(b) for b in net.bs]
    relax = [_relax(_t(l), _t(u)) for l, u in zip(bounds.lower, bounds.upper)]
    Ct = _t(np.atleast_2d(C))
    const = _t(d) if d is not None else torch.zeros(Ct.shape[0], dtype=torch.float64)
    low, up = _backsubstitute(Ct, const, net.n_hidden, Ws, bs, relax, _t(lo), _t(hi))
    return low.numpy(), up.numpy()


def gradient_bounds(
    net: ReluNet, phase: tuple[np.ndarray, ...] | list[np.ndarray], c: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Interval bounds of the backward pass of ``c . logits`` given (partial) gate phases.

    Returns, per hidden layer k, bounds of the gradient w.r.t. ``h_k`` (before the gate), and the
    bounds of the input gradient. ACTIVE gates pass the gradient, INACTIVE block it, UNDECIDED gates
    are either, so the gated interval is the hull of both.
    """
    g = np.asarray(net.Ws[-1].T @ c, dtype=np.float64)
    g_lo, g_hi = g.copy(), g.copy()
    per_layer: list[tuple[np.ndarray, np.ndarray]] = [(g_lo, g_hi)] * net.n_hidden
    for k in range(net.n_hidden - 1, -1, -1):
        per_layer[k] = (g_lo, g_hi)
        p = phase[k]
        gl = np.where(p == ACTIVE, g_lo, np.where(p == INACTIVE, 0.0, np.minimum(g_lo, 0.0)))
        gh = np.where(p == ACTIVE, g_hi, np.where(p == INACTIVE, 0.0, np.maximum(g_hi, 0.0)))
        Wt = net.Ws[k].T
        pos, neg = np.clip(Wt, 0, None), np.clip(Wt, None, 0)
        g_lo, g_hi = pos @ gl + neg @ gh, pos @ gh + neg @ gl
    return per_layer, (g_lo, g_hi)

"""Batched alpha-beta-CROWN bounds in torch float64, for the branches of a branch-and-bound search.

One backward linear pass bounds ``C y`` from below over the input box for a batch of branches at
once. Each branch has its own pre-activation bounds (the split ReLUs clamped: ``l = max(l, 0)``
where the branch fixes ``z >= 0``, ``u = min(u, 0)`` where it fixes ``z <= 0``), its own lower
slopes ``alpha`` of the undecided ReLUs (any slope in [0, 1] gives a valid lower line of relu),
and its own multipliers ``beta >= 0`` of the split constraints: for a split ``z <= 0`` the
Lagrangian ``f + beta z`` is below ``f`` on the branch, for ``z >= 0`` it is ``f - beta z``. So every
value of alpha and beta gives a sound lower bound over the branch; gradient ascent on them only
tightens it (`optimise`). The bounds hold for the real-arithmetic network; float64 rounding is far
below the margins used (docs/smt.md, "Float caveat").

`root_bounds` computes the pre-activation bounds of every hidden layer over the box, layer after
layer, each with its own optimised slopes: on deep networks this is what keeps the bounds from
blowing up with depth. The branches then reuse them (clamped by their splits), and
`branch_bounds` recomputes, per branch, the layers above its newest split over the branch's own
bounds of the layers below (the split ReLUs' relaxations are exact there), keeping the parent's
where they are tighter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds
from camlang.smt.network import ReluNet

__all__ = [
    "TorchNet",
    "Relaxation",
    "LinearBound",
    "backward_bound",
    "optimise",
    "root_bounds",
    "branch_bounds",
]

F64 = torch.float64


@dataclass(frozen=True)
class TorchNet:
    """The canonical net as float64 tensors: ``z_k = Ws[k] h_{k-1} + bs[k]``, ``h_{-1} = x``,
    ``h_k = relu(z_k)``, the logits ``y = z_L``; and the input box."""

    Ws: tuple[torch.Tensor, ...]
    bs: tuple[torch.Tensor, ...]
    x_lo: torch.Tensor
    x_hi: torch.Tensor

    @staticmethod
    def of(net: ReluNet, lo: np.ndarray, hi: np.ndarray) -> TorchNet:
        """``net`` over the box ``[lo, hi]``."""
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=F64)  # noqa: E731
        return TorchNet(tuple(t(W) for W in net.Ws), tuple(t(b) for b in net.bs), t(lo), t(hi))

    @property
    def n_hidden(self) -> int:
        return len(self.Ws) - 1


@dataclass(frozen=True)
class Relaxation:
    """Per hidden layer below the bounded one: pre-activation bounds ``(B, n)``, lower slopes
    ``alpha`` ``(B, R, n)`` and split multipliers ``beta`` ``(B, R, n)`` with the split signs
    ``split`` ``(B, n)`` (+1: the branch fixes ``z >= 0``, -1: ``z <= 0``, 0: not split)."""

    lower: tuple[torch.Tensor, ...]
    upper: tuple[torch.Tensor, ...]
    alpha: tuple[torch.Tensor, ...]
    beta: tuple[torch.Tensor, ...] | None = None
    split: tuple[torch.Tensor, ...] | None = None


@dataclass(frozen=True)
class LinearBound:
    """``C z_start >= lb`` on each branch, the input coefficients of the bound, and (detached) the
    coefficient of every hidden ``h_k`` in it (what the branching heuristic reads)."""

    lb: torch.Tensor  # (B, R)
    coef_x: torch.Tensor  # (B, R, n_in)
    coef_h: tuple[torch.Tensor, ...]  # per hidden layer below start, (B, R, n_k)


def _upper_line(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The triangle's upper side ``h <= s z + t`` (exact on stable ReLUs)."""
    cross = (lo < 0) & (up > 0)
    denom = torch.where(cross, up - lo, torch.ones_like(up))
    slope = torch.where(up <= 0, torch.zeros_like(up), torch.where(cross, up / denom, torch.ones_like(up)))
    icpt = torch.where(cross, -up * lo / denom, torch.zeros_like(up))
    return slope, icpt


def backward_bound(net: TorchNet, start: int, C: torch.Tensor, rel: Relaxation) -> LinearBound:
    """Lower bounds of ``C z_start`` (``C``: ``(B, R, n_start)``) over each branch of ``rel``."""
    lam = C
    const = torch.zeros(C.shape[:2], dtype=F64)
    coef_h: list[torch.Tensor] = [torch.zeros(0)] * start
    for k in range(start - 1, -1, -1):
        const = const + lam @ net.bs[k + 1]
        lam_h = lam @ net.Ws[k + 1]
        coef_h[k] = lam_h.detach()
        lo, up = rel.lower[k], rel.upper[k]
        up_slope, up_icpt = _upper_line(lo, up)
        low_slope = torch.where(
            (lo >= 0)[:, None, :],
            torch.ones_like(lam_h),
            torch.where((up <= 0)[:, None, :], torch.zeros_like(lam_h), _unit(rel.alpha[k])),
        )
        pos, neg = lam_h.clamp(min=0), lam_h.clamp(max=0)
        lam = pos * low_slope + neg * up_slope[:, None, :]
        const = const + (neg * up_icpt[:, None, :]).sum(-1)
        if rel.beta is not None and rel.split is not None:
            # split z >= 0 (+1): add -beta z; split z <= 0 (-1): add +beta z (module docstring)
            lam = lam - _nonneg(rel.beta[k]) * rel.split[k][:, None, :]
    const = const + lam @ net.bs[0]
    coef_x = lam @ net.Ws[0]
    mid, rad = (net.x_hi + net.x_lo) / 2, (net.x_hi - net.x_lo) / 2
    lb = coef_x @ mid - coef_x.abs() @ rad + const
    return LinearBound(lb, coef_x, tuple(coef_h))


def _unit(a: torch.Tensor) -> torch.Tensor:
    """``a`` clamped into [0, 1] (soundness), with the gradient of the identity: torch's clamp has
    a zero gradient at the ends, where CROWN's initial slopes all lie."""
    return a + (a.clamp(0.0, 1.0) - a).detach()


def _nonneg(b: torch.Tensor) -> torch.Tensor:
    """``b`` clamped at 0 (soundness), with the gradient of the identity (see `_unit`)."""
    return b + (b.clamp(min=0.0) - b).detach()


def initial_alpha(lower: torch.Tensor, upper: torch.Tensor, rows: int) -> torch.Tensor:
    """CROWN's adaptive slopes (1 where ``u > -l``, else 0), one copy per spec row: ``(B, R, n)``."""
    a = (upper > -lower).to(F64)
    return a[:, None, :].expand(-1, rows, -1).clone()


def optimise(
    net: TorchNet, start: int, C: torch.Tensor, rel: Relaxation, steps: int, lr: float = 0.1
) -> tuple[LinearBound, Relaxation]:
    """``steps`` of projected Adam ascent on alpha (and beta) for the bound of ``C z_start``.

    The ascent runs in float32 (six times faster than float64 here); its bounds are never used.
    The bound returned is recomputed in float64 with the final slopes and multipliers (clamped
    into their domains, so it is sound), and per row it is the better of that and the float64
    bound of the starting values. The slopes returned are the final ones (for warm starts)."""
    with torch.no_grad():
        first = backward_bound(net, start, C, rel)
    if steps <= 0:
        return first, rel
    f32 = torch.float32
    alpha = [a.detach().to(f32).requires_grad_(True) for a in rel.alpha[:start]]
    beta = None if rel.beta is None else [b.detach().to(f32).requires_grad_(True) for b in rel.beta[:start]]
    net32 = TorchNet(
        tuple(W.to(f32) for W in net.Ws), tuple(b.to(f32) for b in net.bs), net.x_lo.to(f32), net.x_hi.to(f32)
    )
    rel32 = Relaxation(
        tuple(t.to(f32) for t in rel.lower),
        tuple(t.to(f32) for t in rel.upper),
        (),
        None,
        None if rel.split is None else tuple(t.to(f32) for t in rel.split),
    )
    C32 = C.to(f32)
    opt = torch.optim.Adam([*alpha, *(beta or [])], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        out = backward_bound(net32, start, C32, _with(rel32, alpha, beta))
        (-out.lb.sum()).backward()
        opt.step()
        with torch.no_grad():
            for a in alpha:
                a.clamp_(0.0, 1.0)
            for b in beta or []:
                b.clamp_(min=0.0)
    out_rel = _with(
        rel, [a.detach().to(F64) for a in alpha], None if beta is None else [b.detach().to(F64) for b in beta]
    )
    with torch.no_grad():
        final = backward_bound(net, start, C, out_rel)
    better = final.lb > first.lb
    lb = torch.where(better, final.lb, first.lb)
    coef_x = torch.where(better[..., None], final.coef_x, first.coef_x)
    return LinearBound(lb, coef_x, final.coef_h), out_rel


def _with(rel: Relaxation, alpha: list[torch.Tensor], beta: list[torch.Tensor] | None) -> Relaxation:
    return Relaxation(rel.lower, rel.upper, tuple(alpha), None if beta is None else tuple(beta), rel.split)


def root_bounds(
    net: TorchNet, start: NetBounds, steps: int = 20, deadline: float | None = None
) -> tuple[NetBounds, list[torch.Tensor], list[torch.Tensor]]:
    """Every hidden layer's pre-activation bounds over the box with optimised slopes, intersected
    with ``start`` (sound bounds, e.g. `compute_bounds` after gradient fixing); the lower and upper
    bounds as ``(1, n)`` tensors too. Layer ``k``'s undecided ReLUs get their own slopes for every
    earlier layer (two rows each: ``z`` and ``-z``). Past ``deadline`` the rest is plain CROWN."""
    lowers: list[torch.Tensor] = []
    uppers: list[torch.Tensor] = []
    for k in range(net.n_hidden):
        lo = torch.as_tensor(start.lower[k], dtype=F64)[None, :].clone()
        up = torch.as_tensor(start.upper[k], dtype=F64)[None, :].clone()
        und = torch.nonzero((lo[0] < 0) & (up[0] > 0)).flatten()
        if k > 0 and len(und):
            n = lo.shape[1]
            eye = torch.eye(n, dtype=F64)[und]
            C = torch.cat([eye, -eye])[None]  # rows: z_i, -z_i
            rows = C.shape[1]
            alpha = tuple(initial_alpha(lowers[j], uppers[j], rows) for j in range(k))
            rel = Relaxation(tuple(lowers), tuple(uppers), alpha)
            late = deadline is not None and time.monotonic() > deadline
            bound, _ = optimise(net, k, C, rel, 0 if late else steps)
            lb = bound.lb[0]
            lo[0, und] = torch.maximum(lo[0, und], lb[: len(und)])
            up[0, und] = torch.minimum(up[0, und], -lb[len(und) :])
        lowers.append(lo)
        uppers.append(up)
    phases = []
    for lo, up in zip(lowers, uppers):
        p = np.full(lo.shape[1], UNDECIDED, dtype=np.int8)
        p[(lo[0] > 0).numpy()] = ACTIVE
        p[(up[0] <= 0).numpy()] = INACTIVE
        phases.append(p)
    nb = NetBounds(
        tuple(lo[0].numpy().copy() for lo in lowers),
        tuple(up[0].numpy().copy() for up in uppers),
        tuple(phases),
    )
    return nb, lowers, uppers


#: rows (branches x bounded neurons) per backward pass of `branch_bounds` (memory: each row carries
#: its input coefficients)
_CHUNK_ROWS = 4096


def branch_bounds(
    net: TorchNet,
    lower: tuple[torch.Tensor, ...],
    upper: tuple[torch.Tensor, ...],
    first: torch.Tensor,
    only: tuple[torch.Tensor, ...] | None = None,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Per-branch intermediate bounds. ``lower``/``upper``: ``(B, n_k)`` per hidden layer, sound
    on each branch (e.g. the parent's, clamped by the branch's splits); ``first``: ``(B,)`` the
    lowest layer whose bounds changed on each branch. Every layer above it gets its pre-activation
    bounds recomputed by a CROWN pass (adaptive slopes) over the branch's bounds of the layers
    below, already recomputed, and intersected with the old ones: both hold on the branch, so the
    result does too. Layers at or below ``first`` are returned unchanged (the same tensors).
    ``only``: per layer, a ``(n_k,)`` mask of the neurons worth recomputing (the others keep their
    bounds, which is as sound and costs nothing)."""
    lows, ups = list(lower), list(upper)
    for j in range(1, net.n_hidden):
        sel = torch.nonzero(first < j).flatten()
        if not len(sel):
            continue
        lo_j, up_j = lows[j][sel], ups[j][sel]
        free = ((lo_j < 0) & (up_j > 0)).any(0)
        idx = torch.nonzero(free if only is None else free & only[j]).flatten()
        if not len(idx):
            continue
        eye = torch.eye(lo_j.shape[1], dtype=F64)[idx]
        rows = torch.cat([eye, -eye])  # z_i and -z_i for the neurons free on some branch
        new_lo, new_up = lows[j].clone(), ups[j].clone()
        step = max(1, _CHUNK_ROWS // rows.shape[0])
        for s in range(0, len(sel), step):
            part = sel[s : s + step]
            below_lo = tuple(lows[k][part] for k in range(j))
            below_up = tuple(ups[k][part] for k in range(j))
            alpha = tuple(initial_alpha(lo, up, 1) for lo, up in zip(below_lo, below_up))
            C = rows[None].expand(len(part), -1, -1)
            lb = backward_bound(net, j, C, Relaxation(below_lo, below_up, alpha)).lb
            at = (part[:, None], idx[None, :])
            new_lo[at] = torch.maximum(new_lo[at], lb[:, : len(idx)])
            new_up[at] = torch.minimum(new_up[at], -lb[:, len(idx) :])
        lows[j], ups[j] = new_lo, new_up
    return tuple(lows), tuple(ups)

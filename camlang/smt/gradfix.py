"""Fix ReLU phases from the gradient constraint alone (before any search).

The input gradient is ``VG = W_0^T gz_0`` where ``gz_0 = d_0 * gh_0`` is the gated gradient at the
first hidden layer. When ``W_0`` has full row rank (fewer first-layer neurons than inputs, the
usual case), ``W_0^T`` is injective and ``gz_0 = pinv(W_0^T) VG`` exactly, so the constraint
``|VG - g0|_inf <= delta`` pins every ``gz_0[i]`` to an interval of radius
``|pinv(W_0^T)[i]|_1 * delta`` around ``pinv(W_0^T) g0``. An interval that excludes 0 forces the
neuron's gate open (active). For a two-level backward pass (the next layer is the last hidden
one, whose gradient ``a`` is a constant), the open gates give linear constraints
``|sum_j W_1[j, i] a_j d_j - centre_i| <= radius_i`` on the last layer's gates ``d``; a small LP per
undecided gate shows which value is impossible. Every fixing is implied by the constraint, so
the restricted problem has exactly the same solutions as the original one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds, gradient_bounds
from camlang.smt.network import ReluNet
from camlang.smt.query import GradientConstraint, proved_infeasible

__all__ = ["GradientFixing", "fix_phases_by_gradient"]

# slack on the pinv intervals, far above the float64 error of pinv for well-conditioned W
_SLACK = 1e-8
# absolute + relative loosening of the gate LP's rows, far above HiGHS's feasibility tolerance
_LP_TOL = 1e-6


@dataclass(frozen=True)
class GradientFixing:
    """Tightened bounds, how many gates were fixed per layer, and whether the constraint is
    already unsatisfiable on the box."""

    bounds: NetBounds
    fixed: tuple[int, ...]
    infeasible: bool
    gz0: tuple[np.ndarray, np.ndarray] | None = None  # implied bounds of the first layer's gated gradient


def _apply(bounds: NetBounds, k: int, on: np.ndarray, off: np.ndarray) -> NetBounds:
    lower = list(bounds.lower)
    upper = list(bounds.upper)
    phase = list(bounds.phase)
    lower[k] = np.where(on, np.maximum(lower[k], 0.0), lower[k])
    upper[k] = np.where(off, np.minimum(upper[k], 0.0), upper[k])
    p = phase[k].copy()
    p[on] = ACTIVE
    p[off] = INACTIVE
    phase[k] = p
    return NetBounds(tuple(lower), tuple(upper), tuple(phase))


def fix_phases_by_gradient(
    net: ReluNet,
    bounds: NetBounds,
    grad: GradientConstraint,
    max_lps: int = 400,
    deadline: float = float("inf"),
) -> GradientFixing:
    """Fix the gates the gradient constraint decides; see the module docstring."""
    fixed = [0] * net.n_hidden
    if net.n_hidden == 0:
        return GradientFixing(bounds, tuple(fixed), False)
    W0 = net.Ws[0]
    if W0.shape[0] > W0.shape[1]:
        return GradientFixing(bounds, tuple(fixed), False)
    gram = W0 @ W0.T
    eig = np.linalg.eigvalsh(gram)
    if eig.size == 0 or eig.min() <= 1e-12 * eig.max():
        return GradientFixing(bounds, tuple(fixed), False)
    P = np.linalg.solve(gram, W0)  # pinv(W0^T) = (W0 W0^T)^-1 W0 for full row rank W0
    centre = P @ grad.g0
    row_norm = np.abs(P).sum(axis=1)
    # delta, plus a generous allowance for the float64 error of pinv(W0^T) @ g0
    radius = row_norm * grad.encoded_delta * (1 + _SLACK) + _SLACK * row_norm * (np.abs(grad.g0).max() + 1.0)
    # and the measured error of P itself: P W0^T = I + R, so P = pinv + R pinv, whose rows add
    # at most (|R| row_norm)_i * |VG|_inf; negligible for a well-conditioned W0 (|R| <= 1e-14 on
    # the mnistfc first layers), and what keeps the interval sound for a badly conditioned one
    # (near-duplicate first-layer rows)
    residual = np.abs(P @ W0.T - np.eye(W0.shape[0]))
    radius = radius + 2.0 * (residual @ row_norm) * (np.abs(grad.g0).max() + grad.encoded_delta)
    lo0, hi0 = centre - radius, centre + radius
    ph0 = bounds.phase[0]
    if np.any((ph0 == INACTIVE) & ((lo0 > 0) | (hi0 < 0))):
        return GradientFixing(bounds, tuple(fixed), True)
    force_on = (ph0 == UNDECIDED) & ((lo0 > 0) | (hi0 < 0))
    # an open gate passes gh0 unchanged (gz0 = gh0): where gh0's interval misses the pinned
    # interval of gz0, the gate must be closed (z <= 0)
    (gh_lo, gh_hi) = gradient_bounds(net, bounds.phase, grad.c)[0][0]
    misses = (gh_lo > hi0 + _SLACK) | (gh_hi < lo0 - _SLACK)
    if np.any((ph0 == ACTIVE) & misses):
        return GradientFixing(bounds, tuple(fixed), True)
    force_off = (ph0 == UNDECIDED) & ~force_on & misses
    bounds = _apply(bounds, 0, force_on, force_off)
    fixed[0] = int(force_on.sum() + force_off.sum())
    gz0 = (lo0, hi0)
    if net.n_hidden != 2:
        return GradientFixing(bounds, tuple(fixed), False, gz0)
    # second step: the last hidden layer's gates, from the open first-layer gates
    a = net.Ws[-1].T @ grad.c
    W1 = net.Ws[1]
    ph1 = bounds.phase[1]
    open0 = np.flatnonzero(bounds.phase[0] == ACTIVE)
    und = np.flatnonzero(ph1 == UNDECIDED)
    if len(open0) == 0 or len(und) == 0:
        return GradientFixing(bounds, tuple(fixed), False, gz0)
    base = (W1[ph1 == ACTIVE].T @ a[ph1 == ACTIVE])[open0]
    M = (W1[und].T * a[und])[open0]  # rows: open first-layer neuron i; columns: undecided gate j
    ub_rows = np.vstack([M, -M])
    ub_rhs = np.concatenate([hi0[open0] - base, base - lo0[open0]])
    # HiGHS declares a near-equality system (delta = 0 gives rows of width ~1e-8) infeasible even
    # when a 0/1 vertex satisfies it to 3e-8; loosening every row well past its feasibility
    # tolerance (1e-7) only fixes fewer gates, so it is always sound
    ub_rhs = ub_rhs + _LP_TOL * (1.0 + np.abs(ub_rhs))
    on = np.zeros(len(ph1), dtype=bool)
    off = np.zeros(len(ph1), dtype=bool)
    box = [(0.0, 1.0)] * len(und)
    if not _feasible(ub_rows, ub_rhs, box):
        return GradientFixing(bounds, tuple(fixed), True)
    for n, j in enumerate(und[:max_lps]):
        if time.monotonic() > deadline:
            break
        for value in (0.0, 1.0):
            trial = list(box)
            trial[n] = (value, value)
            if not _feasible(ub_rows, ub_rhs, trial):
                box[n] = (1.0 - value, 1.0 - value)
                (on if value == 0.0 else off)[j] = True
                break
    bounds = _apply(bounds, 1, on, off)
    fixed[1] = int(on.sum() + off.sum())
    return GradientFixing(bounds, tuple(fixed), False, gz0)


def _feasible(A: np.ndarray, b: np.ndarray, box: list[tuple[float, float]]) -> bool:
    res = linprog(np.zeros(A.shape[1]), A_ub=A, b_ub=b, bounds=box, method="highs")
    return not proved_infeasible(res)

"""An exhaustive oracle for saliency robustness of small ReLU networks (tests and benchmarks).

For a fixed activation pattern the network is affine and its input gradient is a constant
``g(p) = W0^T D0 W1^T D1 ... W_L^T c``. So the saliency-robustness question "is there an x' in the
box, classified differently, with ``|VG(x') - g0|_inf <= delta``?" splits into one question per
pattern: "does the pattern's region contain a misclassified point?" (one LP), asked only of the
patterns with ``dist(p) = |g(p) - g0|_inf <= delta``.

`exhaustive_flip` enumerates *every* pattern (2^n for n hidden ReLUs), sorts them by ``dist`` and
solves the LPs in that order until the first region with a strictly misclassified interior point.
That pattern's distance is the exact flip point: the property holds for every ``delta`` below it
and is violated from it on. No bounds, no MILP, nothing shared with the engine but the network
extraction, which makes it an independent check of the engine's verdicts.

Torch's convention ``relu'(0) = 0`` makes a gate open only where ``z > 0``: the LP asks for a margin
``t > 0`` on the open neurons and on the misclassification (``y_j - y_label >= t``), and lets closed
neurons reach ``z = 0``. A region whose best margin is within ``tol`` of 0 is *ambiguous* (the
answer depends on a measure-zero boundary); its distance is reported so callers avoid it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from camlang.errors import CamlangError
from camlang.smt.network import ReluNet
from camlang.smt.query import proved_infeasible

__all__ = ["ExhaustiveFlip", "exhaustive_flip", "pattern_gradients", "MAX_ORACLE_RELUS"]

MAX_ORACLE_RELUS = 20


@dataclass(frozen=True)
class ExhaustiveFlip:
    """``flip``: the smallest delta at which the property is violated (``inf`` when it holds for
    every delta); ``ambiguous``: distances of patterns whose best margin is within tolerance of 0,
    below the flip; ``lps``: how many LPs were solved; ``patterns``: how many patterns exist."""

    flip: float
    ambiguous: tuple[float, ...]
    lps: int
    patterns: int

    def verdict(self, delta: float) -> str:
        """ "holds" or "violated" for ``delta`` (the flip point itself counts as violated)."""
        return "violated" if delta >= self.flip else "holds"


def pattern_gradients(net: ReluNet, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every activation pattern (rows of 0/1 gates, all layers concatenated) and its input
    gradient of ``c . logits`` (one row per pattern)."""
    sizes = [W.shape[0] for W in net.Ws[:-1]]
    n = sum(sizes)
    if n > MAX_ORACLE_RELUS:
        raise CamlangError(
            f"the exhaustive oracle enumerates 2^{n} patterns; it takes at most {MAX_ORACLE_RELUS} ReLUs"
        )
    patterns = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    gates = np.split(patterns, np.cumsum(sizes)[:-1], axis=1)
    g = np.tile(net.Ws[-1].T @ c, (len(patterns), 1))  # gradient w.r.t. the last hidden layer
    for k in range(net.n_hidden - 1, -1, -1):
        g = (g * gates[k]) @ net.Ws[k]
    return patterns, g


def _region_margin(
    net: ReluNet, gates: list[np.ndarray], lo: np.ndarray, hi: np.ndarray, label: int, other: int
) -> float | None:
    """max t: x in [lo, hi], open neurons z >= t, closed z <= 0, y_other - y_label >= t (t <= 1)."""
    n0 = net.n_inputs
    M, m = np.eye(n0), np.zeros(n0)
    rows, rhs = [], []
    for k in range(net.n_hidden):
        Z, z = net.Ws[k] @ M, net.Ws[k] @ m + net.bs[k]
        on = gates[k].astype(bool)
        # open: -Z x + t <= z ; closed: Z x <= -z
        rows.append(np.hstack([np.where(on[:, None], -Z, Z), on[:, None].astype(float)]))
        rhs.append(np.where(on, z, -z))
        M, m = Z * on[:, None], z * on
    Y, y = net.Ws[-1] @ M, net.Ws[-1] @ m + net.bs[-1]
    rows.append(np.hstack([Y[label] - Y[other], [1.0]])[None, :])  # y_l - y_o + t <= 0
    rhs.append(np.array([y[other] - y[label]]))
    obj = np.zeros(n0 + 1)
    obj[-1] = -1.0
    res = linprog(
        obj,
        A_ub=np.vstack(rows),
        b_ub=np.concatenate(rhs),
        bounds=[*zip(lo.tolist(), hi.tolist()), (None, 1.0)],
        method="highs",
    )
    if proved_infeasible(res):
        return None
    if res.status != 0:
        raise RuntimeError(f"oracle LP failed: {res.message}")
    return float(-res.fun)


def exhaustive_flip(
    net: ReluNet, lo: np.ndarray, hi: np.ndarray, label: int, g0: np.ndarray, tol: float = 1e-9
) -> ExhaustiveFlip:
    """The exact delta where saliency robustness of class ``label`` over the box flips (see module)."""
    c = np.zeros(net.n_outputs)
    c[label] = 1.0
    patterns, grads = pattern_gradients(net, c)
    sizes = [W.shape[0] for W in net.Ws[:-1]]
    dist = np.max(np.abs(grads - g0[None, :]), axis=1)
    order = np.argsort(dist, kind="stable")
    ambiguous: list[float] = []
    lps = 0
    splits = np.cumsum(sizes)[:-1]
    for i in order:
        gates = np.split(patterns[i], splits)
        best = -np.inf
        for other in range(net.n_outputs):
            if other == label:
                continue
            t = _region_margin(net, gates, lo, hi, label, other)
            lps += 1
            if t is not None:
                best = max(best, t)
        if best > tol:
            return ExhaustiveFlip(float(dist[i]), tuple(ambiguous), lps, len(patterns))
        if best > -tol:
            ambiguous.append(float(dist[i]))
    return ExhaustiveFlip(float("inf"), tuple(ambiguous), lps, len(patterns))

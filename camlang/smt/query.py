"""The query every back end answers, and the pattern LP that repairs boundary counterexamples.

A `Query` asks: is there an input ``x'`` in the box ``[lo, hi]`` whose logits ``y`` fall into one of
the unsafe polyhedra ``A y <= c`` and, for saliency properties, whose input gradient of
``grad_c . y`` stays within ``delta`` of ``g0`` in every coordinate? "holds" means no such input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from camlang.smt.network import ReluNet


def proved_infeasible(res: object) -> bool:
    """Did HiGHS (through scipy's `linprog` or `milp`) prove the problem infeasible?

    scipy gives status 2 both to "infeasible" and to HiGHS's "model error" (bad problem data such
    as a NaN bound): only the first is a proof, so the message is read too.
    """
    status, message = getattr(res, "status", None), str(getattr(res, "message", ""))
    return status == 2 and "infeasible" in message.lower()


__all__ = ["LpFailure", "GradientConstraint", "Query", "Candidate", "pattern_lp", "MIN_MARGIN"]

# A repaired counterexample keeps every pre-activation and every unsafe output row at least this
# far from its boundary, far above float64 rounding of the forward pass (see docs/smt.md).
MIN_MARGIN = 1e-7
# relative allowance for float64 rounding in the gradient constraint (see `encoded_delta`)
GRAD_TOL = 1e-9


class LpFailure(Exception):
    """HiGHS stopped a pattern LP without an answer (time limit, numerical trouble)."""


@dataclass(frozen=True)
class GradientConstraint:
    """``|d(c . logits)/dx (x') - g0|_inf <= delta``."""

    c: np.ndarray
    g0: np.ndarray
    delta: float

    @property
    def encoded_delta(self) -> float:
        """The delta the encodings use: slightly larger than ``delta``, because ``g0`` comes from
        float64 torch while the encodings compute gradients exactly (z3) or to solver tolerance.
        Admitting a few more inputs keeps "holds" sound; a counterexample is still replayed
        against the exact ``delta``."""
        return float(self.delta + GRAD_TOL * (1.0 + np.abs(self.g0).max(initial=0.0)))


@dataclass(frozen=True)
class Query:
    """An input box, a union of unsafe output polyhedra and an optional gradient constraint."""

    lo: np.ndarray
    hi: np.ndarray
    disjuncts: tuple[tuple[np.ndarray, np.ndarray], ...]
    gradient: GradientConstraint | None = None


@dataclass(frozen=True)
class Candidate:
    """An interior point found for an activation pattern, with the margin it keeps."""

    x: np.ndarray
    margin: float
    pattern: list[np.ndarray]


def pattern_lp(
    net: ReluNet,
    query: Query,
    disjunct: int,
    pattern: list[np.ndarray],
    time_limit: float = 10.0,
    cap: float = 1e-2,
    margin_mask: list[np.ndarray] | None = None,
) -> Candidate | None:
    """Find a point of the closed pattern region that is as deep inside it as possible.

    Maximises ``t`` subject to: ``x`` in the box, ``z_i >= t`` for neurons on in ``pattern``,
    ``z_i <= -t`` for neurons off, and ``A y <= c - t`` for the unsafe rows. With the pattern fixed
    the network is affine, so this is a linear program. Returns None when the region is empty.
    ``margin_mask`` limits the neuron margins to the given neurons (the others only keep their
    sign, ``z >= 0`` / ``z <= 0``); by default no neuron needs a margin (plain robustness).
    """
    n0 = net.n_inputs
    # express every pre-activation as an affine function of x for this pattern
    M = np.eye(n0)
    m = np.zeros(n0)
    rows: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    for k in range(net.n_hidden):
        Zk = net.Ws[k] @ M
        zk = net.Ws[k] @ m + net.bs[k]
        on = pattern[k].astype(bool)
        sign = np.where(on, -1.0, 1.0)  # on: -z + t <= 0 ; off: z + t <= 0
        mask = margin_mask[k].astype(np.float64) if margin_mask is not None else np.zeros(Zk.shape[0])
        rows.append(np.hstack([sign[:, None] * Zk, mask[:, None]]))
        rhs.append(-sign * zk)
        M = Zk * on[:, None]
        m = zk * on
    Y = net.Ws[-1] @ M
    y0 = net.Ws[-1] @ m + net.bs[-1]
    A, c = query.disjuncts[disjunct]
    A = np.atleast_2d(A)
    rows.append(np.hstack([A @ Y, np.ones((A.shape[0], 1))]))
    rhs.append(c - A @ y0)
    A_ub = np.vstack(rows)
    b_ub = np.concatenate(rhs)
    obj = np.zeros(n0 + 1)
    obj[-1] = -1.0
    bounds = [(float(a), float(b)) for a, b in zip(query.lo, query.hi)] + [(None, cap)]
    res = linprog(
        obj,
        A_ub=coo_matrix(A_ub).tocsr(),
        b_ub=b_ub,
        bounds=bounds,
        method="highs",
        options={"time_limit": max(time_limit, 0.1)},
    )
    if proved_infeasible(res):
        return None
    if res.status != 0 or res.x is None:
        raise LpFailure(f"pattern LP did not finish: {res.message}")
    x = np.clip(res.x[:n0], query.lo, query.hi)
    return Candidate(x, float(res.x[-1]), pattern)

"""Mixed-integer encoding of a `Query` for HiGHS (scipy.optimize.milp).

One binary ``d`` per undecided ReLU serves both passes: forward ``h = relu(z)`` with the big-M
constraints from the bounds, backward ``gz = d * gh`` linearised with the gradient bounds. Stable
ReLUs are fixed (no binary). Without a gradient constraint, an undecided ReLU of the last hidden
layer that every unsafe row wants small (a non-negative weight in each row of ``A W_L``) needs no
binary either: ``h >= max(0, z)`` is exact there, because lowering such an ``h`` to ``relu(z)``
only lowers every row, so a relaxed solution's ``x`` is itself a violation. Patterns are closed
(``d = 1`` allows ``z = 0``), which over-approximates torch's convention relu'(0) = 0; any solution
is therefore re-checked by the pattern LP with a margin and by the float64 replay before it is
reported (docs/smt.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds, gradient_bounds, spec_bounds
from camlang.smt.network import ReluNet
from camlang.smt.query import Query, proved_infeasible

__all__ = ["MilpProblem", "build_milp", "solve_milp"]


@dataclass
class _Builder:
    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    r_lo: list[float] = field(default_factory=list)
    r_hi: list[float] = field(default_factory=list)

    def vars(self, lo: np.ndarray, hi: np.ndarray, integer: bool = False) -> np.ndarray:
        start = len(self.lb)
        self.lb.extend(np.asarray(lo, dtype=np.float64).tolist())
        self.ub.extend(np.asarray(hi, dtype=np.float64).tolist())
        self.integer.extend([int(integer)] * len(lo))
        return np.arange(start, len(self.lb))

    def row(self, idx: np.ndarray, coef: np.ndarray, lo: float, hi: float) -> None:
        keep = coef != 0
        r = len(self.r_lo)
        self.rows.append(np.full(int(keep.sum()), r))
        self.cols.append(np.asarray(idx)[keep])
        self.vals.append(np.asarray(coef, dtype=np.float64)[keep])
        self.r_lo.append(lo)
        self.r_hi.append(hi)

    def matrix(self) -> coo_matrix:
        if not self.rows:
            return coo_matrix((0, len(self.lb)))
        return coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(len(self.r_lo), len(self.lb)),
        )


@dataclass(frozen=True)
class MilpProblem:
    """A built MILP: scipy.milp arguments plus where the binaries live."""

    c: np.ndarray
    constraints: LinearConstraint
    bounds: Bounds
    integrality: np.ndarray
    x_idx: np.ndarray
    d_idx: list[np.ndarray]  # per layer, index of each neuron's binary or -1 if stable (or relaxed)
    n_binaries: int
    z_idx: list[np.ndarray] = field(default_factory=list)  # per layer, pre-activations (forward only)
    targets: tuple[int, ...] = ()  # the disjuncts encoded
    selector_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # one per target


def build_milp(
    net: ReluNet,
    bounds: NetBounds,
    query: Query,
    disjunct: int | Sequence[int],
    gz0: tuple[np.ndarray, np.ndarray] | None = None,
    forward: bool = True,
    relax_monotone: bool = True,
    fixed: Sequence[tuple[int, int, bool]] = (),
) -> MilpProblem:
    """Encode "some x' in the box reaches unsafe disjunct ``disjunct`` (and keeps the gradient)".

    ``disjunct`` may be several disjuncts: then one selector binary per disjunct picks the one that
    is reached (at least one), and the rows of the others are relaxed by their CROWN upper bound
    (big-M). Saliency queries are solved this way: the gradient part, where the search spends its
    time, is then branched on once instead of once per disjunct (docs/smt.md, "Pipeline").
    ``gz0`` are bounds on the first layer's gated gradient implied by the gradient constraint
    (`camlang.smt.gradfix`); they only strengthen the LP relaxation. With ``forward=False`` only
    the gates and the backward pass are encoded: the solutions are the activation patterns
    (consistent with the stable phases) whose gradient stays within delta. ``relax_monotone``
    drops the binaries the module docstring shows to be unnecessary (tests compare both forms).
    ``fixed`` are (layer, neuron, active) phases of undecided ReLUs to fix exactly: the binary's
    bounds become ``[1, 1]`` (``h = z >= 0``) or ``[0, 0]`` (``h = 0 >= z``), one branch of a split
    search (`camlang.smt.split`); a fixing that contradicts a stable phase raises ValueError (the
    caller decides such a branch without a MILP).
    """
    B = _Builder()
    targets = (disjunct,) if isinstance(disjunct, (int, np.integer)) else tuple(disjunct)
    x = B.vars(query.lo, query.hi) if forward else np.zeros(0, dtype=int)
    h_prev = x
    d_idx: list[np.ndarray] = []
    z_idx: list[np.ndarray] = []
    monotone = _monotone_relus(net, bounds, query, targets, fixed, relax_monotone and forward)
    for k in range(net.n_hidden):
        if not forward:
            d_idx.append(_gate_binaries(B, bounds, fixed, k))
            continue
        relaxed = (
            (bounds.phase[k] == UNDECIDED) & monotone
            if k == net.n_hidden - 1
            else np.zeros(bounds.phase[k].shape[0], dtype=bool)
        )
        d, z, h = _relu_layer(B, net, bounds, k, h_prev, relaxed)
        _fix_binaries(B, fixed, k, d, z, h)
        d_idx.append(d)
        z_idx.append(z)
        h_prev = h
    selectors = np.zeros(0, dtype=int)
    if forward:
        selectors = _add_unsafe_rows(B, net, bounds, query, targets, h_prev)
    if query.gradient is not None:
        _add_gradient(B, net, bounds, query, d_idx, gz0)
    n_bin = int(sum(int((d >= 0).sum()) for d in d_idx))
    return MilpProblem(
        c=np.zeros(len(B.lb)),
        constraints=LinearConstraint(B.matrix().tocsr(), np.array(B.r_lo), np.array(B.r_hi)),
        bounds=Bounds(np.array(B.lb), np.array(B.ub)),
        integrality=np.array(B.integer),
        x_idx=x,
        d_idx=d_idx,
        n_binaries=n_bin,
        z_idx=z_idx,
        targets=targets if forward else (),
        selector_idx=selectors,
    )


def _monotone_relus(
    net: ReluNet,
    bounds: NetBounds,
    query: Query,
    targets: tuple[int, ...],
    fixed: Sequence[tuple[int, int, bool]],
    relax: bool,
) -> np.ndarray:
    """Last-layer ReLUs whose output every unsafe row wants small: exact without a binary (module
    docstring). Checks that ``fixed`` agrees with the stable phases (ValueError otherwise)."""
    monotone = np.zeros(net.Ws[-1].shape[1], dtype=bool)
    if relax and query.gradient is None:
        A_all = np.vstack([np.atleast_2d(query.disjuncts[j][0]) for j in targets])
        monotone = np.all(A_all @ net.Ws[-1] >= 0, axis=0)
    for layer, i, active in fixed:
        ph_i = bounds.phase[layer][i]
        if ph_i != UNDECIDED and (ph_i == ACTIVE) != active:
            raise ValueError(
                f"fixing ReLU {i} of layer {layer} {'in' * (not active)}active contradicts its bounds"
            )
        if layer == net.n_hidden - 1:
            monotone[i] = False  # a fixed ReLU keeps its binary
    return monotone


def _gate_binaries(
    B: _Builder, bounds: NetBounds, fixed: Sequence[tuple[int, int, bool]], k: int
) -> np.ndarray:
    """Layer ``k``'s gates alone (no forward pass): a binary per undecided ReLU, -1 elsewhere."""
    ph = bounds.phase[k]
    und = np.flatnonzero(ph == UNDECIDED)
    d = np.full(ph.shape[0], -1)
    d[und] = B.vars(np.zeros(len(und)), np.ones(len(und)), integer=True)
    _fix_binaries(B, fixed, k, d)
    return d


def _relu_layer(
    B: _Builder, net: ReluNet, bounds: NetBounds, k: int, h_prev: np.ndarray, relaxed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer ``k`` forward: ``z = W h_prev + b`` and ``h = relu(z)`` (big-M on each undecided ReLU
    but the ``relaxed`` ones, which get the triangle); the indices of (binaries, z, h)."""
    inf = np.inf
    l, u, ph = bounds.lower[k], bounds.upper[k], bounds.phase[k]
    n = l.shape[0]
    z = B.vars(l, u)
    h = B.vars(np.maximum(l, 0.0), np.maximum(u, 0.0))
    W, b = net.Ws[k], net.bs[k]
    for i in range(n):  # z_i - W_i h_prev = b_i
        B.row(np.concatenate([[z[i]], h_prev]), np.concatenate([[1.0], -W[i]]), b[i], b[i])
    und = np.flatnonzero((ph == UNDECIDED) & ~relaxed)
    d = np.full(n, -1)
    d[und] = B.vars(np.zeros(len(und)), np.ones(len(und)), integer=True)
    for i in range(n):
        if ph[i] == ACTIVE:
            B.row(np.array([h[i], z[i]]), np.array([1.0, -1.0]), 0.0, 0.0)
        elif relaxed[i]:  # h >= z (h >= 0 is its bound), and below the triangle's upper side
            B.row(np.array([h[i], z[i]]), np.array([1.0, -1.0]), 0.0, inf)
            slope = u[i] / (u[i] - l[i])
            B.row(np.array([h[i], z[i]]), np.array([1.0, -slope]), -inf, -slope * l[i])
        elif ph[i] == UNDECIDED:
            B.row(np.array([h[i], z[i]]), np.array([1.0, -1.0]), 0.0, inf)  # h >= z
            B.row(np.array([h[i], z[i], d[i]]), np.array([1.0, -1.0, -l[i]]), -inf, -l[i])
            B.row(np.array([h[i], d[i]]), np.array([1.0, -u[i]]), -inf, 0.0)
    return d, z, h


def _fix_binaries(
    B: _Builder,
    fixed: Sequence[tuple[int, int, bool]],
    layer: int,
    d: np.ndarray,
    z: np.ndarray | None = None,
    h: np.ndarray | None = None,
) -> None:
    """Fix the binaries of layer ``layer``'s fixed ReLUs, and the bounds they imply on z and h
    (implied by the big-M rows too; as bounds they help HiGHS's presolve)."""
    for k, i, active in fixed:
        if k != layer or d[i] < 0:
            continue  # a stable ReLU: build_milp checked that the fixing agrees with it
        B.lb[d[i]] = B.ub[d[i]] = 1.0 if active else 0.0
        if z is None or h is None:
            continue
        if active:
            B.lb[z[i]] = max(B.lb[z[i]], 0.0)
        else:
            B.ub[z[i]] = min(B.ub[z[i]], 0.0)
            B.ub[h[i]] = 0.0


def _add_unsafe_rows(
    B: _Builder,
    net: ReluNet,
    bounds: NetBounds,
    query: Query,
    targets: tuple[int, ...],
    h_last: np.ndarray,
) -> np.ndarray:
    """The unsafe rows ``A (W_L h + b_L) <= c`` of one disjunct, or of several with selectors."""
    if len(targets) == 1:
        A, c = query.disjuncts[targets[0]]
        A = np.atleast_2d(A)
        AW, Ab = A @ net.Ws[-1], A @ net.bs[-1]
        for r in range(A.shape[0]):
            B.row(h_last, AW[r], -np.inf, float(c[r] - Ab[r]))
        return np.zeros(0, dtype=int)
    sel = B.vars(np.zeros(len(targets)), np.ones(len(targets)), integer=True)
    B.row(sel, np.ones(len(targets)), 1.0, np.inf)
    for t, j in enumerate(targets):
        A, c = query.disjuncts[j]
        A = np.atleast_2d(A)
        c = np.asarray(c, dtype=np.float64)
        # A y - c <= M (1 - s): M is the row's CROWN upper bound over the (gradient-restricted) box
        _, up = spec_bounds(net, bounds, query.lo, query.hi, A, -c)
        AW, Ab = A @ net.Ws[-1], A @ net.bs[-1]
        for r in range(A.shape[0]):
            big_m = max(float(up[r]), 0.0) * (1 + 1e-9) + 1e-9
            idx = np.concatenate([h_last, [sel[t]]])
            B.row(idx, np.concatenate([AW[r], [big_m]]), -np.inf, float(c[r] - Ab[r]) + big_m)
    return sel


def _add_gradient(
    B: _Builder,
    net: ReluNet,
    bounds: NetBounds,
    query: Query,
    d_idx: list[np.ndarray],
    gz0: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    grad = query.gradient
    assert grad is not None
    inf = np.inf
    per_layer, _ = gradient_bounds(net, bounds.phase, grad.c)
    a_const = net.Ws[-1].T @ grad.c  # gradient w.r.t. h_{L-1}: a constant
    gz_next: np.ndarray | None = None
    for k in range(net.n_hidden - 1, -1, -1):
        al, au = per_layer[k]
        ph, d = bounds.phase[k], d_idx[k]
        n = ph.shape[0]
        lo = np.where(ph == ACTIVE, al, np.where(ph == INACTIVE, 0.0, np.minimum(al, 0.0)))
        hi = np.where(ph == ACTIVE, au, np.where(ph == INACTIVE, 0.0, np.maximum(au, 0.0)))
        if k == 0 and gz0 is not None:
            lo, hi = np.maximum(lo, gz0[0]), np.minimum(hi, gz0[1])
            hi = np.maximum(hi, lo)  # an empty range only comes from rounding: keep it a point
        gz = B.vars(lo, hi)
        Wt = net.Ws[k + 1].T  # gh_k = Wt_k @ gz_{k+1}
        for i in range(n):
            if ph[i] == INACTIVE:
                continue
            if gz_next is None:  # gh is the constant a_const[i]
                if ph[i] == ACTIVE:
                    B.row(np.array([gz[i]]), np.array([1.0]), a_const[i], a_const[i])
                else:
                    B.row(np.array([gz[i], d[i]]), np.array([1.0, -a_const[i]]), 0.0, 0.0)
                continue
            gh_idx, gh_coef = gz_next, Wt[i]
            if ph[i] == ACTIVE:  # gz = gh
                B.row(np.concatenate([[gz[i]], gh_idx]), np.concatenate([[1.0], -gh_coef]), 0.0, 0.0)
                continue
            B.row(np.array([gz[i], d[i]]), np.array([1.0, -au[i]]), -inf, 0.0)  # gz <= au d
            B.row(np.array([gz[i], d[i]]), np.array([1.0, -al[i]]), 0.0, inf)  # gz >= al d
            # gz <= gh - al (1 - d) and gz >= gh - au (1 - d)
            idx = np.concatenate([[gz[i], d[i]], gh_idx])
            B.row(idx, np.concatenate([[1.0, -al[i]], -gh_coef]), -inf, -al[i])
            B.row(idx, np.concatenate([[1.0, -au[i]], -gh_coef]), -au[i], inf)
        gz_next = gz
    assert gz_next is not None
    W0t = net.Ws[0].T
    for j in range(W0t.shape[0]):
        B.row(gz_next, W0t[j], float(grad.g0[j] - grad.encoded_delta), float(grad.g0[j] + grad.encoded_delta))


@dataclass(frozen=True)
class MilpOutcome:
    """ "infeasible", "feasible" (with a pattern) or "timeout"."""

    status: Literal["infeasible", "feasible", "timeout"]
    x: np.ndarray | None = None
    pattern: list[np.ndarray] | None = None
    message: str = ""
    disjunct: int | None = None  # the disjunct the solution reaches


def solve_milp(
    problem: MilpProblem, bounds: NetBounds, deadline: float, excluded: list[list[np.ndarray]] | None = None
) -> MilpOutcome:
    """Solve for feasibility with HiGHS. ``excluded`` patterns are cut off with no-good cuts."""
    cons = [problem.constraints]
    for pat in excluded or []:
        idx, coef, rhs = [], [], 1.0
        for k, d in enumerate(problem.d_idx):
            for i in np.flatnonzero(d >= 0):
                idx.append(d[i])
                if pat[k][i]:
                    coef.append(-1.0)
                    rhs -= 1.0
                else:
                    coef.append(1.0)
        if not idx:  # no binaries: the one pattern there is has been excluded
            return MilpOutcome("infeasible")
        if idx:
            row = coo_matrix((coef, (np.zeros(len(idx), dtype=int), idx)), shape=(1, len(problem.c)))
            cons.append(LinearConstraint(row.tocsr(), rhs, np.inf))
    left = deadline - time.monotonic()
    if left <= 0:
        return MilpOutcome("timeout", message="time limit reached before the MILP started")
    res = milp(
        problem.c,
        integrality=problem.integrality,
        bounds=problem.bounds,
        constraints=cons,
        options={"time_limit": left, "disp": False},
    )
    if proved_infeasible(res):
        return MilpOutcome("infeasible")
    if res.x is None:
        return MilpOutcome("timeout", message=f"HiGHS stopped without an answer: {res.message}")
    sol = res.x
    pattern = []
    for k, d in enumerate(problem.d_idx):
        p = bounds.phase[k] == ACTIVE
        if k < len(problem.z_idx):  # a relaxed ReLU's phase is the sign of its pre-activation
            relaxed = (bounds.phase[k] == UNDECIDED) & (d < 0)
            p[relaxed] = sol[problem.z_idx[k][relaxed]] > 0
        sel = d >= 0
        p[sel] = sol[d[sel]] > 0.5
        pattern.append(p)
    reached = problem.targets[0] if problem.targets else None
    if len(problem.selector_idx):
        reached = problem.targets[int(np.argmax(sol[problem.selector_idx]))]
    return MilpOutcome("feasible", sol[problem.x_idx], pattern, disjunct=reached)

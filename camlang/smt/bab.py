"""Branch-and-bound on ReLU phases, with alpha-beta-CROWN bounds per branch (`camlang.smt.crown`).

The box is split on the phase of one undecided ReLU at a time: the closed half-spaces ``z >= 0`` and
``z <= 0`` cover it, so the query holds iff it holds on every leaf of the tree. A branch is closed
when

* its bounds exclude every unsafe disjunct (the lower bound of some row of each disjunct is
  positive over the branch: sound for every alpha and beta, see crown.py);
* for saliency queries, the interval bounds of the backward pass under the branch's gates
  (`camlang.smt.bounds.gradient_bounds`) cannot meet the constraint: the input gradient misses
  ``g0 +- delta`` in some coordinate, or an open first-layer gate's gradient misses the interval
  the gradient fixing pinned it to (a split ``z >= 0`` counts as open: see `_gate_phases`);
* or, when few undecided ReLUs are left, the exact MILP of the branch (its split phases fixed
  through their binaries, `camlang.smt.milp.build_milp(fixed=...)`) is infeasible.

A branch's bounds cannot show a counterexample, only fail to exclude one; so each open branch's
bound minimiser (the box corner its linear bound is lowest at) is run through the network, and a
point that reaches an unsafe disjunct is replayed in torch float64 like every other witness (and
repaired through the pattern LP when it sits on a ReLU boundary). The MILP leaves go through the same
`decide_disjunct` as the MILP stages. A time limit raises `SearchTimeout`: "unknown", never "holds".

The root's intermediate bounds are optimised once (`crown.root_bounds`) and reused by every branch,
clamped by its splits; a child starts from its parent's slopes and multipliers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from camlang.smt.backends import GatedGradient, SearchTimeout
from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds, gradient_bounds
from camlang.smt.crown import F64, Relaxation, TorchNet, branch_bounds, initial_alpha, optimise, root_bounds
from camlang.smt.search import Context, Decision, decide_disjunct, try_candidate
from camlang.smt.setup import Setup
from camlang.smt.split import Phase
from camlang.smt.stats import BabStats

__all__ = ["BabSettings", "wants_bab", "bab_deadline", "branch_and_bound"]

#: a branch whose lower bound exceeds its upper bound by more than this (float64 rounding is far
#: below it) holds no input
_EMPTY_TOL = 1e-9


@dataclass(frozen=True)
class BabSettings:
    """The search's knobs (measured on mnistfc 256x4, docs/smt.md)."""

    root_steps: int = 20  # slope-optimisation steps per hidden layer at the root
    spec_steps: int = 40  # at the root, for the unsafe rows
    branch_steps: int = 15  # per batch of children (warm-started from the parent)
    batch: int = 32  # branches split at once (2 children each)
    leaf_relus: int = 12  # a branch with at most this many undecided ReLUs goes to the MILP
    min_hidden: int = 3  # "auto" runs branch-and-bound on networks with at least this many layers
    # and on plain robustness with two hidden layers of at least this many ReLUs in all (mnistfc
    # 256x2: every region the bounds leave open was decided faster than by the MILP, docs/smt.md)
    shallow_robust_relus: int = 64
    # there the MILP stages still decide: branch-and-bound gets this share of the time limit first
    shallow_share: float = 0.5
    refine_rows: int = 48  # per layer, the intermediate bounds recomputed above a branch's newest split


def wants_bab(setup: Setup, choice: bool | None, settings: BabSettings = BabSettings()) -> bool:
    """``choice``, or by default: networks with at least ``min_hidden`` hidden layers, where one MILP
    per disjunct runs out of road; and plain robustness on two hidden layers of at least
    ``shallow_robust_relus`` ReLUs, where the MILP got slow on the regions the bounds leave open."""
    if choice is not None:
        return choice
    net = setup.net
    if net.n_hidden >= settings.min_hidden:
        return True
    relus = sum(W.shape[0] for W in net.Ws[:-1])
    return net.n_hidden == 2 and setup.query.gradient is None and relus >= settings.shallow_robust_relus


def bab_deadline(ctx: Context, settings: BabSettings = BabSettings()) -> float | None:
    """When branch-and-bound must hand over to the MILP stages: on networks below ``min_hidden``
    hidden layers, after ``shallow_share`` of the time limit (the MILP decides there too, slowly);
    None on deeper ones, where it keeps the whole limit (the MILP runs out of road there)."""
    if ctx.setup.net.n_hidden >= settings.min_hidden:
        return None
    return min(ctx.deadline, ctx.t0 + settings.shallow_share * ctx.timeout_s)


@dataclass(frozen=True)
class _Spec:
    """The alive disjuncts' rows ``C y - c`` (a disjunct is excluded where some row is > 0)."""

    C: torch.Tensor  # (R, n_out)
    c: torch.Tensor  # (R,)
    owner: torch.Tensor  # (R, D) one-hot: the disjunct of each row
    disjuncts: tuple[int, ...]

    @staticmethod
    def of(setup: Setup, alive: tuple[int, ...]) -> _Spec:
        rows = [np.atleast_2d(setup.query.disjuncts[j][0]) for j in alive]
        cs = [np.asarray(setup.query.disjuncts[j][1], dtype=np.float64) for j in alive]
        owner = np.zeros((sum(len(r) for r in rows), len(alive)))
        start = 0
        for t, r in enumerate(rows):
            owner[start : start + len(r), t] = 1.0
            start += len(r)
        t64 = lambda a: torch.as_tensor(a, dtype=F64)  # noqa: E731
        return _Spec(t64(np.vstack(rows)), t64(np.concatenate(cs)), t64(owner), alive)

    def excluded(self, lb: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: the disjuncts some row of which is positive over the branch."""
        return ((lb > 0).to(F64) @ self.owner) > 0


@dataclass(frozen=True)
class _Branch:
    """One open branch: its clamped bounds, split signs, slopes, multipliers, bound and splits."""

    lower: tuple[torch.Tensor, ...]  # (n_k,)
    upper: tuple[torch.Tensor, ...]
    split: tuple[torch.Tensor, ...]  # (n_k,): +1 z >= 0, -1 z <= 0, 0 free
    alpha: tuple[torch.Tensor, ...]  # (R, n_k)
    beta: tuple[torch.Tensor, ...]  # (R, n_k)
    lb: torch.Tensor  # (R,)
    done: torch.Tensor  # (D,) disjuncts excluded here
    scores: tuple[torch.Tensor, ...]  # (n_k,) branching scores
    splits: tuple[Phase, ...]

    def worst(self, spec: _Spec) -> float:
        """The bound of the open disjunct closest to being reached (its best row's lower bound)."""
        per_disjunct = torch.where(spec.owner > 0, self.lb[:, None], -torch.inf).amax(0)
        open_ones = per_disjunct[~self.done]
        return float(open_ones.min()) if len(open_ones) else float("inf")

    def free(self) -> int:
        return int(sum(int(((lo < 0) & (up > 0)).sum()) for lo, up in zip(self.lower, self.upper)))

    def net_bounds(self) -> NetBounds:
        lower = tuple(lo.numpy().copy() for lo in self.lower)
        upper = tuple(up.numpy().copy() for up in self.upper)
        phase = []
        for lo, up in zip(lower, upper):
            p = np.full(lo.shape[0], UNDECIDED, dtype=np.int8)
            p[lo > 0] = ACTIVE
            p[up <= 0] = INACTIVE
            phase.append(p)
        return NetBounds(lower, upper, tuple(phase))


def _scores(
    rel_lower: torch.Tensor, rel_upper: torch.Tensor, coef_h: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """``(n,)``: how much each free ReLU's relaxation costs the bound of the open ``rows``
    (BaBSR-like): where a row weighs the ReLU negatively, the triangle's upper side costs its
    intercept ``-l u / (u - l)`` times the weight; -1 on ReLUs that are not free."""
    free = (rel_lower < 0) & (rel_upper > 0)
    height = torch.where(free, -rel_lower * rel_upper / (rel_upper - rel_lower).clamp(min=1e-12), 0.0)
    weight = coef_h[rows].clamp(max=0).abs().sum(0) + 0.1 * coef_h[rows].clamp(min=0).sum(0)
    return torch.where(free, weight * height, -1.0)


def _bound_batch(
    tn: TorchNet, spec: _Spec, items: list[_Branch], steps: int, refine_rows: int = 0
) -> tuple[list[_Branch], torch.Tensor]:
    """Optimise the unsafe rows' bounds on every branch of ``items`` at once (with ``refine_rows``,
    after recomputing the intermediate bounds of that many neurons per layer above each branch's
    newest split)."""
    L = tn.n_hidden
    stack = lambda xs: torch.stack(list(xs))  # noqa: E731
    lower = tuple(stack(b.lower[k] for b in items) for k in range(L))
    upper = tuple(stack(b.upper[k] for b in items) for k in range(L))
    if refine_rows:
        # the layers above each branch's newest split, over the branch (crown.branch_bounds), for
        # the neurons whose relaxation costs the unsafe rows' bounds most (their parents' scores)
        first = torch.tensor([b.splits[-1][0] if b.splits else L for b in items])
        lower, upper = branch_bounds(tn, lower, upper, first, _costly(items, refine_rows))
    # bounds that cross (beyond rounding) leave no input in the branch
    empty = torch.stack([(lo > up + _EMPTY_TOL).any(1) for lo, up in zip(lower, upper)]).any(0)
    rel = Relaxation(
        lower,
        upper,
        tuple(stack(b.alpha[k] for b in items) for k in range(L)),
        tuple(stack(b.beta[k] for b in items) for k in range(L)),
        tuple(stack(b.split[k] for b in items) for k in range(L)),
    )
    C = spec.C[None].expand(len(items), -1, -1)
    bound, rel = optimise(tn, L, C, rel, steps)
    # a parent's bound holds on its children too (a child's first iterate can be weaker: with
    # beta still 0, a clamped ReLU is exact only on the branch, not on the whole box)
    lb = torch.maximum(bound.lb - spec.c, torch.stack([b.lb for b in items]))
    done = spec.excluded(lb) | torch.stack([b.done for b in items]) | empty[:, None]
    assert rel.beta is not None
    out = []
    for n, b in enumerate(items):
        rows = (spec.owner @ (~done[n]).to(F64)) > 0
        scores = tuple(_scores(rel.lower[k][n], rel.upper[k][n], bound.coef_h[k][n], rows) for k in range(L))
        out.append(
            replace(
                b,
                lower=tuple(lo[n] for lo in lower),
                upper=tuple(up[n] for up in upper),
                alpha=tuple(a[n] for a in rel.alpha),
                beta=tuple(be[n] for be in rel.beta),
                lb=lb[n],
                done=done[n],
                scores=scores,
            )
        )
    return out, bound.coef_x


def _costly(items: list[_Branch], count: int) -> tuple[torch.Tensor, ...]:
    """Per layer, a mask of the ``count`` neurons with the highest branching scores summed over
    ``items`` (their relaxations cost the bounds most; -1 marks a ReLU that is not free)."""
    masks = []
    for k in range(len(items[0].scores)):
        total = torch.stack([b.scores[k] for b in items]).clamp(min=0).sum(0)
        mask = torch.zeros(len(total), dtype=torch.bool)
        top = torch.topk(total, min(count, len(total))).indices
        mask[top[total[top] > 0]] = True
        masks.append(mask)
    return tuple(masks)


def _children(b: _Branch) -> list[_Branch]:
    """The two children of ``b`` on its highest-scoring free ReLU (splits of each child)."""
    best = max(range(len(b.scores)), key=lambda k: float(b.scores[k].max()) if len(b.scores[k]) else -1.0)
    i = int(torch.argmax(b.scores[best]))
    kids = []
    for active in (True, False):
        lower, upper, split = list(b.lower), list(b.upper), list(b.split)
        lo, up, sp = lower[best].clone(), upper[best].clone(), split[best].clone()
        if active:
            lo[i] = 0.0
        else:
            up[i] = 0.0
        sp[i] = 1.0 if active else -1.0
        lower[best], upper[best], split[best] = lo, up, sp
        phase = (best, i, active)
        kids.append(
            replace(b, lower=tuple(lower), upper=tuple(upper), split=tuple(split), splits=(*b.splits, phase))
        )
    return kids


@dataclass
class _Tally:
    """Counts for the stats record (the search's own running state)."""

    branches: int = 0
    milp_leaves: int = 0
    depth: int = 0
    cut: int = 0


def _root(
    tn: TorchNet, spec: _Spec, bounds: NetBounds, ctx: Context, s: BabSettings
) -> tuple[_Branch, torch.Tensor, int]:
    """The root branch with optimised bounds, its input coefficients and its undecided ReLUs."""
    nb, lowers, uppers = root_bounds(tn, bounds, s.root_steps, deadline=ctx.t0 + ctx.timeout_s / 4)
    R = spec.C.shape[0]
    zeros = tuple(torch.zeros(lo.shape[1], dtype=F64) for lo in lowers)
    root = _Branch(
        lower=tuple(lo[0] for lo in lowers),
        upper=tuple(up[0] for up in uppers),
        split=zeros,
        alpha=tuple(initial_alpha(lo, up, R)[0] for lo, up in zip(lowers, uppers)),
        beta=tuple(torch.zeros(R, lo.shape[1], dtype=F64) for lo in lowers),
        lb=torch.full((R,), -torch.inf, dtype=F64),
        done=torch.zeros(len(spec.disjuncts), dtype=torch.bool),
        scores=zeros,
        splits=(),
    )
    (root,), coef_x = _bound_batch(tn, spec, [root], s.spec_steps)
    return root, coef_x[0], nb.n_undecided()


def _narrow(spec: _Spec, root: _Branch, coef_x: torch.Tensor) -> tuple[_Spec, _Branch, torch.Tensor]:
    """Drop the disjuncts the root's bounds exclude (and their rows): no branch needs them."""
    keep = ~root.done
    if bool(keep.all()) or not bool(keep.any()):
        return spec, root, coef_x
    rows = (spec.owner[:, keep] > 0).any(1)
    narrow = _Spec(
        spec.C[rows],
        spec.c[rows],
        spec.owner[rows][:, keep],
        tuple(j for j, k in zip(spec.disjuncts, keep.tolist()) if k),
    )
    kept = replace(
        root,
        alpha=tuple(a[rows] for a in root.alpha),
        beta=tuple(b[rows] for b in root.beta),
        lb=root.lb[rows],
        done=root.done[keep],
    )
    return narrow, kept, coef_x[rows]


def _gate_phases(b: _Branch) -> tuple[np.ndarray, ...]:
    """The gates of ``b`` for the backward pass: its bounds' phases, with a split ``z >= 0`` open.

    Torch's gate is closed at ``z = 0``, but every input with ``z = 0`` also lies in the sibling
    ``z <= 0``, whose gate is closed; so the active child only has to answer for ``z > 0``, where
    the gate is open. Assuming the open gate on its closure only adds candidates, never hides one.
    """
    phase = list(b.net_bounds().phase)
    for k, sp in enumerate(b.split):
        opened = (sp.numpy() > 0) & (phase[k] == UNDECIDED)
        if opened.any():
            p = phase[k].copy()
            p[opened] = ACTIVE
            phase[k] = p
    return tuple(phase)


def _gradient_impossible(setup: Setup, b: _Branch, gz0: GatedGradient | None) -> bool:
    """Saliency: under ``b``'s gates, the input gradient's interval bounds miss ``g0 +- delta``, or
    some first-layer ``gz0[i]`` cannot lie in the interval the constraint pins it to (``gz0``, from
    `camlang.smt.gradfix`): 0 where the gate is closed, ``gh0[i]``'s bounds where it is open."""
    grad = setup.query.gradient
    if grad is None:
        return False
    phase = _gate_phases(b)
    per_layer, (g_lo, g_hi) = gradient_bounds(setup.net, phase, grad.c)
    d = grad.encoded_delta
    if np.any(g_hi < grad.g0 - d) or np.any(g_lo > grad.g0 + d):
        return True
    if gz0 is None:
        return False
    lo0, hi0 = gz0
    gh_lo, gh_hi = per_layer[0]
    misses = (gh_lo > hi0) | (gh_hi < lo0)
    zero_allowed = (lo0 <= 0) & (hi0 >= 0)
    closed, opened = phase[0] == INACTIVE, phase[0] == ACTIVE
    # a closed gate gives gz0[i] = 0; an open one gh0[i]; an undecided one either
    return bool(
        np.any(closed & ~zero_allowed)
        or np.any(opened & misses)
        or np.any(~closed & ~opened & misses & ~zero_allowed)
    )


def _corner_candidate(ctx: Context, spec: _Spec, b: _Branch, coef_x: torch.Tensor) -> Decision | None:
    """The box corner where the weakest open row's bound is lowest: a replayed counterexample when
    it reaches an alive disjunct there, else None."""
    setup, q = ctx.setup, ctx.setup.query
    open_rows = (spec.owner @ (~b.done).to(F64)) > 0
    r = int(torch.argmin(torch.where(open_rows, b.lb, torch.inf)))
    x = np.where(coef_x[r].numpy() > 0, q.lo, q.hi)
    y, _ = setup.net.forward(x)
    for t, j in enumerate(spec.disjuncts):
        A, c = setup.query.disjuncts[j]
        if bool(b.done[t]) or not np.all(np.atleast_2d(A) @ y <= c):
            continue
        if q.gradient is not None:
            if np.max(np.abs(setup.net.gradient(x, q.gradient.c) - q.gradient.g0)) > q.gradient.delta:
                continue
        found = try_candidate(setup, b.net_bounds(), j, x, None, ctx.deadline)
        if found is not None:
            return Decision(found)
    return None


def _leaf(ctx: Context, spec: _Spec, b: _Branch, gz0: GatedGradient | None, tally: _Tally) -> Decision:
    """The exact MILP of each open disjunct on ``b`` (its split phases fixed)."""
    tally.milp_leaves += 1
    nb = b.net_bounds()
    # A split whose ReLU the branch's bounds have made stable is exactly represented by them; a
    # ReLU split active whose upper bound fell to 0 is stable inactive there (z = 0 either way),
    # and fixing it active against that phase would be refused by the MILP builder.
    fixed = tuple(s for s in b.splits if nb.phase[s[0]][s[1]] == UNDECIDED)
    cut = 0
    for t, j in enumerate(spec.disjuncts):
        if bool(b.done[t]):
            continue
        decision = decide_disjunct(ctx, nb, j, gz0, fixed=fixed)
        if decision.found is not None:
            return decision
        cut += decision.cut
    return Decision(None, cut)


def _triage(
    ctx: Context,
    spec: _Spec,
    b: _Branch,
    coef_x: torch.Tensor,
    gz0: GatedGradient | None,
    s: BabSettings,
    tally: _Tally,
) -> Decision | _Branch | None:
    """Close ``b`` (None), find a counterexample in it (a Decision with ``found``), or keep it open."""
    if bool(b.done.all()) or _gradient_impossible(ctx.setup, b, gz0):
        return None
    found = _corner_candidate(ctx, spec, b, coef_x)
    if found is not None:
        return found
    if b.free() <= s.leaf_relus:
        decision = _leaf(ctx, spec, b, gz0, tally)
        if decision.found is not None:
            return decision
        tally.cut += decision.cut
        return None
    return b


def branch_and_bound(
    ctx: Context,
    bounds: NetBounds,
    alive: tuple[int, ...],
    gz0: GatedGradient | None,
    settings: BabSettings = BabSettings(),
) -> Decision:
    """Decide the ``alive`` disjuncts over the box by branch-and-bound (module docstring): a replayed
    counterexample, or None with the boundary patterns the MILP leaves cut off (any makes "holds"
    impossible). Raises `SearchTimeout` at the deadline."""
    setup, q = ctx.setup, ctx.setup.query
    started = time.monotonic()
    tn = TorchNet.of(setup.net, q.lo, q.hi)
    spec = _Spec.of(setup, alive)
    tally = _Tally()
    root_undecided = -1
    try:
        root, coef_x, root_undecided = _root(tn, spec, bounds, ctx, settings)
        spec, root, coef_x = _narrow(spec, root, coef_x)
        pending = [(root, coef_x)]
        queue: list[_Branch] = []
        while True:
            for b, cx in pending:
                kept = _triage(ctx, spec, b, cx, gz0, settings, tally)
                if isinstance(kept, Decision):
                    return kept
                if kept is not None:
                    queue.append(kept)
            if not queue:
                return Decision(None, tally.cut)
            if time.monotonic() >= ctx.deadline:
                raise SearchTimeout(f"branch-and-bound: {len(queue)} branches open")
            queue.sort(key=lambda b: b.worst(spec))
            batch, queue = queue[: settings.batch], queue[settings.batch :]
            children = [kid for b in batch for kid in _children(b)]
            tally.branches += len(children)
            tally.depth = max(tally.depth, max(len(k.splits) for k in children))
            bound = batch[0].worst(spec)
            why = f"branch-and-bound: {len(queue)} open, weakest bound {bound:.3g}"
            ctx.report(tally.branches, tally.branches + 2 * len(queue), why)
            bounded, coef = _bound_batch(tn, spec, children, settings.branch_steps, settings.refine_rows)
            pending = list(zip(bounded, coef))
    finally:
        ctx.log.add(
            BabStats(
                root_undecided, tally.branches, tally.milp_leaves, tally.depth, time.monotonic() - started
            )
        )

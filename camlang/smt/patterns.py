"""Saliency shortcuts through activation patterns, for the back ends that allow them
(`Backend.supports_pattern_lps`).

The input gradient of a ReLU network is constant on each activation pattern's region, so the
patterns whose gradient stays within delta cover every input that keeps the gradient; with the
pattern fixed the network is affine, and one LP per unsafe disjunct decides that region. When
there are few such patterns (`few_patterns`) this beats one MILP; `by_patterns` enumerates them by
a gates-only MILP instead (the older `pattern_walk` shortcut, measured in docs/smt.md).
"""

from __future__ import annotations

import time

import numpy as np

from camlang.smt.backends import GatedGradient, SearchTimeout
from camlang.smt.bounds import ACTIVE, UNDECIDED, NetBounds
from camlang.smt.milp import build_milp, solve_milp
from camlang.smt.network import ReluNet
from camlang.smt.query import MIN_MARGIN, Query, pattern_lp
from camlang.smt.search import Context, Decision
from camlang.smt.setup import Found, Setup, point_in_box, replay
from camlang.smt.stats import PatternLpSolved, PatternsEnumerated

__all__ = [
    "ENUM_MAX_RELUS",
    "ENUM_MAX_PATTERNS",
    "few_patterns",
    "by_patterns",
    "pattern_lps",
    "own_pattern_witness",
]

Pattern = list[np.ndarray]

# the most undecided ReLUs whose patterns are enumerated directly, and the most patterns within
# delta that are then decided one LP each; beyond either, one MILP is faster (docs/smt.md, "Numbers")
ENUM_MAX_RELUS = 16
ENUM_MAX_PATTERNS = 16


def few_patterns(net: ReluNet, bounds: NetBounds, q: Query) -> list[Pattern] | None:
    """Every activation pattern (consistent with the fixed phases) whose gradient is within delta,
    nearest first, when there are few undecided ReLUs and few such patterns; else None.

    The input gradient is constant on each closed pattern region, so these patterns' regions
    cover every input that keeps the gradient (the others cannot); a relu at exactly 0 belongs
    to both of its neighbours' closed regions, and torch's gradient there is the "off" one."""
    grad = q.gradient
    assert grad is not None
    und = [np.flatnonzero(p == UNDECIDED) for p in bounds.phase]
    n = int(sum(len(u) for u in und))
    if n > ENUM_MAX_RELUS:
        return None
    bits = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    gates, start = [], 0
    for p, u in zip(bounds.phase, und):
        g = np.tile((p == ACTIVE).astype(np.float64), (len(bits), 1))
        g[:, u] = bits[:, start : start + len(u)]
        start += len(u)
        gates.append(g)
    v = np.tile(net.Ws[-1].T @ grad.c, (len(bits), 1))
    for k in range(net.n_hidden - 1, -1, -1):
        v = (v * gates[k]) @ net.Ws[k]
    dist = np.max(np.abs(v - grad.g0[None, :]), axis=1)
    keep = np.flatnonzero(dist <= grad.encoded_delta)
    if len(keep) > ENUM_MAX_PATTERNS:
        return None
    keep = keep[np.argsort(dist[keep], kind="stable")]
    return [[g[i] > 0.5 for g in gates] for i in keep]


def _own_pattern(setup: Setup, bounds: NetBounds) -> Pattern | None:
    """The point's own activation pattern, when the point is in the box and the pattern agrees
    with the stable phases (it then always keeps the gradient)."""
    if setup.at is None or not point_in_box(setup):
        return None
    _, pre = setup.net.forward(setup.at)
    own = [z > 0 for z in pre]
    stable = [ph != UNDECIDED for ph in bounds.phase]
    if all(np.all(o[s] == (ph[s] == ACTIVE)) for o, s, ph in zip(own, stable, bounds.phase)):
        return own
    return None


def own_pattern_witness(ctx: Context, bounds: NetBounds, alive: list[int], deadline: float) -> Found | None:
    """A counterexample in the point's own activation region, by one LP per alive disjunct, or None.

    That region keeps the gradient exactly, so with a small delta it is where a saliency
    counterexample most likely lies; finding nothing there proves nothing (other patterns may
    keep the gradient too), and a boundary-only candidate is simply passed over, since the
    search that follows decides every pattern, this one included."""
    setup = ctx.setup
    own = _own_pattern(setup, bounds)
    if own is None:
        return None
    mask = [p == UNDECIDED for p in bounds.phase]
    for j in alive:
        if time.monotonic() >= deadline:
            return None
        cand = pattern_lp(
            setup.net, setup.query, j, own, max(deadline - time.monotonic(), 0.5), margin_mask=mask
        )
        ctx.log.add(PatternLpSolved())
        if cand is not None and cand.margin >= MIN_MARGIN:
            rec = replay(setup, cand.x)
            rec["repaired_margin"] = cand.margin
            if rec["ok"]:
                return Found(cand.x, rec)
    return None


def by_patterns(
    ctx: Context, bounds: NetBounds, gz0: GatedGradient | None, alive: list[int], cap: int = 64
) -> Decision | None:
    """Branch on activation patterns: enumerate every pattern whose gradient stays within delta
    (a MILP over the gates and the backward pass only, with no-good cuts), then decide each
    pattern's region by linear programming. None when there are more than ``cap`` patterns
    (the caller falls back to the full MILP)."""
    setup, deadline = ctx.setup, ctx.deadline
    problem = build_milp(setup.net, bounds, setup.query, 0, gz0, forward=False)
    patterns: list[Pattern] = []
    mask = [p == UNDECIDED for p in bounds.phase]
    boundary = 0
    ctx.report(0, cap, "milp: the point's own activation pattern")
    own = _own_pattern(setup, bounds)
    if own is not None:
        patterns.append(own)
        # its region keeps VG exactly, so try it before enumerating the others
        first = pattern_lps(ctx, own, alive, mask)
        if first.found is not None:
            return first
        boundary += first.cut
    n_own = len(patterns)
    enum_deadline = min(deadline, time.monotonic() + (deadline - time.monotonic()) / 2)
    while len(patterns) <= cap:
        ctx.report(len(patterns), cap, f"milp: enumerating activation patterns ({len(patterns)} so far)")
        out = solve_milp(problem, bounds, enum_deadline, patterns)
        if out.status == "infeasible":
            break
        if out.status == "timeout":
            ctx.log.add(PatternsEnumerated(f">= {len(patterns)} (enumeration stopped: time)"))
            return None
        assert out.pattern is not None
        patterns.append(out.pattern)
    else:
        ctx.log.add(PatternsEnumerated(f"> {cap}"))
        return None
    ctx.log.add(PatternsEnumerated(len(patterns)))
    for n, pat in enumerate(patterns[n_own:], start=n_own):
        ctx.report(n, len(patterns), f"milp: pattern LPs {n + 1}/{len(patterns)}")
        decision = pattern_lps(ctx, pat, alive, mask)
        if decision.found is not None:
            return decision
        boundary += decision.cut
    return Decision(None, boundary)


def pattern_lps(ctx: Context, pat: Pattern, alive: list[int], mask: list[np.ndarray]) -> Decision:
    """Decide one activation pattern's region against every alive disjunct by linear programming."""
    setup, deadline = ctx.setup, ctx.deadline
    boundary = 0
    for j in alive:
        if time.monotonic() >= deadline:
            raise SearchTimeout("time limit reached during the pattern LPs")
        cand = pattern_lp(
            setup.net, setup.query, j, pat, max(deadline - time.monotonic(), 0.5), margin_mask=mask
        )
        ctx.log.add(PatternLpSolved())
        if cand is None or cand.margin < 0:
            continue
        if cand.margin >= MIN_MARGIN:
            rec = replay(setup, cand.x)
            rec["repaired_margin"] = cand.margin
            if rec["ok"]:
                return Decision(Found(cand.x, rec))
        boundary += 1
    return Decision(None, boundary)

"""The stages of a query, in order (`STAGES`); `camlang.smt.driver.run_query` runs them.

Each stage takes the query's `Context` and what the stages before it left (`Carry`) and returns
either a new `Carry` or a `Decided` verdict, which ends the query:

1. point: the property's point may itself be a counterexample;
2. bounds: interval + CROWN bounds on the box drop the disjuncts they exclude;
3. attack: the cheap PGD falsifier, where the set-up asks for it;
4. gradient fixing: for saliency queries, ReLU phases the gradient constraint fixes;
5. pattern LPs: few activation patterns keep the gradient: one LP each (`camlang.smt.patterns`);
   with many, on a first layer wider than the input, the point's own region is searched first;
6. branch-and-bound (deep networks, plain robustness on two hidden layers, or when asked):
   alpha-beta-CROWN bounds per branch of ReLU phases, the exact MILP at the leaves
   (`camlang.smt.bab`); on two hidden layers it hands over to the MILP stages after its share;
7. joint MILP: saliency queries with several disjuncts left, all in one search (split into
   branches dealt over the ranks of a share);
8. per-disjunct search: each disjunct left, one piece each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from camlang.smt.bab import bab_deadline, branch_and_bound
from camlang.smt.backends import GatedGradient, SearchTimeout
from camlang.smt.bounds import UNDECIDED, NetBounds, compute_bounds
from camlang.smt.gradfix import fix_phases_by_gradient
from camlang.smt.patterns import by_patterns, few_patterns, own_pattern_witness, pattern_lps
from camlang.smt.pieces import BEFORE_PIECES
from camlang.smt.search import Context, alive_disjuncts, deal, decide_piece
from camlang.smt.setup import Found, point_in_box, replay
from camlang.smt.split import Phase, branches, contradicts, flip_costs, split_relus
from camlang.smt.stats import (
    AttackStats,
    BoundsStats,
    DisjunctsAfterFixing,
    FoundBy,
    GradientFixingStats,
    JointSearch,
    JointSplit,
    PatternsWithinDelta,
)
from camlang.smt.verdict import Status

__all__ = ["Carry", "Decided", "Stage", "STAGES", "REPLAYED", "STOPPED"]

REPLAYED = "counterexample replayed in torch float64"
STOPPED = "stopped: another worker replayed a counterexample for a lower piece"


@dataclass(frozen=True)
class Carry:
    """What a stage hands to the next: the bounds (from the bounds stage on), the gated-gradient
    bounds, the disjuncts still alive, the disjuncts dealt as pieces (fixed on every rank, unlike
    ``alive``, which a time-limited gradient fixing may thin differently), and the boundary
    patterns cut off so far (any makes "holds" impossible)."""

    bounds: NetBounds | None = None
    gz0: GatedGradient | None = None
    alive: tuple[int, ...] = ()
    dealt: tuple[int, ...] = ()
    boundary: int = 0

    @property
    def net_bounds(self) -> NetBounds:
        """The bounds, which every stage after the bounds stage has."""
        assert self.bounds is not None, "a stage before the bounds stage asked for them"
        return self.bounds

    def settled(self, cut: int = 0) -> Carry:
        """Every alive disjunct decided infeasible (but for ``cut`` more boundary patterns)."""
        return replace(self, alive=(), dealt=(), boundary=self.boundary + cut)


@dataclass(frozen=True)
class Decided:
    """A stage's verdict: "violated" comes with the replayed counterexample ``found``."""

    status: Status
    reason: str
    by_bounds: bool = False
    found: Found | None = None


Stage = Callable[[Context, Carry], Carry | Decided]


def _violated(found: Found, reason: str = REPLAYED) -> Decided:
    return Decided("violated", reason, found=found)


def point(ctx: Context, carry: Carry) -> Carry | Decided:
    """Is the property's point itself a counterexample?"""
    setup = ctx.setup
    if setup.at is None or not point_in_box(setup):
        return carry
    rec = replay(setup, setup.at)
    if not rec["ok"]:
        return carry
    ctx.log.add(FoundBy("the point itself"))
    if ctx.share is not None:
        ctx.share.announce(BEFORE_PIECES)
    return _violated(Found(setup.at, rec), "the point itself is a counterexample")


def bounds(ctx: Context, carry: Carry) -> Carry | Decided:
    """Bounds first: milliseconds, and they settle many regions."""
    net, q = ctx.setup.net, ctx.setup.query
    nb = compute_bounds(net, q.lo, q.hi)
    alive = tuple(alive_disjuncts(net, nb, q))
    ctx.log.add(BoundsStats(nb.n_undecided(), len(alive), time.monotonic() - ctx.t0))
    if not alive:
        return Decided("holds", "every unsafe output region is excluded by the bounds", by_bounds=True)
    # dealt: deterministic on every rank (no time limit), unlike the gradient fixing
    return replace(carry, bounds=nb, alive=alive, dealt=alive)


def attack(ctx: Context, carry: Carry) -> Carry | Decided:
    """The set-up's falsifier (PGD), before any proof."""
    if ctx.setup.attack is None:
        return carry
    started = time.monotonic()
    found = ctx.setup.attack(ctx.setup, ctx.deadline)
    ctx.log.add(AttackStats(time.monotonic() - started))
    if found is None:
        return carry
    ctx.log.add(FoundBy("attack (PGD)"))
    if ctx.share is not None:
        ctx.share.announce(BEFORE_PIECES)
    return _violated(found, f"{REPLAYED} (found by the PGD attack)")


def gradient_fixing(ctx: Context, carry: Carry) -> Carry | Decided:
    """Saliency queries: fix the ReLU phases that the gradient constraint decides."""
    setup, grad = ctx.setup, ctx.setup.query.gradient
    if grad is None:
        return carry
    net, q = setup.net, setup.query
    fixing = fix_phases_by_gradient(net, carry.net_bounds, grad, deadline=ctx.t0 + ctx.timeout_s / 4)
    note = None
    if fixing.infeasible and point_in_box(setup):
        # the point keeps its own gradient, so "infeasible" can only be numerical trouble:
        # ignore the fixing rather than trust it
        note = "ignored: claimed infeasible although the point is in the box"
    elif fixing.infeasible:
        ctx.log.add(GradientFixingStats(fixing.fixed))
        why = "no input in the box keeps the gradient within delta"
        return Decided("holds", why, by_bounds=True)
    else:
        carry = replace(carry, bounds=fixing.bounds, gz0=fixing.gz0)
    ctx.log.add(GradientFixingStats(fixing.fixed, note, carry.net_bounds.n_undecided()))
    if sum(fixing.fixed):
        still = alive_disjuncts(net, carry.net_bounds, q)
        carry = replace(carry, alive=tuple(j for j in still if j in carry.alive))
        ctx.log.add(DisjunctsAfterFixing(len(carry.alive)))
    if not carry.alive:
        why = "every unsafe output region is excluded by the bounds (ReLU phases fixed by the gradient)"
        return Decided("holds", why, by_bounds=True)
    return carry


def patterns(ctx: Context, carry: Carry) -> Carry | Decided:
    """Saliency queries on back ends that allow it: few patterns keep the gradient, one LP each
    (dealt as pieces); else, on a wide first layer, a counterexample in the point's own region
    (a tenth of the time left at most); and, with ``pattern_walk``, the enumeration shortcut."""
    q = ctx.setup.query
    if not ctx.engine.supports_pattern_lps or q.gradient is None:
        return carry
    nb = carry.net_bounds
    few = few_patterns(ctx.setup.net, nb, q)
    if few is not None:
        ctx.log.add(PatternsWithinDelta(len(few)))
        mask = [p == UNDECIDED for p in nb.phase]
        pieces = deal(ctx, "activation pattern", few)
        cut = 0
        for n, pat in pieces.mine():
            started = time.monotonic()
            decision = pattern_lps(ctx, pat, list(carry.alive), mask)
            pieces.note(n, decision.outcome, started)
            if decision.found is not None:
                pieces.found(n)
                return _violated(decision.found)
            cut += decision.cut
        if pieces.stopped_early:
            return Decided("unknown", STOPPED)
        carry = carry.settled(cut)
    if few is None and carry.alive and _wide_first_layer(ctx):
        ctx.report(0, 1, "the point's own activation region")
        found = own_pattern_witness(
            ctx, nb, list(carry.alive), time.monotonic() + (ctx.deadline - time.monotonic()) / 10
        )
        if found is not None:
            ctx.log.add(FoundBy("the point's own activation pattern (LP)"))
            if ctx.share is not None:
                ctx.share.announce(BEFORE_PIECES)
            return _violated(found, f"{REPLAYED} (found in the point's own activation region)")
    if carry.alive and ctx.pattern_walk:
        walked = by_patterns(ctx, nb, carry.gz0, list(carry.alive))
        if walked is not None:
            if walked.found is not None:
                return _violated(walked.found)
            carry = carry.settled(walked.cut)
    return carry


def _wide_first_layer(ctx: Context) -> bool:
    """More first-layer ReLUs than inputs (a convolution, typically): the gradient fixing's pinv
    argument cannot pin the first layer, so a small delta leaves many patterns to the search, and
    the point's own region is worth one LP per disjunct first (docs/smt.md, "Convolutions").
    Like the attack, this falsifier runs only where the set-up asks for one (networks with at
    least 64 ReLUs, or ``attack=True``): small networks are decided faster by the exact search."""
    net = ctx.setup.net
    return ctx.setup.attack is not None and net.n_hidden > 0 and net.Ws[0].shape[0] > net.n_inputs


def bab(ctx: Context, carry: Carry) -> Carry | Decided:
    """Branch-and-bound on ReLU phases over the alive disjuncts, in one process (a share deals
    the MILP stages' pieces instead); every leaf it cannot close by bounds goes to the exact MILP.
    On shallow networks it hands over to the MILP stages after its share of the time limit."""
    if not ctx.bab or not carry.alive or not ctx.engine.supports_fixed_phases:
        return carry
    if ctx.share is not None and ctx.share.world_size > 1:
        return carry
    ctx.report(0, 1, "branch-and-bound: optimising the root's bounds")
    handover = bab_deadline(ctx)
    try:
        own = ctx if handover is None else replace(ctx, deadline=handover)
        decision = branch_and_bound(own, carry.net_bounds, carry.alive, carry.gz0)
    except SearchTimeout:
        if handover is None or time.monotonic() >= ctx.deadline:
            raise
        return carry  # the MILP stages decide the rest of the query (from scratch: sound)
    if decision.found is not None:
        ctx.log.add(FoundBy("branch-and-bound"))
        return _violated(decision.found)
    if decision.cut:
        return Decided("unknown", "unknown: boundary counterexample could not be repaired")
    why = "branch-and-bound closed every branch (by alpha-beta-CROWN bounds, or the exact MILP at a leaf)"
    return Decided("holds", why)


def _branches(ctx: Context, nb: NetBounds) -> list[tuple[Phase, ...]]:
    """The joint search's branches: one (nothing fixed) in one process; with several ranks, the
    2^k phase combinations of k undecided ReLUs (split.py), the point's own branch first."""
    share, setup = ctx.share, ctx.setup
    if share is None or share.world_size <= 1:
        return [()]
    at, grad = setup.at, setup.query.gradient
    in_box = point_in_box(setup)
    costs = flip_costs(setup.net, at, grad.c) if at is not None and in_box and grad is not None else None
    relus = split_relus(nb, share.world_size, costs)
    own = None
    if at is not None and in_box:
        _, pre = setup.net.forward(at)
        own = [bool(pre[layer][i] > 0) for layer, i in relus]
    fixings = branches(relus, own)
    ctx.log.add(JointSplit(tuple(relus), len(fixings)))
    return fixings


def joint_milp(ctx: Context, carry: Carry) -> Carry | Decided:
    """Saliency, several disjuncts alive: one MILP for all of them (the gradient part is shared)."""
    if ctx.setup.query.gradient is None or len(carry.alive) <= 1 or not ctx.engine.supports_joint_milp:
        return carry
    nb, together = carry.net_bounds, carry.alive
    fixings = _branches(ctx, nb)
    kind = "joint search of the output disjuncts" if len(fixings) == 1 else "branch of the joint search"
    # one piece: the list one process always had (its key unchanged); split: each branch's phases
    items: list[tuple[int, ...] | tuple[tuple[int, ...], tuple[Phase, ...]]] = (
        [together] if len(fixings) == 1 else [(together, f) for f in fixings]
    )
    joint = deal(ctx, kind, items)
    ctx.log.add(JointSearch(len(together)))
    cut = 0
    for n, _ in joint.mine():
        fixed = fixings[n]
        started = time.monotonic()
        what = f"{len(together)} output disjuncts in one search"
        ctx.report(n, len(fixings), what if not fixed else f"{what}, branch {n + 1}/{len(fixings)}")
        if fixed and contradicts(nb, fixed):
            joint.note(n, "infeasible", started)
            continue
        decision = decide_piece(ctx, joint, n, started, nb, together, carry.gz0, fixed)
        if decision is None:
            break
        if decision.found is not None:
            return _violated(decision.found)
        cut += decision.cut
    if joint.stopped_early:
        return Decided("unknown", STOPPED)
    return carry.settled(cut)


def per_disjunct(ctx: Context, carry: Carry) -> Decided:
    """Each disjunct dealt, one search each; what is left of the query is decided here."""
    dealt = carry.dealt if carry.alive else ()
    disjuncts = deal(ctx, "output disjunct", dealt)
    boundary = carry.boundary
    for n, j in disjuncts.mine():
        started = time.monotonic()
        if j not in carry.alive:  # excluded by the bounds after the gradient fixing
            disjuncts.note(n, "excluded", started)
            continue
        ctx.report(n, len(dealt), f"{ctx.backend}: output disjunct {j} ({n + 1}/{len(dealt)})")
        decision = decide_piece(ctx, disjuncts, n, started, carry.net_bounds, j, carry.gz0)
        if decision is None:
            break
        if decision.found is not None:
            return _violated(decision.found)
        boundary += decision.cut
    if disjuncts.stopped_early:
        return Decided("unknown", STOPPED)
    ctx.report(len(dealt), len(dealt), "done")
    if boundary:
        return Decided("unknown", "unknown: boundary counterexample could not be repaired")
    return Decided("holds", f"{ctx.backend} proved every remaining output disjunct infeasible")


STAGES: tuple[Stage, ...] = (point, bounds, attack, gradient_fixing, patterns, bab, joint_milp, per_disjunct)

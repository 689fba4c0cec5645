"""Property checks: set up a `Query`, try bounds, then a back end, and replay every counterexample.

Flow of every check (docs/smt.md has the details and the soundness argument):

1. extract the network, compute the label and ``VG(x)`` in torch float64;
2. bounds (interval + CROWN) on the box; a disjunct whose CROWN bound is already safe is dropped,
   and when all are dropped the verdict is "holds" with ``decided_by_bounds``;
3. each remaining disjunct goes to the back end (HiGHS MILP or z3); a candidate is replayed in
   torch float64, and if the replay fails (boundary point) it is repaired by the pattern LP with
   a margin and replayed again; an unrepairable pattern is cut off and the search continues, but
   the verdict can then no longer be "holds".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np
import z3
from torch import nn

from camlang.smt.bounds import ACTIVE, UNDECIDED, NetBounds, compute_bounds, spec_bounds
from camlang.smt.gradfix import fix_phases_by_gradient
from camlang.smt.inputs import torch_eval
from camlang.smt.milp import MilpProblem, build_milp, solve_milp
from camlang.smt.network import LayerList, ReluNet
from camlang.smt.pieces import BEFORE_PIECES, PieceMemo, Pieces, PieceShare, PieceStopped
from camlang.smt.query import MIN_MARGIN, LpFailure, Query, pattern_lp
from camlang.smt.split import Phase, branches, contradicts, flip_costs, split_relus
from camlang.smt.verdict import Status, Verdict
from camlang.smt.witness import strengthen_witness
from camlang.smt.z3_encode import EncodingTimeout, Z3Problem, encode_naive, encode_reference, solve_z3

__all__ = [
    "Setup",
    "run_query",
    "run_naive",
    "replay",
    "Progress",
    "Backend",
    "DisjunctSearch",
    "Outcome",
    "BACKENDS",
]

Progress = Callable[[int, int, str], None]
MAX_REPAIRS = 8


@dataclass(frozen=True)
class Setup:
    """Everything a query needs besides the back end."""

    name: str
    module64: nn.Module
    input_shape: tuple[int, ...]
    layers: LayerList
    net: ReluNet
    query: Query
    label: int | None  # replay checks ``argmax != label`` when set, else the unsafe polyhedra
    at: np.ndarray | None
    # a cheap falsifier run before any proof: a replayed counterexample or None (see attack.py)
    attack: Callable[[Setup, float], tuple[np.ndarray, dict[str, Any]] | None] | None = None


# ---------------------------------------------------------------------------------------------
# set-up


# ---------------------------------------------------------------------------------------------
# replay


def replay(setup: Setup, x: np.ndarray) -> dict[str, Any]:
    """Re-run a candidate in torch float64 and report whether it really is a counterexample."""
    q = setup.query
    grad_label = (
        setup.label
        if setup.label is not None
        else (0 if q.gradient is None else int(np.argmax(q.gradient.c)))
    )
    logits, grad = torch_eval(
        setup.module64, x, setup.input_shape, grad_label if q.gradient is not None else None
    )
    in_box = bool(np.all(x >= q.lo) and np.all(x <= q.hi))
    if setup.label is not None:
        unsafe = int(np.argmax(logits)) != setup.label
    else:
        unsafe = any(bool(np.all(A @ logits <= c)) for A, c in q.disjuncts)
    rec: dict[str, Any] = {
        "logits": logits.tolist(),
        "argmax": int(np.argmax(logits)),
        "label": setup.label,
        "in_box": in_box,
        "unsafe": bool(unsafe),
    }
    ok = in_box and unsafe
    if q.gradient is not None:
        assert grad is not None
        diff = float(np.max(np.abs(grad - q.gradient.g0)))
        rec["grad_diff"] = diff
        rec["delta"] = q.gradient.delta
        ok = ok and diff <= q.gradient.delta
    rec["ok"] = bool(ok)
    return rec


# ---------------------------------------------------------------------------------------------
# back ends


@dataclass(frozen=True)
class Outcome:
    """One back-end solve of one disjunct: "infeasible", "feasible" (a candidate point and, when the
    back end knows it, its activation pattern) or "timeout" (``message`` says why)."""

    status: Literal["infeasible", "feasible", "timeout"]
    x: np.ndarray | None = None
    pattern: list[np.ndarray] | None = None
    message: str = ""
    disjunct: int | None = None  # which disjunct a candidate reaches, when several were encoded


class DisjunctSearch(Protocol):
    """A back end's encoding of one unsafe disjunct, solved repeatedly with patterns cut off."""

    def solve(self, deadline: float) -> Outcome:
        """The next candidate that avoids every excluded pattern."""
        ...

    def exclude(self, pattern: list[np.ndarray]) -> None:
        """Cut ``pattern`` off (a no-good cut): it only reaches the unsafe set on its boundary."""
        ...


class Backend(Protocol):
    """A complete search back end: encodes "some input of the box reaches unsafe disjunct j (and
    keeps the gradient)" over the bounds, exactly, so that infeasible means safe."""

    name: str

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: tuple[np.ndarray, np.ndarray] | None,
        stats: dict[str, Any],
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        """Encode disjunct ``disjunct`` (several only where the back end sets ``joint = True``), in the
        branch where the ReLUs of ``fixed`` have those phases (only where ``joint``); raises
        `_Timeout` when encoding runs past ``deadline``."""
        ...


class _MilpSearch:
    def __init__(self, problem: MilpProblem, bounds: NetBounds) -> None:
        self.problem, self.bounds = problem, bounds
        self.excluded: list[list[np.ndarray]] = []

    def solve(self, deadline: float) -> Outcome:
        out = solve_milp(self.problem, self.bounds, deadline, self.excluded)
        return Outcome(out.status, out.x, out.pattern, out.message, out.disjunct)  # type: ignore[arg-type]

    def exclude(self, pattern: list[np.ndarray]) -> None:
        self.excluded.append(pattern)


class MilpBackend:
    """HiGHS through scipy.optimize.milp: big-M ReLUs, McCormick-exact gradient gates (milp.py).
    Several disjuncts can be encoded in one MILP, with a selector binary each (`joint`)."""

    name = "milp"
    joint = True

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: tuple[np.ndarray, np.ndarray] | None,
        stats: dict[str, Any],
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        problem = build_milp(setup.net, bounds, setup.query, disjunct, gz0, fixed=fixed)
        stats["binaries"] = max(stats.get("binaries", 0), problem.n_binaries)
        return _MilpSearch(problem, bounds)


class _Z3Search:
    def __init__(self, problem: Z3Problem) -> None:
        self.problem = problem

    def solve(self, deadline: float) -> Outcome:
        status, x, pattern, why = solve_z3(self.problem, deadline - time.monotonic())
        if status == "unsat":
            return Outcome("infeasible")
        if status == "unknown":
            return Outcome("timeout", message=f"z3: {why}")
        return Outcome("feasible", x, pattern)

    def exclude(self, pattern: list[np.ndarray]) -> None:
        self.problem.block_pattern(pattern)


class Z3Backend:
    """The reference: the same bounded encoding in z3 real arithmetic (z3_encode.py)."""

    name = "z3"

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: tuple[np.ndarray, np.ndarray] | None,
        stats: dict[str, Any],
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        if not isinstance(disjunct, int) or fixed:
            raise TypeError("the z3 back end encodes one disjunct at a time, without fixed phases")
        try:
            return _Z3Search(
                encode_reference(setup.net, bounds, setup.query, disjunct, z3.Context(), deadline)
            )
        except EncodingTimeout as exc:
            raise _Timeout(f"while encoding: {exc}") from exc


BACKENDS: dict[str, Backend] = {"milp": MilpBackend(), "z3": Z3Backend()}


# ---------------------------------------------------------------------------------------------
# the driver


def _verdict(
    setup: Setup, status: Status, backend: str, t0: float, reason: str, stats: dict[str, Any], **kw: Any
) -> Verdict:
    return Verdict(
        property=setup.name,
        status=status,
        backend=backend,
        seconds=time.monotonic() - t0,
        reason=reason,
        decided_by_bounds=kw.get("by_bounds", False),
        counterexample=kw.get("cex"),
        replay=kw.get("replay"),
        stats=stats,
    )


def _violated(
    setup: Setup,
    backend: str,
    t0: float,
    stats: dict[str, Any],
    found: tuple[np.ndarray, dict[str, Any]],
    reason: str,
) -> Verdict:
    """The one way to report a counterexample: push it into the strict interior, measure its
    margin in float64 and float32 (witness.py), and attach the replay."""
    x, rec = strengthen_witness(setup, found[0], found[1])
    if rec.get("boundary_only"):
        reason += " (boundary-only witness: no interior point with a float32-visible margin was found)"
    return _verdict(setup, "violated", backend, t0, reason, stats, cex=x.tolist(), replay=rec)


REPLAYED = "counterexample replayed in torch float64"
STOPPED = "stopped: another worker replayed a counterexample for a lower piece"
#: The reason of the `unknown` verdict a Ctrl-C during the search gives (`camlang run` stops there).
INTERRUPTED = "interrupted"


def _try_candidate(
    setup: Setup,
    bounds: NetBounds,
    disjunct: int,
    x: np.ndarray | None,
    pattern: list[np.ndarray] | None,
    deadline: float,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Replay ``x``; if that fails, repair through the pattern LP and replay again."""
    if x is not None:
        xc = np.clip(x, setup.query.lo, setup.query.hi)
        rec = replay(setup, xc)
        if rec["ok"]:
            return xc, rec
        if pattern is None:
            _, pre = setup.net.forward(xc)
            pattern = [z > 0 for z in pre]
    if pattern is None:
        return None
    mask = [p == UNDECIDED for p in bounds.phase] if setup.query.gradient is not None else None
    cand = pattern_lp(
        setup.net, setup.query, disjunct, pattern, max(deadline - time.monotonic(), 0.5), margin_mask=mask
    )
    if cand is None or cand.margin < MIN_MARGIN:
        return None
    rec = replay(setup, cand.x)
    rec["repaired_margin"] = cand.margin
    return (cand.x, rec) if rec["ok"] else None


def run_query(
    setup: Setup,
    backend: str,
    timeout_s: float,
    progress: Progress | None,
    pattern_walk: bool = False,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
) -> Verdict:
    """Decide ``setup.query`` with ``backend`` (a key of `BACKENDS`), bounds first.

    ``pattern_walk`` enables the saliency shortcut that enumerates the activation patterns whose
    gradient stays within delta and decides each by LP (only where the back end is the MILP; the
    benchmark measures it against the single MILP). With ``share``, this rank decides only its own
    pieces (output disjuncts, or patterns) and returns a partial verdict for `pieces.combine`.
    ``memo`` keeps the pieces proved infeasible, and skips those an earlier run proved."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    engine = BACKENDS[backend]
    q, net = setup.query, setup.net
    stats: dict[str, Any] = {
        "neurons": int(sum(W.shape[0] for W in net.Ws[:-1])),
        "disjuncts": len(q.disjuncts),
        "threads": (
            "1 (disjuncts and branches run one after the other)"
            if share is None
            else f"pieces dealt over {share.world_size} workers; this is rank {share.rank}'s part"
        ),
    }
    try:
        if setup.at is not None and np.all(setup.at >= q.lo) and np.all(setup.at <= q.hi):
            rec = replay(setup, setup.at)
            if rec["ok"]:
                stats["found_by"] = "the point itself"
                if share is not None:
                    share.announce(BEFORE_PIECES)
                return _violated(
                    setup, backend, t0, stats, (setup.at, rec), "the point itself is a counterexample"
                )
        # bounds first (milliseconds, and they settle many regions), then the attack
        bounds = compute_bounds(net, q.lo, q.hi)
        stats["undecided_relus"] = bounds.n_undecided()
        gz0 = None
        alive = _alive_disjuncts(net, bounds, q)
        dealt = list(alive)  # deterministic on every rank (no time limit), unlike the gradient fixing
        stats["disjuncts_left_after_bounds"] = len(alive)
        stats["bounds_seconds"] = time.monotonic() - t0
        if not alive:
            why = "every unsafe output region is excluded by the bounds"
            return _verdict(setup, "holds", backend, t0, why, stats, by_bounds=True)
        if setup.attack is not None:
            found = setup.attack(setup, deadline)
            stats["attack_seconds"] = time.monotonic() - t0 - stats["bounds_seconds"]
            if found is not None:
                stats["found_by"] = "attack (PGD)"
                if share is not None:
                    share.announce(BEFORE_PIECES)
                return _violated(setup, backend, t0, stats, found, f"{REPLAYED} (found by the PGD attack)")
        if q.gradient is not None:
            fixing = fix_phases_by_gradient(net, bounds, q.gradient, deadline=t0 + timeout_s / 4)
            stats["fixed_by_gradient"] = list(fixing.fixed)
            at_in_box = setup.at is not None and bool(np.all(setup.at >= q.lo) and np.all(setup.at <= q.hi))
            if fixing.infeasible and at_in_box:
                # the point keeps its own gradient, so "infeasible" can only be numerical trouble:
                # ignore the fixing rather than trust it
                stats["gradient_fixing"] = "ignored: claimed infeasible although the point is in the box"
            elif fixing.infeasible:
                why = "no input in the box keeps the gradient within delta"
                return _verdict(setup, "holds", backend, t0, why, stats, by_bounds=True)
            else:
                bounds = fixing.bounds
                gz0 = fixing.gz0
            stats["undecided_after_gradient"] = bounds.n_undecided()
            if sum(fixing.fixed):
                alive = [j for j in _alive_disjuncts(net, bounds, q) if j in alive]
                stats["disjuncts_left_after_gradient_fixing"] = len(alive)
            if not alive:
                why = (
                    "every unsafe output region is excluded by the bounds (ReLU phases fixed by the gradient)"
                )
                return _verdict(setup, "holds", backend, t0, why, stats, by_bounds=True)
        boundary = 0
        if isinstance(engine, MilpBackend) and q.gradient is not None:
            few = _few_patterns(net, bounds, q)
            if few is not None:
                stats["patterns_within_delta"] = len(few)
                mask = [p == UNDECIDED for p in bounds.phase]
                patterns = Pieces(share, "activation pattern", few, stats, memo)
                for n, pat in patterns.mine():
                    started = time.monotonic()
                    found, cut = _pattern_lps(setup, pat, alive, mask, deadline, stats)
                    patterns.note(n, "violated" if found else "boundary" if cut else "infeasible", started)
                    if found is not None:
                        patterns.found(n)
                        return _violated(setup, backend, t0, stats, found, REPLAYED)
                    boundary += cut
                if patterns.stopped_early:
                    return _verdict(setup, "unknown", backend, t0, STOPPED, stats)
                alive = []
                dealt = []
        if alive and pattern_walk and isinstance(engine, MilpBackend) and q.gradient is not None:
            enum = _by_patterns(setup, bounds, gz0, alive, deadline, stats, progress)
            if enum is not None:
                found, boundary = enum
                if found is not None:
                    return _violated(setup, backend, t0, stats, found, REPLAYED)
                alive = []
                dealt = []
        if q.gradient is not None and len(alive) > 1 and getattr(engine, "joint", False):
            # saliency: one MILP for every alive disjunct (the gradient part is shared). With several
            # ranks it is split into 2^k branches on the phases of k undecided ReLUs (split.py)
            found, cut, stopped = _joint_search(
                setup, bounds, alive, engine, deadline, stats, gz0, share, progress, memo
            )
            if found is not None:
                return _violated(setup, backend, t0, stats, found, REPLAYED)
            if stopped:
                return _verdict(setup, "unknown", backend, t0, STOPPED, stats)
            boundary += cut
            alive = []
            dealt = []
        disjuncts = Pieces(share, "output disjunct", dealt if alive else [], stats, memo)
        for n, j in disjuncts.mine():
            started = time.monotonic()
            if j not in alive:  # excluded by the bounds after the gradient fixing
                disjuncts.note(n, "excluded", started)
                continue
            if progress is not None:
                progress(n, len(dealt), f"{backend}: output disjunct {j} ({n + 1}/{len(dealt)})")
            decided = _decide_piece(disjuncts, n, started, setup, bounds, j, engine, deadline, stats, gz0)
            if decided is None:
                break
            found, cut = decided
            boundary += cut
            if found is not None:
                return _violated(setup, backend, t0, stats, found, REPLAYED)
        if disjuncts.stopped_early:
            return _verdict(setup, "unknown", backend, t0, STOPPED, stats)
        if progress is not None:
            progress(len(dealt), len(dealt), "done")
        if boundary:
            return _verdict(
                setup, "unknown", backend, t0, "unknown: boundary counterexample could not be repaired", stats
            )
        return _verdict(
            setup, "holds", backend, t0, f"{backend} proved every remaining output disjunct infeasible", stats
        )
    except LpFailure as exc:
        return _verdict(setup, "unknown", backend, t0, f"unknown: {exc}", stats)
    except (_Timeout, EncodingTimeout) as to:
        return _verdict(setup, "unknown", backend, t0, f"timeout after {timeout_s:g} s ({to})", stats)
    except KeyboardInterrupt:
        return _verdict(setup, "unknown", backend, t0, INTERRUPTED, stats)


class _Timeout(Exception):
    pass


def _joint_search(
    setup: Setup,
    bounds: NetBounds,
    alive: list[int],
    engine: Backend,
    deadline: float,
    stats: dict[str, Any],
    gz0: tuple[np.ndarray, np.ndarray] | None,
    share: PieceShare | None,
    progress: Progress | None,
    memo: PieceMemo | None = None,
) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, int, bool]:
    """Every alive disjunct in one MILP (one process), or that MILP split into branches that are
    dealt over the ranks of ``share``: (this rank's replayed counterexample or None, boundary
    patterns cut, whether this rank stopped for a lower piece's counterexample)."""
    together = tuple(alive)
    fixings: list[tuple[Phase, ...]] = [()]
    if share is not None and share.world_size > 1:
        at, grad = setup.at, setup.query.gradient
        in_box = at is not None and bool(np.all(at >= setup.query.lo) and np.all(at <= setup.query.hi))
        costs = flip_costs(setup.net, at, grad.c) if at is not None and in_box and grad is not None else None
        relus = split_relus(bounds, share.world_size, costs)
        own = None
        if at is not None and in_box:
            _, pre = setup.net.forward(at)
            own = [bool(pre[layer][i] > 0) for layer, i in relus]
        fixings = branches(relus, own)
        stats["joint_split"] = {
            "relus": [list(r) for r in relus],
            "branches": len(fixings),
            "note": "the verdict does not depend on the number of workers; the witness may",
        }
    kind = "joint search of the output disjuncts" if len(fixings) == 1 else "branch of the joint search"
    # one piece: the list one process always had (its key unchanged); split: each branch's phases
    items: list[Any] = [together] if len(fixings) == 1 else [(together, f) for f in fixings]
    joint = Pieces(share, kind, items, stats, memo)
    stats["joint_disjuncts"] = len(alive)
    cut_total = 0
    for n, _ in joint.mine():
        fixed = fixings[n]
        started = time.monotonic()
        if progress is not None:
            what = f"{len(alive)} output disjuncts in one search"
            progress(n, len(fixings), what if not fixed else f"{what}, branch {n + 1}/{len(fixings)}")
        if fixed and contradicts(bounds, fixed):
            joint.note(n, "infeasible", started)
            continue
        decided = _decide_piece(
            joint, n, started, setup, bounds, together, engine, deadline, stats, gz0, fixed
        )
        if decided is None:
            break
        found, cut = decided
        cut_total += cut
        if found is not None:
            return found, 0, False
    return None, cut_total, joint.stopped_early


def _decide_piece(
    pieces: Pieces,
    n: int,
    started: float,
    setup: Setup,
    bounds: NetBounds,
    target: int | tuple[int, ...],
    engine: Backend,
    deadline: float,
    stats: dict[str, Any],
    gz0: tuple[np.ndarray, np.ndarray] | None,
    fixed: Sequence[Phase] = (),
) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, int] | None:
    """`_decide_disjunct` on piece ``n`` of ``pieces``, its outcome noted (and announced when
    violated); None when a lower piece's counterexample stopped it (the rank's other pieces are
    then skipped). Raises `_Timeout`."""
    try:
        found, cut = _decide_disjunct(
            setup, bounds, target, engine, deadline, stats, gz0, partial(pieces.stopped, n), fixed
        )
    except PieceStopped:
        pieces.note_rest_skipped(n)
        return None
    except _Timeout:
        pieces.note(n, "timeout", started)
        raise
    pieces.note(n, "violated" if found else "boundary" if cut else "infeasible", started)
    if found is not None:
        pieces.found(n)
    return found, cut


def _alive_disjuncts(net: ReluNet, bounds: NetBounds, q: Query) -> list[int]:
    """The unsafe disjuncts that CROWN cannot exclude, the likeliest to be violated first.

    A violation ends the query, so the disjunct whose CROWN bound comes closest to being violated
    (the lowest bound of its safe slack) is searched first; ties keep the file's order."""
    alive: list[tuple[float, int]] = []
    for j, (A, c) in enumerate(q.disjuncts):
        low, _ = spec_bounds(net, bounds, q.lo, q.hi, np.atleast_2d(A), -np.asarray(c, dtype=np.float64))
        if not np.any(low > 0):
            alive.append((float(np.max(low)), j))
    return [j for _, j in sorted(alive)]


# the most undecided ReLUs whose patterns are enumerated directly, and the most patterns within
# delta that are then decided one LP each; beyond either, one MILP is faster (docs/smt.md, "Numbers")
ENUM_MAX_RELUS = 16
ENUM_MAX_PATTERNS = 16


def _few_patterns(net: ReluNet, bounds: NetBounds, q: Query) -> list[list[np.ndarray]] | None:
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


def _by_patterns(
    setup: Setup,
    bounds: NetBounds,
    gz0: tuple[np.ndarray, np.ndarray] | None,
    alive: list[int],
    deadline: float,
    stats: dict[str, Any],
    progress: Progress | None,
    cap: int = 64,
) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, int] | None:
    """Branch on activation patterns: enumerate every pattern whose gradient stays within delta
    (a MILP over the gates and the backward pass only, with no-good cuts), then decide each
    pattern's region by linear programming. None when there are more than ``cap`` patterns
    (the caller falls back to the full MILP); else (counterexample or None, boundary patterns)."""
    problem = build_milp(setup.net, bounds, setup.query, 0, gz0, forward=False)
    patterns: list[list[np.ndarray]] = []
    mask = [p == UNDECIDED for p in bounds.phase]
    boundary = 0
    n_own = 0
    at = setup.at
    if progress is not None:
        progress(0, cap, "milp: the point's own activation pattern")
    if at is not None and np.all(at >= setup.query.lo) and np.all(at <= setup.query.hi):
        # the point's own pattern always keeps the gradient: start from it
        _, pre = setup.net.forward(at)
        own = [z > 0 for z in pre]
        if all(
            np.all(o[ph != UNDECIDED] == (ph[ph != UNDECIDED] == ACTIVE)) for o, ph in zip(own, bounds.phase)
        ):
            patterns.append(own)
            n_own = 1
            # its region keeps VG exactly, so try it before enumerating the others
            found, cut = _pattern_lps(setup, own, alive, mask, deadline, stats)
            if found is not None:
                return found, 0
            boundary += cut
    enum_deadline = min(deadline, time.monotonic() + (deadline - time.monotonic()) / 2)
    while len(patterns) <= cap:
        if progress is not None:
            progress(len(patterns), cap, f"milp: enumerating activation patterns ({len(patterns)} so far)")
        out = solve_milp(problem, bounds, enum_deadline, patterns)
        if out.status == "infeasible":
            break
        if out.status == "timeout":
            stats["patterns_enumerated"] = f">= {len(patterns)} (enumeration stopped: time)"
            return None
        assert out.pattern is not None
        patterns.append(out.pattern)
    else:
        stats["patterns_enumerated"] = f"> {cap}"
        return None
    stats["patterns_enumerated"] = len(patterns)
    checked = n_own
    for n, pat in enumerate(patterns[checked:], start=checked):
        if progress is not None:
            progress(n, len(patterns), f"milp: pattern LPs {n + 1}/{len(patterns)}")
        found, cut = _pattern_lps(setup, pat, alive, mask, deadline, stats)
        if found is not None:
            return found, 0
        boundary += cut
    return None, boundary


def _pattern_lps(
    setup: Setup,
    pat: list[np.ndarray],
    alive: list[int],
    mask: list[np.ndarray],
    deadline: float,
    stats: dict[str, Any],
) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, int]:
    """Decide one activation pattern's region against every alive disjunct by linear programming."""
    boundary = 0
    for j in alive:
        if time.monotonic() >= deadline:
            raise _Timeout("time limit reached during the pattern LPs")
        cand = pattern_lp(
            setup.net, setup.query, j, pat, max(deadline - time.monotonic(), 0.5), margin_mask=mask
        )
        stats["pattern_lps"] = stats.get("pattern_lps", 0) + 1
        if cand is None or cand.margin < 0:
            continue
        if cand.margin >= MIN_MARGIN:
            rec = replay(setup, cand.x)
            rec["repaired_margin"] = cand.margin
            if rec["ok"]:
                return (cand.x, rec), 0
        boundary += 1
    return None, boundary


def _decide_disjunct(
    setup: Setup,
    bounds: NetBounds,
    j: int | tuple[int, ...],
    engine: Backend,
    deadline: float,
    stats: dict[str, Any],
    gz0: tuple[np.ndarray, np.ndarray] | None = None,
    stopped: Callable[[], bool] | None = None,
    fixed: Sequence[Phase] = (),
) -> tuple[tuple[np.ndarray, dict[str, Any]] | None, int]:
    """A replayed counterexample for disjunct ``j`` (or for one of several, encoded together), or
    None when infeasible, and how many patterns were cut off as unrepairable boundary points.
    Raises `_Timeout`, and `PieceStopped` when ``stopped()`` turns true between two candidates.
    ``fixed``: the branch of a split joint search (ReLU phases fixed exactly, `camlang.smt.split`)."""
    search = engine.search(setup, bounds, j, deadline, gz0, stats, fixed)
    targets = (j,) if isinstance(j, int) else j
    cut = 0
    for _ in range(MAX_REPAIRS):
        if time.monotonic() >= deadline:
            raise _Timeout("time limit reached")
        if stopped is not None and stopped():
            raise PieceStopped
        out = search.solve(deadline)
        if out.status == "infeasible":
            return None, cut
        if out.status == "timeout":
            raise _Timeout(out.message)
        stats["candidates"] = stats.get("candidates", 0) + 1
        reached = out.disjunct if out.disjunct is not None else targets[0]
        # the disjunct the solver picked first, then (same point and pattern) every other one
        for t in sorted(targets, key=lambda d: d != reached):
            found = _try_candidate(setup, bounds, t, out.x, out.pattern, deadline)
            if found is not None:
                return found, 0
        if out.pattern is None:
            break
        search.exclude(out.pattern)
        cut += 1
    return None, max(cut, 1)


def run_naive(setup: Setup, timeout_s: float, progress: Progress | None) -> Verdict:
    """The naive z3 peer: the whole query in one unbounded encoding, no bound propagation."""
    t0 = time.monotonic()
    stats: dict[str, Any] = {"disjuncts": len(setup.query.disjuncts)}
    backend = "z3-naive"
    try:
        if progress is not None:
            progress(0, 1, "z3-naive: encoding")
        problem = encode_naive(setup.layers, setup.query, z3.Context(), t0 + timeout_s)
        left = timeout_s - (time.monotonic() - t0)
        if left <= 0:
            return _verdict(
                setup, "unknown", backend, t0, f"timeout after {timeout_s:g} s (while encoding)", stats
            )
        status, x, _, why = solve_z3(problem, left)
        if progress is not None:
            progress(1, 1, "done")
        if status == "unsat":
            return _verdict(
                setup, "holds", backend, t0, "z3 (naive encoding) proved the query unsatisfiable", stats
            )
        if status == "unknown":
            reason = "timeout" if why in ("timeout", "canceled") else why
            return _verdict(setup, "unknown", backend, t0, f"{reason} after {timeout_s:g} s", stats)
        assert x is not None
        bounds = compute_bounds(setup.net, setup.query.lo, setup.query.hi)
        deadline = t0 + timeout_s + 10.0
        for j in range(len(setup.query.disjuncts)):
            found = _try_candidate(setup, bounds, j, x, None, deadline)
            if found is not None:
                return _violated(setup, backend, t0, stats, found, REPLAYED)
        return _verdict(
            setup, "unknown", backend, t0, "unknown: boundary counterexample could not be repaired", stats
        )
    except EncodingTimeout:
        return _verdict(
            setup, "unknown", backend, t0, f"timeout after {timeout_s:g} s (while encoding)", stats
        )
    except KeyboardInterrupt:
        return _verdict(setup, "unknown", backend, t0, INTERRUPTED, stats)

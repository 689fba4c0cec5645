"""The proof search of one query: a back end's candidates, replayed and repaired, piece by piece.

`Context` is what every stage of the driver reads. `decide_disjunct` asks the back end for
candidates of one disjunct (or of several encoded together), replays each in torch float64 and,
when the replay fails on a boundary point, repairs it by the pattern LP with a margin; a pattern
that cannot be repaired is cut off and the search goes on (the verdict can then no longer be
"holds"). `decide_piece` runs it as one piece of a dealt piece list (`camlang.smt.pieces`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from camlang.smt.backends import Backend, GatedGradient, SearchTimeout
from camlang.smt.bounds import UNDECIDED, NetBounds, spec_bounds
from camlang.smt.network import ReluNet
from camlang.smt.pieces import PieceMemo, Pieces, PieceShare, PieceStopped
from camlang.smt.query import MIN_MARGIN, Query, pattern_lp
from camlang.smt.setup import Found, Setup, replay
from camlang.smt.split import Phase
from camlang.smt.stats import CandidateTried, MilpEncoded, PiecesDealt, StatsLog

__all__ = [
    "Progress",
    "Context",
    "Decision",
    "deal",
    "try_candidate",
    "decide_disjunct",
    "decide_piece",
    "alive_disjuncts",
    "MAX_REPAIRS",
]

#: (done, total, message): what a long query reports as it goes.
Progress = Callable[[int, int, str], None]
#: candidates tried per disjunct before the search gives up on repairing boundary points
MAX_REPAIRS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every stage of one query reads: fixed for the query, but for the append-only log."""

    setup: Setup
    engine: Backend
    backend: str  # the name the caller asked for (a key of `BACKENDS`)
    t0: float
    deadline: float
    timeout_s: float
    log: StatsLog
    progress: Progress | None = None
    share: PieceShare | None = None
    memo: PieceMemo | None = None
    pattern_walk: bool = False
    bab: bool = False  # decide by branch-and-bound (camlang.smt.bab) before the MILP stages

    def report(self, done: int, total: int, message: str) -> None:
        """Tell the caller's progress callback, if any."""
        if self.progress is not None:
            self.progress(done, total, message)


@dataclass(frozen=True)
class Decision:
    """What searching one piece came to: a replayed counterexample or None, and how many patterns
    were cut off as unrepairable boundary points."""

    found: Found | None
    cut: int = 0

    @property
    def outcome(self) -> str:
        """The piece's outcome, as `Pieces.note` records it."""
        return "violated" if self.found else "boundary" if self.cut else "infeasible"


def deal(ctx: Context, kind: str, items: Sequence[T]) -> Pieces[T]:
    """The piece list ``items`` of this query, dealt over the ranks of ``ctx.share`` (and logged)."""
    pieces = Pieces(ctx.share, kind, items, ctx.memo)
    if pieces.items:
        ctx.log.add(PiecesDealt(pieces.record))
    return pieces


def try_candidate(
    setup: Setup,
    bounds: NetBounds,
    disjunct: int,
    x: np.ndarray | None,
    pattern: list[np.ndarray] | None,
    deadline: float,
) -> Found | None:
    """Replay ``x``; if that fails, repair through the pattern LP and replay again."""
    if x is not None:
        xc = np.clip(x, setup.query.lo, setup.query.hi)
        rec = replay(setup, xc)
        if rec["ok"]:
            return Found(xc, rec)
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
    return Found(cand.x, rec) if rec["ok"] else None


def decide_disjunct(
    ctx: Context,
    bounds: NetBounds,
    j: int | tuple[int, ...],
    gz0: GatedGradient | None = None,
    stopped: Callable[[], bool] | None = None,
    fixed: Sequence[Phase] = (),
) -> Decision:
    """A replayed counterexample for disjunct ``j`` (or for one of several, encoded together), or
    None when infeasible, and the patterns cut off. Raises `SearchTimeout`, and `PieceStopped`
    when ``stopped()`` turns true between two candidates. ``fixed``: the branch of a split joint
    search (ReLU phases fixed exactly, `camlang.smt.split`)."""
    setup, deadline = ctx.setup, ctx.deadline
    search = ctx.engine.search(setup, bounds, j, deadline, gz0, fixed)
    if search.binaries is not None:
        ctx.log.add(MilpEncoded(search.binaries))
    targets = (j,) if isinstance(j, int) else j
    cut = 0
    for _ in range(MAX_REPAIRS):
        if time.monotonic() >= deadline:
            raise SearchTimeout("time limit reached")
        if stopped is not None and stopped():
            raise PieceStopped
        out = search.solve(deadline)
        if out.status == "infeasible":
            return Decision(None, cut)
        if out.status == "timeout":
            raise SearchTimeout(out.message)
        ctx.log.add(CandidateTried())
        reached = out.disjunct if out.disjunct is not None else targets[0]
        # the disjunct the solver picked first, then (same point and pattern) every other one
        for t in sorted(targets, key=lambda d: d != reached):
            found = try_candidate(setup, bounds, t, out.x, out.pattern, deadline)
            if found is not None:
                return Decision(found)
        if out.pattern is None:
            break
        search.exclude(out.pattern)
        cut += 1
    return Decision(None, max(cut, 1))


def decide_piece(
    ctx: Context,
    pieces: Pieces[T],
    n: int,
    started: float,
    bounds: NetBounds,
    target: int | tuple[int, ...],
    gz0: GatedGradient | None,
    fixed: Sequence[Phase] = (),
) -> Decision | None:
    """`decide_disjunct` on piece ``n`` of ``pieces``, its outcome noted (and announced when
    violated); None when a lower piece's counterexample stopped it (the rank's other pieces are
    then skipped). Raises `SearchTimeout`."""
    try:
        decision = decide_disjunct(ctx, bounds, target, gz0, partial(pieces.stopped, n), fixed)
    except PieceStopped:
        pieces.note_rest_skipped(n)
        return None
    except SearchTimeout:
        pieces.note(n, "timeout", started)
        raise
    pieces.note(n, decision.outcome, started)
    if decision.found is not None:
        pieces.found(n)
    return decision


def alive_disjuncts(net: ReluNet, bounds: NetBounds, q: Query) -> list[int]:
    """The unsafe disjuncts that CROWN cannot exclude, the likeliest to be violated first.

    A violation ends the query, so the disjunct whose CROWN bound comes closest to being violated
    (the lowest bound of its safe slack) is searched first; ties keep the file's order."""
    alive: list[tuple[float, int]] = []
    for j, (A, c) in enumerate(q.disjuncts):
        low, _ = spec_bounds(net, bounds, q.lo, q.hi, np.atleast_2d(A), -np.asarray(c, dtype=np.float64))
        if not np.any(low > 0):
            alive.append((float(np.max(low)), j))
    return [j for _, j in sorted(alive)]

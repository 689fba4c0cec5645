"""Property checks: run a `Setup`'s query through the stages, and the naive z3 peer.

Flow of every check (docs/smt.md has the details and the soundness argument): `run_query` runs
the stages of `camlang.smt.stages` in order (the point, bounds, the attack, gradient fixing,
pattern LPs, the joint MILP, the per-disjunct search) until one decides; every counterexample is
replayed in torch float64 and pushed into the strict interior of the unsafe set (witness.py)
before it is reported. A timeout, an LP failure or a Ctrl-C gives "unknown", with the stats
logged so far.
"""

from __future__ import annotations

import time

import z3

from camlang.smt.bab import wants_bab
from camlang.smt.backends import (
    BACKENDS,
    Backend,
    DisjunctSearch,
    MilpBackend,
    Outcome,
    SearchTimeout,
    Z3Backend,
)
from camlang.smt.bounds import compute_bounds
from camlang.smt.pieces import PieceMemo, PieceShare
from camlang.smt.query import LpFailure
from camlang.smt.search import Context, Progress, try_candidate
from camlang.smt.setup import Found, Setup, replay
from camlang.smt.stages import REPLAYED, STAGES, STOPPED, Carry, Decided
from camlang.smt.stats import QueryShape, StatsLog
from camlang.smt.verdict import Verdict
from camlang.smt.witness import strengthen_witness
from camlang.smt.z3_encode import EncodingTimeout, encode_naive, solve_z3

__all__ = [
    "Setup",
    "run_query",
    "run_naive",
    "replay",
    "Progress",
    "Backend",
    "DisjunctSearch",
    "Outcome",
    "MilpBackend",
    "Z3Backend",
    "BACKENDS",
    "INTERRUPTED",
    "REPLAYED",
    "STOPPED",
]

#: The reason of the `unknown` verdict a Ctrl-C during the search gives (`camlang run` stops there).
INTERRUPTED = "interrupted"


def _verdict(setup: Setup, backend: str, t0: float, decided: Decided, log: StatsLog) -> Verdict:
    """The verdict of ``decided``; a counterexample is first pushed into the strict interior and
    its margins measured in float64 and float32 (witness.py)."""
    reason, cex, rec = decided.reason, None, None
    if decided.found is not None:
        x, rec = strengthen_witness(setup, decided.found.x, decided.found.replay)
        cex = x.tolist()
        if rec.get("boundary_only"):
            reason += " (boundary-only witness: no interior point with a float32-visible margin was found)"
    return Verdict(
        property=setup.name,
        status=decided.status,
        backend=backend,
        seconds=time.monotonic() - t0,
        reason=reason,
        decided_by_bounds=decided.by_bounds,
        counterexample=cex,
        replay=rec,
        stats=log.as_dict(),
    )


def _threads(share: PieceShare | None) -> str:
    if share is None:
        return "1 (disjuncts and branches run one after the other)"
    return f"pieces dealt over {share.world_size} workers; this is rank {share.rank}'s part"


def run_query(
    setup: Setup,
    backend: str,
    timeout_s: float,
    progress: Progress | None,
    pattern_walk: bool = False,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
    bab: bool | None = None,
) -> Verdict:
    """Decide ``setup.query`` with ``backend`` (a key of `BACKENDS`), bounds first.

    ``pattern_walk`` enables the saliency shortcut that enumerates the activation patterns whose
    gradient stays within delta and decides each by LP (only on back ends that support pattern
    LPs; the benchmark measures it against the single MILP). With ``share``, this rank decides
    only its own pieces (output disjuncts, or patterns) and returns a partial verdict for
    `pieces.combine`. ``memo`` keeps the pieces proved infeasible, and skips those an earlier run
    proved. ``bab``: decide by branch-and-bound on ReLU phases before the MILP stages (default:
    on networks with at least three hidden layers, and for plain robustness on two hidden layers
    of at least 64 ReLUs, `camlang.smt.bab.wants_bab`)."""
    t0 = time.monotonic()
    log = StatsLog()
    neurons = int(sum(W.shape[0] for W in setup.net.Ws[:-1]))
    log.add(QueryShape(neurons, len(setup.query.disjuncts), _threads(share)))
    ctx = Context(
        setup=setup,
        engine=BACKENDS[backend],
        backend=backend,
        t0=t0,
        deadline=t0 + timeout_s,
        timeout_s=timeout_s,
        log=log,
        progress=progress,
        share=share,
        memo=memo,
        pattern_walk=pattern_walk,
        bab=wants_bab(setup, bab),
    )
    try:
        carry = Carry()
        for stage in STAGES:
            match stage(ctx, carry):
                case Decided() as decided:
                    return _verdict(setup, backend, t0, decided, log)
                case Carry() as carry:
                    pass
        raise AssertionError("the last stage decides every query")
    except LpFailure as exc:
        return _verdict(setup, backend, t0, Decided("unknown", f"unknown: {exc}"), log)
    except (SearchTimeout, EncodingTimeout) as to:
        return _verdict(setup, backend, t0, Decided("unknown", f"timeout after {timeout_s:g} s ({to})"), log)
    except KeyboardInterrupt:
        return _verdict(setup, backend, t0, Decided("unknown", INTERRUPTED), log)


def run_naive(setup: Setup, timeout_s: float, progress: Progress | None) -> Verdict:
    """The naive z3 peer: the whole query in one unbounded encoding, no bound propagation."""
    t0 = time.monotonic()
    log = StatsLog()
    log.add(QueryShape(None, len(setup.query.disjuncts)))

    def done(decided: Decided) -> Verdict:
        return _verdict(setup, "z3-naive", t0, decided, log)

    try:
        return done(_naive(setup, timeout_s, progress, t0))
    except EncodingTimeout:
        return done(Decided("unknown", f"timeout after {timeout_s:g} s (while encoding)"))
    except LpFailure as exc:  # the witness repair's LP (try_candidate) did not finish
        return done(Decided("unknown", f"unknown: {exc}"))
    except KeyboardInterrupt:
        return done(Decided("unknown", INTERRUPTED))


def _naive(setup: Setup, timeout_s: float, progress: Progress | None, t0: float) -> Decided:
    if progress is not None:
        progress(0, 1, "z3-naive: encoding")
    problem = encode_naive(setup.layers, setup.query, z3.Context(), t0 + timeout_s)
    left = timeout_s - (time.monotonic() - t0)
    if left <= 0:
        return Decided("unknown", f"timeout after {timeout_s:g} s (while encoding)")
    status, x, _, why = solve_z3(problem, left)
    if progress is not None:
        progress(1, 1, "done")
    if status == "unsat":
        return Decided("holds", "z3 (naive encoding) proved the query unsatisfiable")
    if status == "unknown":
        reason = "timeout" if why in ("timeout", "canceled") else why
        return Decided("unknown", f"{reason} after {timeout_s:g} s")
    assert x is not None
    bounds = compute_bounds(setup.net, setup.query.lo, setup.query.hi)
    deadline = t0 + timeout_s + 10.0
    for j in range(len(setup.query.disjuncts)):
        found: Found | None = try_candidate(setup, bounds, j, x, None, deadline)
        if found is not None:
            return Decided("violated", REPLAYED, found=found)
    return Decided("unknown", "unknown: boundary counterexample could not be repaired")

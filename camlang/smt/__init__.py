"""SMT / verification engine for ReLU networks: properties, bounds, MILP and z3 back ends.

One entry point, `check(module, question, backend=...)`, returns a `Verdict` and never raises for
a hard query (timeouts and Ctrl-C give "unknown"; bad input raises `CamlangError`). A question is

* `SaliencyRobust` — for every x' in the eps-ball around x (clipped to ``box``) whose vanilla
  gradient stays within ``delta`` of VG(x), the network still predicts ``label``;
* `Robust` — classic local robustness;
* `VnnlibQuestion` — a VNN-COMP property from `load_vnnlib` (optionally with a saliency constraint
  at the property's image, `VnnlibProperty.point`).

Back ends: "auto" (= "milp"), "milp" (HiGHS), "z3" (the bounded reference encoding) and "z3-naive"
(the whole query in one unbounded z3 encoding: the benchmark peer). `check_saliency_robust`,
`check_robust` and `check_vnnlib` are shorthands for `check` with the matching question.
`find_delta_flip` bisects the delta where the saliency verdict flips.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from camlang.backends.z3_lower import Z3_OPS
from camlang.errors import CamlangError
from camlang.smt.attack import pgd_attack
from camlang.smt.backends import BACKENDS
from camlang.smt.driver import INTERRUPTED, run_naive, run_query
from camlang.smt.inputs import BoxLike, PointLike, check_nonneg
from camlang.smt.network import extract_relu_net
from camlang.smt.pieces import PieceMemo, PieceShare, combine
from camlang.smt.questions import Question, Robust, SaliencyRobust, VnnlibQuestion, build_setup
from camlang.smt.search import Progress
from camlang.smt.setup import Found, Setup
from camlang.smt.verdict import ReplayRecord, Verdict
from camlang.smt.vnnlib import VnnlibProperty, load_vnnlib, parse_vnnlib

__all__ = [
    "Verdict",
    "ReplayRecord",
    "VnnlibProperty",
    "DeltaFlip",
    "Z3_OPS",
    "SaliencyRobust",
    "Robust",
    "VnnlibQuestion",
    "Question",
    "Progress",
    "INTERRUPTED",
    "PieceShare",
    "combine",
    "check",
    "falsify",
    "check_saliency_robust",
    "check_robust",
    "check_vnnlib",
    "load_vnnlib",
    "parse_vnnlib",
    "find_delta_flip",
    "extract_relu_net",
]

BACKEND_NAMES = ("auto", *BACKENDS, "z3-naive")
# networks with at least this many ReLUs run the PGD attack before the proof search by default;
# on smaller ones (BanditNet) the exact search is faster than the attack's set-up
ATTACK_MIN_NEURONS = 64
# the question's set-up (kept under its old name: tests build set-ups through it)
_setup = build_setup


def _backend(name: str) -> str:
    if name not in BACKEND_NAMES:
        raise CamlangError(
            f"unknown SMT back end `{name}`", hint=f"use one of: {', '.join(BACKEND_NAMES)}", code="E703"
        )
    return "milp" if name == "auto" else name


def check(
    module: nn.Module,
    question: Question,
    backend: str = "auto",
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
    attack: bool | None = None,
    pattern_walk: bool = False,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
    bab: bool | None = None,
) -> Verdict:
    """Decide ``question`` about ``module`` with ``backend`` (see the module docstring).

    ``attack``: run the PGD falsifier before the proof search (default: on networks with at least
    `ATTACK_MIN_NEURONS` ReLUs). ``pattern_walk``: the MILP back end's older saliency shortcut
    (enumerate the patterns whose gradient stays within delta, one LP each) before the single MILP;
    off by default because the single MILP was faster on every BanditNet of the family where they
    differ (docs/smt.md, "Numbers").
    One query runs single-threaded. ``share``: this process is one rank of several that decide the
    query together, each its share of the output disjuncts or branches, with an early stop on a
    replayed counterexample (camlang/smt/pieces.py); the result is then this rank's partial
    verdict, for `camlang.smt.pieces.combine`. The z3-naive back end has no pieces and ignores it.
    ``memo``: keeps each piece proved infeasible and skips those proved before (`camlang run
    --resume` passes the run's cache), so an interrupted query continues where it stopped.
    ``bab``: branch-and-bound on ReLU phases with alpha-beta-CROWN bounds before the MILP (default:
    networks with at least three hidden layers, and plain robustness on two hidden layers of at
    least 64 ReLUs; docs/smt.md).
    """
    name = _backend(backend)
    setup = build_setup(module, question, input_shape)
    if name == "z3-naive":
        return run_naive(setup, timeout_s, progress)
    neurons = sum(W.shape[0] for W in setup.net.Ws[:-1])
    if attack if attack is not None else neurons >= ATTACK_MIN_NEURONS:
        setup = replace(setup, attack=_attack_budget)
    return run_query(
        setup, name, timeout_s, progress, pattern_walk=pattern_walk, share=share, memo=memo, bab=bab
    )


def falsify(
    module: nn.Module,
    question: Question,
    steps: int = 200,
    restarts: int = 8,
    timeout_s: float = 60.0,
    seed: int = 0,
    input_shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, ReplayRecord] | None:
    """Search for a counterexample to ``question`` with PGD alone (restricted to the gradient
    constraint for saliency questions): a replayed witness and its replay record, or None.

    Benchmarks and tests run it against every "holds": a witness there is a soundness bug."""
    setup = build_setup(module, question, input_shape)
    found = pgd_attack(setup, time.monotonic() + timeout_s, steps=steps, restarts=restarts, seed=seed)
    return None if found is None else (found.x, found.replay)


def _attack_budget(setup: Setup, deadline: float) -> Found | None:
    """PGD with a small budget: 40 steps, 8 restarts, at most 1/10 of the time left."""
    return pgd_attack(setup, min(deadline, time.monotonic() + (deadline - time.monotonic()) / 10))


def check_saliency_robust(
    module: nn.Module,
    x: PointLike,
    eps: float,
    delta: float,
    label: int | None = None,
    box: BoxLike = (0.0, 1.0),
    timeout_s: float = 120.0,
    backend: str = "auto",
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
) -> Verdict:
    """Shorthand for ``check(module, SaliencyRobust(x, eps, delta, label, box), backend, ...)``."""
    question = SaliencyRobust(x, eps, delta, label, box)
    return check(module, question, backend, timeout_s, progress, input_shape, share=share, memo=memo)


def check_robust(
    module: nn.Module,
    x: PointLike,
    eps: float,
    label: int | None = None,
    box: BoxLike = None,
    timeout_s: float = 120.0,
    backend: str = "auto",
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
) -> Verdict:
    """Shorthand for ``check(module, Robust(x, eps, label, box), backend, ...)``."""
    return check(
        module, Robust(x, eps, label, box), backend, timeout_s, progress, input_shape, share=share, memo=memo
    )


def check_vnnlib(
    module: nn.Module,
    prop: VnnlibProperty,
    delta: float | None = None,
    timeout_s: float = 120.0,
    backend: str = "auto",
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
    share: PieceShare | None = None,
    memo: PieceMemo | None = None,
) -> Verdict:
    """Shorthand for ``check(module, VnnlibQuestion(prop, delta), backend, ...)``."""
    question = VnnlibQuestion(prop, delta)
    return check(module, question, backend, timeout_s, progress, input_shape, share=share, memo=memo)


@dataclass(frozen=True)
class DeltaFlip:
    """Result of `find_delta_flip`: the verdict holds at ``delta_holds`` and is violated at
    ``delta_violated`` (the flip lies between); ``found`` is False when the end points did not
    bracket a flip or a query came back unknown (``reason`` says which)."""

    found: bool
    delta_holds: float | None
    delta_violated: float | None
    steps: int
    verdicts: tuple[Verdict, ...]
    reason: str


def find_delta_flip(
    module: nn.Module,
    x: PointLike,
    eps: float,
    lo: float,
    hi: float,
    label: int | None = None,
    box: BoxLike = (0.0, 1.0),
    tol: float = 1e-3,
    max_steps: int = 40,
    timeout_s: float = 120.0,
    backend: str = "auto",
    progress: Progress | None = None,
) -> DeltaFlip:
    """Bisect delta in [lo, hi] for the point where saliency robustness flips from holds to violated.

    The verdict is monotone in delta (a larger delta admits more inputs), so bisection is exact up
    to ``tol`` as long as every query is decided.
    """
    lo, hi = check_nonneg(lo, "lo"), check_nonneg(hi, "hi")
    if lo > hi:
        raise CamlangError(f"`lo` ({lo:g}) must not exceed `hi` ({hi:g})", code="E702")
    verdicts: list[Verdict] = []

    def ask(d: float) -> Verdict:
        v = check_saliency_robust(module, x, eps, d, label, box, timeout_s, backend)
        verdicts.append(v)
        if progress is not None:
            progress(len(verdicts), max_steps, f"delta={d:g}: {v.status}")
        return v

    v_lo, v_hi = ask(lo), ask(hi)
    if v_lo.status != "holds" or v_hi.status != "violated":
        why = f"no flip bracketed: delta={lo:g} -> {v_lo.status}, delta={hi:g} -> {v_hi.status}"
        return DeltaFlip(False, None, None, len(verdicts), tuple(verdicts), why)
    a, b = lo, hi
    while b - a > tol and len(verdicts) < max_steps:
        mid = (a + b) / 2
        v = ask(mid)
        if v.status == "holds":
            a = mid
        elif v.status == "violated":
            b = mid
        else:
            return DeltaFlip(
                False, a, b, len(verdicts), tuple(verdicts), f"delta={mid:g} came back unknown: {v.reason}"
            )
    return DeltaFlip(True, a, b, len(verdicts), tuple(verdicts), f"verdict flips in ({a:g}, {b:g}]")

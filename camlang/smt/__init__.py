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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from camlang.backends.z3_lower import Z3_OPS
from camlang.errors import CamlangError
from camlang.smt.attack import pgd_attack
from camlang.smt.driver import BACKENDS, Progress, Setup, run_naive, run_query
from camlang.smt.inputs import (
    box_arrays,
    check_label,
    check_nonneg,
    label_disjuncts,
    prepare_point,
    torch_eval,
)
from camlang.smt.network import extract_relu_net
from camlang.smt.pieces import PieceMemo, PieceShare
from camlang.smt.query import GradientConstraint, Query
from camlang.smt.verdict import Verdict
from camlang.smt.vnnlib import VnnlibProperty, load_vnnlib, parse_vnnlib

__all__ = [
    "Verdict",
    "VnnlibProperty",
    "DeltaFlip",
    "Z3_OPS",
    "SaliencyRobust",
    "Robust",
    "VnnlibQuestion",
    "Question",
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


def _backend(name: str) -> str:
    if name not in BACKEND_NAMES:
        raise CamlangError(
            f"unknown SMT back end `{name}`", hint=f"use one of: {', '.join(BACKEND_NAMES)}", code="E703"
        )
    return "milp" if name == "auto" else name


@dataclass(frozen=True)
class SaliencyRobust:
    """Every x' with ``|x'-x|_inf <= eps`` (in ``box``) and ``|VG(x')-VG(x)|_inf <= delta`` keeps the
    prediction ``label`` (default: the class predicted at x). VG is the gradient of the label's
    logit w.r.t. the input (torch's relu'(0) = 0)."""

    x: Any
    eps: float
    delta: float
    label: int | None = None
    box: Any = (0.0, 1.0)


@dataclass(frozen=True)
class Robust:
    """Classic local robustness: every x' with ``|x'-x|_inf <= eps`` (in ``box``) predicts ``label``."""

    x: Any
    eps: float
    label: int | None = None
    box: Any = None


@dataclass(frozen=True)
class VnnlibQuestion:
    """A VNN-LIB property: no input of the box reaches the unsafe output set. With ``delta``, only
    inputs whose gradient of the property's label stays within ``delta`` of its value at the
    property's image (`VnnlibProperty.point`) count."""

    prop: VnnlibProperty
    delta: float | None = None


Question = SaliencyRobust | Robust | VnnlibQuestion


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
    """
    name = _backend(backend)
    setup = _setup(module, question, input_shape)
    if name == "z3-naive":
        return run_naive(setup, timeout_s, progress)
    neurons = sum(W.shape[0] for W in setup.net.Ws[:-1])
    if attack if attack is not None else neurons >= ATTACK_MIN_NEURONS:
        setup = replace(setup, attack=_attack_budget)
    return run_query(setup, name, timeout_s, progress, pattern_walk=pattern_walk, share=share, memo=memo)


def falsify(
    module: nn.Module,
    question: Question,
    steps: int = 200,
    restarts: int = 8,
    timeout_s: float = 60.0,
    seed: int = 0,
    input_shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Search for a counterexample to ``question`` with PGD alone (restricted to the gradient
    constraint for saliency questions): a replayed witness and its replay record, or None.

    Benchmarks and tests run it against every "holds": a witness there is a soundness bug."""
    import time

    setup = _setup(module, question, input_shape)
    return pgd_attack(setup, time.monotonic() + timeout_s, steps=steps, restarts=restarts, seed=seed)


def _setup(module: nn.Module, question: Question, input_shape: Sequence[int] | None) -> Setup:
    if isinstance(question, SaliencyRobust):
        setup = _point_setup(
            module,
            question.x,
            question.eps,
            question.delta,
            question.label,
            question.box,
            input_shape,
            "saliency_robust",
        )
    elif isinstance(question, Robust):
        setup = _point_setup(
            module, question.x, question.eps, None, question.label, question.box, input_shape, "robust"
        )
    elif isinstance(question, VnnlibQuestion):
        setup = _vnnlib_setup(module, question.prop, question.delta, input_shape)
    else:
        raise CamlangError(f"cannot check {question!r}", hint="pass SaliencyRobust, Robust or VnnlibQuestion")
    return setup


def _attack_budget(setup: Setup, deadline: float) -> Any:
    """PGD with a small budget: 40 steps, 8 restarts, at most 1/10 of the time left."""
    import time

    return pgd_attack(setup, min(deadline, time.monotonic() + (deadline - time.monotonic()) / 10))


def _fmt(v: float) -> str:
    return f"{v:g}"


def _point_setup(
    module: nn.Module,
    x: Any,
    eps: float,
    delta: float | None,
    label: int | None,
    box: Any,
    input_shape: Sequence[int] | None,
    kind: str,
) -> Setup:
    eps = check_nonneg(eps, "eps")
    if delta is not None:
        delta = check_nonneg(delta, "delta")
    module64, flat, shape, layers, net = prepare_point(module, x, input_shape)
    logits, _ = torch_eval(module64, flat, shape, None)
    lab = check_label(label, logits)
    b_lo, b_hi = box_arrays(box, flat.size)
    lo, hi = np.maximum(flat - eps, b_lo), np.minimum(flat + eps, b_hi)
    if np.any(lo > hi):
        raise CamlangError("`at` lies outside `box` by more than eps, so the region is empty", code="E702")
    grad = None
    name = f"{kind}(eps={_fmt(eps)}, label={lab})"
    if delta is not None:
        _, g0 = torch_eval(module64, flat, shape, lab)
        assert g0 is not None
        c = np.zeros(net.n_outputs)
        c[lab] = 1.0
        grad = GradientConstraint(c, g0, delta)
        name = f"{kind}(eps={_fmt(eps)}, delta={_fmt(delta)}, label={lab})"
    query = Query(lo, hi, label_disjuncts(lab, net.n_outputs), grad)
    return Setup(name, module64, shape, layers, net, query, lab, flat)


def check_saliency_robust(
    module: nn.Module,
    x: Any,
    eps: float,
    delta: float,
    label: int | None = None,
    box: Any = (0.0, 1.0),
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
    x: Any,
    eps: float,
    label: int | None = None,
    box: Any = None,
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


def _vnnlib_setup(
    module: nn.Module, prop: VnnlibProperty, delta: float | None, input_shape: Sequence[int] | None
) -> Setup:
    n = prop.lo.size
    module64, point, shape, layers, net = prepare_point(module, prop.point(), input_shape)
    if net.n_outputs != prop.n_outputs:
        raise CamlangError(
            f"{prop.path} talks about {prop.n_outputs} outputs but the network has {net.n_outputs}",
            code="E711",
        )
    grad = None
    name = f"vnnlib({prop.path})"
    if delta is not None:
        delta = check_nonneg(delta, "delta")
        logits, _ = torch_eval(module64, point, shape, None)
        lab = prop.label if prop.label is not None else int(np.argmax(logits))
        _, g0 = torch_eval(module64, point, shape, lab)
        assert g0 is not None
        c = np.zeros(net.n_outputs)
        c[lab] = 1.0
        grad = GradientConstraint(c, g0, delta)
        name = f"vnnlib({prop.path}, delta={_fmt(delta)}, saliency of class {lab} at the property's image)"
    assert point.size == n
    query = Query(prop.lo.copy(), prop.hi.copy(), prop.disjuncts, grad)
    return Setup(name, module64, shape, layers, net, query, None, point)


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
    x: Any,
    eps: float,
    lo: float,
    hi: float,
    label: int | None = None,
    box: Any = (0.0, 1.0),
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

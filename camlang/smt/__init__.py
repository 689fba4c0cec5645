"""SMT / verification engine for ReLU networks: properties, bounds, MILP and z3 back ends.

Public entry points (all return a `Verdict`, never raise for a hard query: timeouts and Ctrl-C
give "unknown"; bad input raises `CamlangError`):

* `check_saliency_robust` — for every x' in the eps-ball around x (clipped to ``box``) whose
  vanilla gradient stays within ``delta`` of VG(x), the network still predicts ``label``;
* `check_robust` — classic local robustness;
* `load_vnnlib` / `check_vnnlib` — VNN-COMP properties (optionally with a saliency constraint);
* `naive_z3_saliency_robust` / `naive_z3_robust` — the naive z3 peer used by benchmarks;
* `find_delta_flip` — bisection for the delta where the saliency verdict flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from camlang.backends.z3_lower import Z3_OPS
from camlang.errors import CamlangError
from camlang.smt.check import Progress, Setup, run_naive, run_query
from camlang.smt.inputs import (
    box_arrays,
    check_label,
    check_nonneg,
    label_disjuncts,
    prepare_point,
    torch_eval,
)
from camlang.smt.network import extract_relu_net
from camlang.smt.query import GradientConstraint, Query
from camlang.smt.verdict import Verdict
from camlang.smt.vnnlib import VnnlibProperty, load_vnnlib, parse_vnnlib

__all__ = [
    "Verdict",
    "VnnlibProperty",
    "DeltaFlip",
    "Z3_OPS",
    "check_saliency_robust",
    "check_robust",
    "check_vnnlib",
    "load_vnnlib",
    "parse_vnnlib",
    "naive_z3_saliency_robust",
    "naive_z3_robust",
    "naive_z3_vnnlib",
    "find_delta_flip",
    "extract_relu_net",
]

BACKENDS = ("auto", "milp", "z3")


def _backend(name: str) -> str:
    if name not in BACKENDS:
        raise CamlangError(f"unknown SMT back end `{name}`", hint="use one of: auto, milp, z3", code="E703")
    return "milp" if name == "auto" else name


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
) -> Verdict:
    """Does every x' with ``|x'-x|_inf <= eps`` (in ``box``) and ``|VG(x')-VG(x)|_inf <= delta``
    keep the prediction ``label`` (default: the class predicted at x)?

    VG is the gradient of the label's logit w.r.t. the input (torch's relu'(0) = 0). ``backend``:
    "milp" (HiGHS), "z3" (reference) or "auto" (the fast one).
    """
    setup = _point_setup(module, x, eps, delta, label, box, input_shape, "saliency_robust")
    return run_query(setup, _backend(backend), timeout_s, progress)


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
) -> Verdict:
    """Classic local robustness: every x' with ``|x'-x|_inf <= eps`` (in ``box``) predicts ``label``."""
    setup = _point_setup(module, x, eps, None, label, box, input_shape, "robust")
    return run_query(setup, _backend(backend), timeout_s, progress)


def _vnnlib_setup(
    module: nn.Module, prop: VnnlibProperty, delta: float | None, input_shape: Sequence[int] | None
) -> Setup:
    n = prop.lo.size
    module64, centre, shape, layers, net = prepare_point(module, prop.centre, input_shape)
    if net.n_outputs != prop.n_outputs:
        raise CamlangError(
            f"{prop.path} talks about {prop.n_outputs} outputs but the network has {net.n_outputs}",
            code="E711",
        )
    grad = None
    name = f"vnnlib({prop.path})"
    if delta is not None:
        delta = check_nonneg(delta, "delta")
        logits, _ = torch_eval(module64, centre, shape, None)
        lab = prop.label if prop.label is not None else int(np.argmax(logits))
        _, g0 = torch_eval(module64, centre, shape, lab)
        assert g0 is not None
        c = np.zeros(net.n_outputs)
        c[lab] = 1.0
        grad = GradientConstraint(c, g0, delta)
        name = f"vnnlib({prop.path}, delta={_fmt(delta)}, saliency of class {lab} at the box centre)"
    assert centre.size == n
    query = Query(prop.lo.copy(), prop.hi.copy(), prop.disjuncts, grad)
    return Setup(name, module64, shape, layers, net, query, None, centre)


def check_vnnlib(
    module: nn.Module,
    prop: VnnlibProperty,
    delta: float | None = None,
    timeout_s: float = 120.0,
    backend: str = "auto",
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
) -> Verdict:
    """Check a VNN-LIB property: no input in the box reaches the unsafe output set.

    With ``delta`` it becomes saliency-robust-style: only inputs whose gradient of the property's
    label (or the class predicted at the box centre) stays within ``delta`` of its value at the
    box centre count.
    """
    setup = _vnnlib_setup(module, prop, delta, input_shape)
    return run_query(setup, _backend(backend), timeout_s, progress)


def naive_z3_saliency_robust(
    module: nn.Module,
    x: Any,
    eps: float,
    delta: float,
    label: int | None = None,
    box: Any = (0.0, 1.0),
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
) -> Verdict:
    """`check_saliency_robust` through the naive z3 encoding (no bounds), the benchmark peer."""
    setup = _point_setup(module, x, eps, delta, label, box, input_shape, "saliency_robust")
    return run_naive(setup, timeout_s, progress)


def naive_z3_robust(
    module: nn.Module,
    x: Any,
    eps: float,
    label: int | None = None,
    box: Any = None,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
) -> Verdict:
    """`check_robust` through the naive z3 encoding (no bounds), the benchmark peer."""
    setup = _point_setup(module, x, eps, None, label, box, input_shape, "robust")
    return run_naive(setup, timeout_s, progress)


def naive_z3_vnnlib(
    module: nn.Module,
    prop: VnnlibProperty,
    delta: float | None = None,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
    input_shape: Sequence[int] | None = None,
) -> Verdict:
    """`check_vnnlib` through the naive z3 encoding (no bounds), the benchmark peer."""
    return run_naive(_vnnlib_setup(module, prop, delta, input_shape), timeout_s, progress)


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

"""The questions `camlang.smt.check` answers, and the `Setup` each one becomes.

A question is a typed record: `SaliencyRobust`, `Robust` or `VnnlibQuestion`. `build_setup`
validates it against the network (point, box, label, eps, delta) and turns it into a `Query` over
the extracted ReLU network, with the float64 module that replays every candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from camlang.errors import CamlangError
from camlang.smt.inputs import (
    BoxLike,
    PointLike,
    box_arrays,
    check_label,
    check_nonneg,
    label_disjuncts,
    prepare_point,
    torch_eval,
)
from camlang.smt.query import GradientConstraint, Query
from camlang.smt.setup import Setup
from camlang.smt.vnnlib import VnnlibProperty

__all__ = ["SaliencyRobust", "Robust", "VnnlibQuestion", "Question", "build_setup"]


@dataclass(frozen=True)
class SaliencyRobust:
    """Every x' with ``|x'-x|_inf <= eps`` (in ``box``) and ``|VG(x')-VG(x)|_inf <= delta`` keeps the
    prediction ``label`` (default: the class predicted at x). VG is the gradient of the label's
    logit w.r.t. the input (torch's relu'(0) = 0)."""

    x: PointLike
    eps: float
    delta: float
    label: int | None = None
    box: BoxLike = (0.0, 1.0)


@dataclass(frozen=True)
class Robust:
    """Classic local robustness: every x' with ``|x'-x|_inf <= eps`` (in ``box``) predicts ``label``."""

    x: PointLike
    eps: float
    label: int | None = None
    box: BoxLike = None


@dataclass(frozen=True)
class VnnlibQuestion:
    """A VNN-LIB property: no input of the box reaches the unsafe output set. With ``delta``, only
    inputs whose gradient of the property's label stays within ``delta`` of its value at the
    property's image (`VnnlibProperty.point`) count."""

    prop: VnnlibProperty
    delta: float | None = None


Question = SaliencyRobust | Robust | VnnlibQuestion


def build_setup(module: nn.Module, question: Question, input_shape: Sequence[int] | None) -> Setup:
    """Validate ``question`` against ``module`` and set up its query (raises `CamlangError`)."""
    match question:
        case SaliencyRobust():
            return _point_setup(module, question, question.delta, input_shape, "saliency_robust")
        case Robust():
            return _point_setup(module, question, None, input_shape, "robust")
        case VnnlibQuestion():
            return _vnnlib_setup(module, question.prop, question.delta, input_shape)
        case _:
            raise CamlangError(
                f"cannot check {question!r}", hint="pass SaliencyRobust, Robust or VnnlibQuestion"
            )


def _fmt(v: float) -> str:
    return f"{v:g}"


def _label_gradient(
    module64: nn.Module, point: np.ndarray, shape: tuple[int, ...], n_outputs: int, label: int, delta: float
) -> GradientConstraint:
    """``|VG_label(x') - VG_label(point)|_inf <= delta``."""
    _, g0 = torch_eval(module64, point, shape, label)
    assert g0 is not None
    c = np.zeros(n_outputs)
    c[label] = 1.0
    return GradientConstraint(c, g0, delta)


def _point_setup(
    module: nn.Module,
    question: SaliencyRobust | Robust,
    delta: float | None,
    input_shape: Sequence[int] | None,
    kind: str,
) -> Setup:
    eps = check_nonneg(question.eps, "eps")
    if delta is not None:
        delta = check_nonneg(delta, "delta")
    module64, flat, shape, layers, net = prepare_point(module, question.x, input_shape)
    logits, _ = torch_eval(module64, flat, shape, None)
    lab = check_label(question.label, logits)
    b_lo, b_hi = box_arrays(question.box, flat.size)
    lo, hi = np.maximum(flat - eps, b_lo), np.minimum(flat + eps, b_hi)
    if np.any(lo > hi):
        raise CamlangError("`at` lies outside `box` by more than eps, so the region is empty", code="E702")
    grad = None
    name = f"{kind}(eps={_fmt(eps)}, label={lab})"
    if delta is not None:
        grad = _label_gradient(module64, flat, shape, net.n_outputs, lab, delta)
        name = f"{kind}(eps={_fmt(eps)}, delta={_fmt(delta)}, label={lab})"
    query = Query(lo, hi, label_disjuncts(lab, net.n_outputs), grad)
    return Setup(name, module64, shape, layers, net, query, lab, flat)


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
        grad = _label_gradient(module64, point, shape, net.n_outputs, lab, delta)
        name = f"vnnlib({prop.path}, delta={_fmt(delta)}, saliency of class {lab} at the property's image)"
    assert point.size == n
    query = Query(prop.lo.copy(), prop.hi.copy(), prop.disjuncts, grad)
    return Setup(name, module64, shape, layers, net, query, None, point)

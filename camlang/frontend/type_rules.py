"""Type rules of the op table's rows: `rule(operand types, attrs) -> result type`.

A rule raises `AxisError` (with a hint where one helps) when the operands do not fit; the
checker turns that into a diagnostic at the call.
"""

from __future__ import annotations

from typing import Any

from camlang.frontend.op_spec import TypeRule
from camlang.frontend.value_types import (
    IMAGE,
    INPUT_AXES,
    INPUT_MAP,
    LAYER_AXES,
    LAYER_MAP,
    LAYER_TENSOR,
    SCALAR,
    AxisError,
    Ty,
    union,
)


def const(t: Ty) -> TypeRule:
    return lambda args, attrs: t


def layer_terminal(t: Ty) -> TypeRule:
    """A layer terminal's type: `t` on the layer its `layer` attribute names ("" = the target)."""
    return lambda args, attrs: Ty(t.axes, t.kind, str(attrs.get("layer", "")))


def elementwise(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    return union(*args)


def drop(axes: tuple[str, ...], what: str, hint_after: str) -> TypeRule:
    layer = {a for a in axes if a in LAYER_AXES}
    inputs = {a for a in axes if a in INPUT_AXES}

    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        (t,) = args
        if t.kind != "tensor":
            raise AxisError(f"expects a tensor with {what}, got {t}")
        if layer <= t.axes:
            return t.with_axes(t.axes - layer)
        if inputs and inputs <= t.axes:
            return t.with_axes(t.axes - inputs)
        raise AxisError(f"expects a tensor with {what}, got {t}", hint_after)

    return rule


def all_reduce(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.kind != "tensor":
        raise AxisError(f"expects a tensor, got {t}")
    return SCALAR


def pc1(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.axes == LAYER_TENSOR.axes:
        return t.with_axes(LAYER_MAP.axes)
    if t.axes == IMAGE.axes:
        return INPUT_MAP
    raise AxisError(
        f"pc1 expects Tensor[C, H, W], got {t}", "pc1 projects channels onto their first component"
    )


def softmax_c(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if not t.has_channels:
        raise AxisError(f"softmax_c expects a tensor with channels, got {t}")
    return t


def upsample(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.axes == LAYER_MAP.axes:
        return INPUT_MAP
    if t.axes == INPUT_MAP.axes:
        return t
    raise AxisError(f"upsample expects Map[H, W], got {t}", "reduce the channels first, e.g. sum_c(...)")


def needs(*expected: Ty, result: Ty) -> TypeRule:
    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        for got, want in zip(args, expected):
            if got != want:
                raise AxisError(f"expects {want}, got {got}")
        return result

    return rule


def same_as_first(allowed: tuple[Ty, ...]) -> TypeRule:
    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        # a layer map of any layer is allowed where the target layer's is
        if not any(args[0].axes == a.axes and args[0].kind == a.kind for a in allowed):
            raise AxisError(f"expects {' or '.join(map(str, allowed))}, got {args[0]}")
        for extra in args[1:]:
            if extra not in (INPUT_MAP, SCALAR):
                raise AxisError(f"expects Map[Hin, Win], got {extra}")
        return args[0]

    return rule


def map_to_scalar(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    for t in args:
        if t.kind != "tensor" or not t.has_grid or t.has_channels:
            raise AxisError(f"expects a map, got {t}")
    return SCALAR

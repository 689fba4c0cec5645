"""The op table: one row per terminal and operator of the expression language.

Each row gives the op's name, parameters, type rule, torch lowering, z3 lowering, reference
(numpy) implementation, the contexts it may appear in, and a docstring. The checker, the IR
verifier, every backend, the REPL completer and the docs all read this one table.

Runtime layout (torch and reference): every value is a 4-d array `[N, c, h, w]` with size-1
dimensions for the axes it does not carry, so element-wise ops broadcast and reductions keep
dims. A point is `[N, 2, 1, 1]` (row, column). z3 lowering works on object arrays `[c, h, w]`
of z3 terms for one image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from camlang.axes import (
    CHANNEL_VECTOR,
    IMAGE,
    INPUT_AXES,
    INPUT_MAP,
    LAYER_AXES,
    LAYER_MAP,
    LAYER_TENSOR,
    POINT,
    SCALAR,
    AxisError,
    Ty,
    union,
)
from camlang.signatures import REQUIRED

Context = Literal["cam", "metric"]
ParamKind = Literal["tensor", "number", "int", "string", "value", "cam"]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: a tensor operand or a static attribute (number, string, cam name)."""

    name: str
    kind: ParamKind = "tensor"
    default: Any = REQUIRED


TypeRule = Callable[[tuple[Ty, ...], dict[str, Any]], Ty]
TorchFn = Callable[[Any, tuple[torch.Tensor, ...], dict[str, Any]], torch.Tensor]
RefFn = Callable[[Any, tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]
Z3Fn = Callable[[tuple[np.ndarray, ...], dict[str, Any]], np.ndarray]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One row of the op table."""

    name: str
    params: tuple[Param, ...]
    type_rule: TypeRule
    torch: TorchFn | None
    reference: RefFn | None
    z3: Z3Fn | None
    doc: str
    contexts: frozenset[str] = frozenset({"cam", "metric"})
    category: str = "elementwise"
    symbol: str | None = None
    needs_model: bool = False

    @property
    def tensor_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind == "tensor")

    @property
    def static_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind != "tensor")

    def signature(self) -> str:
        """`name(x, y, sigma=1.0)` for completion menus and docs."""
        if self.category == "terminal":
            return self.name
        parts = []
        for p in self.params:
            parts.append(p.name if p.default is REQUIRED else f"{p.name}={p.default!r}")
        return f"{self.name}({', '.join(parts)})"


# ---- type rules ----------------------------------------------------------------


def _const(t: Ty) -> TypeRule:
    return lambda args, attrs: t


def _elementwise(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    return union(*args)


def _drop(axes: tuple[str, ...], what: str, hint_after: str) -> TypeRule:
    layer = {a for a in axes if a in LAYER_AXES}
    inputs = {a for a in axes if a in INPUT_AXES}

    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        (t,) = args
        if t.kind != "tensor":
            raise AxisError(f"expects a tensor with {what}, got {t}")
        if layer <= t.axes:
            return Ty(t.axes - layer)
        if inputs and inputs <= t.axes:
            return Ty(t.axes - inputs)
        raise AxisError(f"expects a tensor with {what}, got {t}", hint_after)

    return rule


def _all_reduce(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.kind != "tensor":
        raise AxisError(f"expects a tensor, got {t}")
    return SCALAR


def _pc1(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.axes == LAYER_TENSOR.axes:
        return LAYER_MAP
    if t.axes == IMAGE.axes:
        return INPUT_MAP
    raise AxisError(f"pc1 expects Tensor[C, H, W], got {t}", "pc1 projects channels onto their first component")


def _softmax_c(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if not t.has_channels:
        raise AxisError(f"softmax_c expects a tensor with channels, got {t}")
    return t


def _upsample(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    (t,) = args
    if t.axes == LAYER_MAP.axes:
        return INPUT_MAP
    if t.axes == INPUT_MAP.axes:
        return t
    raise AxisError(f"upsample expects Map[H, W], got {t}", "reduce the channels first, e.g. sum_c(...)")


def _needs(*expected: Ty, result: Ty) -> TypeRule:
    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        for got, want in zip(args, expected):
            if got != want:
                raise AxisError(f"expects {want}, got {got}")
        return result

    return rule


def _same_as_first(allowed: tuple[Ty, ...]) -> TypeRule:
    def rule(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
        if args[0] not in allowed:
            raise AxisError(f"expects {' or '.join(map(str, allowed))}, got {args[0]}")
        for extra in args[1:]:
            if extra not in (INPUT_MAP, SCALAR):
                raise AxisError(f"expects Map[Hin, Win], got {extra}")
        return args[0]

    return rule


def _map_to_scalar(args: tuple[Ty, ...], attrs: dict[str, Any]) -> Ty:
    for t in args:
        if t.kind != "tensor" or not t.has_grid or t.has_channels:
            raise AxisError(f"expects a map, got {t}")
    return SCALAR


# ---- torch, reference and z3 helpers --------------------------------------------


def _t_unary(f: Callable[[torch.Tensor], torch.Tensor]) -> TorchFn:
    return lambda ctx, a, k: f(a[0])


def _t_binary(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> TorchFn:
    return lambda ctx, a, k: f(a[0], a[1])


def _r_unary(f: Callable[[np.ndarray], np.ndarray]) -> RefFn:
    def run(ctx: Any, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return f(a[0])

    return run


def _r_binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> RefFn:
    def run(ctx: Any, a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return f(a[0], a[1])

    return run


def _z_map(f: Callable[..., Any]) -> Z3Fn:
    """Lift a scalar z3 function element-wise over broadcast object arrays."""

    def run(a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        arrays = np.broadcast_arrays(*a)
        out = np.empty(arrays[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = f(*(arr[idx] for arr in arrays))
        return out

    return run


def _z_reduce(axes: tuple[int, ...], f: Callable[[list[Any]], Any]) -> Z3Fn:
    def run(a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
        x = a[0]
        moved = np.moveaxis(x, axes, tuple(range(len(axes))))
        flat = moved.reshape((-1,) + moved.shape[len(axes) :])
        out = np.empty((1,) * len(axes) + flat.shape[1:], dtype=object)
        for idx in np.ndindex(flat.shape[1:]):
            out[(0,) * len(axes) + idx] = f([flat[(i,) + idx] for i in range(flat.shape[0])])
        return np.moveaxis(out, tuple(range(len(axes))), axes)

    return run


def _z3() -> Any:
    import z3

    return z3


def _zmax(items: list[Any]) -> Any:
    z3 = _z3()
    best = items[0]
    for e in items[1:]:
        best = z3.If(e > best, e, best)
    return best


def _zmin(items: list[Any]) -> Any:
    z3 = _z3()
    best = items[0]
    for e in items[1:]:
        best = z3.If(e < best, e, best)
    return best


def _zsum(items: list[Any]) -> Any:
    total = items[0]
    for e in items[1:]:
        total = total + e
    return total


def _z_uninterpreted(name: str) -> Z3Fn:
    """Functions z3 cannot reason about precisely become uninterpreted (sound for equality)."""

    def scalar(x: Any) -> Any:
        z3 = _z3()
        return z3.Function(name, z3.RealSort(), z3.RealSort())(x)

    return _z_map(scalar)


def _zbool(f: Callable[[Any, Any], Any]) -> Z3Fn:
    return _z_map(lambda a, b: _z3().If(f(a, b), _z3().RealVal(1), _z3().RealVal(0)))


def _zpow(a: tuple[np.ndarray, ...], k: dict[str, Any]) -> np.ndarray:
    z3 = _z3()

    def scalar(x: Any, p: Any) -> Any:
        if z3.is_rational_value(p) and p.denominator_as_long() == 1 and 0 <= p.numerator_as_long() <= 8:
            n = p.numerator_as_long()
            out = z3.RealVal(1)
            for _ in range(n):
                out = out * x
            return z3.simplify(out) if n == 0 else out
        return z3.Function("pow", z3.RealSort(), z3.RealSort(), z3.RealSort())(x, p)

    return _z_map(scalar)(a, k)


def _softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def pc1_torch(x: torch.Tensor) -> torch.Tensor:
    """First principal component projection of `[N, C, H, W]` over channels -> `[N, 1, H, W]`.

    Sign convention (SVD is defined up to sign): the component's channel loading is oriented
    so that its largest-magnitude entry is positive. pytorch-grad-cam leaves the sign to
    numpy's SVD; parity tests compare against both orientations.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).transpose(1, 2)
    centered = flat - flat.mean(dim=1, keepdim=True)
    if centered.device.type == "cpu" and not centered.requires_grad:
        # torch's batched CPU SVD can be ~50x slower than LAPACK through numpy when threads
        # contend; the result is the same decomposition.
        vh = torch.from_numpy(np.linalg.svd(centered.numpy(), full_matrices=False)[2])
    else:
        _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    v = vh[:, 0, :]
    pivot = v.gather(1, v.abs().argmax(dim=1, keepdim=True))
    v = v * torch.where(pivot < 0, -1.0, 1.0).to(v.dtype)
    proj = (centered @ v.unsqueeze(-1)).squeeze(-1)
    return proj.reshape(n, 1, h, w)


def pc1_numpy(x: np.ndarray) -> np.ndarray:
    """Reference `pc1` in numpy, with the same sign convention as `pc1_torch`."""
    n, c, h, w = x.shape
    out = np.zeros((n, 1, h, w))
    for i in range(n):
        flat = x[i].reshape(c, h * w).T
        centered = flat - flat.mean(axis=0, keepdims=True)
        _, _, vh = np.linalg.svd(centered, full_matrices=False)
        v = vh[0]
        if v[np.argmax(np.abs(v))] < 0:
            v = -v
        out[i, 0] = (centered @ v).reshape(h, w)
    return out


def _minmax_torch(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    shifted = x - lo
    return shifted / (1e-7 + shifted.amax(dim=(2, 3), keepdim=True))


def _minmax_np(x: np.ndarray) -> np.ndarray:
    shifted = x - x.min(axis=(2, 3), keepdims=True)
    return shifted / (1e-7 + shifted.max(axis=(2, 3), keepdims=True))


def _terminal(name: str, t: Ty, doc: str, contexts: set[str]) -> OpSpec:
    return OpSpec(
        name,
        (),
        _const(t),
        lambda ctx, a, k: ctx.terminal(name),
        lambda ctx, a, k: ctx.terminal(name),
        None,
        doc,
        frozenset(contexts),
        "terminal",
    )


def _metric_op(name: str, params: tuple[Param, ...], rule: TypeRule, doc: str, model: bool = True) -> OpSpec:
    """A metric-language op whose torch lowering is a method of the metric runtime context."""

    def lower(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
        return getattr(ctx, "op_" + name)(*a, **k)

    return OpSpec(name, params, rule, lower, None, None, doc, frozenset({"metric"}), "metric", None, model)


def _method_op(name: str, params: tuple[Param, ...], doc: str) -> OpSpec:
    """A whole saliency method (it runs the model itself): an input-resolution map in a cam."""

    def lower(ctx: Any, a: tuple[torch.Tensor, ...], k: dict[str, Any]) -> torch.Tensor:
        return getattr(ctx, "op_" + name)(**k)

    return OpSpec(name, params, _const(INPUT_MAP), lower, None, None, doc, frozenset({"cam"}), "method", None, True)


T = Param("x")
TWO = (Param("x"), Param("y"))
_BOTH = {"cam", "metric"}

_ROWS: list[OpSpec] = [
    # ---- terminals
    _terminal("A", LAYER_TENSOR, "Activations of the target layer, [C, H, W].", {"cam"}),
    _terminal("G", LAYER_TENSOR, "Gradient of the target score w.r.t. A, [C, H, W].", {"cam"}),
    _terminal("S", SCALAR, "The target class logit.", _BOTH),
    _terminal("P", SCALAR, "The target class softmax probability.", _BOTH),
    _terminal("S_masked", CHANNEL_VECTOR, "[C] target logits on X * upsample(minmax(A_c)) (Score-CAM).", {"cam"}),
    _terminal("S_ablated", CHANNEL_VECTOR, "[C] target logits with channel c of A zeroed (Ablation-CAM).", {"cam"}),
    _terminal("X", IMAGE, "The input image as the model consumes it, [Cin, Hin, Win].", _BOTH),
    _terminal("GX", IMAGE, "Gradient of the target score w.r.t. the input, [Cin, Hin, Win].", {"cam"}),
    _terminal("L", INPUT_MAP, "The CAM upsampled to the input and scaled to [0, 1].", {"metric"}),
    _terminal("MASK", INPUT_MAP, "The ground-truth mask (1 inside the object).", {"metric"}),
    OpSpec(
        "const", (Param("value", "number"),), _const(SCALAR),
        lambda ctx, a, k: torch.tensor(float(k["value"]), dtype=ctx.dtype, device=ctx.device).reshape(1, 1, 1, 1),
        lambda ctx, a, k: np.full((1, 1, 1, 1), float(k["value"])),
        lambda a, k: np.array([[[_z3().RealVal(repr(float(k["value"])))]]], dtype=object),
        "A number.", frozenset(_BOTH), "constant",
    ),  # fmt: skip
    # ---- element-wise arithmetic
    OpSpec("add", TWO, _elementwise, _t_binary(torch.add), _r_binary(np.add), _z_map(lambda a, b: a + b),
           "x + y", symbol="+"),
    OpSpec("sub", TWO, _elementwise, _t_binary(torch.sub), _r_binary(np.subtract), _z_map(lambda a, b: a - b),
           "x - y", symbol="-"),
    OpSpec("mul", TWO, _elementwise, _t_binary(torch.mul), _r_binary(np.multiply), _z_map(lambda a, b: a * b),
           "x * y", symbol="*"),
    OpSpec("div", TWO, _elementwise, _t_binary(torch.div), _r_binary(np.divide), _z_map(lambda a, b: a / b),
           "x / y (IEEE semantics: x/0 is inf or nan)", symbol="/"),
    OpSpec("neg", (T,), _elementwise, _t_unary(torch.neg), _r_unary(np.negative), _z_map(lambda a: -a), "-x"),
    OpSpec("eq", TWO, _elementwise, _t_binary(lambda a, b: (a == b).to(a.dtype)),
           _r_binary(lambda a, b: (a == b).astype(float)), _zbool(lambda a, b: a == b), "1 where x == y", symbol="=="),
    OpSpec("ne", TWO, _elementwise, _t_binary(lambda a, b: (a != b).to(a.dtype)),
           _r_binary(lambda a, b: (a != b).astype(float)), _zbool(lambda a, b: a != b), "1 where x != y", symbol="!="),
    OpSpec("lt", TWO, _elementwise, _t_binary(lambda a, b: (a < b).to(a.dtype)),
           _r_binary(lambda a, b: (a < b).astype(float)), _zbool(lambda a, b: a < b), "1 where x < y", symbol="<"),
    OpSpec("le", TWO, _elementwise, _t_binary(lambda a, b: (a <= b).to(a.dtype)),
           _r_binary(lambda a, b: (a <= b).astype(float)), _zbool(lambda a, b: a <= b), "1 where x <= y", symbol="<="),
    OpSpec("gt", TWO, _elementwise, _t_binary(lambda a, b: (a > b).to(a.dtype)),
           _r_binary(lambda a, b: (a > b).astype(float)), _zbool(lambda a, b: a > b), "1 where x > y", symbol=">"),
    OpSpec("ge", TWO, _elementwise, _t_binary(lambda a, b: (a >= b).to(a.dtype)),
           _r_binary(lambda a, b: (a >= b).astype(float)), _zbool(lambda a, b: a >= b), "1 where x >= y", symbol=">="),
    OpSpec("relu", (T,), _elementwise, _t_unary(torch.relu), _r_unary(lambda x: np.maximum(x, 0.0)),
           _z_map(lambda x: _z3().If(x > 0, x, 0)), "max(x, 0)"),
    OpSpec("abs", (T,), _elementwise, _t_unary(torch.abs), _r_unary(np.abs),
           _z_map(lambda x: _z3().If(x >= 0, x, -x)), "|x|"),
    OpSpec("sign", (T,), _elementwise, _t_unary(torch.sign), _r_unary(np.sign),
           _z_map(lambda x: _z3().If(x > 0, _z3().RealVal(1), _z3().If(x < 0, _z3().RealVal(-1), _z3().RealVal(0)))),
           "-1, 0 or 1"),
    OpSpec("exp", (T,), _elementwise, _t_unary(torch.exp), _r_unary(np.exp), _z_uninterpreted("exp"), "e ** x"),
    OpSpec("log", (T,), _elementwise, _t_unary(torch.log), _r_unary(np.log), _z_uninterpreted("log"),
           "natural logarithm"),
    OpSpec("sqrt", (T,), _elementwise, _t_unary(torch.sqrt), _r_unary(np.sqrt), _z_uninterpreted("sqrt"),
           "square root"),
    OpSpec("pow", (Param("x"), Param("p")), _elementwise, _t_binary(torch.pow), _r_binary(np.power), _zpow,
           "x ** p"),
    OpSpec("min", TWO, _elementwise, _t_binary(torch.minimum), _r_binary(np.minimum),
           _z_map(lambda a, b: _z3().If(a <= b, a, b)), "element-wise minimum"),
    OpSpec("max", TWO, _elementwise, _t_binary(torch.maximum), _r_binary(np.maximum),
           _z_map(lambda a, b: _z3().If(a >= b, a, b)), "element-wise maximum"),
    OpSpec("where", (Param("cond"), Param("x"), Param("y")), _elementwise,
           lambda ctx, a, k: torch.where(a[0] != 0, a[1], a[2]),
           lambda ctx, a, k: np.where(a[0] != 0, a[1], a[2]),
           _z_map(lambda c, x, y: _z3().If(c != 0, x, y)), "x where cond is non-zero, else y"),
    # ---- reductions
    OpSpec("sum_c", (T,), _drop(("C", "Cin"), "channels", "the channel axis is already gone"),
           lambda ctx, a, k: a[0].sum(1, keepdim=True), lambda ctx, a, k: a[0].sum(1, keepdims=True),
           _z_reduce((0,), _zsum), "sum over channels", category="reduction"),
    OpSpec("mean_c", (T,), _drop(("C", "Cin"), "channels", "the channel axis is already gone"),
           lambda ctx, a, k: a[0].mean(1, keepdim=True), lambda ctx, a, k: a[0].mean(1, keepdims=True),
           _z_reduce((0,), lambda xs: _zsum(xs) / len(xs)), "mean over channels", category="reduction"),
    OpSpec("max_c", (T,), _drop(("C", "Cin"), "channels", "the channel axis is already gone"),
           lambda ctx, a, k: a[0].amax(1, keepdim=True), lambda ctx, a, k: a[0].max(1, keepdims=True),
           _z_reduce((0,), _zmax), "maximum over channels", category="reduction"),
    OpSpec("sum_hw", (T,), _drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone"),
           lambda ctx, a, k: a[0].sum((2, 3), keepdim=True), lambda ctx, a, k: a[0].sum((2, 3), keepdims=True),
           _z_reduce((1, 2), _zsum), "sum over the grid", category="reduction"),
    OpSpec("mean_hw", (T,), _drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone"),
           lambda ctx, a, k: a[0].mean((2, 3), keepdim=True), lambda ctx, a, k: a[0].mean((2, 3), keepdims=True),
           _z_reduce((1, 2), lambda xs: _zsum(xs) / len(xs)), "mean over the grid", category="reduction"),
    OpSpec("max_hw", (T,), _drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone"),
           lambda ctx, a, k: a[0].amax((2, 3), keepdim=True), lambda ctx, a, k: a[0].max((2, 3), keepdims=True),
           _z_reduce((1, 2), _zmax), "maximum over the grid", category="reduction"),
    OpSpec("min_hw", (T,), _drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone"),
           lambda ctx, a, k: a[0].amin((2, 3), keepdim=True), lambda ctx, a, k: a[0].min((2, 3), keepdims=True),
           _z_reduce((1, 2), _zmin), "minimum over the grid", category="reduction"),
    OpSpec("sum", (T,), _all_reduce, lambda ctx, a, k: a[0].sum((1, 2, 3), keepdim=True),
           lambda ctx, a, k: a[0].sum((1, 2, 3), keepdims=True), _z_reduce((0, 1, 2), _zsum),
           "sum over every axis", category="reduction"),
    OpSpec("mean", (T,), _all_reduce, lambda ctx, a, k: a[0].mean((1, 2, 3), keepdim=True),
           lambda ctx, a, k: a[0].mean((1, 2, 3), keepdims=True),
           _z_reduce((0, 1, 2), lambda xs: _zsum(xs) / len(xs)), "mean over every axis", category="reduction"),
    OpSpec("softmax_c", (T,), _softmax_c, lambda ctx, a, k: torch.softmax(a[0], dim=1),
           lambda ctx, a, k: _softmax_np(a[0]), None, "softmax over channels (keeps axes)", category="reduction"),
    OpSpec("pc1", (T,), _pc1, lambda ctx, a, k: pc1_torch(a[0]), lambda ctx, a, k: pc1_numpy(a[0]), None,
           "projection on the first principal component over channels (Eigen-CAM)", category="reduction"),
    OpSpec("minmax", (T,), _same_as_first((LAYER_MAP, INPUT_MAP)), lambda ctx, a, k: _minmax_torch(a[0]),
           lambda ctx, a, k: _minmax_np(a[0]), None, "per-image min-max scaling of a map to [0, 1]",
           category="reduction"),
    OpSpec("upsample", (T,), _upsample, lambda ctx, a, k: ctx.upsample(a[0]), lambda ctx, a, k: ctx.upsample(a[0]),
           None, "bilinear upsampling of a layer map to the input size (align_corners=False)", category="reduction"),
    # ---- whole methods from the seed papers (cam context; they call the model themselves)
    _method_op("smoothgrad", (Param("samples", "int", 25), Param("noise", "number", 0.15)),
               "SmoothGrad (Smilkov et al. 2017): mean of max_c |GX| over noisy copies"),
    _method_op("xmage", (), "guid-Xmage exact pixel attribution (signed, summed over channels)"),
    _method_op("deepcover", (Param("measure", "string", "tarantula"), Param("tests", "int", 500)),
               "DeepCover SFL ranking (Sun et al. 2020): ochiai, tarantula, zoltar or wong-ii"),
    _method_op("extremal", (Param("area", "number", 0.1), Param("steps", "int", 800)),
               "Extremal perturbation (Fong et al. 2019): smooth mask of the given area"),
    # ---- metric language: model re-evaluation, transforms, curves, localisation
    _metric_op("P_at", (Param("image"),), _needs(IMAGE, result=SCALAR),
               "target probability of the model on a transformed input"),
    _metric_op("S_at", (Param("image"),), _needs(IMAGE, result=SCALAR), "target logit on a transformed input"),
    _metric_op("L_at", (Param("image"),), _needs(IMAGE, result=INPUT_MAP), "the CAM re-evaluated on a transformed input"),
    _metric_op("ref", (Param("cam", "cam"),), _const(INPUT_MAP), "the normalized map of another cam", model=True),
    _metric_op("argmax", (Param("map"),), _needs(INPUT_MAP, result=POINT), "position of the map's maximum", False),
    _metric_op("inside", (Param("point"), Param("mask")), _needs(POINT, INPUT_MAP, result=SCALAR),
               "1 if the point lies inside the mask", False),
    _metric_op("blur", (Param("x"), Param("sigma", "number")), _same_as_first((IMAGE, INPUT_MAP)),
               "Gaussian blur with standard deviation sigma (pixels)", False),
    _metric_op("noise", (Param("x"), Param("std", "number"), Param("seed", "int", 0)),
               _same_as_first((IMAGE, INPUT_MAP)), "add Gaussian noise (deterministic in seed)", False),
    _metric_op("hflip", (Param("x"),), _same_as_first((IMAGE, INPUT_MAP)), "horizontal flip", False),
    _metric_op("shift", (Param("x"), Param("dx", "int"), Param("dy", "int")), _same_as_first((IMAGE, INPUT_MAP)),
               "shift by (dx, dy) pixels, filling with zeros", False),
    _metric_op("mask_top", (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
               _same_as_first((IMAGE,)), "replace the top `fraction` most salient pixels by `fill`", False),
    _metric_op("keep_top", (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
               _same_as_first((IMAGE,)), "keep only the top `fraction` most salient pixels", False),
    _metric_op("deletion_auc", (Param("map"), Param("steps", "int", 32), Param("fill", "value", 0.0)),
               _map_to_scalar, "RISE deletion curve AUC (lower is better)"),
    _metric_op("insertion_auc", (Param("map"), Param("steps", "int", 32), Param("fill", "value", "blur")),
               _map_to_scalar, "RISE insertion curve AUC (higher is better)"),
    _metric_op("sufficient_fraction", (Param("map"), Param("fill", "number", 0.0)), _map_to_scalar,
               "smallest fraction of top pixels that keeps the predicted class"),
    _metric_op("road", (Param("map"), Param("mode", "string", "combined")), _map_to_scalar,
               "ROAD score (morf, lerf or combined), as pytorch-grad-cam computes it"),
    _metric_op("pointing", (Param("map"), Param("mask"), Param("tolerance", "number", 15)), _map_to_scalar,
               "pointing game hit within `tolerance` pixels of the mask", False),
    _metric_op("energy_inside", (Param("map"), Param("mask")), _map_to_scalar,
               "fraction of the map's energy inside the mask", False),
    _metric_op("iou", (Param("a"), Param("b")), _map_to_scalar, "intersection over union of two maps", False),
    _metric_op("gini", (Param("map"),), _map_to_scalar, "Gini index of the map's values (sparsity)", False),
    _metric_op("entropy", (Param("map"),), _map_to_scalar, "Shannon entropy (nats) of the normalised map", False),
    _metric_op("max_sensitivity", (Param("std", "number", 0.05), Param("samples", "int", 8)),
               _const(SCALAR), "max over noisy draws of the mean abs change of L (Yeh et al. 2019)"),
    _metric_op("direction_accuracy", (Param("map"), Param("fraction", "number", 0.01), Param("pixels", "int", 64)),
               _map_to_scalar, "share of pixels whose ±1% perturbation moves the score as the map's sign says"),
]  # fmt: skip

OPS: dict[str, OpSpec] = {row.name: row for row in _ROWS}
TERMINALS: dict[str, OpSpec] = {n: r for n, r in OPS.items() if r.category == "terminal"}
FUNCTIONS: dict[str, OpSpec] = {n: r for n, r in OPS.items() if r.category not in ("terminal", "constant")}
BINARY_SYMBOLS: dict[str, str] = {r.symbol: r.name for r in _ROWS if r.symbol is not None}
SYMBOL_OF: dict[str, str] = {v: k for k, v in BINARY_SYMBOLS.items()}
COMMUTATIVE: frozenset[str] = frozenset({"add", "mul", "min", "max", "eq", "ne"})


def op(name: str) -> OpSpec:
    """The table row for `name` (KeyError for internal misuse only)."""
    return OPS[name]

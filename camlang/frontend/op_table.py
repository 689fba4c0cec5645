"""The op table: one row per terminal and operator of the expression language.

Each row gives the op's name, parameters, type rule, docstring and contexts, and every other
fact a consumer needs about it: infix symbol and precedence, the standalone-source template,
sign (for the simplifier), whether a metric reads a map only through its ranking, whether it
is rational (for the sympy proof), which axes it reduces. The checker, the IR, the passes,
every back end, the REPL and the docs read this one table; none keeps a side table.

Kernels (torch, reference numpy, z3, sympy) are *referenced* from here, not defined here: the
kernel registry (`KERNEL_TABLES`) names, per back end, the modules whose tables hold them, and a
row's `torch` / `reference` / `z3` / `sympy` attribute imports its back end's modules the first
time it is read. So the front end (parse, check, fmt) never imports torch, numpy or z3.

Runtime layout (torch and reference): every value is a 4-d array `[N, c, h, w]` with size-1
dimensions for the axes it does not carry, so element-wise ops broadcast and reductions keep
dims. A point is `[N, 2, 1, 1]` (row, column). z3 and sympy lowering work on object arrays
`[c, h, w]` of terms for one image.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from camlang.frontend.signatures import REQUIRED
from camlang.frontend.value_types import (
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

Context = Literal["cam", "metric"]
ParamKind = Literal["tensor", "number", "int", "string", "value", "cam"]
Backend = Literal["torch", "reference", "z3", "sympy"]
#: "nonneg": values are >= 0 whatever the operands; "keeps": >= 0 when every operand is.
Sign = Literal["nonneg", "keeps", ""]

#: The kernel registry: for each back end, the `(module, table)` pairs whose dicts map op names
#: to kernels. Modules load on first use. Adding an op means one row here and one kernel there.
KERNEL_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "torch": (("camlang.backends.torch_kernels", "TORCH"), ("camlang.methods.kernels", "TORCH")),
    "reference": (("camlang.backends.reference_kernels", "REFERENCE"),),
    "z3": (("camlang.backends.z3_lower", "CAM_Z3"),),
    "sympy": (("camlang.backends.sympy_kernels", "SYMPY"),),
}


@functools.cache
def kernels(backend: str) -> Mapping[str, Callable[..., Any]]:
    """Every kernel of `backend`, by op name (imports the back end's kernel modules once)."""
    table: dict[str, Callable[..., Any]] = {}
    for module, attr in KERNEL_TABLES[backend]:
        table.update(getattr(importlib.import_module(module), attr))
    return table


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: a tensor operand or a static attribute (number, string, cam name)."""

    name: str
    kind: ParamKind = "tensor"
    default: Any = REQUIRED


TypeRule = Callable[[tuple[Ty, ...], dict[str, Any]], Ty]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One row of the op table."""

    name: str
    params: tuple[Param, ...]
    type_rule: TypeRule
    doc: str
    contexts: frozenset[str] = frozenset({"cam", "metric"})
    category: str = "elementwise"
    symbol: str | None = None
    needs_model: bool = False
    #: binding strength when printed infix (symbol ops) or as a prefix (`neg`)
    precedence: int | None = None
    #: standalone-module source over `{0}`, `{1}`, ... (operands); None: not exportable
    template: str | None = None
    #: a terminal's variable name in generated modules
    source_name: str | None = None
    sign: Sign = ""
    #: a metric op that reads the map operand at this position only through its pixel ranking
    ranking_arg: int | None = None
    #: exact in rational arithmetic (the sympy normal-form proof applies)
    rational: bool = False
    #: the `[c, h, w]` axes a reduction removes (keeping dims)
    reduces: tuple[int, ...] = ()
    #: a terminal's hint when it is used in the other context
    context_hint: str | None = None

    @property
    def tensor_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind == "tensor")

    @property
    def static_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind != "tensor")

    def kernel(self, backend: Backend) -> Callable[..., Any] | None:
        """This op's kernel in `backend` (None when the back end has no meaning for it)."""
        return kernels(backend).get(self.name)

    @property
    def torch(self) -> Callable[..., Any] | None:
        """`kernel(ctx, operands, attrs) -> tensor` (see `camlang.backends.torch_kernels`)."""
        return self.kernel("torch")

    @property
    def reference(self) -> Callable[..., Any] | None:
        """`kernel(ctx, operands, attrs) -> ndarray` (see `camlang.backends.reference_kernels`)."""
        return self.kernel("reference")

    @property
    def z3(self) -> Callable[..., Any] | None:
        """`kernel(z3_ctx, operands, attrs) -> object array` (see `camlang.backends.z3_lower`)."""
        return self.kernel("z3")

    @property
    def sympy(self) -> Callable[..., Any] | None:
        """`kernel(operands, attrs) -> object array` of sympy terms, for rational ops only."""
        return self.kernel("sympy")

    @property
    def ty(self) -> Ty:
        """The type of a terminal or constant (ops without operands)."""
        return self.type_rule((), {})

    @property
    def reads_layer(self) -> bool:
        """A terminal computed at the target layer (capture needs a layer for it)."""
        return self.category == "terminal" and bool(self.ty.axes & set(LAYER_AXES))

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
    raise AxisError(
        f"pc1 expects Tensor[C, H, W], got {t}", "pc1 projects channels onto their first component"
    )


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


def _terminal(
    name: str, t: Ty, doc: str, contexts: set[str], source: str | None = None, hint: str | None = None
) -> OpSpec:
    return OpSpec(
        name,
        (),
        _const(t),
        doc,
        frozenset(contexts),
        "terminal",
        source_name=source,
        rational=source is not None,
        context_hint=hint,
    )


def _binary(
    name: str, symbol: str, precedence: int, template: str, doc: str, sign: Sign = "", rational: bool = False
) -> OpSpec:
    return OpSpec(
        name,
        TWO,
        _elementwise,
        doc,
        symbol=symbol,
        precedence=precedence,
        template=template,
        sign=sign,
        rational=rational,
    )


def _compare(name: str, symbol: str) -> OpSpec:
    return _binary(name, symbol, 1, f"({{0}} {symbol} {{1}}).to(x.dtype)", f"1 where x {symbol} y", "nonneg")


def _unary(name: str, fn: str, doc: str, sign: Sign = "") -> OpSpec:
    return OpSpec(name, (T,), _elementwise, doc, template=f"torch.{fn}({{0}})", sign=sign)


def _reduction(
    name: str, rule: TypeRule, reduces: tuple[int, ...], template: str, doc: str, rational: bool
) -> OpSpec:
    return OpSpec(
        name,
        (T,),
        rule,
        doc,
        category="reduction",
        template=template,
        sign="keeps",
        rational=rational,
        reduces=reduces,
    )


def _metric_op(
    name: str,
    params: tuple[Param, ...],
    rule: TypeRule,
    doc: str,
    model: bool = True,
    ranking_arg: int | None = None,
) -> OpSpec:
    """A metric-language op, computed by the metric runtime context
    (`camlang.runtime.metric_evaluation`)."""
    return OpSpec(
        name, params, rule, doc, frozenset({"metric"}), "metric", None, model, ranking_arg=ranking_arg
    )


def _method_op(name: str, params: tuple[Param, ...], doc: str) -> OpSpec:
    """A whole saliency method (it runs the model itself): an input-resolution map in a cam."""
    return OpSpec(name, params, _const(INPUT_MAP), doc, frozenset({"cam"}), "method", None, True)


T = Param("x")
TWO = (Param("x"), Param("y"))
_BOTH = {"cam", "metric"}
_CHANNELS = _drop(("C", "Cin"), "channels", "the channel axis is already gone")
_GRID = _drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone")
_CAM_ONLY = "belongs to cam expressions"

_ROWS: list[OpSpec] = [
    # ---- terminals
    _terminal(
        "A",
        LAYER_TENSOR,
        "Activations of the target layer, [C, H, W].",
        {"cam"},
        "activations",
        "metrics see the CAM as L; A and G belong to cam expressions",
    ),
    _terminal(
        "G",
        LAYER_TENSOR,
        "Gradient of the target score w.r.t. A, [C, H, W].",
        {"cam"},
        "gradients",
        "metrics see the CAM as L; A and G belong to cam expressions",
    ),
    _terminal("S", SCALAR, "The target class logit.", _BOTH, "score"),
    _terminal("P", SCALAR, "The target class softmax probability.", _BOTH, "probability"),
    _terminal(
        "S_masked",
        CHANNEL_VECTOR,
        "[C] target logits on X * upsample(minmax(A_c)) (Score-CAM).",
        {"cam"},
        "masked_scores",
        f"S_masked {_CAM_ONLY}",
    ),
    _terminal(
        "S_ablated",
        CHANNEL_VECTOR,
        "[C] target logits with channel c of A zeroed (Ablation-CAM).",
        {"cam"},
        "ablated_scores",
        f"S_ablated {_CAM_ONLY}",
    ),
    _terminal("X", IMAGE, "The input image as the model consumes it, [Cin, Hin, Win].", _BOTH, "x"),
    _terminal(
        "GX",
        IMAGE,
        "Gradient of the target score w.r.t. the input, [Cin, Hin, Win].",
        {"cam"},
        "input_gradients",
        f"GX {_CAM_ONLY}",
    ),
    _terminal(
        "L",
        INPUT_MAP,
        "The CAM upsampled to the input and scaled to [0, 1].",
        {"metric"},
        hint="L is the CAM itself; it is only available in metrics",
    ),
    _terminal(
        "MASK",
        INPUT_MAP,
        "The ground-truth mask (1 inside the object).",
        {"metric"},
        hint="MASK is the ground truth; it is only available in metrics",
    ),
    OpSpec(
        "const",
        (Param("value", "number"),),
        _const(SCALAR),
        "A number.",
        frozenset(_BOTH),
        "constant",
        rational=True,
    ),
    # ---- element-wise arithmetic
    _binary("add", "+", 2, "{0} + {1}", "x + y", "keeps", rational=True),
    _binary("sub", "-", 2, "{0} - {1}", "x - y", rational=True),
    _binary("mul", "*", 3, "{0} * {1}", "x * y", "keeps", rational=True),
    _binary("div", "/", 3, "{0} / {1}", "x / y (IEEE semantics: x/0 is inf or nan)", "keeps", rational=True),
    OpSpec("neg", (T,), _elementwise, "-x", precedence=4, template="-{0}", rational=True),
    _compare("eq", "=="),
    _compare("ne", "!="),
    _compare("lt", "<"),
    _compare("le", "<="),
    _compare("gt", ">"),
    _compare("ge", ">="),
    _unary("relu", "relu", "max(x, 0)", "nonneg"),
    _unary("abs", "abs", "|x|", "nonneg"),
    _unary("sign", "sign", "-1, 0 or 1"),
    _unary("exp", "exp", "e ** x", "nonneg"),
    _unary("log", "log", "natural logarithm"),
    _unary("sqrt", "sqrt", "square root", "nonneg"),
    OpSpec("pow", (Param("x"), Param("p")), _elementwise, "x ** p", template="torch.pow({0}, {1})"),
    OpSpec(
        "min", TWO, _elementwise, "element-wise minimum", template="torch.minimum({0}, {1})", sign="keeps"
    ),
    OpSpec(
        "max", TWO, _elementwise, "element-wise maximum", template="torch.maximum({0}, {1})", sign="keeps"
    ),
    OpSpec(
        "where",
        (Param("cond"), Param("x"), Param("y")),
        _elementwise,
        "x where cond is non-zero, else y",
        template="torch.where({0} != 0, {1}, {2})",
    ),
    # ---- reductions
    _reduction("sum_c", _CHANNELS, (0,), "{0}.sum(dim=1, keepdim=True)", "sum over channels", True),
    _reduction("mean_c", _CHANNELS, (0,), "{0}.mean(dim=1, keepdim=True)", "mean over channels", True),
    _reduction("max_c", _CHANNELS, (0,), "{0}.amax(dim=1, keepdim=True)", "maximum over channels", False),
    _reduction("sum_hw", _GRID, (1, 2), "{0}.sum(dim=(2, 3), keepdim=True)", "sum over the grid", True),
    _reduction("mean_hw", _GRID, (1, 2), "{0}.mean(dim=(2, 3), keepdim=True)", "mean over the grid", True),
    _reduction("max_hw", _GRID, (1, 2), "{0}.amax(dim=(2, 3), keepdim=True)", "maximum over the grid", False),
    _reduction("min_hw", _GRID, (1, 2), "{0}.amin(dim=(2, 3), keepdim=True)", "minimum over the grid", False),
    _reduction(
        "sum", _all_reduce, (0, 1, 2), "{0}.sum(dim=(1, 2, 3), keepdim=True)", "sum over every axis", True
    ),
    _reduction(
        "mean", _all_reduce, (0, 1, 2), "{0}.mean(dim=(1, 2, 3), keepdim=True)", "mean over every axis", True
    ),
    OpSpec(
        "softmax_c",
        (T,),
        _softmax_c,
        "softmax over channels (keeps axes)",
        category="reduction",
        template="torch.softmax({0}, dim=1)",
        sign="nonneg",
    ),
    OpSpec(
        "pc1",
        (T,),
        _pc1,
        "projection on the first principal component over channels (Eigen-CAM)",
        category="reduction",
        template="_first_component({0})",
    ),
    OpSpec(
        "minmax",
        (T,),
        _same_as_first((LAYER_MAP, INPUT_MAP)),
        "per-image min-max scaling of a map to [0, 1]",
        category="reduction",
        template="_minmax({0})",
        sign="nonneg",
    ),
    OpSpec(
        "upsample",
        (T,),
        _upsample,
        "bilinear upsampling of a layer map to the input size (align_corners=False)",
        category="reduction",
        sign="keeps",
        template='F.interpolate({0}, size=x.shape[-2:], mode="bilinear", align_corners=False)',
    ),
    # ---- whole methods from the seed papers (cam context; they call the model themselves)
    _method_op(
        "smoothgrad",
        (Param("samples", "int", 25), Param("noise", "number", 0.15)),
        "SmoothGrad (Smilkov et al. 2017): mean of max_c |GX| over noisy copies",
    ),
    _method_op("xmage", (), "guid-Xmage exact pixel attribution (signed, summed over channels)"),
    _method_op(
        "deepcover",
        (Param("measure", "string", "tarantula"), Param("tests", "int", 500)),
        "DeepCover SFL ranking (Sun et al. 2020): ochiai, tarantula, zoltar or wong-ii",
    ),
    _method_op(
        "extremal",
        (Param("area", "number", 0.1), Param("steps", "int", 800)),
        "Extremal perturbation (Fong et al. 2019): smooth mask of the given area",
    ),
    # ---- metric language: model re-evaluation, transforms, curves, localisation
    _metric_op(
        "P_at",
        (Param("image"),),
        _needs(IMAGE, result=SCALAR),
        "target probability of the model on a transformed input",
    ),
    _metric_op(
        "S_at", (Param("image"),), _needs(IMAGE, result=SCALAR), "target logit on a transformed input"
    ),
    _metric_op(
        "L_at",
        (Param("image"),),
        _needs(IMAGE, result=INPUT_MAP),
        "the CAM re-evaluated on a transformed input",
    ),
    _metric_op(
        "ref", (Param("cam", "cam"),), _const(INPUT_MAP), "the normalized map of another cam", model=True
    ),
    _metric_op(
        "argmax", (Param("map"),), _needs(INPUT_MAP, result=POINT), "position of the map's maximum", False, 0
    ),
    _metric_op(
        "inside",
        (Param("point"), Param("mask")),
        _needs(POINT, INPUT_MAP, result=SCALAR),
        "1 if the point lies inside the mask",
        False,
    ),
    _metric_op(
        "blur",
        (Param("x"), Param("sigma", "number")),
        _same_as_first((IMAGE, INPUT_MAP)),
        "Gaussian blur with standard deviation sigma (pixels)",
        False,
    ),
    _metric_op(
        "noise",
        (Param("x"), Param("std", "number"), Param("seed", "int", 0)),
        _same_as_first((IMAGE, INPUT_MAP)),
        "add Gaussian noise (deterministic in seed)",
        False,
    ),
    _metric_op("hflip", (Param("x"),), _same_as_first((IMAGE, INPUT_MAP)), "horizontal flip", False),
    _metric_op(
        "shift",
        (Param("x"), Param("dx", "int"), Param("dy", "int")),
        _same_as_first((IMAGE, INPUT_MAP)),
        "shift by (dx, dy) pixels, filling with zeros",
        False,
    ),
    _metric_op(
        "mask_top",
        (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
        _same_as_first((IMAGE,)),
        "replace the top `fraction` most salient pixels by `fill`",
        False,
        1,
    ),
    _metric_op(
        "keep_top",
        (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
        _same_as_first((IMAGE,)),
        "keep only the top `fraction` most salient pixels",
        False,
        1,
    ),
    _metric_op(
        "deletion_auc",
        (Param("map"), Param("steps", "int", 32), Param("fill", "value", 0.0)),
        _map_to_scalar,
        "RISE deletion curve AUC (lower is better)",
        ranking_arg=0,
    ),
    _metric_op(
        "insertion_auc",
        (Param("map"), Param("steps", "int", 32), Param("fill", "value", "blur")),
        _map_to_scalar,
        "RISE insertion curve AUC (higher is better)",
        ranking_arg=0,
    ),
    _metric_op(
        "sufficient_fraction",
        (Param("map"), Param("fill", "number", 0.0)),
        _map_to_scalar,
        "smallest fraction of top pixels that keeps the predicted class",
        ranking_arg=0,
    ),
    _metric_op(
        "road",
        (Param("map"), Param("mode", "string", "combined"), Param("tie_rule", "string", "rank")),
        _map_to_scalar,
        'ROAD score (morf, lerf or combined); tie_rule "rank" removes exactly the share, '
        '"threshold" as pytorch-grad-cam',
    ),
    _metric_op(
        "pointing",
        (Param("map"), Param("mask"), Param("tolerance", "number", None)),
        _map_to_scalar,
        "pointing game hit within `tolerance` pixels of the mask (default 15/224 of the shorter side)",
        False,
        0,
    ),
    _metric_op(
        "energy_inside",
        (Param("map"), Param("mask")),
        _map_to_scalar,
        "fraction of the map's energy inside the mask",
        False,
    ),
    _metric_op("iou", (Param("a"), Param("b")), _map_to_scalar, "intersection over union of two maps", False),
    _metric_op("gini", (Param("map"),), _map_to_scalar, "Gini index of the map's values (sparsity)", False),
    _metric_op(
        "entropy", (Param("map"),), _map_to_scalar, "Shannon entropy (nats) of the normalised map", False
    ),
    _metric_op(
        "max_sensitivity",
        (Param("radius", "number", 0.02), Param("samples", "int", 10), Param("norm", "string", "fro")),
        _const(SCALAR),
        "max over uniform L-inf draws of ||L_at(X + d) - L|| (Yeh et al. 2019)",
    ),
    _metric_op(
        "avg_sensitivity",
        (Param("radius", "number", 0.02), Param("samples", "int", 10), Param("norm", "string", "fro")),
        _const(SCALAR),
        "mean over uniform L-inf draws of ||L_at(X + d) - L|| (Yeh et al. 2019)",
    ),
    _metric_op(
        "direction_accuracy",
        (Param("map"), Param("fraction", "number", 0.01), Param("pixels", "int", 64)),
        _map_to_scalar,
        "share of pixels whose ±1% perturbation moves the score as the map's sign says",
    ),
]

OPS: dict[str, OpSpec] = {row.name: row for row in _ROWS}
TERMINALS: dict[str, OpSpec] = {n: r for n, r in OPS.items() if r.category == "terminal"}
FUNCTIONS: dict[str, OpSpec] = {n: r for n, r in OPS.items() if r.category not in ("terminal", "constant")}
BINARY_SYMBOLS: dict[str, str] = {r.symbol: r.name for r in _ROWS if r.symbol is not None}
SYMBOL_OF: dict[str, str] = {v: k for k, v in BINARY_SYMBOLS.items()}
COMMUTATIVE: frozenset[str] = frozenset({"add", "mul", "min", "max", "eq", "ne"})
#: Infix binding strength by source symbol (`pretty.py` prints the AST with it).
PRECEDENCE_OF_SYMBOL: dict[str, int] = {r.symbol: r.precedence for r in _ROWS if r.symbol and r.precedence}


def op(name: str) -> OpSpec:
    """The table row for `name` (KeyError for internal misuse only)."""
    return OPS[name]

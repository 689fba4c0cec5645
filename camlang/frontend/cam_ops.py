"""The op table's cam-language rows: terminals, arithmetic, comparisons, reductions, methods.

Each row is one `OpSpec` (`camlang.frontend.op_spec`); `camlang.frontend.op_table` gathers
these and the metric rows (`camlang.frontend.metric_ops`) into `OPS`.
"""

from __future__ import annotations

from camlang.frontend.op_spec import OpSpec, Param, Sign, TypeRule
from camlang.frontend.type_rules import (
    all_reduce,
    const,
    drop,
    elementwise,
    layer_terminal,
    pc1,
    same_as_first,
    softmax_c,
    upsample,
)
from camlang.frontend.value_types import (
    CHANNEL_VECTOR,
    IMAGE,
    INPUT_MAP,
    LAYER_AXES,
    LAYER_MAP,
    LAYER_TENSOR,
    SCALAR,
    Ty,
)


def _terminal(
    name: str, t: Ty, doc: str, contexts: set[str], source: str | None = None, hint: str | None = None
) -> OpSpec:
    # A terminal whose type has a layer axis is read at a layer: its `layer` attribute names it
    # ("" = the model's target layer; `A@"layer2"` sets it).
    layered = bool(t.axes & set(LAYER_AXES))
    return OpSpec(
        name,
        (Param("layer", "string", ""),) if layered else (),
        layer_terminal(t) if layered else const(t),
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
        elementwise,
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
    return OpSpec(name, (T,), elementwise, doc, template=f"torch.{fn}({{0}})", sign=sign)


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


def _method_op(name: str, params: tuple[Param, ...], doc: str) -> OpSpec:
    """A whole saliency method (it runs the model itself): an input-resolution map in a cam."""
    return OpSpec(name, params, const(INPUT_MAP), doc, frozenset({"cam"}), "method", None, True)


T = Param("x")
TWO = (Param("x"), Param("y"))
_BOTH = {"cam", "metric"}
_CHANNELS = drop(("C", "Cin"), "channels", "the channel axis is already gone")
_GRID = drop(("H", "W", "Hin", "Win"), "a spatial grid", "H and W are already gone")
_CAM_ONLY = "belongs to cam expressions"

CAM_ROWS: list[OpSpec] = [
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
        "GX_smooth",
        IMAGE,
        "SmoothGrad's input gradient: GX averaged over 16 noisy copies of the input (noise 15% of "
        "the image's range), [Cin, Hin, Win].",
        {"cam"},
        "smooth_input_gradients",
        f"GX_smooth {_CAM_ONLY}",
    ),
    _terminal(
        "RISE",
        INPUT_MAP,
        "RISE (Petsiuk et al. 2018) on the insertion canvas: the mean of 128 random smooth masks "
        "(4 x 4 cells, kept with probability 0.5) weighted by the target probability of the image "
        "pasted into its blur by each mask, [Hin, Win].",
        {"cam"},
        "rise_map",
        f"RISE {_CAM_ONLY}",
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
        const(SCALAR),
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
    OpSpec("neg", (T,), elementwise, "-x", precedence=4, template="-{0}", rational=True),
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
    OpSpec("pow", (Param("x"), Param("p")), elementwise, "x ** p", template="torch.pow({0}, {1})"),
    OpSpec("min", TWO, elementwise, "element-wise minimum", template="torch.minimum({0}, {1})", sign="keeps"),
    OpSpec("max", TWO, elementwise, "element-wise maximum", template="torch.maximum({0}, {1})", sign="keeps"),
    OpSpec(
        "where",
        (Param("cond"), Param("x"), Param("y")),
        elementwise,
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
        "sum", all_reduce, (0, 1, 2), "{0}.sum(dim=(1, 2, 3), keepdim=True)", "sum over every axis", True
    ),
    _reduction(
        "mean", all_reduce, (0, 1, 2), "{0}.mean(dim=(1, 2, 3), keepdim=True)", "mean over every axis", True
    ),
    OpSpec(
        "softmax_c",
        (T,),
        softmax_c,
        "softmax over channels (keeps axes)",
        category="reduction",
        template="torch.softmax({0}, dim=1)",
        sign="nonneg",
    ),
    OpSpec(
        "pc1",
        (T,),
        pc1,
        "projection on the first principal component over channels (Eigen-CAM)",
        category="reduction",
        template="_first_component({0})",
    ),
    OpSpec(
        "minmax",
        (T,),
        same_as_first((LAYER_MAP, INPUT_MAP)),
        "per-image min-max scaling of a map to [0, 1]",
        category="reduction",
        template="_minmax({0})",
        sign="nonneg",
    ),
    OpSpec(
        "upsample",
        (T,),
        upsample,
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
]

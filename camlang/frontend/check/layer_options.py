"""Options after a model's `at` clause: how target layers are laid out, and how several are fused.

    model vit  = torchvision("vit_b_16") at "encoder.layers[-1].ln_1" tokens(prefix = 1, grid = 14)
    model swin = torchvision("swin_t") at "features[-1][-1].norm1" channels_last()
    model r18  = torchvision("resnet18") at ["layer3", "layer4"] fuse("max")

`tokens(prefix = N, grid = N | [H, W])` (both optional: the rest is inferred), `channels_last()`,
`channels_first()`, and `fuse("mean" | "max")` (default mean, as pytorch-grad-cam averages layers).
"""

from __future__ import annotations

from camlang.frontend import syntax as s
from camlang.frontend.check.binding import BAD, literal_value
from camlang.frontend.diagnostics import DiagnosticBag
from camlang.frontend.layer_layout import LayerLayout

OPTIONS = ("tokens", "channels_last", "channels_first", "fuse")
_EXAMPLE = 'at "encoder.layers[-1].ln_1" tokens(prefix = 1, grid = 14)'


def layer_options(options: tuple[s.Call, ...], bag: DiagnosticBag) -> tuple[LayerLayout | None, str] | None:
    """The layout and fusion an `at` clause asks for; None after reporting an error."""
    layout: LayerLayout | None = None
    fuse = "mean"
    ok = True
    for opt in options:
        name = opt.func.name
        if name not in OPTIONS:
            bag.error(
                "E101",
                f"unknown layer option `{name}`",
                opt.func.span,
                f"layer options are {', '.join(o + '(...)' for o in OPTIONS)}, e.g. {_EXAMPLE}",
            )
            ok = False
        elif name == "fuse":
            value = literal_value(opt.args[0]) if len(opt.args) == 1 and not opt.kwargs else BAD
            if value not in ("mean", "max"):
                bag.error(
                    "E202",
                    'fuse takes "mean" or "max"',
                    opt.span,
                    'fuse("mean") averages the layers\' maps (pytorch-grad-cam); fuse("max") keeps the '
                    "largest",
                )
                ok = False
            else:
                fuse = str(value)
        elif layout is not None:
            bag.error("E202", f"`{name}(...)` repeats the layer layout", opt.span, "give one layout option")
            ok = False
        elif name in ("channels_last", "channels_first"):
            if opt.args or opt.kwargs:
                bag.error("E201", f"{name}() takes no arguments", opt.span)
                ok = False
            layout = LayerLayout("bhwc" if name == "channels_last" else "bchw")
        else:
            layout = _tokens(opt, bag)
            ok = ok and layout is not None
    return (layout, fuse) if ok else None


def _tokens(opt: s.Call, bag: DiagnosticBag) -> LayerLayout | None:
    if opt.args:
        bag.error("E202", "tokens(...) takes keyword arguments", opt.span, f"for example {_EXAMPLE}")
        return None
    prefix: int | None = None
    grid: tuple[int, int] | None = None
    for kw in opt.kwargs:
        value = literal_value(kw.value)
        if kw.name.name == "prefix" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            prefix = value
        elif kw.name.name == "grid" and isinstance(value, int) and value > 0:
            grid = (value, value)
        elif kw.name.name == "grid" and (pair := _positive_pair(value)) is not None:
            grid = pair
        elif kw.name.name in ("prefix", "grid"):
            want = "a whole number >= 0" if kw.name.name == "prefix" else "a positive size or [height, width]"
            bag.error(
                "E202",
                f"tokens({kw.name.name} = ...) must be {want}",
                kw.value.span,
                f"for example {_EXAMPLE}",
            )
            return None
        else:
            bag.error(
                "E203",
                f"tokens(...) has no argument `{kw.name.name}`",
                kw.name.span,
                "tokens(prefix = N, grid = N or [H, W]): prefix counts class/distillation tokens",
            )
            return None
    return LayerLayout("tokens", prefix, grid)


def _positive_pair(value: object) -> tuple[int, int] | None:
    """`[height, width]` of two positive integers, else None."""
    if isinstance(value, list) and len(value) == 2:
        rows, cols = value
        if isinstance(rows, int) and rows > 0 and isinstance(cols, int) and cols > 0:
            return rows, cols
    return None

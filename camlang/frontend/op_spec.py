"""The op table's row type: `OpSpec` and `Param`, and the kernel registry rows resolve through.

Kernels (torch, reference numpy, z3, sympy) are *referenced* from a row, not defined with it: the
kernel registry (`KERNEL_TABLES`) names, per back end, the modules whose tables hold them, and a
row's `torch` / `reference` / `z3` / `sympy` attribute imports its back end's modules the first
time it is read. So the front end (parse, check, fmt) never imports torch, numpy or z3.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from camlang.frontend.signatures import REQUIRED
from camlang.frontend.value_types import LAYER_AXES, Ty

Context = Literal["cam", "metric"]
ParamKind = Literal["tensor", "number", "int", "string", "value", "cam"]
Backend = Literal["torch", "reference", "z3", "sympy"]
#: "nonneg": values are >= 0 whatever the operands; "keeps": >= 0 when every operand is.
Sign = Literal["nonneg", "keeps", ""]

#: The kernel registry: for each back end, the `(module, table)` pairs whose dicts map op names
#: to kernels. Modules load on first use. Adding an op means one row (`cam_ops` or `metric_ops`)
#: and its kernels there.
KERNEL_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "torch": (
        ("camlang.backends.torch_kernels", "TORCH"),
        ("camlang.methods.kernels", "TORCH"),
        ("camlang.metrics.kernels", "TORCH"),
        ("camlang.runtime.method_metric_kernels", "TORCH"),
    ),
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
        """A terminal computed at a layer (capture needs a layer for it; it has a `layer` attribute)."""
        return self.category == "terminal" and bool(self.ty.axes & set(LAYER_AXES))

    def signature(self) -> str:
        """`name(x, y, sigma=1.0)` for completion menus and docs."""
        if self.category == "terminal":
            return self.name
        parts = []
        for p in self.params:
            parts.append(p.name if p.default is REQUIRED else f"{p.name}={p.default!r}")
        return f"{self.name}({', '.join(parts)})"

"""The op table: one row per terminal and operator of the expression language.

Each row gives the op's name, parameters, type rule, docstring and contexts, and every other
fact a consumer needs about it: infix symbol and precedence, the standalone-source template,
sign (for the simplifier), whether a metric reads a map only through its ranking, whether it
is rational (for the sympy proof), which axes it reduces. The checker, the IR, the passes,
every back end, the REPL and the docs read this one table; none keeps a side table.

The rows live by language: `cam_ops` (terminals, arithmetic, reductions, whole methods) and
`metric_ops`; the row type and the kernel registry in `op_spec`, the type rules in `type_rules`.
Kernels (torch, reference numpy, z3, sympy) are *referenced* through the registry
(`KERNEL_TABLES`), never imported here, so the front end never imports torch, numpy or z3.

Runtime layout (torch and reference): every value is a 4-d array `[N, c, h, w]` with size-1
dimensions for the axes it does not carry, so element-wise ops broadcast and reductions keep
dims. A point is `[N, 2, 1, 1]` (row, column). z3 and sympy lowering work on object arrays
`[c, h, w]` of terms for one image.
"""

from __future__ import annotations

from camlang.frontend.cam_ops import CAM_ROWS
from camlang.frontend.metric_ops import METRIC_ROWS
from camlang.frontend.op_spec import (
    KERNEL_TABLES,
    Backend,
    Context,
    OpSpec,
    Param,
    ParamKind,
    Sign,
    TypeRule,
    kernels,
)
from camlang.frontend.signatures import REQUIRED

__all__ = [
    "BINARY_SYMBOLS",
    "COMMUTATIVE",
    "FUNCTIONS",
    "KERNEL_TABLES",
    "OPS",
    "PRECEDENCE_OF_SYMBOL",
    "REQUIRED",
    "SYMBOL_OF",
    "TERMINALS",
    "Backend",
    "Context",
    "OpSpec",
    "Param",
    "ParamKind",
    "Sign",
    "TypeRule",
    "kernels",
    "op",
]

_ROWS: list[OpSpec] = CAM_ROWS + METRIC_ROWS

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

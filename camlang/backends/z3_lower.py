"""IR -> z3, from the op table's `z3` column, on a bounded symbolic instance.

A layer tensor becomes an object array `[C, H, W]` of z3 Real terms (one per channel and
position). Ops without an exact meaning in real arithmetic (exp, log, sqrt, non-integer pow)
are uninterpreted functions, which keeps "equal" answers sound. Ops with no encoding at all
raise `NoSMTEncoding` naming the op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from camlang.ir import Node, postorder
from camlang.ops import OPS


class NoSMTEncoding(Exception):
    """An op in the expression has no SMT meaning (e.g. `pc1`)."""

    def __init__(self, op: str) -> None:
        super().__init__(f"`{op}` has no SMT encoding")
        self.op = op


@dataclass(frozen=True, slots=True)
class Bound:
    """The size of the symbolic instance: channels and grid."""

    channels: int = 2
    height: int = 2
    width: int = 2
    input_channels: int = 1
    input_height: int = 2
    input_width: int = 2

    def describe(self) -> str:
        return f"C={self.channels}, H={self.height}, W={self.width}"


def symbolic_terminals(bound: Bound, prefix: str = "", symbol: Callable[[str], Any] | None = None
                       ) -> dict[str, np.ndarray]:  # fmt: skip
    """Fresh symbols for every cam terminal, in the keep-dims layout without batch.

    `symbol(name)` makes one symbol: z3 reals by default; the sympy proof path passes its own.
    """
    if symbol is None:
        import z3

        symbol = z3.Real

    def grid(name: str, c: int, h: int, w: int) -> np.ndarray:
        arr = np.empty((c, h, w), dtype=object)
        for idx in np.ndindex(arr.shape):
            arr[idx] = symbol(f"{prefix}{name}_{'_'.join(map(str, idx))}")
        return arr

    b = bound
    return {
        "A": grid("A", b.channels, b.height, b.width),
        "G": grid("G", b.channels, b.height, b.width),
        "S": grid("S", 1, 1, 1),
        "P": grid("P", 1, 1, 1),
        "S_masked": grid("Sm", b.channels, 1, 1),
        "S_ablated": grid("Sa", b.channels, 1, 1),
        "X": grid("X", b.input_channels, b.input_height, b.input_width),
        "GX": grid("GX", b.input_channels, b.input_height, b.input_width),
    }


def lower(roots: list[Node], terminals: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """z3 object arrays for every node reachable from `roots`."""
    values: dict[int, np.ndarray] = {}
    for node in postorder(roots):
        spec = OPS[node.op]
        if spec.category == "terminal":
            if node.op not in terminals:
                raise NoSMTEncoding(node.op)
            values[node.nid] = terminals[node.op]
            continue
        if spec.z3 is None:
            raise NoSMTEncoding(node.op)
        args = tuple(values[a.nid] for a in node.args)
        out: Any = spec.z3(args, node.attr_dict)
        values[node.nid] = out
    return values


def lower_one(root: Node, terminals: dict[str, np.ndarray]) -> np.ndarray:
    """The z3 object array of one node."""
    return lower([root], terminals)[root.nid]

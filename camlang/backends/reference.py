"""The reference evaluator: IR -> numpy, straight from each op row's numpy kernel
(`camlang.backends.reference_kernels`).

It is slow and obviously correct, and it is the test oracle for every other backend and for
the simplifier. Values use the `[N, c, h, w]` keep-dims layout (see `camlang.frontend.op_table`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from camlang.frontend.ir import Node, postorder
from camlang.frontend.op_table import OPS


class ReferenceContext:
    """Terminal values for the reference evaluator, plus the input size for `upsample`."""

    def __init__(self, terminals: dict[str, np.ndarray], input_size: tuple[int, int] | None = None) -> None:
        self.terminals = terminals
        self.input_size = input_size

    def terminal(self, name: str) -> np.ndarray:
        if name not in self.terminals:
            raise KeyError(f"reference evaluation needs terminal {name}")
        return self.terminals[name]

    def upsample(self, x: np.ndarray) -> np.ndarray:
        """Bilinear, align_corners=False (half-pixel centres), edge-clamped; as torch does."""
        assert self.input_size is not None, "upsample needs an input size"
        return bilinear_resize(x, self.input_size)


def bilinear_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes with half-pixel-centre bilinear interpolation."""
    h, w = x.shape[-2:]
    out_h, out_w = size

    def coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = coords(h, out_h)
    x0, x1, fx = coords(w, out_w)
    top = x[..., y0, :][..., x0] * (1 - fx) + x[..., y0, :][..., x1] * fx
    bottom = x[..., y1, :][..., x0] * (1 - fx) + x[..., y1, :][..., x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def evaluate(roots: Iterable[Node], ctx: ReferenceContext) -> dict[int, np.ndarray]:
    """Evaluate every node reachable from `roots`; returns values by node id."""
    values: dict[int, np.ndarray] = {}
    for node in postorder(roots):
        kernel = OPS[node.op].reference
        if kernel is None:
            raise NotImplementedError(f"`{node.op}` has no reference implementation")
        args = tuple(values[a.nid] for a in node.args)
        out: object = kernel(ctx, args, node.attr_dict)
        values[node.nid] = np.asarray(out, dtype=np.float64)
    return values


def evaluate_one(root: Node, ctx: ReferenceContext) -> np.ndarray:
    """The value of one node."""
    return evaluate([root], ctx)[root.nid]

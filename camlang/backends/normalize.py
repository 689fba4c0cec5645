"""Per-image min-max scaling, the one definition every back end and oracle shares.

pytorch-grad-cam scales a map by `(x - min) / (1e-7 + max(x - min))` over its last two axes;
the epsilon keeps a constant map at zero instead of NaN. This works on torch tensors and numpy
arrays alike (it imports neither), so the front end can name it without loading torch.
"""

from __future__ import annotations

from typing import Any, TypeVar

#: Added to the denominator so that a constant map scales to all zeros.
MINMAX_EPS = 1e-7

ArrayT = TypeVar("ArrayT")


def minmax(x: ArrayT) -> ArrayT:
    """`x` scaled to [0, 1] over its last two axes (a torch tensor or a numpy array)."""
    a: Any = x
    if hasattr(a, "amin"):  # torch
        shifted = a - a.amin(dim=(-2, -1), keepdim=True)
        return shifted / (MINMAX_EPS + shifted.amax(dim=(-2, -1), keepdim=True))  # type: ignore[no-any-return]
    shifted = a - a.min(axis=(-2, -1), keepdims=True)
    return shifted / (MINMAX_EPS + shifted.max(axis=(-2, -1), keepdims=True))  # type: ignore[no-any-return]

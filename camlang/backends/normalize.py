"""Per-image min-max scaling, the one definition every back end and oracle shares.

pytorch-grad-cam scales a map by `(x - min) / (1e-7 + max(x - min))` over its last two axes;
the epsilon keeps a constant map at zero instead of NaN. This works on torch tensors and numpy
arrays alike (it imports neither), so the front end can name it without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    import numpy as np
    import torch

#: Added to the denominator so that a constant map scales to all zeros.
MINMAX_EPS = 1e-7

ArrayT = TypeVar("ArrayT")


def minmax(x: ArrayT) -> ArrayT:
    """`x` scaled to [0, 1] over its last two axes (a torch tensor or a numpy array)."""
    if hasattr(x, "amin"):  # torch
        t = cast("torch.Tensor", x)
        shifted = t - t.amin(dim=(-2, -1), keepdim=True)
        return cast(ArrayT, shifted / (MINMAX_EPS + shifted.amax(dim=(-2, -1), keepdim=True)))
    a = cast("np.ndarray", x)
    moved = a - a.min(axis=(-2, -1), keepdims=True)
    return cast(ArrayT, moved / (MINMAX_EPS + moved.max(axis=(-2, -1), keepdims=True)))

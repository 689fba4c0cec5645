"""Torch kernels of metric rows computed by a saliency-method library (`direction_accuracy`).

The metric kernels proper live in `camlang.metrics.kernels`, which may not import
`camlang.methods` (the two packages share a floor). This table sits one floor up and is named in
the op table's kernel registry beside them; it reads the batch through the same `MetricInputs`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from camlang.core.per_image_rng import image_generators
from camlang.methods import direction_accuracy
from camlang.metrics.inputs import MetricInputs
from camlang.metrics.kernels import MetricKernel

Attrs = Mapping[str, object]


def _direction_accuracy(m: MetricInputs, a: tuple[torch.Tensor, ...], k: Attrs) -> torch.Tensor:
    map = m.clean(a[0])
    gens = image_generators(m.seed, m.indices.repeat(m.k), "direction_accuracy")
    fraction, pixels = k["fraction"], k["pixels"]
    assert isinstance(fraction, int | float) and isinstance(pixels, int)
    acc = direction_accuracy(
        m.module, m.terminal("X"), m.targets, map[:, 0], fraction=fraction, pixels=pixels, generator=gens
    )
    return torch.as_tensor(acc, dtype=m.dtype, device=m.device).reshape(-1, 1, 1, 1)


TORCH: dict[str, MetricKernel] = {"direction_accuracy": _direction_accuracy}

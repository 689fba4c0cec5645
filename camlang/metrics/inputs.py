"""What a metric kernel reads: the protocol between the metric ops and whoever evaluates them.

The metric kernels (`camlang.metrics.kernels`) compute the metric language's ops over a stacked
(cam x image) batch: row `k * B + b` is cam k on image b. They read everything through
`MetricInputs`, which the runtime implements (`camlang.runtime.metric_evaluation.MetricContext`)
with the live model and CAM engine, so this package never imports the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from camlang.backends.torch_kernels import KernelContext
from camlang.core.call_counter import CallCounter


@dataclass(frozen=True, slots=True)
class SensitivityDraws:
    """`[samples, K*B]` map changes under one set of uniform L-infinity draws, in each norm."""

    fro: torch.Tensor
    relative: torch.Tensor
    mean_abs: torch.Tensor

    def by_norm(self, norm: str) -> torch.Tensor:
        """The changes measured in `norm` ("fro", "relative" or "mean_abs")."""
        return {"fro": self.fro, "relative": self.relative, "mean_abs": self.mean_abs}[norm]


class MetricInputs(KernelContext, Protocol):
    """One stacked batch of K cams on B images, as the metric kernels see it.

    Beside these, `terminal(name)` gives the `[K*B, ...]` values of `X`, `L`, `P`, `S` and `MASK`.
    """

    #: the cams' names, in row-block order (K of them)
    cams: list[str]
    #: the number of images B
    b: int
    #: the target class of every row, `[K*B]`
    targets: torch.Tensor
    #: each image's dataset index, `[B]` on the CPU (keys every random draw)
    indices: torch.Tensor
    #: the run seed (keys every random draw)
    seed: int
    #: images per model call
    chunk_size: int
    counter: CallCounter
    #: one set of sensitivity draws per (radius, samples), shared by the metrics of the batch
    sensitivity_draws: dict[tuple[float, int], SensitivityDraws]

    @property
    def k(self) -> int:
        """The number of cams K."""
        ...

    @property
    def module(self) -> torch.nn.Module:
        """The model itself (for metrics that perturb and differentiate it)."""
        ...

    def model_fn(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits on `x` without gradients (no call counting: `counter` does that)."""
        ...

    def clean(self, map: torch.Tensor) -> torch.Tensor:
        """`map` with non-finite rows zeroed; the runtime reports those rows as NaN."""
        ...

    def cams_at(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every cam re-evaluated on B images `[B, C, H, W]`: `[B, H, W]` maps by cam name."""
        ...

    def ref_map(self, cam: str) -> torch.Tensor:
        """Another cam's normalized maps on this batch, `[B, H, W]`."""
        ...

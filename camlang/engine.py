"""The CAM engine: many CAM expressions on one model layer, sharing one capture per batch.

Evaluating six gradient CAMs costs one forward pass plus one backward pass stopped at the
layer; score terminals (`S_masked`, `S_ablated`) are computed once per batch for all CAMs that
read them. Shared subterms across CAMs are evaluated once (the IR is hash-consed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from camlang.backends.torch_eager import TorchContext, evaluate, normalize_maps, terminals_used
from camlang.capture import CallCounter, Targets, capture
from camlang.ir import Node


@dataclass
class CamBatch:
    """The maps of one batch: normalized `[B, H_in, W_in]` per CAM, plus what produced them."""

    maps: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    logits: torch.Tensor
    targets: torch.Tensor
    counter: CallCounter


class CamEngine:
    """Evaluate named CAM expressions on `model` at `layer`."""

    def __init__(self, model: nn.Module, layer: nn.Module | None, cams: Mapping[str, Node], *,
                 chunk_size: int = 64, seed: int = 0) -> None:  # fmt: skip
        self.model = model
        self.seed = seed
        self.layer = layer
        self.cams = dict(cams)
        self.chunk_size = chunk_size
        self.needs = terminals_used(self.cams.values())

    def __call__(self, x: torch.Tensor, targets: Targets = None, *, differentiable: bool = False,
                 counter: CallCounter | None = None, indices: torch.Tensor | None = None) -> CamBatch:  # fmt: skip
        """Capture once, evaluate every CAM, normalize as pytorch-grad-cam does.

        `indices` are the images' dataset indices (`Batch.indices`): random methods draw per image
        from them and the engine's seed, so maps do not depend on batching (None: batch positions).
        """
        cap = capture(self.model, self.layer, x, self.needs, targets, chunk_size=self.chunk_size,
                      differentiable=differentiable, counter=counter)  # fmt: skip
        size = (int(x.shape[-2]), int(x.shape[-1]))
        ctx = TorchContext(cap.terminals, size, x.dtype, x.device, self.model, cap.targets, self.seed, indices)
        with torch.set_grad_enabled(differentiable):
            values = evaluate(self.cams.values(), ctx)
            raw = {name: _as_map(values[node.nid], x.shape[0]) for name, node in self.cams.items()}
            maps = {name: normalize_maps(r, size) for name, r in raw.items()}
        return CamBatch(maps, raw, cap.logits, cap.targets, cap.counter)


def _as_map(value: torch.Tensor, batch: int) -> torch.Tensor:
    # A cam built only from constants and scalars can broadcast to [1, 1, h, w]; give it the batch.
    return value.expand(batch, 1, value.shape[-2], value.shape[-1]) if value.shape[0] != batch else value

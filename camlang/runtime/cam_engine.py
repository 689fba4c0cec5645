"""The CAM engine: many CAM expressions on one model layer, sharing one capture per batch.

Evaluating six gradient CAMs costs one forward pass plus one backward pass stopped at the
layer; score terminals (`S_masked`, `S_ablated`) are computed once per batch for all CAMs that
read them. Shared subterms across CAMs are evaluated once (the IR is hash-consed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from camlang.backends.torch_eager import TorchContext, evaluate, fuse_maps, normalize_maps, terminals_used
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.frontend.layer_layout import LayerLayout
from camlang.runtime.capture import CallCounter, LayoutArg, Scorer, Targets, capture

FUSIONS = ("mean", "max")


@dataclass
class CamBatch:
    """The maps of one batch: normalized `[B, H_in, W_in]` per CAM, plus what produced them.

    `raw` holds each CAM's unnormalized map at the (first) target layer's resolution.
    """

    maps: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    logits: torch.Tensor
    targets: torch.Tensor
    counter: CallCounter
    layouts: list[LayerLayout] = field(default_factory=list)


class CamEngine:
    """Evaluate named CAM expressions on `model` at one or several layers.

    With several layers every CAM is computed at each layer from one shared forward and backward
    pass, and the per-layer maps are fused with `fuse` ("mean" or "max").
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | Sequence[nn.Module] | None,
        cams: Mapping[str, Node],
        *,
        chunk_size: int = 64,
        layout: LayoutArg = None,
        fuse: str = "mean",
        scorer: Scorer | None = None,
        seed: int = 0,
    ) -> None:
        if fuse not in FUSIONS:
            raise CamlangError(
                f"unknown fusion {fuse!r} for multi-layer CAMs", hint="use fuse='mean' or fuse='max'"
            )
        self.model = model
        self.seed = seed
        self.layer = layer
        self.layers = [layer] if isinstance(layer, nn.Module) else list(layer or [])
        self.cams = dict(cams)
        self.chunk_size = chunk_size
        self.layout = layout
        self.fuse = fuse
        self.scorer = scorer
        self.needs = terminals_used(self.cams.values())
        self.layouts: list[LayerLayout] = []  # the layouts used in the last call (for the report)

    def __call__(
        self,
        x: torch.Tensor,
        targets: Targets = None,
        *,
        differentiable: bool = False,
        counter: CallCounter | None = None,
        indices: torch.Tensor | None = None,
    ) -> CamBatch:
        """Capture once, evaluate every CAM, normalize as pytorch-grad-cam does.

        `indices` are the images' dataset indices (`Batch.indices`): random methods draw per image
        from them and the engine's seed, so maps do not depend on batching (None: batch positions).
        """
        cap = capture(
            self.model,
            self.layers or None,
            x,
            self.needs,
            targets,
            chunk_size=self.chunk_size,
            differentiable=differentiable,
            counter=counter,
            layout=self.layout,
            scorer=self.scorer,
        )
        self.layouts = cap.layouts
        size = (int(x.shape[-2]), int(x.shape[-1]))
        views = range(len(self.layers)) if len(self.layers) > 1 else [0]
        per_view: list[dict[str, torch.Tensor]] = []
        with torch.set_grad_enabled(differentiable):
            for i in views:
                terms = cap.layer_terminals(i) if self.layers else cap.terminals
                ctx = TorchContext(
                    terms, size, x.dtype, x.device, self.model, cap.targets, self.seed, indices
                )
                values = evaluate(self.cams.values(), ctx)
                per_view.append(
                    {name: _as_map(values[node.nid], x.shape[0]) for name, node in self.cams.items()}
                )
            if len(per_view) == 1:
                maps = {name: normalize_maps(r, size) for name, r in per_view[0].items()}
            else:
                maps = {name: fuse_maps([v[name] for v in per_view], size, self.fuse) for name in self.cams}
        return CamBatch(maps, per_view[0], cap.logits, cap.targets, cap.counter, cap.layouts)


def _as_map(value: torch.Tensor, batch: int) -> torch.Tensor:
    # A cam built only from constants and scalars can broadcast to [1, 1, h, w]; give it the batch.
    return value.expand(batch, 1, value.shape[-2], value.shape[-1]) if value.shape[0] != batch else value

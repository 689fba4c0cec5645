"""IR -> torch, evaluated eagerly with each op row's torch kernel (`camlang.backends.torch_kernels`).

Many roots are evaluated together with one memo table, so a subterm shared by several CAMs (or
by thousands of synthesized candidates) is computed once per batch.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from camlang.backends.normalize import minmax
from camlang.backends.torch_kernels import KernelContext
from camlang.frontend.ir import Node, postorder, terminal_key
from camlang.frontend.op_table import OPS


class TorchContext:
    """Terminal values of one batch (keep-dims layout) and the input size for `upsample`."""

    def __init__(
        self,
        terminals: dict[str, torch.Tensor],
        input_size: tuple[int, int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        model: torch.nn.Module | None = None,
        targets: torch.Tensor | None = None,
        seed: int = 0,
        indices: torch.Tensor | None = None,
    ) -> None:
        self.terminals = terminals
        self.input_size = input_size
        self.dtype = dtype
        self.device = torch.device(device)
        self.model = model
        self.targets = targets
        self.seed = seed
        self.indices = indices  # each image's dataset index (None: its position in this batch)

    def terminal(self, name: str) -> torch.Tensor:
        try:
            return self.terminals[name]
        except KeyError:
            raise KeyError(f"terminal {name} was not captured for this batch") from None

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(self.input_size):
            return x
        return F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)

    # ---- what the whole-method kernels (`camlang.methods.kernels`) read
    def method_inputs(self) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        """The model, the input batch `X` and the targets, for kernels that run the model."""
        if self.model is None or self.targets is None:
            raise KeyError("this method needs the model; evaluate it through CamEngine")
        return self.model, self.terminals["X"], self.targets

    def generator(self, op: str) -> list[torch.Generator]:
        """One generator per image keyed to (seed, dataset index, op): maps do not depend on batching."""
        from camlang.core.per_image_rng import image_generators

        batch = self.terminals["X"].shape[0]
        indices = self.indices if self.indices is not None else torch.arange(batch)
        return image_generators(self.seed, indices, op)


def evaluate(
    roots: Iterable[Node], ctx: KernelContext, memo: dict[int, torch.Tensor] | None = None
) -> dict[int, torch.Tensor]:
    """Evaluate every node reachable from `roots` (sharing `memo` across calls if given)."""
    values: dict[int, torch.Tensor] = {} if memo is None else memo
    for node in postorder(roots):
        if node.nid in values:
            continue
        kernel = OPS[node.op].torch
        if kernel is None:
            raise NotImplementedError(f"`{node.op}` has no torch lowering")
        args = tuple(values[a.nid] for a in node.args)
        values[node.nid] = kernel(ctx, args, node.attr_dict)
    return values


def terminals_used(roots: Iterable[Node]) -> set[str]:
    """The terminals that `roots` read, by key (`A`, or `A@layer2` for a tagged layer terminal):
    what capture must compute."""
    return {terminal_key(n) for n in postorder(roots) if OPS[n.op].category == "terminal"}


def normalize_maps(raw: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """pytorch-grad-cam's scaling: min-max at layer resolution, bilinear upsample, min-max again.

    `raw` is `[B, 1, h, w]`; returns `[B, H_in, W_in]` in [0, 1]. A constant map gives zeros;
    NaN stays NaN (the report shows it as such).
    """
    return minmax(scale_to_input(raw, input_size))[:, 0]


def scale_to_input(raw: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """Min-max at layer resolution, then bilinear upsampling: `[B, 1, h, w] -> [B, 1, H_in, W_in]`.

    This is one layer's share of a multi-layer CAM, before the layers are fused and scaled again.
    """
    x = minmax(raw)
    if tuple(x.shape[-2:]) != tuple(input_size):
        x = F.interpolate(x, size=input_size, mode="bilinear", align_corners=False)
    return x


def fuse_maps(per_layer: list[torch.Tensor], input_size: tuple[int, int], how: str = "mean") -> torch.Tensor:
    """Several layers' raw maps `[B, 1, h_i, w_i]` fused into normalized `[B, H_in, W_in]` maps.

    Each layer is scaled and upsampled alone, then the layers are averaged (`mean`, as
    pytorch-grad-cam does) or maxed (`max`, as the LayerCAM authors recommend) and scaled again.
    """
    scaled = torch.stack([scale_to_input(r, input_size).clamp_min(0) for r in per_layer])
    fused = scaled.mean(dim=0) if how == "mean" else scaled.amax(dim=0)
    return minmax(fused)[:, 0]

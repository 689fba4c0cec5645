"""The engine behind the pytorch-grad-cam drop-in: each method is a camlang expression.

A method is its camlang expression (and the expression it uses with `eigen_smooth`). Calls run
camlang's `CamEngine`: one forward pass and one backward pass stopped at the target layers, all
target layers at once, and the test-time augmentations of `aug_smooth` stacked into one batch.
Results follow pytorch-grad-cam: float32 numpy `[B, H, W]`, per-layer min-max, upsampling,
mean over layers, min-max again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from camlang.capture import Scorer
from camlang.check import check_text
from camlang.compat.grad_cam.utils.model_targets import ClassifierOutputTarget
from camlang.diagnostics import CompileError
from camlang.engine import CamEngine
from camlang.errors import CamlangError
from camlang.ir import Node
from camlang.tokens import LayerLayout
from camlang.tokens import reshape_transform as layout_from_transform

_FLIPS = (False, True)
_FACTORS = (0.9, 1.0, 1.1)  # pytorch-grad-cam's aug_smooth: horizontal flip x brightness factors


def compile_expression(expression: str) -> Node:
    """The IR of a camlang CAM expression (stdlib cams may be named inside)."""
    program = check_text(f'import "stdlib/cams.cam"\ncam compat = {expression}\n', "<grad_cam compat>", None)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    node = program.cams["compat"].node
    assert node is not None
    return node


def _scalar(value: Any, index: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise CamlangError(f"target {index} returned {got}; a target must return one scalar per image",
                           hint="sum or index the model output inside the target, e.g. output[category]")  # fmt: skip
    return value.reshape(())


def _rows(output: Any) -> Any:
    return output[0] if isinstance(output, tuple | list) else output


def target_scorer(targets: Sequence[Callable[[Any], Any]]) -> Scorer:
    """A camlang scorer from pytorch-grad-cam targets: `targets[i](output row)` for image `i`."""

    def score(output: Any, rows: torch.Tensor) -> torch.Tensor:
        out = _rows(output)
        return torch.stack([_scalar(targets[int(r)](o), int(r)) for r, o in zip(rows, out)])

    return score


class BaseCAM:
    """pytorch-grad-cam's `BaseCAM` interface on camlang's engine.

    Subclasses set `expression` and `eigen_expression` (camlang source over A, G, S, S_masked, ...).
    """

    expression: str = ""
    eigen_expression: str = ""

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:  # fmt: skip
        if isinstance(target_layers, nn.Module):
            raise CamlangError("target_layers must be a list of layers, e.g. target_layers=[model.layer4[-1]]")
        if not target_layers:
            raise CamlangError("target_layers is empty", hint="name at least one layer, e.g. [model.layer4[-1]]")
        self.model = model.eval()
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.batch_size = 16
        self.fuse = "mean"
        self.outputs: torch.Tensor | None = None
        self._engines: dict[bool, CamEngine] = {}

    @property
    def layout(self) -> LayerLayout | None:
        """The camlang layout used for the target layers (None: recognised from the output shape)."""
        return layout_from_transform(self.reshape_transform) if self.reshape_transform is not None else None

    def _engine(self, eigen_smooth: bool) -> CamEngine:
        if eigen_smooth not in self._engines:
            source = self.eigen_expression if eigen_smooth else self.expression
            self._engines[eigen_smooth] = CamEngine(self.model, self.target_layers, {"cam": compile_expression(source)},
                                                    layout=self.layout, fuse=self.fuse)  # fmt: skip
        engine = self._engines[eigen_smooth]
        engine.chunk_size = int(self.batch_size)
        engine.fuse = self.fuse
        return engine

    def _device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def forward_tensor(self, input_tensor: torch.Tensor, targets: Sequence[Callable[[Any], Any]] | None = None,
                       eigen_smooth: bool = False) -> torch.Tensor:  # fmt: skip
        """The maps as a float tensor `[B, H, W]` on the model's device (no copy to numpy)."""
        x = input_tensor.to(self._device())
        engine = self._engine(eigen_smooth)
        if targets is None or all(type(t) is ClassifierOutputTarget for t in targets):
            classes = None if targets is None else [int(t.category) for t in targets]  # type: ignore[attr-defined]
            engine.scorer = None
            out = engine(x, classes)
        else:
            if len(targets) != x.shape[0]:
                raise CamlangError(f"got {len(targets)} targets for a batch of {x.shape[0]} images",
                                   hint="give one target per image")  # fmt: skip
            engine.scorer = target_scorer(list(targets))
            out = engine(x)
        self.outputs = out.logits
        return out.maps["cam"]

    def forward(self, input_tensor: torch.Tensor, targets: Sequence[Callable[[Any], Any]] | None = None,
                eigen_smooth: bool = False) -> np.ndarray:  # fmt: skip
        """The maps as float32 numpy `[B, H, W]`, as pytorch-grad-cam returns them."""
        return self.forward_tensor(input_tensor, targets, eigen_smooth).detach().cpu().numpy().astype(np.float32)

    def forward_augmentation_smoothing(self, input_tensor: torch.Tensor,
                                       targets: Sequence[Callable[[Any], Any]] | None = None,
                                       eigen_smooth: bool = False) -> np.ndarray:  # fmt: skip
        """The mean map over horizontal flips and brightness factors 0.9, 1, 1.1, in one batch."""
        b = input_tensor.shape[0]
        views = [(flip, f) for flip in _FLIPS for f in _FACTORS]
        stacked = torch.cat([(input_tensor.flip(-1) if flip else input_tensor) * f for flip, f in views])
        maps = self.forward_tensor(stacked, None if targets is None else list(targets) * len(views), eigen_smooth)
        parts = [m.flip(-1) if flip else m for (flip, _), m in zip(views, maps.split(b))]
        stacked_np = np.stack([p.detach().cpu().numpy() for p in parts]).astype(np.float32)
        return np.mean(stacked_np, axis=0)

    def __call__(self, input_tensor: torch.Tensor, targets: Sequence[Callable[[Any], Any]] | None = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False) -> np.ndarray:  # fmt: skip
        if aug_smooth:
            return self.forward_augmentation_smoothing(input_tensor, targets, eigen_smooth)
        return self.forward(input_tensor, targets, eigen_smooth)

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> bool:
        # Nothing to release: camlang removes its hooks after every call.
        self._engines.clear()
        if isinstance(exc_value, IndexError):
            print(f"An exception occurred in CAM with block: {exc_type}. Message: {exc_value}")
            return True
        return False

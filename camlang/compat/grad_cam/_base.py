"""The engine behind the pytorch-grad-cam drop-in: each method is a camlang expression.

A method is its camlang expression (and the expression it uses with `eigen_smooth`). Calls run
camlang's `CamEngine`: one forward pass and one backward pass stopped at the target layers, all
target layers at once, and the test-time augmentations of `aug_smooth` stacked into one batch.
Results follow pytorch-grad-cam: float32 numpy `[B, H, W]`, per-layer min-max, upsampling,
mean over layers, min-max again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from camlang.backends.torch_eager import TorchContext, evaluate, fuse_maps, normalize_maps, terminals_used
from camlang.compat.grad_cam.utils.model_targets import ClassifierOutputTarget
from camlang.errors import CamlangError
from camlang.frontend.check import check_text
from camlang.frontend.diagnostics import CompileError
from camlang.frontend.ir import Node
from camlang.frontend.layer_layout import LayerLayout
from camlang.frontend.layer_layout import reshape_transform as layout_from_transform
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.capture import Scorer, capture

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


def first_component_numpy(weighted: torch.Tensor) -> torch.Tensor:
    """Projection of `[B, C, h, w]` on its first principal component over channels, `[B, 1, h, w]`.

    The sign of a principal component is arbitrary; pytorch-grad-cam takes whatever numpy's SVD
    (full matrices) returns, so the drop-in computes it the same way to give the same maps.
    camlang's own `pc1` orients the component so its largest loading is positive.
    """
    a = weighted.detach().cpu().numpy().astype(np.float32)
    a = np.where(np.isnan(a), np.float32(0), a)
    out = []
    for item in a:
        flat = item.reshape(item.shape[0], -1).transpose()
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=True)
        out.append((flat @ vt[0, :]).reshape(item.shape[1:]))
    return torch.from_numpy(np.stack(out).astype(np.float32))[:, None]


#: What a model's forward returns: logits, or a tuple/list whose first element is the logits.
ModelOutput = torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]


def _scalar(value: object, index: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise CamlangError(
            f"target {index} returned {got}; a target must return one scalar per image",
            hint="sum or index the model output inside the target, e.g. output[category]",
        )
    return value.reshape(())


def _rows(output: ModelOutput) -> torch.Tensor:
    # Models that return a tuple (logits, extras) are scored on the first element.
    return output[0] if isinstance(output, tuple | list) else output


def target_scorer(targets: Sequence[Callable[[Any], Any]]) -> Scorer:
    """A camlang scorer from pytorch-grad-cam targets: `targets[i](output row)` for image `i`."""

    def score(output: ModelOutput, rows: torch.Tensor) -> torch.Tensor:
        out = _rows(output)
        return torch.stack([_scalar(targets[int(r)](o), int(r)) for r, o in zip(rows, out)])

    return score


class BaseCAM:
    """pytorch-grad-cam's `BaseCAM` interface on camlang's engine.

    Subclasses set `expression` (camlang source over A, G, S, S_masked, ...) and `projected`, the
    channel-weighted activations whose first principal component `eigen_smooth` shows.
    """

    expression: str = ""
    projected: str = ""
    always_projected = False

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if isinstance(target_layers, nn.Module):
            raise CamlangError(
                "target_layers must be a list of layers, e.g. target_layers=[model.layer4[-1]]"
            )
        if not target_layers:
            raise CamlangError(
                "target_layers is empty", hint="name at least one layer, e.g. [model.layer4[-1]]"
            )
        self.model = model.eval()
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.batch_size = 16
        self.fuse = "mean"
        self.outputs: torch.Tensor | None = None
        self._cam_engine: CamEngine | None = None

    @property
    def layout(self) -> LayerLayout | None:
        """The camlang layout used for the target layers (None: recognised from the output shape)."""
        return layout_from_transform(self.reshape_transform) if self.reshape_transform is not None else None

    def _engine(self) -> CamEngine:
        if self._cam_engine is None:
            self._cam_engine = CamEngine(
                self.model,
                self.target_layers,
                {"cam": compile_expression(self.expression)},
                layout=self.layout,
                fuse=self.fuse,
            )
        engine = self._cam_engine
        engine.chunk_size = int(self.batch_size)
        engine.fuse = self.fuse
        return engine

    def _device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def _objective(
        self, targets: Sequence[Callable[[Any], Any]] | None, batch: int
    ) -> tuple[list[int] | None, Scorer | None]:
        """Class indices (fast path, all ClassifierOutputTarget or None) or a scorer for other targets."""
        if targets is None or all(type(t) is ClassifierOutputTarget for t in targets):
            classes = [t for t in targets or () if isinstance(t, ClassifierOutputTarget)]
            return (None if targets is None else [int(t.category) for t in classes]), None
        if len(targets) != batch:
            raise CamlangError(
                f"got {len(targets)} targets for a batch of {batch} images", hint="give one target per image"
            )
        return None, target_scorer(list(targets))

    def forward_tensor(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Callable[[Any], Any]] | None = None,
        eigen_smooth: bool = False,
    ) -> torch.Tensor:
        """The maps as a float tensor `[B, H, W]` on the model's device (no copy to numpy)."""
        x = input_tensor.to(self._device())
        classes, scorer = self._objective(targets, x.shape[0])
        if eigen_smooth or self.always_projected:
            return self._projected(x, classes, scorer)
        engine = self._engine()
        engine.scorer = scorer
        out = engine(x, classes)
        self.outputs = out.logits
        return out.maps["cam"]

    def _projected(self, x: torch.Tensor, classes: list[int] | None, scorer: Scorer | None) -> torch.Tensor:
        """relu of the first principal component of `projected`, per layer, then scaled and fused."""
        # Checked as `pc1(projected)` (a cam must be a map); the projection itself happens below.
        root = compile_expression(f"pc1({self.projected})")
        assert root.op == "pc1", root.op
        node = root.args[0]
        cap = capture(
            self.model,
            self.target_layers,
            x,
            terminals_used([node]),
            classes,
            chunk_size=int(self.batch_size),
            layout=self.layout,
            scorer=scorer,
        )
        self.outputs = cap.logits
        size = (int(x.shape[-2]), int(x.shape[-1]))
        raws = []
        for i in range(len(self.target_layers)):
            ctx = TorchContext(cap.layer_terminals(i), size, x.dtype, x.device, self.model, cap.targets)
            weighted = evaluate([node], ctx)[node.nid]
            raws.append(first_component_numpy(weighted).to(x.device).clamp_min(0))
        return normalize_maps(raws[0], size) if len(raws) == 1 else fuse_maps(raws, size, self.fuse)

    def forward(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Callable[[Any], Any]] | None = None,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        """The maps as float32 numpy `[B, H, W]`, as pytorch-grad-cam returns them."""
        return (
            self.forward_tensor(input_tensor, targets, eigen_smooth).detach().cpu().numpy().astype(np.float32)
        )

    def forward_augmentation_smoothing(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Callable[[Any], Any]] | None = None,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        """The mean map over horizontal flips and brightness factors 0.9, 1, 1.1, in one batch."""
        b = input_tensor.shape[0]
        views = [(flip, f) for flip in _FLIPS for f in _FACTORS]
        stacked = torch.cat([(input_tensor.flip(-1) if flip else input_tensor) * f for flip, f in views])
        maps = self.forward_tensor(
            stacked, None if targets is None else list(targets) * len(views), eigen_smooth
        )
        parts = [m.flip(-1) if flip else m for (flip, _), m in zip(views, maps.split(b))]
        stacked_np = np.stack([p.detach().cpu().numpy() for p in parts]).astype(np.float32)
        return np.mean(stacked_np, axis=0)

    def __call__(
        self,
        input_tensor: torch.Tensor,
        targets: Sequence[Callable[[Any], Any]] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ) -> np.ndarray:
        if aug_smooth:
            return self.forward_augmentation_smoothing(input_tensor, targets, eigen_smooth)
        return self.forward(input_tensor, targets, eigen_smooth)

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool:
        # Nothing to release: camlang removes its hooks after every call.
        self._cam_engine = None
        if isinstance(exc_value, IndexError):
            print(f"An exception occurred in CAM with block: {exc_type}. Message: {exc_value}")
            return True
        return False

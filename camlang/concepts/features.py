"""One forward pass per image, shared by every concept source, heatmap and monitor.

`extract_features` runs the model once over a dataset (in batches) and keeps, per image, the
logits and the *pooled* activations of the layers that the concept sources read: a spatial
output `[B, C, H, W]` is averaged over `H, W`; a vector output `[B, D]` is kept as is. The
special layer name `PENULTIMATE` means the input of the model's last `nn.Linear` (the
classifier's features). Labels and concept annotations come along from the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from camlang.data.base import Dataset
from camlang.errors import CamlangError
from camlang.models.layers import resolve_layer

#: Layer name for the input of the model's last `nn.Linear`: the penultimate features.
PENULTIMATE = "penultimate"


@dataclass(frozen=True)
class Features:
    """What one forward pass over a dataset leaves for the concept computations.

    - `logits`: `[N, classes]`.
    - `pooled`: layer name -> `[N, D]` pooled activations.
    - `labels`: `[N]` true classes, or None.
    - `annotations`: `[N, K]` 0/1 concept annotations, or None; `annotation_names` their names.
    """

    logits: torch.Tensor
    pooled: dict[str, torch.Tensor]
    labels: torch.Tensor | None
    annotations: torch.Tensor | None
    annotation_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    @property
    def predictions(self) -> torch.Tensor:
        """`[N]` predicted classes."""
        return self.logits.argmax(dim=1)

    @property
    def correct(self) -> torch.Tensor:
        """`[N]` bool: prediction equals the label (needs labels)."""
        if self.labels is None:
            raise CamlangError(
                "these images have no labels, so correct and incorrect cannot be told apart",
                hint="use a labelled dataset for heatmaps, localisation and monitor calibration",
            )
        return self.predictions == self.labels

    def subset(self, keep: torch.Tensor) -> Features:
        """The images selected by a bool mask or an index tensor."""
        return Features(
            logits=self.logits[keep],
            pooled={k: v[keep] for k, v in self.pooled.items()},
            labels=None if self.labels is None else self.labels[keep],
            annotations=None if self.annotations is None else self.annotations[keep],
            annotation_names=self.annotation_names,
        )


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last `nn.Linear` in registration order: its input is the penultimate feature."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CamlangError(
            "the model has no nn.Linear layer, so it has no penultimate features",
            hint='name a layer with spatial or vector output instead, e.g. layer = "features.6"',
        )
    return linears[-1]


def pool_activation(output: object, layer: str) -> torch.Tensor:
    """Pool one layer's output to `[B, D]`; refuse outputs that are neither spatial nor vectors."""
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.dim() not in (2, 4):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise CamlangError(
            f"layer {layer!r} has output shape {shape}; a concept probe needs spatial output "
            "[batch, channels, height, width] or vector output [batch, features]",
            hint='probe a convolutional block or the penultimate features (layer = "penultimate")',
            code="E821",
        )
    return output.float().mean(dim=(2, 3)) if output.dim() == 4 else output.float()


def _hook(model: nn.Module, layer: str, sink: dict[str, torch.Tensor]) -> RemovableHandle:
    if layer == PENULTIMATE:

        def pre(_m: nn.Module, args: tuple[object, ...]) -> None:
            sink[layer] = pool_activation(args[0], layer)

        return last_linear(model).register_forward_pre_hook(pre)

    def post(_m: nn.Module, _args: tuple[object, ...], output: object) -> None:
        sink[layer] = pool_activation(output, layer)

    return resolve_layer(model, layer).register_forward_hook(post)


def forward_with_features(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    layers: Iterable[str],
    hook_target: nn.Module | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and pooled activations of `layers` for one batch, from one forward pass.

    `hook_target` is the module that owns the layers (defaults to `model` itself).
    """
    owner = hook_target if hook_target is not None else model
    if not isinstance(owner, nn.Module):
        raise CamlangError("concept features need an nn.Module to read layers from")
    sink: dict[str, torch.Tensor] = {}
    handles = [_hook(owner, name, sink) for name in dict.fromkeys(layers)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    logits = out[0] if isinstance(out, tuple | list) else out
    return logits.float(), sink


def extract_features(
    model: nn.Module,
    data: Dataset,
    layers: Iterable[str],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> Features:
    """Run `model` once over `data` and keep logits, pooled `layers`, labels and annotations."""
    wanted = list(dict.fromkeys(layers))
    logits, labels, annotations = [], [], []
    pooled: dict[str, list[torch.Tensor]] = {k: [] for k in wanted}
    was_training = model.training
    model.eval()
    try:
        for batch in data.batches(batch_size):
            out, feats = forward_with_features(model, batch.x.to(device), wanted)
            logits.append(out.cpu())
            for k in wanted:
                pooled[k].append(feats[k].cpu())
            if batch.labels is not None:
                labels.append(batch.labels)
            if batch.concepts is not None:
                annotations.append(batch.concepts)
    finally:
        model.train(was_training)
    n = len(data)
    return Features(
        logits=torch.cat(logits) if logits else torch.zeros(0, 0),
        pooled={k: torch.cat(v) for k, v in pooled.items()},
        labels=torch.cat(labels) if len(labels) == len(logits) and labels else None,
        annotations=torch.cat(annotations) if annotations and sum(len(a) for a in annotations) == n else None,
        annotation_names=tuple(data.concept_names or ()),
    )

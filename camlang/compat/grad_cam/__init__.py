"""A drop-in for pytorch-grad-cam (`grad-cam` on PyPI) computed by camlang's CAM engine.

    from camlang.compat.grad_cam import GradCAM            # was: from pytorch_grad_cam import GradCAM
    from camlang.compat.grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
        grayscale_cam = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(281)])

Same classes, constructors, call signature and float32 `[B, H, W]` numpy results. Each method is a
camlang expression (see `expression`), so several target layers share one forward and backward
pass, `aug_smooth` runs its six views as one batch, and ViT / Swin layers work without a
`reshape_transform` (their token layout is recognised). `forward_tensor` keeps the maps on the
model's device as a tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from camlang.compat.grad_cam._base import BaseCAM
from camlang.compat.grad_cam.ablation_layer import AblationLayer
from camlang.errors import CamlangError

_GRADPP_WEIGHTS = (
    "sum_hw(where(G != 0, pow(G, 2) / (2 * pow(G, 2) + sum_hw(A) * pow(G, 3) + 1e-6), 0) * relu(G))"
)
_XGRAD_WEIGHTS = "sum_hw(G * A / (sum_hw(A) + 1e-7))"


class GradCAM(BaseCAM):
    """Grad-CAM: channel weights are the spatially averaged gradients."""

    expression = "relu(sum_c(mean_hw(G) * A))"
    projected = "mean_hw(G) * A"


class HiResCAM(BaseCAM):
    """HiResCAM: element-wise gradient times activation."""

    expression = "relu(sum_c(G * A))"
    projected = "G * A"


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ with pytorch-grad-cam's closed form."""

    expression = f"relu(sum_c({_GRADPP_WEIGHTS} * A))"
    projected = f"{_GRADPP_WEIGHTS} * A"


class XGradCAM(BaseCAM):
    """XGrad-CAM: activation-weighted gradients."""

    expression = f"relu(sum_c({_XGRAD_WEIGHTS} * A))"
    projected = f"{_XGRAD_WEIGHTS} * A"


class LayerCAM(BaseCAM):
    """LayerCAM: positive gradients weight each position."""

    expression = "relu(sum_c(relu(G) * A))"
    projected = "relu(G) * A"


class GradCAMElementWise(BaseCAM):
    """Grad-CAM element-wise: positive part of gradient times activation, summed over channels."""

    expression = "relu(sum_c(relu(G * A)))"
    projected = "relu(G * A)"


class EigenCAM(BaseCAM):
    """Eigen-CAM: the first principal component of the activations (no gradients)."""

    expression = "relu(pc1(A))"
    projected = "A"
    always_projected = True


class EigenGradCAM(BaseCAM):
    """Eigen-Grad-CAM: the first principal component of gradient times activation."""

    expression = "relu(pc1(G * A))"
    projected = "G * A"
    always_projected = True


class ScoreCAM(BaseCAM):
    """Score-CAM: softmax over the target scores of channel-masked inputs (`batch_size` per call)."""

    expression = "relu(sum_c(softmax_c(S_masked) * A))"
    projected = "softmax_c(S_masked) * A"


class AblationCAM(BaseCAM):
    """Ablation-CAM: relative score drop when each channel is zeroed (`batch_size` per call)."""

    expression = "relu(sum_c((S - S_ablated) / S * A))"
    projected = "(S - S_ablated) / S * A"

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        ablation_layer: AblationLayer | None = None,
        batch_size: int = 32,
        ratio_channels_to_ablate: float = 1.0,
    ) -> None:
        super().__init__(model, target_layers, reshape_transform)
        if ratio_channels_to_ablate != 1.0:
            raise CamlangError(
                f"ratio_channels_to_ablate={ratio_channels_to_ablate} is not supported: "
                "camlang ablates every channel",
                hint="leave ratio_channels_to_ablate at 1.0",
            )
        self.ablation_layer = ablation_layer
        self.batch_size = batch_size


__all__ = [
    "AblationCAM",
    "BaseCAM",
    "EigenCAM",
    "EigenGradCAM",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "ScoreCAM",
    "XGradCAM",
]

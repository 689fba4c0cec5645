"""Gradient saliency: vanilla gradient (Simonyan et al. 2014), gradient x input, SmoothGrad.

All three rest on `input_gradient`, the gradient of each image's target logit with respect to
its own pixels. Images in a batch are independent (the model is in eval mode), so one backward
pass of the summed target logits gives every image's gradient at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods._common import (
    Generators,
    check_images,
    check_logits,
    check_positive_int,
    per_image_generators,
    randn_rows,
    resolve_targets,
)

Targets = Tensor | Sequence[int] | None


def _gradient_and_targets(
    module: nn.Module, x: Tensor, targets: Targets, method: str
) -> tuple[Tensor, Tensor]:
    x = check_images(x, method)
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = check_logits(module(xg), x.shape[0], method)
        t = resolve_targets(targets, logits, method)
        score = logits.gather(1, t[:, None]).sum()
        if not score.requires_grad:
            raise CamlangError(
                f"{method}: the model's output does not depend differentiably on its input",
                hint="gradient methods need a differentiable model; is it wrapped in torch.no_grad()?",
            )
        (grad,) = torch.autograd.grad(score, xg)
    return grad.detach(), t


def input_gradient(module: nn.Module, x: Tensor, targets: Targets = None) -> Tensor:
    """Gradient of each image's target logit w.r.t. its input, `[B, C, H, W]` (the `GX` tensor)."""
    return _gradient_and_targets(module, x, targets, "input_gradient")[0]


def vanilla_gradient(module: nn.Module, x: Tensor, targets: Targets = None) -> Tensor:
    """Simonyan et al.'s saliency map `max_c |GX|`, raw (not normalized), `[B, H, W]`."""
    grad, _ = _gradient_and_targets(module, x, targets, "vanilla_gradient")
    return grad.abs().amax(dim=1)


def gradient_x_input(module: nn.Module, x: Tensor, targets: Targets = None) -> Tensor:
    """Signed gradient-times-input map `sum_c GX * X`, raw, `[B, H, W]`."""
    grad, _ = _gradient_and_targets(module, x, targets, "gradient_x_input")
    return (grad * x.detach()).sum(dim=1)


def smoothgrad(
    module: nn.Module,
    x: Tensor,
    targets: Targets = None,
    samples: int = 25,
    noise: float = 0.15,
    generator: Generators = None,
    *,
    chunk_size: int = 32,
) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean over noisy copies of `max_c |GX|`, `[B, H, W]`.

    Each image gets `samples` copies with Gaussian noise of standard deviation
    `noise * (x.max() - x.min())` computed per image, as in the paper's "noise level". The
    targets default to the predicted class of the clean image, so every copy explains the same
    class. Copies of all images are pushed through the model in chunks of `chunk_size` images.

    `generator` is one generator per image (image b's copies draw from `generator[b]` in sample
    order, so a map does not depend on the batch or the chunk size) or one shared generator.
    """
    method = "smoothgrad"
    x = check_images(x, method).detach()
    samples = check_positive_int(samples, "samples", method)
    chunk_size = check_positive_int(chunk_size, "chunk_size", method)
    if not isinstance(noise, int | float) or noise < 0:
        raise CamlangError(f"{method}: `noise` must be a non-negative number, got {noise!r}")
    batch = x.shape[0]
    gens = per_image_generators(generator, batch, method)
    with torch.no_grad():
        t = resolve_targets(targets, check_logits(module(x), batch, method), method)
    span = (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)).reshape(batch, 1, 1, 1)
    sigma = float(noise) * span
    # All noisy copies, laid out sample-major: copy i of image b is row i * B + b.
    total = samples * batch
    acc = torch.zeros(batch, x.shape[2], x.shape[3], dtype=x.dtype, device=x.device)
    for start in range(0, total, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, total), device=x.device)
        image = rows % batch
        base = x[image]
        noisy = base + randn_rows(base.shape[1:], gens, image, x.dtype, x.device) * sigma[image]
        grad, _ = _gradient_and_targets(module, noisy, t[image], method)
        acc.index_add_(0, image, grad.abs().amax(dim=1))
    return acc / samples

"""Projected gradient descent (Madry et al. 2018), L-infinity, in plain torch and seeded."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float,
    step: float | None = None,
    steps: int = 10,
    lower: torch.Tensor | float = 0.0,
    upper: torch.Tensor | float = 1.0,
    generator: torch.Generator,
) -> torch.Tensor:
    """Untargeted L-infinity PGD with a random start; returns adversarial inputs within `eps` of `x`.

    `lower`/`upper` are the valid input range (per channel tensors `[1, C, 1, 1]` for normalized
    inputs). The random start comes from `generator`, so a run is reproducible.
    """
    step = 2.5 * eps / max(steps, 1) if step is None else step
    was_training = model.training
    model.eval()
    lo = torch.as_tensor(lower, dtype=x.dtype)
    hi = torch.as_tensor(upper, dtype=x.dtype)
    noise = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
    adv = torch.max(torch.min(x + noise, hi), lo).detach()
    try:
        for _ in range(steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(adv), labels)
                (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + step * grad.sign()
            adv = torch.max(torch.min(adv, x + eps), x - eps)
            adv = torch.max(torch.min(adv, hi), lo).detach()
    finally:
        model.train(was_training)
    return adv

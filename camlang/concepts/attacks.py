"""Named L-infinity attacks in pixel space, and the features of the examples they produce.

An `Attack` is a value (method, radius, steps), so a detector can record which attack it was
fitted on and refuse to be scored on the same one. Radii are in *pixel* units (`8/255` means 8
grey levels), whatever normalisation the model applies: the attack runs on the `[0, 1]` image
through the normalisation, and the result is normalised again for the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from camlang.concepts.adversarial import pgd_linf
from camlang.concepts.features import Features, forward_with_features
from camlang.errors import CamlangError

Method = Literal["fgsm", "pgd"]


@dataclass(frozen=True)
class Attack:
    """An untargeted L-infinity attack: FGSM (one signed-gradient step) or PGD with a random start."""

    method: Method
    eps: float  # pixel units, [0, 1] scale
    steps: int = 10

    def describe(self) -> str:
        """`PGD L-inf 8/255, 10 steps`."""
        radius = f"{self.eps * 255:.3g}/255"
        return f"FGSM L-inf {radius}" if self.method == "fgsm" else f"PGD L-inf {radius}, {self.steps} steps"


class Normalised(nn.Module):
    """`model((x - mean) / std)`: the model seen from `[0, 1]` pixels."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        # Plain tensors, not buffers: nothing here is state to save, and mypy sees their type.
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        # A new module is in training mode; restoring "its" mode after an attack would put the
        # wrapped model's batch norms into training mode (batch statistics, updated running stats).
        self.train(model.training)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's logits for `[0, 1]` images."""
        return self.model((pixels - self.mean.to(pixels.device)) / self.std.to(pixels.device))


def fgsm_linf(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015) on `[0, 1]` images."""
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
    return (pixels + eps * grad.sign()).clamp(0.0, 1.0).detach()


def run_attack(
    attack: Attack,
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Adversarial `[0, 1]` images for `pixels` under `attack` (model: pixels -> logits)."""
    was_training = model.training
    model.eval()
    try:
        if attack.method == "fgsm":
            return fgsm_linf(model, pixels, labels, eps=attack.eps)
        if attack.method == "pgd":
            return pgd_linf(model, pixels, labels, eps=attack.eps, steps=attack.steps, generator=generator)
    finally:
        model.train(was_training)
    raise CamlangError(f"unknown attack method {attack.method!r}", hint="fgsm or pgd")


@dataclass(frozen=True)
class Attacked:
    """Features of attacked images, and which of them the attack flipped away from the label."""

    attack: Attack
    features: Features
    flipped: torch.Tensor  # [N] bool: prediction on the attacked image differs from the label

    @property
    def success_rate(self) -> float:
        """Share of attacked images whose prediction the attack flipped."""
        return float(self.flipped.float().mean()) if len(self.flipped) else float("nan")


def attack_features(
    attack: Attack,
    model: nn.Module,
    normalisation: tuple[Sequence[float], Sequence[float]],
    pixels: torch.Tensor,
    labels: torch.Tensor,
    layers: Iterable[str],
    *,
    seed: int = 0,
    batch_size: int = 128,
) -> Attacked:
    """Attack `[0, 1]` images in batches and keep the features of one forward pass on each result."""
    wanted = list(dict.fromkeys(layers))
    pixel_model = Normalised(model, *normalisation)
    gen = torch.Generator().manual_seed(seed)
    logits, pooled = [], []
    for start in range(0, len(pixels), batch_size):
        x, y = pixels[start : start + batch_size], labels[start : start + batch_size]
        adv = run_attack(attack, pixel_model, x, y, gen)
        batch_logits, batch_pooled = forward_with_features(pixel_model, adv, wanted, hook_target=model)
        logits.append(batch_logits)
        pooled.append(batch_pooled)
    out = Features(
        torch.cat(logits),
        {k: torch.cat([p[k] for p in pooled]) for k in wanted},
        labels,
        None,
        (),
    )
    return Attacked(attack, out, out.predictions != labels)

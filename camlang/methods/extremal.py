"""Extremal perturbation (Fong, Patrick, Vedaldi, ICCV 2019), preservation game.

For each image and each area `a`, a smooth mask `m` in [0, 1] is optimized so that the
perturbed image `x(m)` keeps the target class score as high as possible while `m` covers an
area of `a`:

    minimize  -f_t(x(m)) + lambda_t * || vecsort(m) - r_a ||^2 / (H W)

- `x(m)` is the blur perturbation: a pyramid of progressively blurred copies of the image,
  `m = 1` selecting the image itself and `m = 0` the most blurred copy, with linear blending
  between neighbouring levels.
- `m` is generated from a low-resolution parameter on a lattice of `stride` pixels by a
  (smooth) max-convolution with a Gaussian kernel of `sigma` pixels, then bilinearly
  upsampled, so masks are smooth blobs; `smooth` is the temperature of the smooth max
  (0 = max).
- `r_a` is the sorted reference mask with `(1 - a) H W` zeros then `a H W` ones; the weight
  `lambda_t` grows geometrically from `reg_weight` to `reg_weight * reg_growth` during the run,
  so the area constraint is nearly hard at the end.

The mask parameter is optimized with Adam (the paper uses SGD with momentum; Adam makes one
learning rate work across models whose logits have very different gradient scales) and
clamped to [0, 1] after each step. Images and areas are optimized together as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods._common import (
    Progress,
    batched_logits,
    check_images,
    check_logits,
    check_positive_int,
    resolve_targets,
)

Targets = Tensor | Sequence[int] | None


@dataclass(frozen=True)
class ExtremalResult:
    """Extremal masks and their summary.

    `masks [B, A, H, W]` in [0, 1], one per area in `areas`; `map [B, H, W]` is their sum over
    areas, the summary the paper shows for several areas (with one area it is that mask).
    `scores [B, A]` is the target logit of each final perturbed image and `forward_passes` the
    number of images pushed through the model (each optimization step counts every mask).
    """

    map: Tensor
    masks: Tensor
    areas: tuple[float, ...]
    scores: Tensor
    forward_passes: int


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding (radius capped by the image size)."""
    if sigma <= 0:
        return x
    radius = min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x
    d = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(d**2) / (2 * sigma**2))
    k = k / k.sum()
    channels = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def blur_pyramid(x: Tensor, levels: int, max_blur: float) -> Tensor:
    """`[L, B, C, H, W]`: level 0 is `x`, level `L - 1` is blurred with sigma `max_blur` pixels."""
    sigmas = [max_blur * i / max(levels - 1, 1) for i in range(levels)]
    return torch.stack([_gaussian_blur(x, s) for s in sigmas])


def perturb(pyramid: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """Blend pyramid levels by `mask [N, 1, H, W]`: 1 keeps the image of row `image[n]`, 0 blurs it most."""
    levels = pyramid.shape[0]
    pos = (1 - mask) * (levels - 1)  # [N, 1, H, W]
    level = torch.arange(levels, dtype=mask.dtype, device=mask.device).reshape(1, levels, 1, 1, 1)
    weights = (1 - (pos[:, None] - level).abs()).clamp(min=0)  # [N, L, 1, H, W]
    return (weights * pyramid[:, image].transpose(0, 1)).sum(dim=1)


class MaskGenerator:
    """Smooth masks from a lattice parameter: Gaussian (smooth-)max-convolution, then upsampling."""

    def __init__(self, height: int, width: int, stride: int, sigma: float, smooth: float) -> None:
        self.height, self.width = height, width
        self.lattice = (math.ceil(height / stride), math.ceil(width / stride))
        s = max(sigma / stride, 1e-6)  # kernel width in lattice cells
        self.radius = max(0, math.ceil(2 * s))
        d = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32)
        self.kernel = torch.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * s**2)).reshape(-1)
        self.smooth = smooth

    def __call__(self, param: Tensor) -> Tensor:
        """`param [N, 1, h, w]` in [0, 1] -> mask `[N, 1, H, W]` in [0, 1]."""
        n, _, h, w = param.shape
        size = 2 * self.radius + 1
        windows = F.unfold(param, size, padding=self.radius)  # [N, K, h*w]
        values = windows * self.kernel.to(param)[None, :, None]
        if self.smooth > 0:
            lattice = (values * torch.softmax(values / self.smooth, dim=1)).sum(dim=1)
        else:
            lattice = values.amax(dim=1)
        lattice = lattice.reshape(n, 1, h, w)
        mask = F.interpolate(lattice, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return mask.clamp(0, 1)


def _check_areas(areas: Sequence[float], method: str) -> tuple[float, ...]:
    try:
        values = tuple(float(a) for a in areas)
    except (TypeError, ValueError):
        raise CamlangError(f"{method}: `areas` must be a list of numbers in (0, 1), got {areas!r}") from None
    if not values or not all(0 < a < 1 for a in values):
        raise CamlangError(f"{method}: `areas` must be a non-empty list of numbers in (0, 1), got {areas!r}")
    return values


@dataclass(frozen=True)
class _Schedule:
    """The resolved optimisation settings of one call (presets, then explicit arguments)."""

    steps: int
    levels: int
    stride: int
    sigma: float
    max_blur: float
    lr: float


def _schedule(
    height: int,
    width: int,
    fast: bool,
    steps: int | None,
    levels: int,
    stride: int | None,
    sigma: float | None,
    max_blur: float | None,
    learning_rate: float | None,
    smooth: float,
) -> _Schedule:
    """Check the arguments and fill in the paper's defaults scaled to the image size."""
    method = "extremal"
    steps = check_positive_int(steps if steps is not None else (80 if fast else 800), "steps", method)
    levels = check_positive_int(levels, "levels", method)
    if smooth < 0:
        raise CamlangError(f"{method}: `smooth` must be >= 0, got {smooth!r}")
    scale = min(height, width) / 224
    if stride is None:
        stride = max(1, round(7 * scale)) * (2 if fast else 1)
    stride = check_positive_int(stride, "stride", method)
    return _Schedule(
        steps=steps,
        levels=levels,
        stride=stride,
        sigma=float(sigma) if sigma is not None else 21.0 * scale,
        max_blur=float(max_blur) if max_blur is not None else 20.0 * scale,
        lr=float(learning_rate) if learning_rate is not None else (0.05 if fast else 0.01),
    )


def _reference(areas: tuple[float, ...], rows: int, pixels: int, x: Tensor) -> Tensor:
    """The sorted reference masks `r_a`: row n has `a H W` trailing ones for area n mod A."""
    ref = torch.zeros(rows, pixels, dtype=x.dtype, device=x.device)
    for row in range(rows):
        ref[row, pixels - round(areas[row % len(areas)] * pixels) :] = 1.0
    return ref


@dataclass(frozen=True)
class _Game:
    """One batch of the preservation game: which image and class each mask row plays for."""

    module: nn.Module
    pyramid: Tensor
    image: Tensor
    target: Tensor
    gen: MaskGenerator
    ref: Tensor


def _optimise(
    game: _Game,
    param: Tensor,
    sched: _Schedule,
    reg_weight: float,
    reg_growth: float,
    progress: Progress | None,
) -> None:
    """Run Adam on the mask parameter in place, clamping it to [0, 1] after each step."""
    rows = param.shape[0]
    # Adam, written out: importing torch.optim pulls in torch._dynamo, which takes seconds.
    first_moment = torch.zeros_like(param)
    second_moment = torch.zeros_like(param)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    growth = reg_growth ** (1.0 / max(sched.steps - 1, 1))
    weight = reg_weight
    for step in range(sched.steps):
        with torch.enable_grad():
            mask = game.gen(param)
            logits = check_logits(game.module(perturb(game.pyramid, game.image, mask)), rows, "extremal")
            score = logits.gather(1, game.target[:, None]).squeeze(1)
            regul = ((mask.flatten(1).sort(dim=1).values - game.ref) ** 2).mean(dim=1)
            loss = (-score + weight * regul).sum()
            (grad,) = torch.autograd.grad(loss, param)
        with torch.no_grad():
            first_moment.mul_(beta1).add_(grad, alpha=1 - beta1)
            second_moment.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            m_hat = first_moment / (1 - beta1 ** (step + 1))
            v_hat = second_moment / (1 - beta2 ** (step + 1))
            param.sub_(sched.lr * m_hat / (v_hat.sqrt() + eps)).clamp_(0, 1)
        weight *= growth
        if progress is not None:
            progress(step + 1, sched.steps)


def extremal_perturbation(
    module: nn.Module,
    x: Tensor,
    targets: Targets = None,
    areas: Sequence[float] = (0.1,),
    steps: int | None = None,
    smooth: float = 0.0,
    learning_rate: float | None = None,
    fast: bool = False,
    *,
    stride: int | None = None,
    sigma: float | None = None,
    max_blur: float | None = None,
    levels: int = 8,
    reg_weight: float = 300.0,
    reg_growth: float = 16.0,
    progress: Progress | None = None,
) -> ExtremalResult:
    """Extremal perturbation masks for each image's target class, one per area.

    Defaults follow the paper at 224 x 224: 800 `steps`, a mask lattice `stride` of 7 pixels,
    a mask kernel `sigma` of 21 pixels and a blur pyramid of 8 `levels` up to `max_blur` 20
    pixels (all scaled with min(H, W) / 224 for other sizes), learning rate 0.01. `fast=True`
    is for CI and demos: 80 steps, a lattice twice as coarse and learning rate 0.05; any
    explicit argument wins over both presets.
    """
    method = "extremal"
    x = check_images(x, method).detach()
    area_t = _check_areas(areas, method)
    batch, _, height, width = x.shape
    sched = _schedule(height, width, fast, steps, levels, stride, sigma, max_blur, learning_rate, smooth)

    with torch.no_grad():
        t = resolve_targets(targets, check_logits(module(x), batch, method), method)
        pyramid = blur_pyramid(x, sched.levels, sched.max_blur)
    n_areas = len(area_t)
    image = torch.arange(batch, device=x.device).repeat_interleave(n_areas)  # row n -> image n // A
    target = t[image]
    gen = MaskGenerator(height, width, sched.stride, sched.sigma, smooth)
    param = torch.full((batch * n_areas, 1, *gen.lattice), 0.5, dtype=x.dtype, device=x.device)
    param.requires_grad_(True)
    ref = _reference(area_t, batch * n_areas, height * width, x)
    game = _Game(module, pyramid, image, target, gen, ref)
    _optimise(game, param, sched, reg_weight, reg_growth, progress)
    with torch.no_grad():
        mask = gen(param)
        final = batched_logits(module, perturb(pyramid, image, mask), batch * n_areas, method)
    masks = mask.detach().reshape(batch, n_areas, height, width)
    scores = final.gather(1, target[:, None]).reshape(batch, n_areas)
    forward_passes = batch + (sched.steps + 1) * batch * n_areas
    return ExtremalResult(masks.sum(dim=1), masks, area_t, scores, forward_passes)


class ExtremalOptions(TypedDict, total=False):
    """`extremal_perturbation`'s keyword-only options, for `extremal_map`."""

    stride: int | None
    sigma: float | None
    max_blur: float | None
    levels: int
    reg_weight: float
    reg_growth: float
    progress: Progress | None


def extremal_map(
    module: nn.Module,
    x: Tensor,
    targets: Targets = None,
    areas: Sequence[float] = (0.1,),
    steps: int | None = None,
    smooth: float = 0.0,
    learning_rate: float | None = None,
    fast: bool = False,
    **options: Unpack[ExtremalOptions],
) -> Tensor:
    """`extremal_perturbation(...).map`: the sum over areas of the masks, `[B, H, W]`."""
    return extremal_perturbation(
        module,
        x,
        targets,
        areas,
        steps,
        smooth,
        learning_rate,
        fast,
        **options,
    ).map

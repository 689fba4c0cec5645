"""Robustness of a saliency method: stability, max-sensitivity, flip and shift equivariance.

These metrics take `cam_fn(x [N, C, H, W], targets [N]) -> L [N, H, W]` (normalised maps) instead
of fixed maps, because they re-run the method on perturbed inputs. All perturbed inputs of a
metric go to `cam_fn` together, in chunks of at most `chunk_size` images; `CallCounter` counts
`cam_fn` calls and images. Random draws come from `generator` (a fresh one seeded 0 when None).
"""

from __future__ import annotations

from typing import Literal

import torch

from camlang.errors import CamlangError
from camlang.metrics._common import CallCounter, CamFn, check_chunk_size, check_images, check_targets
from camlang.metrics.transforms import hflip, shift, shift_valid_mask


def run_cam(
    cam_fn: CamFn, x: torch.Tensor, targets: torch.Tensor, chunk_size: int, counter: CallCounter | None
) -> torch.Tensor:
    """Maps [N, H, W] of `cam_fn` on `x` [N, C, H, W], chunked; checks the returned shape."""
    h, w = x.shape[-2:]
    outs = []
    for start in range(0, x.shape[0], chunk_size):
        part = x[start : start + chunk_size]
        maps = cam_fn(part, targets[start : start + chunk_size])
        if counter is not None:
            counter.add(part.shape[0])
        if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (part.shape[0], h, w):
            got = list(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise CamlangError(
                f"the saliency method must return maps [N, H, W] = {[part.shape[0], h, w]}, got {got}"
            )
        outs.append(maps.detach().float().cpu())
    return torch.cat(outs)


def _prepare(x: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> None:
    check_images(x)
    check_targets(targets, x.shape[0])
    check_chunk_size(chunk_size)


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise CamlangError(f"{name} must be a positive integer, got {value!r}")


def stability(
    cam_fn: CamFn,
    x: torch.Tensor,
    targets: torch.Tensor,
    std: float = 0.05,
    generator: torch.Generator | None = None,
    samples: int = 1,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """Float [B]: mean over `samples` draws of `mean |cam(x + N(0, std^2)) - cam(x)|`. Lower is better."""
    _prepare(x, targets, chunk_size)
    _positive_int("samples", samples)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    eps = torch.randn((samples, *x.shape), generator=gen, dtype=x.dtype).to(x.device)
    batch = torch.cat([x, (x.unsqueeze(0) + std * eps).flatten(0, 1)])
    maps = run_cam(cam_fn, batch, targets.repeat(samples + 1), chunk_size, counter)
    b = x.shape[0]
    base, noisy = maps[:b], maps[b:].view(samples, b, *maps.shape[1:])
    return (noisy - base).abs().mean(dim=(-2, -1)).mean(dim=0)


def max_sensitivity(
    cam_fn: CamFn,
    x: torch.Tensor,
    targets: torch.Tensor,
    radius: float = 0.02,
    samples: int = 10,
    generator: torch.Generator | None = None,
    norm: Literal["fro", "mean_abs"] = "fro",
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """Float [B]: Monte-Carlo max-sensitivity (Yeh et al. 2019). Lower is better.

    `max_{s < samples} ||cam(x + d_s) - cam(x)||` with `d_s` uniform in the L-infinity ball of
    `radius` (the estimator Captum's `sensitivity_max` uses). `norm="fro"` is the Frobenius norm
    of the map difference; `norm="mean_abs"` its mean absolute value.
    """
    _prepare(x, targets, chunk_size)
    _positive_int("samples", samples)
    if norm not in ("fro", "mean_abs"):
        raise CamlangError(f"max_sensitivity norm must be 'fro' or 'mean_abs', got {norm!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    u = torch.rand((samples, *x.shape), generator=gen, dtype=x.dtype).to(x.device)
    batch = torch.cat([x, (x.unsqueeze(0) + radius * (2 * u - 1)).flatten(0, 1)])
    maps = run_cam(cam_fn, batch, targets.repeat(samples + 1), chunk_size, counter)
    b = x.shape[0]
    diff = maps[b:].view(samples, b, *maps.shape[1:]) - maps[:b]
    if norm == "fro":
        size = diff.flatten(-2).norm(dim=-1)
    else:
        size = diff.abs().mean(dim=(-2, -1))
    return size.max(dim=0).values


def equivariance_flip(
    cam_fn: CamFn,
    x: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """Float [B]: `1 - mean |cam(hflip(x)) - hflip(cam(x))|`. Higher is better (1 = equivariant)."""
    _prepare(x, targets, chunk_size)
    b = x.shape[0]
    maps = run_cam(cam_fn, torch.cat([x, hflip(x)]), targets.repeat(2), chunk_size, counter)
    return 1 - (maps[b:] - hflip(maps[:b])).abs().mean(dim=(-2, -1))


def equivariance_shift(
    cam_fn: CamFn,
    x: torch.Tensor,
    targets: torch.Tensor,
    dx: int,
    dy: int,
    fill: Literal["zero", "edge"] = "zero",
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """Float [B]: `1 - mean |cam(shift(x)) - shift(cam(x))|` over the pixels the shift keeps.

    `shift` moves content `dx` pixels right and `dy` down (see `transforms.shift`); pixels the
    shift uncovers are left out of the mean. Higher is better (1 = equivariant).
    """
    _prepare(x, targets, chunk_size)
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        raise CamlangError(
            f"shift ({dx}, {dy}) leaves nothing of a {h}x{w} image", hint="use a smaller shift"
        )
    b = x.shape[0]
    maps = run_cam(cam_fn, torch.cat([x, shift(x, dx, dy, fill)]), targets.repeat(2), chunk_size, counter)
    valid = shift_valid_mask(h, w, dx, dy)
    diff = (maps[b:] - shift(maps[:b], dx, dy)).abs()
    return 1 - (diff * valid).flatten(-2).sum(-1) / valid.sum()

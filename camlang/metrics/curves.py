"""Deletion and insertion curves and their AUC (RISE, Petsiuk et al. 2018).

Pixels are ranked by decreasing saliency (ties: smaller row-major index first). Step `i` of
`steps` affects the top `k_i = floor(i * H * W / steps)` pixels, so the curve has `steps + 1`
points from `k_0 = 0` to `k_steps = H * W`:

- deletion: the top `k_i` pixels of the original are replaced by the fill (default 0);
- insertion: the top `k_i` pixels of the original are pasted onto the fill canvas (default a
  Gaussian blur of the image, sigma 5, as RISE).

Each point is the softmax probability of the target class. The AUC is the trapezoidal rule on an
x-axis normalised to [0, 1]: `(sum(c) - c_0/2 - c_steps/2) / steps`. The endpoint images
(the original and the canvas) do not depend on the map, so they are evaluated once per image
and shared by all M candidate maps; all other images of all candidates go through chunked
model calls together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from camlang.errors import CamlangError
from camlang.metrics._common import (
    CallCounter,
    MaskJob,
    ModelFn,
    check_chunk_size,
    check_images,
    check_maps,
    check_targets,
    drop_candidates,
    evaluate_masked,
    fill_canvas,
    pixel_ranks,
    run_model,
    target_probability,
    with_candidates,
)
from camlang.metrics.transforms import blur

Fill = float | Literal["blur"] | torch.Tensor


@dataclass(frozen=True)
class CurveResult:
    """A deletion or insertion curve: `auc [..., B]`, `curve [..., B, steps+1]`, model images used."""

    auc: torch.Tensor
    curve: torch.Tensor
    images: int


def step_counts(n_pixels: int, steps: int) -> torch.Tensor:
    """Pixels affected at each step: `floor(i * n_pixels / steps)` for i = 0..steps."""
    return torch.div(torch.arange(steps + 1) * n_pixels, steps, rounding_mode="floor")


def trapezoid_auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under `curve [..., n]` sampled evenly on [0, 1]."""
    n = curve.shape[-1] - 1
    return (curve.sum(-1) - 0.5 * (curve[..., 0] + curve[..., -1])) / n


def _canvas(x: torch.Tensor, fill: Fill, blur_sigma: float) -> torch.Tensor:
    if isinstance(fill, str):
        if fill != "blur":
            raise CamlangError(f"fill must be a number, 'blur' or a tensor, got {fill!r}")
        return blur(x, blur_sigma)
    return fill_canvas(x, fill)


def _curve(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    fill: Fill,
    blur_sigma: float,
    chunk_size: int,
    counter: CallCounter | None,
    insertion: bool,
) -> CurveResult:
    check_images(x)
    check_maps(L, x)
    check_targets(targets, x.shape[0])
    check_chunk_size(chunk_size)
    if not isinstance(steps, int) or steps < 1:
        raise CamlangError(f"steps must be a positive integer, got {steps!r}")
    L4, had_m = with_candidates(L)
    m_count, b_count, h, w = L4.shape
    canvas = _canvas(x, fill, blur_sigma)
    ks = step_counts(h * w, steps)
    local = CallCounter()

    # Endpoints: k = 0 and k = H*W give the canvas and the original whatever the map.
    ends = target_probability(
        run_model(model_fn, torch.cat([x, canvas]), chunk_size, local), targets.repeat(2)
    )
    p_orig, p_canvas = ends[:b_count], ends[b_count:]

    inner = steps - 1
    curve = torch.empty(m_count, b_count, steps + 1)
    curve[:, :, 0] = p_canvas if insertion else p_orig
    curve[:, :, -1] = p_orig if insertion else p_canvas
    if inner > 0:
        mm, bb, ii = torch.meshgrid(
            torch.arange(m_count), torch.arange(b_count), torch.arange(1, steps), indexing="ij"
        )
        job = MaskJob(mm.reshape(-1), bb.reshape(-1), ks[ii.reshape(-1)])
        ranks = pixel_ranks(L4)
        inside, outside = (x, canvas) if insertion else (canvas, x)
        logits = evaluate_masked(model_fn, ranks, inside, outside, job, chunk_size, local)
        probs = target_probability(logits, targets[job.b])
        curve[:, :, 1:-1] = probs.view(m_count, b_count, inner)
    if counter is not None:
        counter.calls += local.calls
        counter.images += local.images
    return CurveResult(
        auc=drop_candidates(trapezoid_auc(curve), had_m),
        curve=drop_candidates(curve, had_m),
        images=local.images,
    )


def deletion_auc(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    steps: int = 32,
    fill: Fill = 0.0,
    blur_sigma: float = 5.0,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> CurveResult:
    """Deletion curve and AUC (lower is better): remove the most salient pixels first.

    `x` [B, C, H, W], `L` [B, H, W] or [M, B, H, W], `targets` [B]. `fill` is a number, "blur"
    (Gaussian blur with `blur_sigma`) or a tensor shaped like `x`.
    """
    return _curve(model_fn, x, L, targets, steps, fill, blur_sigma, chunk_size, counter, insertion=False)


def insertion_auc(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    steps: int = 32,
    fill: Fill = "blur",
    blur_sigma: float = 5.0,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> CurveResult:
    """Insertion curve and AUC (higher is better): paste the most salient pixels first onto the canvas.

    Arguments as `deletion_auc`; the canvas defaults to the blurred image.
    """
    return _curve(model_fn, x, L, targets, steps, fill, blur_sigma, chunk_size, counter, insertion=True)

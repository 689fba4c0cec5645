"""Average Drop and Increase in Confidence (Chattopadhyay et al. 2018, Grad-CAM++).

The explanation map of an image is `E = x * L`: the model input multiplied pixel-wise by the
normalised map (broadcast over channels), as in Grad-CAM++ and pytorch-grad-cam's
`CamMultImageConfidenceChange`. `x` is the input as the model consumes it (already normalised),
which is what pytorch-grad-cam multiplies too. `p` is the softmax probability of the target on
`x`, `p_masked` the same on `E`.

- Average Drop per image: `max(0, p - p_masked) / p` (lower is better; the paper reports the
  mean times 100). An image with `p = 0` scores 0.
- Increase in Confidence per image: `p_masked > p` (higher rate is better).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from camlang.errors import CamlangError
from camlang.metrics._common import (
    CallCounter,
    ModelFn,
    check_chunk_size,
    check_images,
    check_maps,
    check_targets,
    drop_candidates,
    run_model,
    run_model_stream,
    target_probability,
    with_candidates,
)


@dataclass(frozen=True)
class ConfidenceResult:
    """`p [B]`, `p_masked [..., B]`, `average_drop [..., B]`, `increase [..., B]`, model images used."""

    p: torch.Tensor
    p_masked: torch.Tensor
    average_drop: torch.Tensor
    increase: torch.Tensor
    images: int


def average_drop(p: torch.Tensor, p_masked: torch.Tensor) -> torch.Tensor:
    """`relu(p - p_masked) / p` elementwise (broadcasting), 0 where `p == 0`."""
    if (p < 0).any() or (p_masked < 0).any():
        raise CamlangError("average drop expects probabilities (non-negative), got negative values")
    drop = torch.relu(p - p_masked)
    return torch.where(p > 0, drop / p.clamp(min=torch.finfo(p.dtype).tiny), torch.zeros_like(drop))


def increase_in_confidence(p: torch.Tensor, p_masked: torch.Tensor) -> torch.Tensor:
    """Bool, elementwise (broadcasting): `p_masked > p`."""
    return p_masked > p


def explanation_probabilities(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(p [B], p_masked [..., B])`: target probabilities on `x` and on `x * L` for every map."""
    check_images(x)
    check_maps(L, x)
    check_targets(targets, x.shape[0])
    check_chunk_size(chunk_size)
    L4, had_m = with_candidates(L)
    m_count = L4.shape[0]
    p = target_probability(run_model(model_fn, x, chunk_size, counter), targets).cpu()

    def products() -> Iterator[torch.Tensor]:
        for m in range(m_count):
            yield x * L4[m].unsqueeze(1).to(device=x.device, dtype=x.dtype)

    logits = run_model_stream(model_fn, products(), chunk_size, counter)
    p_masked = target_probability(logits, targets.repeat(m_count)).cpu().view(m_count, -1)
    return p, drop_candidates(p_masked, had_m)


def confidence_change(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> ConfidenceResult:
    """Average Drop and Increase in Confidence of maps `L` ([B, H, W] or [M, B, H, W]) in one pass."""
    local = CallCounter()
    p, p_masked = explanation_probabilities(model_fn, x, L, targets, chunk_size, local)
    if counter is not None:
        counter.calls += local.calls
        counter.images += local.images
    return ConfidenceResult(
        p=p,
        p_masked=p_masked,
        average_drop=average_drop(p, p_masked),
        increase=increase_in_confidence(p, p_masked),
        images=local.images,
    )

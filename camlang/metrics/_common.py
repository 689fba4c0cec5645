"""Shared plumbing for the metric primitives: input checks, chunked model calls, pixel ranks.

Every metric that calls the model goes through `run_model` (or `evaluate_masked`), so the
`chunk_size` cap, the CPU call size (`images_per_call`) and the `CallCounter` bookkeeping live in
one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from camlang.core.call_counter import CallCounter as CallCounter  # re-exported for older imports
from camlang.errors import CamlangError

ModelFn = Callable[[torch.Tensor], torch.Tensor]
"""`model_fn(x [N, C, H, W]) -> logits [N, K]`."""

CamFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`cam_fn(x [N, C, H, W], targets [N]) -> maps [N, H, W]`."""


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Raise a CamlangError unless `x` is a finite float [B, C, H, W] tensor."""
    if not isinstance(x, torch.Tensor):
        raise CamlangError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise CamlangError(
            f"{name} must have shape [B, C, H, W], got {tuple(x.shape)}",
            hint="add a batch dimension with x.unsqueeze(0) for a single image",
        )
    if not x.is_floating_point():
        raise CamlangError(f"{name} must be a float tensor, got dtype {x.dtype}")


def check_maps(L: torch.Tensor, x: torch.Tensor, name: str = "L") -> None:
    """Raise a CamlangError unless `L` is [B, H, W] or [M, B, H, W] matching `x` [B, C, H, W]."""
    if not isinstance(L, torch.Tensor):
        raise CamlangError(f"{name} must be a torch.Tensor, got {type(L).__name__}")
    b, _, h, w = x.shape
    if L.dim() not in (3, 4) or tuple(L.shape[-3:]) != (b, h, w):
        raise CamlangError(
            f"saliency maps {name} must have shape [B, H, W] = {[b, h, w]} or [M, B, H, W], "
            f"got {list(L.shape)}",
            hint="upsample the maps to the input resolution first",
        )
    if not torch.isfinite(L).all():
        raise CamlangError(f"saliency maps {name} contain NaN or infinite values")


def check_targets(targets: torch.Tensor, batch: int) -> None:
    """Raise a CamlangError unless `targets` is an integer tensor of shape [batch]."""
    if not isinstance(targets, torch.Tensor) or targets.shape != (batch,):
        shape = list(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise CamlangError(f"targets must be a LongTensor of shape [{batch}], got {shape}")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise CamlangError(f"targets must hold integer class indices, got dtype {targets.dtype}")


#: On a CPU a model call on a large batch is slower per image than several small calls, because the
#: activations of a large batch no longer fit in the caches. CPU calls are cut to the largest power
#: of two of images that stays within this many input values. `benchmarks/bench_call_size.py`
#: measures images per second by call size: on the 2-core CI machine the best sizes were about 8
#: images for the demo CNN at 64x64 (rule: 8), 8-32 for the CIFAR-10 ResNet-20 at 32x32 (rule: 32)
#: and 2-4 for the ImageNet MobileNetV2 at 224x224 (rule: 2), and 256-image calls were 1.3-2x slower.
CPU_CALL_VALUES = 131_072
#: Fewer than two images per call leaves the second intra-op thread idle on the large models.
MIN_CPU_CALL = 2


def images_per_call(x: torch.Tensor, cap: int) -> int:
    """Images per model call for inputs shaped like `x [B, ...]`: `cap` off the CPU; on a CPU, the
    largest power of two within `CPU_CALL_VALUES` input values, at least `MIN_CPU_CALL`, at most
    `cap`.

    Depends only on the shape and device, so every worker of a run cuts its calls the same way.
    """
    if x.device.type != "cpu" or x.dim() == 0:
        return cap
    fits = CPU_CALL_VALUES // max(1, math.prod(x.shape[1:]))
    power = 1 << (fits.bit_length() - 1) if fits >= 1 else 1
    return max(1, min(cap, max(MIN_CPU_CALL, power)))


def check_chunk_size(chunk_size: int) -> None:
    """Raise a CamlangError unless `chunk_size` is a positive integer."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise CamlangError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def with_candidates(L: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """View `L` as [M, B, H, W]; the flag says whether a candidate dimension was given."""
    return (L, True) if L.dim() == 4 else (L.unsqueeze(0), False)


def drop_candidates(t: torch.Tensor, had_candidates: bool) -> torch.Tensor:
    """Undo `with_candidates` on a result whose first dimension is M."""
    return t if had_candidates else t.squeeze(0)


def run_model(
    model_fn: ModelFn, x: torch.Tensor, chunk_size: int, counter: CallCounter | None
) -> torch.Tensor:
    """Evaluate `model_fn` on `x` in chunks of at most `chunk_size` images, without gradients
    (fewer per call on a CPU, see `images_per_call`)."""
    outs = []
    chunk_size = images_per_call(x, chunk_size)
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            part = x[start : start + chunk_size]
            logits = model_fn(part)
            if counter is not None:
                counter.add(part.shape[0])
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != part.shape[0]:
                got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise CamlangError(
                    f"the model must return logits of shape [N, K] for N={part.shape[0]} images, got {got}"
                )
            outs.append(logits.float())
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def run_model_stream(
    model_fn: ModelFn, batches: Iterable[torch.Tensor], chunk_size: int, counter: CallCounter | None
) -> torch.Tensor:
    """Like `run_model`, for images produced piecewise; regroups them into full chunks."""
    outs: list[torch.Tensor] = []
    buf: list[torch.Tensor] = []
    size = 0
    for part in batches:
        buf.append(part)
        size += part.shape[0]
        if size >= chunk_size:
            whole = torch.cat(buf)
            full = (whole.shape[0] // chunk_size) * chunk_size
            outs.append(run_model(model_fn, whole[:full], chunk_size, counter))
            buf, size = [whole[full:]], whole.shape[0] - full
    if size:
        outs.append(run_model(model_fn, torch.cat(buf), chunk_size, counter))
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def target_probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax probability of `targets[n]` in row `n` of `logits`."""
    check_class_range(logits, targets)
    return torch.softmax(logits, dim=-1).gather(1, targets.view(-1, 1).to(logits.device)).squeeze(1)


def check_class_range(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise a CamlangError when a target index is outside the model's K classes."""
    k = logits.shape[1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= k):
        raise CamlangError(
            f"target class {int(targets.max()) if int(targets.max()) >= k else int(targets.min())} "
            f"is outside the model's {k} classes"
        )


def pixel_ranks(L: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel in decreasing saliency: 0 = most salient.

    `L` is [..., H, W]; the result is a long tensor of the same shape. Ties are broken by the
    flattened (row-major) pixel index, smaller index first, via a stable sort.
    """
    flat = L.reshape(*L.shape[:-2], -1)
    order = torch.argsort(-flat, dim=-1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(flat.shape[-1], device=flat.device).expand_as(order).contiguous())
    return ranks.reshape(L.shape)


def fill_canvas(x: torch.Tensor, fill: float | torch.Tensor, name: str = "fill") -> torch.Tensor:
    """The image the removed pixels are taken from: a constant or a tensor shaped like `x`."""
    if isinstance(fill, torch.Tensor):
        if fill.shape != x.shape:
            raise CamlangError(
                f"{name} tensor must have the shape of x {list(x.shape)}, got {list(fill.shape)}"
            )
        return fill.to(x.dtype)
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        raise CamlangError(f"{name} must be a number or a tensor shaped like x, got {fill!r}")
    return torch.full_like(x, float(fill))


@dataclass(frozen=True)
class MaskJob:
    """Images `where(rank[m, b] < k, inside[b], outside[b])` for the listed (m, b, k) triples."""

    m: torch.Tensor
    b: torch.Tensor
    k: torch.Tensor


def masked_images(
    ranks: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor, job: MaskJob, chunk_size: int
) -> Iterator[torch.Tensor]:
    """Yield the images of `job` chunk by chunk (memory stays at one chunk)."""
    for start in range(0, job.m.shape[0], chunk_size):
        m = job.m[start : start + chunk_size]
        b = job.b[start : start + chunk_size]
        k = job.k[start : start + chunk_size]
        keep = (ranks[m, b] < k.to(ranks.device).view(-1, 1, 1)).unsqueeze(1).to(inside.device)
        yield torch.where(keep, inside[b], outside[b])


def evaluate_masked(
    model_fn: ModelFn,
    ranks: torch.Tensor,
    inside: torch.Tensor,
    outside: torch.Tensor,
    job: MaskJob,
    chunk_size: int,
    counter: CallCounter | None,
) -> torch.Tensor:
    """Logits [n, K] of the images of `job`, in chunked model calls (the images are made one call's
    worth at a time, so on a CPU they are still in the caches when the model reads them)."""
    call = images_per_call(inside, chunk_size)
    return run_model_stream(model_fn, masked_images(ranks, inside, outside, job, call), call, counter)

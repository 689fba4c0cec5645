"""The `RISE` terminal: Randomized Input Sampling for Explanation (Petsiuk et al. 2018) on the
insertion canvas.

`RISE` is an input-resolution map `[1, H, W]`: the mean over `RISE_MASKS` random smooth masks
`M_i` of `p_i * M_i`, divided by the keep probability, where `p_i` is the target's probability
on the image pasted into its own Gaussian blur by the mask, `X * M_i + blur(X) * (1 - M_i)`.
The blur (sigma `RISE_BLUR_SIGMA`) is the canvas of the insertion metric (`insertion_auc`), so
the map measures what insertion rewards: which pixels, pasted onto the blur, restore the class.

The masks follow the paper: a `RISE_GRID x RISE_GRID` grid of cells kept with probability
`RISE_KEEP`, upsampled bilinearly to `(grid + 1)` cells and cropped at a random offset of less
than one cell, so every mask is smooth and shifted. They come from a generator with a fixed seed
(`RISE_SEED`) and depend only on the image size, so an image's `RISE` does not depend on the
batch it is captured in, on the chunking or on the device, and the exported module draws the
same masks.

Cost: `RISE_MASKS` forward passes per image (no backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from camlang.core.call_counter import CallCounter
from camlang.metrics._common import images_per_call
from camlang.metrics.transforms import blur

#: Masks per image (the paper uses 4,000 on ImageNet; 128 keeps a capture at 128 passes per image).
RISE_MASKS = 128
#: Cells per side of the random grid (8-pixel cells on CIFAR's 32 x 32 images).
RISE_GRID = 4
#: Probability that a cell is kept.
RISE_KEEP = 0.5
#: The canvas's Gaussian blur: the insertion metric's (`camlang.metrics.curves.insertion_auc`).
RISE_BLUR_SIGMA = 5.0
#: The masks' generator seed.
RISE_SEED = 20180613

#: `(model output, batch rows) -> [rows]` target probabilities (or a custom objective's scores).
RowScorer = Callable[[Any, torch.Tensor], torch.Tensor]


@lru_cache(maxsize=8)
def _masks_cpu(h: int, w: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(RISE_SEED)
    cell_h, cell_w = math.ceil(h / RISE_GRID), math.ceil(w / RISE_GRID)
    grid = (torch.rand(RISE_MASKS, 1, RISE_GRID, RISE_GRID, generator=gen) < RISE_KEEP).float()
    up = F.interpolate(
        grid, size=((RISE_GRID + 1) * cell_h, (RISE_GRID + 1) * cell_w), mode="bilinear", align_corners=False
    )
    dy = torch.randint(0, cell_h, (RISE_MASKS,), generator=gen)
    dx = torch.randint(0, cell_w, (RISE_MASKS,), generator=gen)
    crops = [up[i, 0, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(RISE_MASKS)]
    return torch.stack(crops).clamp(0, 1)  # bilinear rounding can pass 1 by an ulp


def rise_masks(
    h: int, w: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The `RISE_MASKS` masks for `h x w` images, `[RISE_MASKS, h, w]` in [0, 1] (the same on every
    call, device and run)."""
    return _masks_cpu(int(h), int(w)).to(device=device, dtype=dtype)


def probability_rows(targets: torch.Tensor) -> RowScorer:
    """The target class's softmax probability of each row's image (`rows` names it)."""

    def score(out: object, rows: torch.Tensor) -> torch.Tensor:
        logits = out[0] if isinstance(out, tuple | list) else out
        assert isinstance(logits, torch.Tensor)
        return torch.softmax(logits, dim=1).gather(1, targets[rows][:, None])[:, 0]

    return score


@torch.no_grad()
def rise_maps(
    model: nn.Module,
    x: torch.Tensor,
    score_rows: RowScorer,
    chunk_size: int = 64,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """`RISE [B, 1, H, W]`: each image's probability-weighted mean mask on the insertion canvas.

    `score_rows(output, rows)` gives the score of each masked copy (the target probability for a
    classifier), `rows` naming the image it is a copy of. Copies go through the model
    `chunk_size` at a time (fewer on a CPU, as every capture cuts its calls); each call counts as
    that many passes in `counter`.
    """
    counter = counter or CallCounter()
    x = x.detach()
    batch, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    masks = rise_masks(h, w, x.device, x.dtype)
    canvas = blur(x, RISE_BLUR_SIGMA)
    total = batch * RISE_MASKS
    acc = torch.zeros(batch, h, w, dtype=x.dtype, device=x.device)
    per_call = images_per_call(x, chunk_size)
    for start in range(0, total, per_call):
        flat = torch.arange(start, min(start + per_call, total), device=x.device)
        image, sample = flat // RISE_MASKS, flat % RISE_MASKS
        m = masks[sample][:, None]
        scores = score_rows(model(x[image] * m + canvas[image] * (1 - m)), image)
        counter.add(len(flat))
        acc.index_add_(0, image, scores[:, None, None].to(x.dtype) * masks[sample])
    return (acc / (RISE_MASKS * RISE_KEEP))[:, None]

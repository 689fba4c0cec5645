"""The `GX_smooth` terminal: SmoothGrad's mean input gradient (Smilkov et al. 2017).

`GX_smooth` is the gradient of the target score with respect to the input, averaged over
`SMOOTH_SAMPLES` noisy copies `x + N(0, sigma^2)` with `sigma = SMOOTH_NOISE * (max x - min x)`
per image (the paper's "noise level"). The target of every copy is the clean image's (its class,
or a custom objective's row), so every copy explains the same thing. Like `GX` it is signed and
shaped like the input; `max_c(abs(GX_smooth))` is the map the paper shows.

The noise of an image is drawn from a generator seeded by the image's own values
(`image_seed`), so an image's `GX_smooth` does not depend on the batch it is captured in, on the
chunking or on the device: a race that captures images a round at a time, a resumed run and the
exported module all see the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from camlang.core.call_counter import CallCounter
from camlang.errors import CamlangError
from camlang.metrics._common import images_per_call

#: Noisy copies per image (the paper uses 50 for pictures; 16 keeps a capture near 16 backward
#: passes per image).
SMOOTH_SAMPLES = 16
#: Noise standard deviation as a share of each image's value range (the paper's 10-20%).
SMOOTH_NOISE = 0.15

#: `(model output, batch rows) -> [rows]` scores, as `runtime.capture` passes them.
RowScorer = Callable[[Any, torch.Tensor], torch.Tensor]


def image_seed(image: torch.Tensor) -> int:
    """A seed computed from one image's float32 bit patterns (the same on every device and run).

    Integer sums wrap modulo 2**64 whatever their order, so the seed does not depend on how the
    sum is split across threads.
    """
    bits = image.detach().to(torch.float32).cpu().contiguous().view(torch.int32).reshape(-1).to(torch.int64)
    odd = torch.arange(1, 2 * bits.numel(), 2, dtype=torch.int64)
    return int((bits * odd).sum()) % (1 << 63)


def smooth_noise(x: torch.Tensor, samples: int = SMOOTH_SAMPLES, noise: float = SMOOTH_NOISE) -> torch.Tensor:
    """The noise added to each image's copies, `[B, samples, *x.shape[1:]]` on `x`'s device."""
    out = torch.empty((x.shape[0], samples, *x.shape[1:]), dtype=x.dtype, device=x.device)
    for b in range(x.shape[0]):
        gen = torch.Generator().manual_seed(image_seed(x[b]))
        draw = torch.randn((samples, *x.shape[1:]), generator=gen, dtype=torch.float32)
        span = float(x[b].max() - x[b].min())
        out[b] = (draw * (noise * span)).to(device=x.device, dtype=x.dtype)
    return out


def smooth_input_gradients(
    model: nn.Module,
    x: torch.Tensor,
    score_rows: RowScorer,
    chunk_size: int = 64,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """`GX_smooth [B, Cin, H, W]`: the mean over noisy copies of each image's input gradient.

    `score_rows(output, rows)` gives the target score of each copy, `rows` naming the image it is
    a copy of. Copies go through the model `chunk_size` at a time (fewer on a CPU, as every
    capture cuts its calls); each call counts as that many passes in `counter`.
    """
    counter = counter or CallCounter()
    x = x.detach()
    batch = x.shape[0]
    noise = smooth_noise(x)
    total = batch * SMOOTH_SAMPLES
    acc = torch.zeros_like(x)
    per_call = images_per_call(x, chunk_size)
    for start in range(0, total, per_call):
        flat = torch.arange(start, min(start + per_call, total), device=x.device)
        image, sample = flat // SMOOTH_SAMPLES, flat % SMOOTH_SAMPLES
        noisy = (x[image] + noise[image, sample]).requires_grad_(True)
        with torch.enable_grad():
            scores = score_rows(model(noisy), image)
            if not scores.requires_grad:
                raise CamlangError(
                    "GX_smooth: the model's output does not depend differentiably on its input",
                    hint="GX_smooth needs a differentiable model; is it wrapped in torch.no_grad()?",
                )
            (grad,) = torch.autograd.grad(scores.sum(), noisy)
        counter.add(len(flat))
        acc.index_add_(0, image, grad.detach())
    return acc / SMOOTH_SAMPLES

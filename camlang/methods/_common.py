"""Shared checks and batching helpers for the saliency methods.

Every method takes the model as it consumes `x` (`[B, C, H, W]`, already normalized) and an
optional `LongTensor [B]` of target classes (None = the predicted class). These helpers turn
bad input into `CamlangError`s and batch model calls under a cap on the images per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from camlang.errors import CamlangError

Progress = Callable[[int, int], None]
"""`progress(done, total)`: called after each unit of work by the long-running methods."""


def check_images(x: object, method: str) -> Tensor:
    """Return `x` if it is a floating `[B, C, H, W]` tensor, else raise a `CamlangError`."""
    if not isinstance(x, Tensor):
        raise CamlangError(
            f"{method}: expected the images as a torch tensor [B, C, H, W], got {type(x).__name__}",
            hint="pass a batch of images, e.g. x.unsqueeze(0) for a single [C, H, W] image",
        )
    if x.dim() != 4 or x.shape[0] == 0:
        raise CamlangError(
            f"{method}: expected images of shape [B, C, H, W] with B >= 1, got shape {tuple(x.shape)}",
            hint="pass a batch of images, e.g. x.unsqueeze(0) for a single [C, H, W] image",
        )
    if not x.is_floating_point():
        raise CamlangError(
            f"{method}: expected floating-point images, got dtype {x.dtype}",
            hint="convert with x.float() and normalize the way the model expects",
        )
    return x


def check_logits(out: object, batch: int, method: str) -> Tensor:
    """Return the model output if it is a `[B, K]` logits tensor, else raise a `CamlangError`."""
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CamlangError(
            f"{method}: the model must return logits of shape [B, K] = [{batch}, K], got {got}",
            hint="wrap the model so that it returns one logits tensor per batch",
        )
    return out


def resolve_targets(targets: Tensor | Sequence[int] | None, logits: Tensor, method: str) -> Tensor:
    """Validate `targets` against `logits [B, K]`; None means each image's predicted class."""
    batch, classes = logits.shape
    if targets is None:
        return logits.detach().argmax(dim=1)
    t = torch.as_tensor(targets, device=logits.device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.dtype in (torch.bool,) or t.is_floating_point() or t.is_complex():
        raise CamlangError(
            f"{method}: targets must be integer class indices, got dtype {t.dtype}",
            hint="pass a LongTensor [B], or None for the predicted class",
        )
    t = t.long()
    if t.shape != (batch,):
        raise CamlangError(
            f"{method}: expected one target per image ({batch}), got shape {tuple(t.shape)}",
            hint="pass a LongTensor [B], or None for the predicted class",
        )
    bad = (t < 0) | (t >= classes)
    if bool(bad.any()):
        raise CamlangError(
            f"{method}: target class {int(t[bad][0])} is out of range for a model with {classes} classes",
            hint=f"use class indices in 0..{classes - 1}",
        )
    return t


def check_positive_int(value: object, name: str, method: str) -> int:
    """Return `value` as an int if it is a positive integer, else raise a `CamlangError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CamlangError(f"{method}: `{name}` must be a positive integer, got {value!r}")
    return value


@torch.no_grad()
def batched_logits(module: nn.Module, xs: Tensor, chunk_size: int, method: str) -> Tensor:
    """Logits of `module` on `xs [N, C, H, W]`, at most `chunk_size` images per call."""
    outs = []
    for start in range(0, xs.shape[0], chunk_size):
        part = xs[start : start + chunk_size]
        outs.append(check_logits(module(part), part.shape[0], method))
    return torch.cat(outs, dim=0)


def fill_value(fill: float | Tensor, x: Tensor, method: str) -> Tensor:
    """A fill (one number, or one value per channel) as a tensor broadcastable to `x`."""
    f = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    if f.dim() == 0:
        return f.reshape(1, 1, 1, 1)
    if f.dim() == 1 and f.shape[0] == x.shape[1]:
        return f.reshape(1, -1, 1, 1)
    raise CamlangError(
        f"{method}: `fill` must be one number or one value per channel ({x.shape[1]}), "
        f"got shape {tuple(f.shape)}"
    )


Generators = torch.Generator | Sequence[torch.Generator] | None
"""A method's randomness: one generator per image (a list, batch-independent: see
`camlang.core.per_image_rng`), or one generator (or None, torch's global one) shared by all images in
batch order."""


def per_image_generators(generator: Generators, batch: int, method: str) -> list[torch.Generator | None]:
    """`generator` as one entry per image (a shared generator repeated)."""
    if generator is None or isinstance(generator, torch.Generator):
        return [generator] * batch
    gens: list[torch.Generator | None] = list(generator)
    if len(gens) != batch or not all(isinstance(g, torch.Generator) for g in gens):
        raise CamlangError(
            f"{method}: `generator` must be one torch.Generator or a list of one per image ({batch}), "
            f"got {len(gens)} item(s)",
            hint="camlang.core.per_image_rng.image_generators(seed, indices, op) makes one per image",
        )
    return gens


def randn_rows(
    shape: Sequence[int],
    gens: Sequence[torch.Generator | None],
    image: Tensor,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """`[len(image), *shape]` standard normal draws, row r from `gens[image[r]]`, rows in order."""
    rows = [_randn(shape, gens[int(i)], dtype) for i in image.tolist()]
    return torch.stack([r.to(device) for r in rows])


def rand_rows(shape: Sequence[int], gens: Sequence[torch.Generator | None], device: torch.device) -> Tensor:
    """`[len(gens), *shape]` uniform [0, 1) float32 draws, row b from `gens[b]`."""
    rows = []
    for gen in gens:
        gen_device = gen.device if gen is not None else device
        rows.append(torch.rand(tuple(shape), generator=gen, device=gen_device).to(device))
    return torch.stack(rows)


def _randn(shape: Sequence[int], gen: torch.Generator | None, dtype: torch.dtype) -> Tensor:
    device = gen.device if gen is not None else torch.device("cpu")
    return torch.randn(tuple(shape), generator=gen, device=device, dtype=dtype)

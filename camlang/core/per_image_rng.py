"""Per-image randomness: every random draw is keyed to (run seed, image index, op), never to a batch.

A result that uses randomness must not depend on how the images are split into batches, chunks or
workers. So no code draws from a generator that lives across images. Instead each image gets its
own generator, seeded from a stable hash of the run seed, the image's index in its original
dataset (`Batch.indices`) and a short name of the op that draws (plus any per-call salt, such as
the op's own `seed` argument or a repetition number).

The hash is blake2b, so keys are the same in every process and on every machine (Python's
`hash()` is salted per process and must never be used for this).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "image_generator",
    "image_generators",
    "image_seed",
    "per_image_normal",
    "per_image_randint",
    "per_image_uniform",
]


def image_seed(run_seed: int, image_index: int, op: str, *salt: int | str) -> int:
    """A 63-bit seed derived from the run seed, one image's dataset index, an op name and a salt."""
    text = ":".join(str(part) for part in (int(run_seed), int(image_index), op, *salt))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def image_generator(run_seed: int, image_index: int, op: str, *salt: int | str) -> torch.Generator:
    """A fresh CPU generator for one image and one op (see `image_seed`)."""
    return torch.Generator(device="cpu").manual_seed(image_seed(run_seed, image_index, op, *salt))


def image_generators(
    run_seed: int, indices: torch.Tensor | Sequence[int], op: str, *salt: int | str
) -> list[torch.Generator]:
    """One fresh generator per image (see `image_generator`), in the order of `indices`.

    A method that draws several times per image (rounds, samples) keeps drawing from its image's
    generator, so the k-th draw of an image is the same whatever else shares its batch.
    """
    return [image_generator(run_seed, i, op, *salt) for i in _indices(indices)]


def _indices(indices: torch.Tensor | Sequence[int]) -> list[int]:
    if isinstance(indices, torch.Tensor):
        return [int(i) for i in indices.reshape(-1).tolist()]
    return [int(i) for i in indices]


def per_image_normal(
    run_seed: int,
    indices: torch.Tensor | Sequence[int],
    op: str,
    shape: Sequence[int],
    *salt: int | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise `[len(indices), *shape]`, row i drawn from image i's own generator."""
    return _per_image_draws(torch.randn, run_seed, indices, op, shape, salt, dtype).to(device)


def per_image_uniform(
    run_seed: int,
    indices: torch.Tensor | Sequence[int],
    op: str,
    shape: Sequence[int],
    *salt: int | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform `[0, 1)` noise `[len(indices), *shape]`, row i drawn from image i's own generator."""
    return _per_image_draws(torch.rand, run_seed, indices, op, shape, salt, dtype).to(device)


def per_image_randint(
    run_seed: int,
    indices: torch.Tensor | Sequence[int],
    op: str,
    high: int,
    shape: Sequence[int],
    *salt: int | str,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Integers in `[0, high)` `[len(indices), *shape]`, row i drawn from image i's own generator."""
    rows = [
        torch.randint(high, tuple(shape), generator=image_generator(run_seed, i, op, *salt))
        for i in _indices(indices)
    ]
    return _stack(rows, shape, torch.int64).to(device)


def _per_image_draws(
    draw: Callable[..., torch.Tensor],
    run_seed: int,
    indices: torch.Tensor | Sequence[int],
    op: str,
    shape: Sequence[int],
    salt: tuple[int | str, ...],
    dtype: torch.dtype,
) -> torch.Tensor:
    """``draw(shape, generator=..., dtype=...)`` once per image, from that image's own generator."""
    rows = [
        draw(tuple(shape), generator=image_generator(run_seed, i, op, *salt), dtype=dtype)
        for i in _indices(indices)
    ]
    return _stack(rows, shape, dtype)


def _stack(rows: list[torch.Tensor], shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    if not rows:
        return torch.empty((0, *tuple(shape)), dtype=dtype)
    return torch.stack(rows)

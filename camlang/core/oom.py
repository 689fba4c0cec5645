"""Out of memory on a large call: retry it in smaller pieces, or say which size to use.

Every result camlang computes per image is independent of how the images are batched
(`camlang.core.per_image_rng`), so a call over N images can be cut into smaller calls and the
pieces joined without changing a number. `split_on_oom` does that when a call runs out of memory:
it halves the call size until the call fits, keeps the size that worked for the rest, and gives
up with `OutOfMemory` (carrying a size to suggest) when even `min_size` images do not fit.

Out of memory is recognised by its message (CUDA's `OutOfMemoryError`, the CPU allocator's
RuntimeError, Python's MemoryError), so this leaf needs no torch import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["OutOfMemory", "is_out_of_memory", "split_on_oom"]

T = TypeVar("T")

_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory", "failed to allocate")


def is_out_of_memory(err: BaseException) -> bool:
    """Did `err` come from running out of (GPU or CPU) memory?"""
    if isinstance(err, MemoryError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    text = str(err).lower()
    return type(err).__name__ == "OutOfMemoryError" or any(m in text for m in _MESSAGES)


class OutOfMemory(Exception):
    """Even a call of `tried` images ran out of memory; `suggest` is the size to ask the user for
    (the caller words it as a `CamlangError`)."""

    def __init__(self, tried: int, suggest: int, cause: BaseException) -> None:
        super().__init__(f"out of memory on a call of {tried} image(s): {cause}")
        self.tried = tried
        self.suggest = suggest


def split_on_oom(
    call: Callable[[int, int], T],
    count: int,
    size: int,
    join: Callable[[list[T]], T],
    min_size: int = 1,
    release: Callable[[], None] | None = None,
) -> tuple[T, int]:
    """`call(start, stop)` over images [0, count) in calls of at most `size`, joined in order.

    When a call runs out of memory, `release()` (e.g. `torch.cuda.empty_cache`) runs and the same
    images are tried again in calls half as large. Returns the joined result and the size that
    worked (pass it to the next batch). Raises `OutOfMemory` when `min_size` images do not fit;
    other errors pass through.
    """
    asked = max(1, size)
    size = max(1, min(size, count)) if count else asked
    halved = False
    parts: list[T] = []
    start = 0
    while start < count:
        stop = min(count, start + size)
        try:
            parts.append(call(start, stop))
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if release is not None:
                release()
            if size <= min_size:
                raise OutOfMemory(size, max(1, size // 2), err) from err
            size = max(min_size, size // 2)
            halved = True
            continue
        start = stop
    return join(parts), (size if halved else asked)

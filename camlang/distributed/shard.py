"""Sharding a data set over ranks by fixed batches of image positions.

The data set's positions are cut into consecutive batches of `batch_size` (the same cut as one
process makes), and batch j goes to rank `j % world_size`. Every image is therefore scored in the
same batch, with the same neighbours, whatever the number of workers; only the process differs.
Per-image results are keyed by `Batch.indices` (the image's index in the original data set), so
rank 0 can put them back in position order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    """One batch of consecutive positions `[start, stop)` of a data set view."""

    number: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def shard_batches(count: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[Shard]:
    """The batches of a `count`-image data set that `rank` of `world_size` scores."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    starts = range(0, count, batch_size)
    return [
        Shard(j, start, min(start + batch_size, count))
        for j, start in enumerate(starts)
        if j % world_size == rank
    ]

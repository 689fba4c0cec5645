"""One synthesis on several workers: scoring sharded over images, every decision taken together.

Every rank runs the same synthesis (enumeration, deduplication, race, comparison) on the same
data, so each holds the same candidates in the same order. The expensive parts are split: the
captures deal their batches over the ranks and gather them (`scoring.capture_split`), and a
scoring call `candidates x images` gives each rank a contiguous share of the images, and one
all-gather puts the per-image values back together, in image order, on every rank. Every
statistic (racing's paired bounds, successive halving, means, bootstrap intervals) is then the
same arithmetic on the same full matrix as in one process, so every rank takes the same decision
without being told.

What is not a function of the data is the clock. A time-limit decision ("stop the search",
"how many finalists fit") is taken on rank 0 and broadcast at the same point of the code on
every rank (`agree`, `stop_check`); no rank reads its own clock for a decision.

With one process (`Dist` of world size 1, or none) every method is the plain local call: no
process group and no copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from camlang.core.call_counter import CallCounter
from camlang.distributed.context import Dist
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.synth.racing import StopSearch

T = TypeVar("T")

ScoreCall = Callable[[list[Node], list[int]], torch.Tensor]
"""`scorer(nodes, images) -> [len(nodes), len(images)]` metric values (a `Scorer`)."""


def image_share(images: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The contiguous part of `images` that `rank` scores (sizes differ by at most one)."""
    n = len(images)
    return list(images[rank * n // world_size : (rank + 1) * n // world_size])


class SynthGroup:
    """The workers one synthesis runs on (`dist`: a `camlang.distributed.Dist`, or None for one)."""

    def __init__(self, dist: Dist | None = None) -> None:
        self.dist = dist
        self.rank = 0 if dist is None else int(dist.rank)
        self.world_size = 1 if dist is None else int(dist.world_size)

    def _collective(self) -> Dist | None:
        """The process group to talk to, or None in one process (where every call is local)."""
        return self.dist if self.distributed else None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank whose clock decides, that prints progress and builds the report."""
        return self.rank == 0

    def agree(self, value: T) -> T:
        """Rank 0's `value` on every rank (a decision that depends on rank 0's clock)."""
        dist = self._collective()
        return value if dist is None else dist.broadcast(value)

    def all_gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order, on every rank (`[value]` in one process)."""
        dist = self._collective()
        return [value] if dist is None else dist.all_gather(value)

    def stop_check(self, check: Callable[[], None], timed: bool) -> Callable[[], None]:
        """`check` (raises `StopSearch`) as one decision of every rank.

        Untimed checks (the forward-pass budget) read counters every rank keeps equal, so each
        rank runs its own; a timed one runs on rank 0, and every rank raises its verdict.
        """
        dist = self._collective()
        if dist is None or not timed:
            return check

        def together() -> None:
            reason: str | None = None
            if self.is_main:
                try:
                    check()
                except StopSearch as stop:
                    reason = str(stop) or "limit"
            reason = dist.broadcast(reason)
            if reason is not None:
                raise StopSearch(reason)

        return together

    def score(
        self, scorer: ScoreCall, nodes: list[Node], images: list[int], counter: CallCounter
    ) -> torch.Tensor:
        """`scorer(nodes, images)`, each rank scoring its share of `images`; the full matrix on all.

        The model passes every rank made are added to every rank's `counter`, so budgets and the
        report count the whole run's passes, as one process would.
        """
        dist = self._collective()
        if dist is None or not images:
            return scorer(nodes, images)
        mine = image_share(images, self.rank, self.world_size)
        before = counter.images
        got = scorer(nodes, mine) if mine else None
        passes = counter.images - before
        parts = dist.all_gather((got, passes))
        counter.images = before + sum(int(p) for _, p in parts)
        return torch.cat([values for values, _ in parts if values is not None], dim=1)

    def check_same(self, what: str, text: str) -> None:
        """An internal error unless every rank holds the same `text` (e.g. the candidate list)."""
        dist = self._collective()
        if dist is None:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        if dist.broadcast(digest) != digest:
            raise CamlangError(
                f"internal error, please report: worker {self.rank} computed a different {what} than rank 0"
            )

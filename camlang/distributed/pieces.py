"""The early stop of a query whose pieces are dealt over ranks, through the process group's store.

Every rank of a run that works on the same query gets a `StorePieceShare` over the same key prefix
of the process group's own key-value store (`torch.distributed`'s default store, the c10d TCPStore
the launcher's rendezvous set up). A rank that replays a counterexample for piece n takes a
ticket k from the counter `announcements`, sets `found/<k>` to n and then bumps the counter `found`;
the others poll that counter between pieces (one small round trip, ~20 us on localhost) and read
the `found/<k>` keys only once it is non-zero.
There is no collective here, so no rank ever waits for another: the ranks meet again only at the
check statement's gather (camlang/run/check.py), where `camlang.smt.pieces.combine`
merges their partial verdicts on rank 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch.distributed is imported only when a run is distributed
    from torch.distributed import Store

__all__ = ["StorePieceShare", "default_store"]


def default_store() -> Store:
    """The default process group's key-value store (the launcher's c10d store)."""
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


class StorePieceShare:
    """One query's `camlang.smt.pieces.PieceShare` over ``store``, under the key prefix ``prefix``."""

    def __init__(self, store: Store, prefix: str, rank: int, world_size: int) -> None:
        import torch.distributed as dist

        self.store = dist.PrefixStore(prefix, store)
        self.rank, self.world_size = rank, world_size
        self._known: int | None = None

    def lowest_found(self) -> int | None:
        if self._known is not None and self._known < 0:
            return self._known  # nothing can be lower than "before the pieces"
        if self.store.add("found", 0) == 0:
            return self._known
        low = self._known
        for key in self._found_keys():
            piece = int(self.store.get(key).decode())
            low = piece if low is None else min(low, piece)
        self._known = low
        return low

    def announce(self, piece: int) -> None:
        index = self.store.add("announcements", 1)
        self.store.set(f"found/{index}", str(piece))
        self.store.add("found", 1)
        self._known = piece if self._known is None else min(self._known, piece)

    def _found_keys(self) -> list[str]:
        count = self.store.add("announcements", 0)
        return [f"found/{i}" for i in range(1, count + 1) if self.store.check([f"found/{i}"])]

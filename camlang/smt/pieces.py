"""The independent pieces of one query, dealt over workers, and how their verdicts combine.

A query's proof search ends in a list of independent pieces: the unsafe output disjuncts left
after the bounds (one MILP each), or, for a saliency query with few undecided ReLUs, the
activation patterns whose gradient stays within delta (a few LPs each). One process decides them
in order and stops at the first replayed counterexample. With N workers (`PieceShare`), piece n
goes to rank n mod N; a rank that replays a counterexample for piece n announces n, and every rank
skips its pieces above the lowest announced one. Pieces below it still run: a lower piece could be
violated too, and one process would have reported that one. So the verdict, and the counterexample,
do not depend on N (docs/scaling.md), and `combine` turns the ranks' partial verdicts into it:

- violated when some rank replayed a counterexample: the one with the lowest piece index (the
  point itself and the PGD attack, which every rank runs before the pieces, count as piece -1),
  ties broken by the lowest rank;
- holds when a rank proved the whole query before dealing (bounds, gradient fixing), or every
  rank proved all of its pieces infeasible;
- unknown otherwise (a timeout, an unrepairable boundary point), with the lowest such rank's reason.

A HiGHS solve cannot be interrupted through scipy, so a rank notices a stop between pieces and
between the repair candidates of one piece, not inside a solve.

With a `PieceMemo` (the run's cache, `camlang run`), every piece proved infeasible is kept as it
is proved, under the digest of its piece list; `--resume` then skips those pieces (their outcome
is `infeasible` with `cached: true`), so an interrupted long property continues where it was
instead of starting over. Only `infeasible` is kept: an exact MILP or LP proof for that piece
list, which the same property (the cache section is keyed by its definition and its
network's weights) proves again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from camlang.smt.verdict import Verdict

__all__ = ["PieceMemo", "PieceShare", "Pieces", "PieceStopped", "combine", "BEFORE_PIECES"]

T = TypeVar("T")

#: The piece index of a counterexample found before the pieces were dealt (the point, the attack).
BEFORE_PIECES = -1


class PieceShare(Protocol):
    """This rank's view of one query that every rank of the run works on together."""

    rank: int
    world_size: int

    def lowest_found(self) -> int | None:
        """The lowest piece index for which some rank replayed a counterexample, or None."""
        ...

    def announce(self, piece: int) -> None:
        """Tell the other ranks that this rank replayed a counterexample for ``piece``."""
        ...


class PieceMemo(Protocol):
    """The pieces of one query proved infeasible before (a resumed run), and where to keep new ones."""

    def infeasible(self, key: str) -> set[int]:
        """Pieces of the piece list with digest ``key`` proved infeasible earlier."""
        ...

    def keep(self, key: str, piece: int) -> None:
        """Piece ``piece`` of the list ``key`` is proved infeasible (kept at once)."""
        ...


def items_digest(items: Sequence[object]) -> str:
    """A digest of a piece list: every value of its arrays (numpy's repr elides long arrays), its
    nesting and its other items' reprs."""
    digest = hashlib.blake2b(digest_size=6)

    def feed(value: object) -> None:
        if isinstance(value, np.ndarray):
            digest.update(f"array {value.dtype} {value.shape}:".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, list | tuple):
            digest.update(f"{type(value).__name__} {len(value)}(".encode())
            for item in value:
                feed(item)
            digest.update(b")")
        else:
            digest.update(f"{value!r};".encode())

    feed(list(items))
    return digest.hexdigest()


class PieceStopped(Exception):
    """Another rank replayed a counterexample for a lower piece: this piece's result cannot matter."""


class Pieces(Generic[T]):
    """Walk one query's piece list: this rank's pieces, in order, with per-piece stats (`record`,
    which the query's stats show under "pieces" when the list is not empty).

    Without a share (one process) every piece is this rank's and nothing is polled, so the walk is
    the plain loop it replaces."""

    def __init__(
        self,
        share: PieceShare | None,
        kind: str,
        items: Sequence[T],
        memo: PieceMemo | None = None,
    ):
        self.share, self.kind, self.items, self.memo = share, kind, list(items), memo
        key = items_digest(self.items)
        #: the memo's name for this piece list (its kind and items)
        self.memo_key = f"{kind}/{key}"
        self.record: dict[str, Any] = {
            "kind": kind,
            "count": len(self.items),
            "key": key,
            "rank": 0 if share is None else share.rank,
            "world_size": 1 if share is None else share.world_size,
            "outcomes": {},
        }
        #: pieces proved infeasible by an earlier, interrupted run (skipped, not searched again)
        self.known = memo.infeasible(self.memo_key) if memo is not None and self.items else set()
        #: True once this rank skipped pieces because another rank found a lower one violated
        self.stopped_early = False

    def mine(self) -> Iterator[tuple[int, T]]:
        """(piece index, item) for each piece of this rank, stopping at a lower announced piece;
        pieces the memo proved infeasible are noted and not yielded."""
        share = self.share
        for n, item in enumerate(self.items):
            if share is not None and n % share.world_size != share.rank:
                continue
            if self.stopped(n):
                self.note_rest_skipped(n)
                return
            if n in self.known:
                self.record["outcomes"][n] = {"outcome": "infeasible", "seconds": 0.0, "cached": True}
                continue
            yield n, item

    def stopped(self, n: int) -> bool:
        """Has another rank replayed a counterexample for a piece below ``n``?"""
        if self.share is None:
            return False
        low = self.share.lowest_found()
        return low is not None and low < n

    def note(self, n: int, outcome: str, started: float) -> None:
        """Record what piece ``n`` came to ("infeasible", "violated", "boundary", "excluded", ...)."""
        out: dict[str, Any] = {"outcome": outcome, "seconds": round(time.monotonic() - started, 4)}
        if isinstance(self.items[n], int):
            out["disjunct"] = self.items[n]  # its index in the property's unsafe disjuncts
        self.record["outcomes"][n] = out
        if outcome == "infeasible" and self.memo is not None:
            self.memo.keep(self.memo_key, n)

    def note_rest_skipped(self, n: int) -> None:
        """Pieces ``n`` and above of this rank are skipped: a lower piece is violated."""
        if not self.stopped_early:
            self.record["stopped_at"] = time.time()  # wall clock: compared across ranks in combine
        self.stopped_early = True
        share = self.share
        step = 1 if share is None else share.world_size
        for m in range(n, len(self.items), step):
            self.record["outcomes"].setdefault(m, {"outcome": "skipped", "seconds": 0.0})

    def found(self, n: int) -> None:
        """Piece ``n`` has a replayed counterexample: tell the other ranks."""
        self.record["found"] = n
        self.record["found_at"] = time.time()
        if self.share is not None:
            self.share.announce(n)


def _piece_of(v: Verdict) -> int:
    rec = v.stats.get("pieces")
    if rec is None or "found" not in rec:
        return BEFORE_PIECES
    return int(rec["found"])


def _dealt(v: Verdict) -> bool:
    rec = v.stats.get("pieces")
    return rec is not None and rec.get("world_size", 1) > 1


def combine(parts: Sequence[Verdict]) -> Verdict:
    """The verdict of one query from every rank's partial verdict (in rank order); see the module
    docs. Its ``seconds`` is the slowest rank's, and ``stats["pieces"]`` merges every rank's
    per-piece outcomes (each with the rank that decided it)."""
    if not parts:
        raise ValueError("no partial verdicts to combine")
    seconds = max(p.seconds for p in parts)
    outcomes: dict[int, dict[str, Any]] = {}
    for rank, part in enumerate(parts):
        rec = part.stats.get("pieces")
        for n, out in (rec or {}).get("outcomes", {}).items():
            if out["outcome"] != "skipped" or int(n) not in outcomes:
                outcomes[int(n)] = {**out, "rank": rank}
    violated = [(_piece_of(p), rank, p) for rank, p in enumerate(parts) if p.status == "violated"]
    keys = {p.stats["pieces"]["key"] for p in parts if _dealt(p) and p.status != "violated"}
    if violated:
        chosen = min(violated, key=lambda t: (t[0], t[1]))[2]
    elif any(p.status == "holds" and not _dealt(p) for p in parts):
        chosen = next(p for p in parts if p.status == "holds" and not _dealt(p))
    elif len(keys) > 1:
        first = parts[0]
        why = (
            "unknown: the workers dealt different piece lists (a time limit in the gradient fixing hit "
            "them differently); run this property with one worker"
        )
        return replace(first, status="unknown", reason=why, seconds=seconds, counterexample=None, replay=None)
    elif all(p.status == "holds" for p in parts):
        chosen = parts[0]
    else:
        chosen = next(p for p in parts if p.status == "unknown")
    stats = dict(chosen.stats)
    if "pieces" in stats:
        merged = dict(stats["pieces"])
        merged.pop("rank", None)
        merged["outcomes"] = {n: outcomes[n] for n in sorted(outcomes)}
        merged["solved"] = sum(o["outcome"] not in ("skipped", "excluded") for o in outcomes.values())
        merged["skipped"] = sum(o["outcome"] == "skipped" for o in outcomes.values())
        found_at = merged.pop("found_at", None)
        merged.pop("stopped_at", None)
        stops = [p.stats["pieces"]["stopped_at"] for p in parts if "stopped_at" in p.stats.get("pieces", {})]
        if found_at is not None and stops:
            # how long the other ranks took to notice the counterexample (finishing a solve in flight)
            merged["stop_latency_s"] = round(max(0.0, max(stops) - found_at), 4)
        stats["pieces"] = merged
    return replace(chosen, seconds=seconds, stats=stats)

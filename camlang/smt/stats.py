"""The diagnostics of one query (`Verdict.stats`), as typed records the stages log as they go.

Every stage of the driver logs frozen records to the query's `StatsLog` at the moment it learns
them, so a timeout or a Ctrl-C in a later stage still reports everything found before it. The
verdict's ``stats`` dict is the log folded in order: each record writes its own keys (the names
below are the ones reports, benchmarks and `camlang.smt.pieces.combine` read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "StatsRecord",
    "StatsLog",
    "QueryShape",
    "FoundBy",
    "BoundsStats",
    "AttackStats",
    "GradientFixingStats",
    "DisjunctsAfterFixing",
    "PatternsWithinDelta",
    "PatternsEnumerated",
    "PiecesDealt",
    "JointSplit",
    "JointSearch",
    "PatternLpSolved",
    "MilpEncoded",
    "CandidateTried",
    "BabStats",
]


class StatsRecord(Protocol):
    """One fact about the query, written into the stats dict under its own keys."""

    def write(self, stats: dict[str, Any]) -> None:
        """Add (or update) this record's keys of ``stats``."""
        ...


class StatsLog:
    """The records logged so far, in order; `as_dict` is what `Verdict.stats` shows."""

    def __init__(self) -> None:
        self._records: list[StatsRecord] = []

    def add(self, record: StatsRecord) -> None:
        """Log ``record``."""
        self._records.append(record)

    def as_dict(self) -> dict[str, Any]:
        """The records folded in order into the stats dict."""
        out: dict[str, Any] = {}
        for record in self._records:
            record.write(out)
        return out


@dataclass(frozen=True)
class QueryShape:
    """The network's size, the number of unsafe disjuncts, and how the work is dealt."""

    neurons: int | None  # None (and ``threads``) for the z3-naive peer, which has no pieces
    disjuncts: int
    threads: str | None = None

    def write(self, stats: dict[str, Any]) -> None:
        if self.neurons is not None:
            stats["neurons"] = self.neurons
        stats["disjuncts"] = self.disjuncts
        if self.threads is not None:
            stats["threads"] = self.threads


@dataclass(frozen=True)
class FoundBy:
    """A counterexample found before the proof search ("the point itself", "attack (PGD)")."""

    what: str

    def write(self, stats: dict[str, Any]) -> None:
        stats["found_by"] = self.what


@dataclass(frozen=True)
class BoundsStats:
    """Interval + CROWN bounds on the box: ReLUs left undecided, disjuncts they cannot exclude."""

    undecided_relus: int
    disjuncts_left: int
    seconds: float

    def write(self, stats: dict[str, Any]) -> None:
        stats["undecided_relus"] = self.undecided_relus
        stats["disjuncts_left_after_bounds"] = self.disjuncts_left
        stats["bounds_seconds"] = self.seconds


@dataclass(frozen=True)
class AttackStats:
    """How long the PGD attack ran."""

    seconds: float

    def write(self, stats: dict[str, Any]) -> None:
        stats["attack_seconds"] = self.seconds


@dataclass(frozen=True)
class GradientFixingStats:
    """ReLU phases fixed by the gradient constraint (per layer); ``note`` when the fixing was
    ignored; the ReLUs undecided afterwards (None when the fixing proved the query)."""

    fixed: tuple[int, ...]
    note: str | None = None
    undecided_after: int | None = None

    def write(self, stats: dict[str, Any]) -> None:
        stats["fixed_by_gradient"] = list(self.fixed)
        if self.note is not None:
            stats["gradient_fixing"] = self.note
        if self.undecided_after is not None:
            stats["undecided_after_gradient"] = self.undecided_after


@dataclass(frozen=True)
class DisjunctsAfterFixing:
    """Disjuncts the bounds still cannot exclude once the gradient fixed some phases."""

    count: int

    def write(self, stats: dict[str, Any]) -> None:
        stats["disjuncts_left_after_gradient_fixing"] = self.count


@dataclass(frozen=True)
class PatternsWithinDelta:
    """The activation patterns whose gradient stays within delta, enumerated directly."""

    count: int

    def write(self, stats: dict[str, Any]) -> None:
        stats["patterns_within_delta"] = self.count


@dataclass(frozen=True)
class PatternsEnumerated:
    """The pattern walk's enumeration: a count, or why it stopped (">= 3 (enumeration stopped...)")."""

    count: int | str

    def write(self, stats: dict[str, Any]) -> None:
        stats["patterns_enumerated"] = self.count


@dataclass(frozen=True)
class PiecesDealt:
    """The piece list being walked (`camlang.smt.pieces.Pieces.record`). The record is the walk's
    own state and fills in as pieces are decided: the stats show it as it was when they were read."""

    record: dict[str, Any]

    def write(self, stats: dict[str, Any]) -> None:
        stats["pieces"] = self.record


@dataclass(frozen=True)
class JointSplit:
    """The joint search split into branches on the phases of ``relus`` (one per rank or more)."""

    relus: tuple[tuple[int, int], ...]
    branches: int

    def write(self, stats: dict[str, Any]) -> None:
        stats["joint_split"] = {
            "relus": [list(r) for r in self.relus],
            "branches": self.branches,
            "note": "the verdict does not depend on the number of workers; the witness may",
        }


@dataclass(frozen=True)
class JointSearch:
    """Every alive disjunct decided in one search."""

    disjuncts: int

    def write(self, stats: dict[str, Any]) -> None:
        stats["joint_disjuncts"] = self.disjuncts


@dataclass(frozen=True)
class PatternLpSolved:
    """One pattern LP solved (counted)."""

    def write(self, stats: dict[str, Any]) -> None:
        stats["pattern_lps"] = stats.get("pattern_lps", 0) + 1


@dataclass(frozen=True)
class MilpEncoded:
    """A back-end encoding with ``binaries`` binaries (the stats keep the largest)."""

    binaries: int

    def write(self, stats: dict[str, Any]) -> None:
        stats["binaries"] = max(stats.get("binaries", 0), self.binaries)


@dataclass(frozen=True)
class CandidateTried:
    """A back-end candidate replayed (counted)."""

    def write(self, stats: dict[str, Any]) -> None:
        stats["candidates"] = stats.get("candidates", 0) + 1


@dataclass(frozen=True)
class BabStats:
    """The branch-and-bound stage: undecided ReLUs after the root's optimised bounds (-1 when the
    stage stopped before them), branches bounded, branches decided by the exact MILP, the deepest
    split, and the stage's time."""

    root_undecided: int
    branches: int
    milp_leaves: int
    depth: int
    seconds: float

    def write(self, stats: dict[str, Any]) -> None:
        stats["bab"] = {
            "root_undecided_relus": self.root_undecided,
            "branches": self.branches,
            "milp_leaves": self.milp_leaves,
            "depth": self.depth,
            "seconds": self.seconds,
        }

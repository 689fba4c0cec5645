"""`camlang.smt.pieces.combine`: the verdict of one query from the ranks' partial verdicts."""

from __future__ import annotations

from typing import Any

from camlang.smt.pieces import combine
from camlang.smt.verdict import Verdict


def part(status: str, rank: int, outcomes: dict[int, str], found: int | None = None, **kw: Any) -> Verdict:
    pieces: dict[str, Any] = {
        "kind": "output disjunct",
        "count": 4,
        "key": kw.pop("key", "k"),
        "rank": rank,
        "world_size": 2,
        "outcomes": {n: {"outcome": o, "seconds": 0.1} for n, o in outcomes.items()},
    }
    if found is not None:
        pieces["found"] = found
        pieces["found_at"] = 100.0
    if "stopped_at" in kw:
        pieces["stopped_at"] = kw.pop("stopped_at")
    stats = {"pieces": pieces, **kw.pop("stats", {})}
    cex = [float(found)] if status == "violated" else None
    return Verdict("p", status, "milp", kw.pop("seconds", 1.0), status, False, cex, None, stats)  # type: ignore[arg-type]


def test_lowest_violated_piece_wins_whatever_rank_found_it() -> None:
    a = part("violated", 0, {0: "infeasible", 2: "violated"}, found=2, seconds=2.0)
    b = part("violated", 1, {1: "violated"}, found=1, seconds=1.0)
    got = combine([a, b])
    assert got.status == "violated" and got.counterexample == [1.0] and got.seconds == 2.0
    assert got.stats["pieces"]["found"] == 1
    assert {n: o["rank"] for n, o in got.stats["pieces"]["outcomes"].items()} == {0: 0, 1: 1, 2: 0}


def test_a_stopped_rank_records_skipped_pieces_and_the_stop_latency() -> None:
    a = part("violated", 0, {0: "violated"}, found=0)
    b = part("unknown", 1, {1: "infeasible", 3: "skipped"}, stopped_at=100.25)
    got = combine([a, b])
    assert got.status == "violated"
    pieces = got.stats["pieces"]
    assert (pieces["solved"], pieces["skipped"], pieces["stop_latency_s"]) == (2, 1, 0.25)


def test_holds_only_when_every_rank_proved_its_pieces() -> None:
    a = part("holds", 0, {0: "infeasible", 2: "infeasible"})
    b = part("holds", 1, {1: "infeasible", 3: "excluded"})
    assert combine([a, b]).status == "holds"
    c = part("unknown", 1, {1: "timeout"})
    got = combine([a, c])
    assert got.status == "unknown" and got.reason == "unknown"


def test_a_proof_before_the_pieces_settles_the_query() -> None:
    bounds = Verdict("p", "holds", "milp", 0.5, "by bounds", True, None, None, {})
    timeout = part("unknown", 1, {1: "timeout"})
    assert combine([timeout, bounds]).status == "holds"


def test_ranks_that_dealt_different_piece_lists_give_unknown() -> None:
    a = part("holds", 0, {0: "infeasible"}, key="k1")
    b = part("holds", 1, {1: "infeasible"}, key="k2")
    got = combine([a, b])
    assert got.status == "unknown" and "different piece lists" in got.reason


def test_one_process_is_unchanged() -> None:
    one = Verdict("p", "holds", "milp", 0.5, "proved", False, None, None, {"pieces": {"outcomes": {}}})
    assert combine([one]).status == "holds"

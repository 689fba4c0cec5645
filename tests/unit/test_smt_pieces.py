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


# --- the joint saliency MILP split into branches (camlang/smt/split.py) ---


def _bounds(lower: list[list[float]], upper: list[list[float]]) -> Any:
    import numpy as np

    from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds

    lo, up = tuple(np.array(v) for v in lower), tuple(np.array(v) for v in upper)
    phase = tuple(np.where(a > 0, ACTIVE, np.where(b <= 0, INACTIVE, UNDECIDED)) for a, b in zip(lo, up))
    return NetBounds(lo, up, phase)


def test_split_picks_the_loosest_undecided_relus_deterministically() -> None:
    from camlang.smt.split import split_relus

    # -l*u: layer 0: 1*1 = 1 (balanced), 0.1*10 = 1 (tie: lower index first), stable; layer 1: 2*3 = 6
    b = _bounds([[-1.0, -0.1, 0.5], [-2.0, -4.0]], [[1.0, 10.0, 2.0], [3.0, -1.0]])
    assert split_relus(b, 1) == []
    assert split_relus(b, 2) == [(1, 0)]
    assert split_relus(b, 3) == split_relus(b, 4) == [(1, 0), (0, 0)]
    assert split_relus(b, 8) == [(1, 0), (0, 0), (0, 1)]
    assert split_relus(b, 64) == [(1, 0), (0, 0), (0, 1)]  # only three are undecided


def test_branches_cover_every_phase_combination_starting_from_the_points_own() -> None:
    from camlang.smt.split import branches, contradicts

    got = branches([(1, 0), (0, 0)], own=[True, False])
    assert got[0] == ((1, 0, True), (0, 0, False))
    assert sorted(got) == sorted(((1, 0, a), (0, 0, c)) for a in (False, True) for c in (False, True))
    b = _bounds([[0.5, -1.0]], [[2.0, 1.0]])  # neuron 0 stable active
    assert contradicts(b, [(0, 0, False)]) and not contradicts(b, [(0, 0, True), (0, 1, False)])


def test_a_fixed_phase_is_encoded_exactly_in_the_milp() -> None:
    import time

    import numpy as np
    import pytest
    import torch

    from camlang.smt.bounds import UNDECIDED, compute_bounds
    from camlang.smt.milp import build_milp, solve_milp
    from camlang.smt.network import extract_layers, to_relu_net
    from camlang.smt.query import GradientConstraint, Query

    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    net = to_relu_net(extract_layers(m, (1, 3)))
    x = np.array([0.5, 0.4, 0.6])
    lo, hi = x - 0.4, x + 0.4
    c = np.eye(3)[0]
    # an unsafe set every output reaches (y_0 - y_1 <= 1000): each branch that meets the box is feasible
    unsafe = ((np.eye(3)[0] - np.eye(3)[1], np.array([1000.0])),)
    q = Query(lo, hi, unsafe, GradientConstraint(c, net.gradient(x, c), 10.0))
    b = compute_bounds(net, lo, hi)
    und = np.flatnonzero(b.phase[0] == UNDECIDED)
    assert len(und) >= 2
    for i in und:
        for active in (False, True):
            out = solve_milp(build_milp(net, b, q, 0, fixed=[(0, int(i), active)]), b, time.monotonic() + 30)
            assert out.status == "feasible" and out.x is not None and out.pattern is not None
            assert bool(out.pattern[0][i]) == active
            z = net.forward(out.x)[1][0][i]
            assert (z >= -1e-7) if active else (z <= 1e-7)
    stable = int(np.flatnonzero(b.phase[0] != UNDECIDED)[0])
    with pytest.raises(ValueError, match="contradicts"):
        build_milp(net, b, q, 0, fixed=[(0, stable, not bool(b.phase[0][stable]))])


class _DictMemo:
    """An in-memory `PieceMemo` (the run's cache keeps the same rows in JSON lines)."""

    def __init__(self) -> None:
        self.kept: dict[str, set[int]] = {}

    def infeasible(self, key: str) -> set[int]:
        return set(self.kept.get(key, ()))

    def keep(self, key: str, piece: int) -> None:
        self.kept.setdefault(key, set()).add(piece)


def test_a_memo_keeps_infeasible_pieces_and_a_second_search_skips_them() -> None:
    from camlang import smt
    from tests.e2e.test_distributed_pieces import X, tied_net

    memo = _DictMemo()
    first = smt.check_robust(tied_net(), X, 0.02, timeout_s=60, memo=memo)
    assert first.status == "holds"
    outcomes = first.stats["pieces"]["outcomes"]
    assert len(outcomes) >= 2 and all(o["outcome"] == "infeasible" for o in outcomes.values())
    (key, kept), *others = memo.kept.items()
    assert not others and kept == set(outcomes)
    # resumed with every piece proved: nothing is searched again, and the verdict is the same
    again = smt.check_robust(tied_net(), X, 0.02, timeout_s=60, memo=memo)
    assert again.status == "holds"
    assert all(o.get("cached") for o in again.stats["pieces"]["outcomes"].values())
    # resumed after the first piece only: the others are searched, the first is not
    partial = _DictMemo()
    partial.kept[key] = {0}
    third = smt.check_robust(tied_net(), X, 0.02, timeout_s=60, memo=partial)
    assert third.status == "holds"
    got = third.stats["pieces"]["outcomes"]
    assert got[0].get("cached") and not any(o.get("cached") for n, o in got.items() if n != 0)
    assert partial.kept[key] == set(outcomes)


def test_a_memo_never_hides_a_violation() -> None:
    """Only infeasible pieces are kept: a violated property is violated again on resume."""
    from camlang import smt
    from tests.e2e.test_distributed_pieces import X, tied_net

    memo = _DictMemo()
    first = smt.check_robust(tied_net(), X, 0.05, timeout_s=60, memo=memo)
    again = smt.check_robust(tied_net(), X, 0.05, timeout_s=60, memo=memo)
    assert first.status == again.status == "violated"
    assert again.replay is not None


def test_piece_lists_that_differ_inside_long_arrays_have_different_digests() -> None:
    """numpy's repr elides the middle of long arrays; the memo's list digest must not."""
    import numpy as np

    from camlang.smt.pieces import items_digest

    a = [[np.zeros(2000)], [np.ones(3)]]
    b = [[np.zeros(2000)], [np.ones(3)]]
    b[0][0][1000] = 1.0
    assert repr(a) == repr(b)
    assert items_digest(a) != items_digest(b)
    assert items_digest(a) == items_digest([[np.zeros(2000)], [np.ones(3)]])
    assert items_digest([0, 1]) != items_digest([(0, 1)])

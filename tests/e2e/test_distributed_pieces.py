"""One query's pieces dealt over two gloo workers (localhost): the verdict and counterexample of
one process, and the early stop through the process group's store."""

from __future__ import annotations

import datetime
import pickle
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camlang import smt
from camlang.smt import driver, patterns
from camlang.smt.pieces import combine
from camlang.smt.verdict import Verdict

X = [0.5, 0.5, 0.5, 0.5]


def tied_net(seed: int = 1) -> torch.nn.Sequential:
    """A 4-16-16-6 ReLU net whose six logits are within 0.3 of each other at `X`. Robustness at
    eps 0.02 holds with 3 output disjuncts left after the bounds; at eps 0.025 the first piece
    searched is infeasible and the second violated; at eps 0.05 the first of 5 is violated."""
    from camlang.models.architectures import build_mlp

    torch.manual_seed(seed)
    net = build_mlp([4, 16, 16, 6])
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
        y = net(torch.tensor([X]))[0]
        net[-1].bias.sub_(y - torch.tensor([0.3, 0.0, 0.1, 0.05, 0.15, 0.2]))
    return net


def one_violated_setup() -> Any:
    """Robustness of `tied_net` at eps 0.02 (3 infeasible disjuncts the bounds cannot drop) as an
    unsafe-set question, plus one reachable disjunct, ``y_0 <= y_0(X) - 0.005``: the first piece
    searched, and the only violated one."""
    net = tied_net()
    setup = smt._setup(net, smt.Robust(X, 0.02), None)
    y0 = float(net(torch.tensor([X]))[0, 0].detach())
    below = (np.eye(1, 6), np.array([y0 - 0.005]))
    query = replace(setup.query, disjuncts=(*setup.query.disjuncts, below))
    return replace(setup, label=None, query=query)


ONE_VIOLATED = 5  # the index of the reachable disjunct in one_violated_setup()


class _SlowSearch:
    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.binaries = inner.binaries

    def solve(self, deadline: float) -> Any:
        time.sleep(self.delay)
        return self.inner.solve(deadline)

    def exclude(self, pattern: Any) -> None:
        self.inner.exclude(pattern)


class _SlowExcept:
    """The MILP back end, with every disjunct but `fast` taking `delay` seconds more."""

    name = "milp"
    # one disjunct at a time, never the pattern shortcut: each disjunct is its own piece
    supports_joint_milp = False
    supports_fixed_phases = False
    supports_pattern_lps = False

    def __init__(self, fast: int, delay: float) -> None:
        self.inner, self.fast, self.delay = driver.MilpBackend(), fast, delay

    def search(self, setup: Any, bounds: Any, disjunct: int, *rest: Any) -> Any:
        found = self.inner.search(setup, bounds, disjunct, *rest)
        return found if disjunct == self.fast else _SlowSearch(found, self.delay)


def saliency(eps: float, delta: float, share: Any = None) -> Verdict:
    """Saliency robustness of `tied_net` with the few-patterns shortcut off, so that the search is
    the joint MILP over the alive output disjuncts (split into branches with two workers)."""
    from unittest import mock

    with mock.patch.object(patterns, "ENUM_MAX_RELUS", -1):
        return smt.check_saliency_robust(tied_net(), X, eps, delta, timeout_s=60, share=share)


def _worker(rank: int, port: int, folder: str, jobs: list[tuple[float, float, float]]) -> None:
    import torch.distributed as dist

    from camlang.distributed.pieces import StorePieceShare, default_store

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        milp = driver.BACKENDS["milp"]
        verdicts = []
        for k, (eps, slow, delta) in enumerate(jobs):
            share = StorePieceShare(default_store(), f"test/q{k}", rank, 2)
            if delta:
                verdicts.append(saliency(eps, delta, share))
            elif slow:  # eps is ignored: the one-violated question, every other disjunct slowed down
                driver.BACKENDS["milp"] = _SlowExcept(ONE_VIOLATED, slow)
                verdicts.append(driver.run_query(one_violated_setup(), "milp", 60, None, share=share))
                driver.BACKENDS["milp"] = milp
            else:
                verdicts.append(smt.check_robust(tied_net(), X, eps, timeout_s=60, share=share))
        Path(folder, f"rank{rank}.pkl").write_bytes(pickle.dumps(verdicts))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_workers(tmp_path: Path, jobs: list[tuple[float, float, float]]) -> list[Verdict]:
    """Each job (eps, slow, delta; a saliency question when delta > 0) decided by two workers together; the combined verdicts."""
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(tmp_path), jobs), nprocs=2, join=True)
    parts = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    return [combine([parts[0][k], parts[1][k]]) for k in range(len(jobs))]


CASES = [(0.02, "holds", None), (0.025, "violated", 1)]


def test_two_workers_give_the_verdicts_of_one(tmp_path: Path) -> None:
    twos = _two_workers(tmp_path, [(eps, 0.0, 0.0) for eps, _, _ in CASES])
    for (eps, status, found), two in zip(CASES, twos, strict=True):
        _assert_same(smt.check_robust(tied_net(), X, eps, timeout_s=60), two, status, found)


def _assert_same(one: Verdict, two: Verdict, status: str, found: Any) -> None:
    assert one.status == two.status == status
    pieces = two.stats["pieces"]
    assert pieces["world_size"] == 2 and pieces["count"] >= 3
    assert pieces.get("found") == one.stats["pieces"].get("found") == found
    # every piece ran on the rank it was dealt to (piece n on rank n mod 2)
    assert all(out["rank"] == n % 2 for n, out in pieces["outcomes"].items())
    if status == "violated":
        assert one.counterexample is not None and two.counterexample is not None
        np.testing.assert_allclose(two.counterexample, one.counterexample, rtol=0, atol=1e-12)
    else:
        assert pieces["solved"] == pieces["count"]


def test_a_replayed_counterexample_stops_the_other_rank(tmp_path: Path) -> None:
    """Piece 0 (rank 0) is violated at once; the three others are infeasible and take 2 s more
    each. Rank 1 stops before its second piece instead of solving both (one process solves
    piece 0 only)."""
    one = driver.run_query(one_violated_setup(), "milp", 60, None)
    assert one.status == "violated" and one.stats["pieces"]["found"] == 0
    assert one.stats["pieces"]["count"] == 4
    assert one.stats["pieces"]["outcomes"] == {
        0: {**one.stats["pieces"]["outcomes"][0], "disjunct": ONE_VIOLATED}
    }
    (two,) = _two_workers(tmp_path, [(0.0, 2.0, 0.0)])
    assert two.status == "violated"
    np.testing.assert_allclose(two.counterexample, one.counterexample, rtol=0, atol=1e-12)
    outcomes = two.stats["pieces"]["outcomes"]
    assert outcomes[0] == {**outcomes[0], "outcome": "violated", "rank": 0}
    rank1 = {n: out["outcome"] for n, out in outcomes.items() if n % 2 == 1}
    # piece 3 is infeasible, so only the stop keeps rank 1 from solving it; piece 1 was either in
    # flight when the witness was announced (then solved: a HiGHS solve is not interrupted) or not
    # yet started
    assert rank1[3] == "skipped" and rank1[1] in ("infeasible", "skipped"), outcomes
    assert two.stats["pieces"]["solved"] <= 2 < two.stats["pieces"]["count"]
    assert two.stats["pieces"]["stop_latency_s"] >= 0


#: saliency questions (eps, delta, verdict) whose search is the joint MILP: two branches with two workers
SALIENCY = [(0.02, 0.3, "holds"), (0.05, 0.2, "violated")]


def test_two_workers_split_the_joint_saliency_milp(tmp_path: Path) -> None:
    """With two workers the joint saliency MILP is two branches (one ReLU's phase fixed), one per
    rank; the verdict is that of the single MILP (the witness may differ, and must replay)."""
    twos = _two_workers(tmp_path, [(eps, 0.0, delta) for eps, delta, _ in SALIENCY])
    for (eps, delta, status), two in zip(SALIENCY, twos, strict=True):
        one = saliency(eps, delta)
        assert one.status == two.status == status
        assert one.stats["joint_disjuncts"] >= 2 and "joint_split" not in one.stats
        assert one.stats["pieces"]["count"] == 1
        split, pieces = two.stats["joint_split"], two.stats["pieces"]
        assert split["branches"] == 2 and len(split["relus"]) == 1
        assert pieces["kind"] == "branch of the joint search" and pieces["world_size"] == 2
        assert all(out["rank"] == n % 2 for n, out in pieces["outcomes"].items())
        if status == "holds":  # both ranks solved their branch and proved it infeasible
            assert {n: (o["outcome"], o["rank"]) for n, o in pieces["outcomes"].items()} == {
                0: ("infeasible", 0),
                1: ("infeasible", 1),
            }
        else:
            assert two.replay is not None and two.replay["ok"]
            assert pieces["outcomes"][pieces["found"]]["outcome"] == "violated"

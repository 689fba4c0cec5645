"""Racing on two gloo workers that each score half of the images takes the decisions of one
process, and a time-limit decision is rank 0's on both ranks (camlang/synth/sharding.py)."""

from __future__ import annotations

import contextlib
import datetime
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from camlang.core.call_counter import CallCounter
from camlang.synth.racing import RaceResult, StopSearch, race
from camlang.synth.sharding import SynthGroup, image_share

CANDIDATES, IMAGES = 40, 64


def _matrix() -> torch.Tensor:
    """Scores with a real race in them: a few good candidates, many clearly worse, some NaN."""
    gen = torch.Generator().manual_seed(3)
    quality = torch.linspace(0.0, 1.0, CANDIDATES)[:, None]
    scores = quality + 0.3 * torch.randn(CANDIDATES, IMAGES, generator=gen)
    scores[7, 5] = math.nan  # an invalid value counts as the worst
    return scores


def _scorer(scores: torch.Tensor, counter: CallCounter, seen: list[tuple[int, int]]) -> Any:
    def call(cands: list[int], images: list[int]) -> torch.Tensor:
        seen.extend((c, i) for c in cands for i in images)
        counter.add(len(cands) * len(images))
        return scores[torch.tensor(cands)][:, torch.tensor(images)]

    return call


def _race(group: SynthGroup, stop_on_call: int | None) -> tuple[RaceResult, list[tuple[int, int]], int]:
    """Race `_matrix()`; with `stop_on_call`, rank 0's clock says "time is up" at that call."""
    scores, counter, seen = _matrix(), CallCounter(), []
    scorer = _scorer(scores, counter, seen)
    calls = [0]

    def clock() -> None:
        calls[0] += 1
        if stop_on_call is not None and calls[0] >= stop_on_call + group.rank:  # rank 1's clock is late
            raise StopSearch("time limit reached")

    check = group.stop_check(clock, timed=True)

    def score(cands: list[int], images: list[int]) -> torch.Tensor:
        check()
        return group.score(scorer, cands, images, counter)  # type: ignore[arg-type]

    # chunks of 16 candidates: several scoring calls (and all-gathers) per round
    res = race(CANDIDATES, IMAGES, score, first=4, keep=2, chunk=16, keep_on_interrupt=not group.distributed)
    return res, seen, counter.images


@contextlib.contextmanager
def _two_rank_group(rank: int, folder: str) -> Iterator[SynthGroup]:
    """This process as `rank` of a two-process gloo group (a file store in `folder`)."""
    import torch.distributed as dist

    from camlang.distributed import Dist

    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/store",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        yield SynthGroup(Dist(rank, 2, rank, 2, "cpu", "gloo"))
    finally:
        dist.destroy_process_group()


def _worker(rank: int, folder: str) -> None:
    with _two_rank_group(rank, folder) as group:
        out: dict[str, Any] = {}
        for name, stop in (("full", None), ("stopped", 5)):
            res, seen, passes = _race(group, stop)
            out[name] = (res.scores, res.alive, res.eliminated_at, res.stopped, seen, passes)
        try:
            group.check_same("candidate list", f"rank {rank}")
            out["mismatch"] = None
        except Exception as err:  # noqa: BLE001 - the test reads the message
            out["mismatch"] = str(err)
        torch.save(out, f"{folder}/rank{rank}.pt")


def test_image_share_cuts_in_order() -> None:
    images = list(range(10, 17))
    parts = [image_share(images, r, 3) for r in range(3)]
    assert sum(parts, []) == images and [len(p) for p in parts] == [2, 2, 3]
    assert image_share([5], 1, 2) == [5] and image_share([5], 0, 2) == []


def test_two_workers_race_like_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    one = {name: _race(SynthGroup(None), stop) for name, stop in (("full", None), ("stopped", 5))}
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for name in ("full", "stopped"):
        res, seen_one, passes_one = one[name]
        for got in ranks:
            scores, alive, eliminated_at, stopped, _, passes = got[name]
            # the same matrix (NaN where not scored), survivors, eliminations and stop
            assert torch.equal(scores.isnan(), res.scores.isnan())
            assert torch.equal(torch.nan_to_num(scores), torch.nan_to_num(res.scores))
            assert (alive, eliminated_at, stopped) == (res.alive, res.eliminated_at, res.stopped)
            assert passes == passes_one  # every rank counts the whole run's model passes
        # the pairs were split: each rank scored a share, together exactly what one process scored
        share0, share1 = ranks[0][name][4], ranks[1][name][4]
        assert share0 and share1 and not set(share0) & set(share1)
        assert sorted(share0 + share1) == sorted(seen_one)
    assert one["full"][0].stopped is None and len(one["full"][0].eliminated_at) > CANDIDATES // 2
    # rank 1's own clock would have stopped one call later: it followed rank 0's decision
    assert one["stopped"][0].stopped == "time limit reached"
    assert ranks[0]["mismatch"] is None
    assert "worker 1 computed a different candidate list" in ranks[1]["mismatch"]


#: 9 images in batches of 2: five batches, so rank 1 has nothing to capture in the third round;
#: the budget stops the capture inside the second round (after 3 batches, 6 passes).
CAPTURE_IMAGES, CAPTURE_BATCH, CAPTURE_BUDGET = 9, 2, 5


def _capture(group: SynthGroup, budget: int | None) -> tuple[Any, int]:
    from camlang.data.shapes import synthetic_shapes
    from camlang.synth.scoring import CaptureOptions, capture_split
    from tests.conftest import demo_live_model

    torch.set_num_threads(1)
    counter = CallCounter()

    def check() -> None:
        if budget is not None and counter.images >= budget:
            raise StopSearch(f"budget of {budget} forward passes reached")

    ds = synthetic_shapes(count=CAPTURE_IMAGES, size=32, seed=4)
    data = capture_split(
        demo_live_model(),
        ds,
        {"A", "G"},
        CAPTURE_BATCH,
        counter,
        CaptureOptions(check, keep_partial=True, group=group),
    )
    return data, counter.images


def _capture_worker(rank: int, folder: str) -> None:
    with _two_rank_group(rank, folder) as group:
        budgets = (("full", None), ("budget", CAPTURE_BUDGET))
        torch.save({name: _capture(group, b) for name, b in budgets}, f"{folder}/capture{rank}.pt")


def test_two_workers_capture_like_one_process(tmp_path: Path) -> None:
    """Each rank captures every other batch; both end with the split one process captures, and a
    budget stop keeps the same prefix with the same pass count."""
    import torch.multiprocessing as mp

    one = {
        name: _capture(SynthGroup(None), budget)
        for name, budget in (("full", None), ("budget", CAPTURE_BUDGET))
    }
    assert one["full"][0].count == CAPTURE_IMAGES
    assert one["budget"][0].count == 6  # stopped before the fourth batch: 3 batches x 2 images
    mp.spawn(_capture_worker, args=(str(tmp_path),), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"capture{rank}.pt", weights_only=False)
        for name in ("full", "budget"):
            (want, want_passes), (data, passes) = one[name], got[name]
            assert passes == want_passes
            assert data.labels == want.labels and torch.equal(data.x, want.x)
            assert torch.allclose(data.logits, want.logits, atol=1e-6)
            assert set(data.terminals) == set(want.terminals)
            for key, value in want.terminals.items():
                assert torch.allclose(data.terminals[key], value, atol=1e-6), key


def _lazy(group: SynthGroup, budget: int | None) -> tuple[Any, int, int]:
    """A lazy training split grown as a race would (2 images, then 4, then all 9) under a budget."""
    from types import SimpleNamespace

    from camlang.data.shapes import synthetic_shapes
    from camlang.synth.capturing import LazySplit
    from tests.conftest import demo_live_model

    torch.set_num_threads(1)
    counter = CallCounter()
    job = SimpleNamespace(
        live=demo_live_model(),
        counter=counter,
        group=group,
        timed=False,
        batch_size=CAPTURE_BATCH,
        limits=SimpleNamespace(seconds=None),
    )

    def check() -> None:
        if budget is not None and counter.images >= budget:
            raise StopSearch(f"budget of {budget} forward passes reached")

    split = LazySplit(job, synthetic_shapes(count=CAPTURE_IMAGES, size=32, seed=4), {"A", "G"}, None)  # type: ignore[arg-type]
    try:
        for n in (2, 4, CAPTURE_IMAGES):
            split.ensure(n, frozenset(), check)
    except StopSearch:
        pass
    return split.data(), split.count, counter.images


def _lazy_worker(rank: int, folder: str) -> None:
    with _two_rank_group(rank, folder) as group:
        budgets = (("full", None), ("budget", CAPTURE_BUDGET))
        torch.save({name: _lazy(group, b) for name, b in budgets}, f"{folder}/lazy{rank}.pt")


def test_two_workers_grow_a_lazy_split_like_one_process(tmp_path: Path) -> None:
    """Captures driven by the race keep the prefix rule: the same images and passes on 1 and 2
    workers, with and without a budget."""
    import torch.multiprocessing as mp

    one = {name: _lazy(SynthGroup(None), b) for name, b in (("full", None), ("budget", CAPTURE_BUDGET))}
    assert one["full"][1] == CAPTURE_IMAGES
    assert one["budget"][1] == 6  # 2 + 2 + one batch of 2: the budget of 5 stops the next batch
    mp.spawn(_lazy_worker, args=(str(tmp_path),), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"lazy{rank}.pt", weights_only=False)
        for name in ("full", "budget"):
            (want, want_count, want_passes), (data, count, passes) = one[name], got[name]
            assert (count, passes) == (want_count, want_passes)
            assert data.labels == want.labels and torch.equal(data.x, want.x)
            for key, value in want.terminals.items():
                assert torch.allclose(data.terminals[key], value, atol=1e-6), key

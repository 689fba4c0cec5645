"""A race that a limit stops in the middle of a round ranks its survivors on the images they all
have, not by how many images a survivor happened to be scored on before the stop."""

from __future__ import annotations

import math

import torch

from camlang.synth.racing import StopSearch, race


def test_a_round_cut_short_does_not_rank_the_first_chunk_ahead() -> None:
    # 8 candidates, candidate 7 best on every image, candidate 0 worst; chunks of 2 candidates
    scores = torch.arange(8, dtype=torch.float32)[:, None].expand(8, 64).clone()
    calls: list[list[int]] = []

    def score(cands: list[int], images: list[int]) -> torch.Tensor:
        if min(images) > 0 and len(calls) >= 5:  # the second round: stop after its first chunk
            raise StopSearch("time limit reached")
        calls.append(cands)
        return scores[torch.tensor(cands)][:, torch.tensor(images)]

    res = race(8, 64, score, first=4, chunk=2, halve=False, keep=8, z=1e9)
    assert res.stopped == "time limit reached"
    # the second round scored one chunk (candidates 0 and 1) before the stop; those columns are
    # forgotten, so every survivor is ranked on the first round's 4 images, best first
    assert calls[4] == [0, 1]
    assert res.evaluated().tolist() == [4] * 8
    assert res.ranking() == [7, 6, 5, 4, 3, 2, 1, 0]
    assert not math.isnan(float(res.scores[:, :4].sum()))


def test_a_first_round_cut_short_keeps_what_it_scored() -> None:
    scores = torch.arange(6, dtype=torch.float32)[:, None].expand(6, 16).clone()
    done: list[int] = []

    def score(cands: list[int], images: list[int]) -> torch.Tensor:
        if done:
            raise StopSearch("time limit reached")
        done.extend(cands)
        return scores[torch.tensor(cands)][:, torch.tensor(images)]

    res = race(6, 16, score, first=4, chunk=3, keep=6)
    # only the first chunk (0, 1, 2) was scored: it is all that is known, so it is kept
    assert res.evaluated().tolist() == [4, 4, 4, 0, 0, 0]
    assert res.ranking()[:3] == [2, 1, 0]


def test_the_race_reserves_time_for_what_the_final_checks_score_only() -> None:
    """The final checks re-score the finalists and the contained stdlib CAMs, never the race's
    anchors: reserving for the anchors too stopped ResNet-56's deletion race at 256 of 1,000
    images with almost half of its search time unused."""
    from types import SimpleNamespace

    from camlang.synth.race_scorer import reserve_seconds

    job = SimpleNamespace(
        clock=SimpleNamespace(per_pair=lambda: 0.1),
        settings=SimpleNamespace(finalists=5),
        limits=SimpleNamespace(split=SimpleNamespace(after_search=100.0)),
    )
    pool = SimpleNamespace(contained=dict.fromkeys("abc"), anchors=dict.fromkeys("defghij"))
    assert math.isclose(reserve_seconds(job, pool, 256), 1.1 * 0.1 * (5 + 3) * 256 + 100.0)  # type: ignore[arg-type]


def _timed_job(left: float) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        clock=SimpleNamespace(per_pair=lambda: 0.1),
        settings=SimpleNamespace(finalists=5),
        limits=SimpleNamespace(split=SimpleNamespace(after_search=100.0), remaining=lambda: left),
    )


def test_finalists_fit_where_the_race_reached_when_every_image_does_not() -> None:
    """ResNet-56's 23-minute deletion race ended at 256 of 1,000 images with no time to re-score
    the leader on all 1,000, so its 4-image anchors' means ranked the stdlib CAMs. On the images
    the race reached, its survivors are cached and only the contained stdlib CAMs cost time."""
    from camlang.synth.finalise import finalists_that_fit

    leaders = [object() for _ in range(5)]
    contained = [object() for _ in range(3)]
    raced = {id(n): 256 for n in leaders}  # the survivors' values cached on the first 256 images

    def missing(node: object, n: int) -> int:
        return max(0, n - raced.get(id(node), 0))

    job = _timed_job(left=400.0)  # 300 s after the comparison's share: 2,727 pairs at 0.11 s
    # every image: the 3 contained CAMs alone need 3,000 pairs
    assert finalists_that_fit(job, leaders, contained, 1000, missing) == 0  # type: ignore[arg-type]
    # the race's 256 images: 768 pairs for the contained CAMs, the leaders are free
    assert finalists_that_fit(job, leaders, contained, 256, missing) == 5  # type: ignore[arg-type]
    # 512 images: 1,536 for the contained, then 256 per leader: 4 fit (2,560 pairs), not 5
    assert finalists_that_fit(job, leaders, contained, 512, missing) == 4  # type: ignore[arg-type]


def test_under_a_time_limit_one_row_on_many_images_is_scored_in_blocks() -> None:
    # tuning scores one row on up to 1,000 images: in one call that was 100 s between two limit
    # checks on ResNet-56's insertion, and tuning overran its share by 45 s
    from camlang.synth.race_scorer import score_blocks

    def blocks(rows: int, images: int, pairs: int = 256) -> list[tuple[range, range]]:
        return list(score_blocks(rows, images, True, lambda: pairs))

    got = blocks(1, 1000)
    assert [(b.start, b.stop) for _, b in got] == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert all(rows == range(0, 1) for rows, _ in got)
    # a round of many rows on few images: a few whole rows per block
    got = blocks(10, 64)
    assert [(r.start, r.stop) for r, _ in got] == [(0, 4), (4, 8), (8, 10)]
    assert all(cols == range(64) for _, cols in got)
    # every (row, image) pair exactly once, whatever the shape
    for rows, images, pairs in ((3, 700, 256), (7, 256, 256), (1, 1, 256), (5, 257, 256), (4, 90, 32)):
        seen = [(r, i) for rr, cc in blocks(rows, images, pairs) for r in rr for i in cc]
        assert sorted(seen) == [(r, i) for r in range(rows) for i in range(images)]
        assert all(len(rr) * len(cc) <= pairs for rr, cc in blocks(rows, images, pairs))
    # without a time limit: one block
    assert list(score_blocks(3, 700, timed=False)) == [(range(3), range(700))]


def test_the_block_size_follows_the_cost_measured_so_far() -> None:
    # a row reading score terminals cost 5x the average pair: tuning it on ResNet-20's
    # max-sensitivity took 200 s in one 256-pair block, against a share of 38 s
    from camlang.synth.race_scorer import score_blocks

    sizes = iter([256, 64, 32, 32, 32, 32, 32, 32])
    got = list(score_blocks(1, 400, True, lambda: next(sizes)))
    assert [len(cols) for _, cols in got] == [256, 64, 32, 32, 16]


def test_only_the_pairs_the_cache_lacks_are_scored() -> None:
    # the final checks scored a finalist on the 128 images the race reached; tuning it on 256
    # used to score all 256 again (one missing value made the whole row "not cached")
    from types import SimpleNamespace

    import torch

    from camlang.synth.race_scorer import RaceScorer

    store: dict[tuple[str, int], float] = {("a", i): float(i) for i in range(4)}
    store[("b", 1)] = float("nan")  # the metric undefined there: cached, never scored again
    calls: list[tuple[tuple[str, ...], tuple[int, ...]]] = []
    scorer = RaceScorer.__new__(RaceScorer)
    scorer.job = SimpleNamespace(timed=False, clock=SimpleNamespace(per_pair=lambda: 0.0))
    scorer.texts = ["a", "b", "c", "d"]
    scorer.rows = [SimpleNamespace(text=t) for t in scorer.texts]  # type: ignore[misc]
    scorer.cache = SimpleNamespace(  # type: ignore[assignment]
        get=lambda t, i: store.get((t, i)),
        put=lambda t, i, v: store.__setitem__((t, i), v),
        save=lambda: None,
    )
    scorer.split = SimpleNamespace(ensure=lambda n, groups, check: None)  # type: ignore[assignment]
    scorer.groups_read = lambda nodes: frozenset()  # type: ignore[method-assign]
    scorer._check_limits = lambda: None

    def score(nodes: list[SimpleNamespace], ii: list[int]) -> tuple[torch.Tensor, float]:
        calls.append((tuple(n.text for n in nodes), tuple(ii)))
        return torch.tensor([[100.0 + i for i in ii] for _ in nodes]), 0.01

    scorer._score = score  # type: ignore[method-assign,assignment]
    out = scorer.values([0, 1, 2, 3], [0, 1, 2, 3, 6])
    # c and d lack the same images and are scored together; b would too but for its cached NaN
    assert calls == [(("a",), (6,)), (("b",), (0, 2, 3, 6)), (("c", "d"), (0, 1, 2, 3, 6))]
    assert out[0].tolist() == [0.0, 1.0, 2.0, 3.0, 106.0]
    assert out[1, 1].isnan() and out[1, [0, 2, 3, 4]].tolist() == [100.0, 102.0, 103.0, 106.0]
    assert out[3].tolist() == out[2].tolist() == [100.0, 101.0, 102.0, 103.0, 106.0]
    assert scorer.values([0, 1, 2, 3], [0, 1, 2, 3, 6]).nan_to_num(-1).tolist() == out.nan_to_num(-1).tolist()
    assert len(calls) == 3  # everything cached now

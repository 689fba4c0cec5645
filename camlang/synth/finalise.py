"""Phase 5 of `synthesize`: the `finalists` best of the race and the stdlib CAMs the grammar
contains, on every training image; the best mean is the winner. When the time left does not
fit even the leader on every image, they are re-scored on the images the race reached (its
survivors are cached there, so mostly the contained stdlib CAMs cost time).

The budget bounds the search only: the final checks always complete, within the time the limits
reserved for them (rank 0's clock decides how many fit, for every rank).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from camlang.frontend.ir import Node
from camlang.passes.simplify import simplify
from camlang.synth.candidates import Pool
from camlang.synth.job import NoTime, Stop, SynthJob
from camlang.synth.race_scorer import RaceOutcome, RaceScorer
from camlang.synth.racing import RaceResult, StopSearch, paired_upper_bound


@dataclass(frozen=True)
class Final:
    """The training-split outcome: candidates best first, their scores and image counts."""

    ordered: tuple[Node, ...]
    train_scores: Mapping[int, float]  # by node id, not oriented
    train_images: Mapping[int, int]  # by node id
    train_values: Mapping[int, torch.Tensor]  # by node id: per-image values of the re-scored
    stdlib_train: Mapping[str, float]  # by stdlib name: the contained CAMs re-scored
    race: RaceResult
    search_passes: int
    exhaustive_passes: int | None
    anchor_scores: Mapping[int, float]  # by node id: the race means of the anchors (not oriented)
    anchor_images: Mapping[int, int]  # by node id: how many training images each anchor was scored on
    contained_nids: Mapping[str, int]  # by stdlib name: the node id the race scored a contained CAM as

    @property
    def winner(self) -> Node:
        """The best candidate on the training split."""
        return self.ordered[0]


#: A synthesized leader must beat the best contained stdlib CAM by this many standard errors of
#: their paired difference on the final checks' images, or the stdlib CAM stays the winner. Without
#: it a leader that the race chose on few images (ResNet-56's ADCC reached 64 in session 12) won on
#: a noisy lead and was worse than Score-CAM on the holdout.
INCUMBENT_Z = 2.0

Missing = Callable[[Node, int], int]
"""`missing(node, n)`: how many of the first `n` training images the score cache lacks for `node`."""


class _TrainScores:
    """The race's scores, updated as each finalist is re-scored on every training image."""

    def __init__(self, race: RaceOutcome) -> None:
        self.scores = dict(race.train_scores)
        self.images = dict(race.train_images)
        self.values: dict[int, torch.Tensor] = {}
        self.stdlib: dict[str, float] = {}

    def record(self, node: Node, row: torch.Tensor, n_train: int) -> None:
        """`node`'s values on every one of the `n_train` training images."""
        self.values[node.nid] = row
        self.scores[node.nid] = float(row.mean())
        self.images[node.nid] = n_train


def finalists_that_fit(
    job: SynthJob, leaders: list[Node], contained: list[Node], n: int, missing: Missing
) -> int:
    """How many of `leaders` (at most `finalists`) can be re-scored on the first `n` training
    images, with the `contained` stdlib CAMs, in the time left after the shares of tuning and the
    holdout comparison; 0 when not even the leader fits. Only the values the score cache lacks
    cost time (`missing(node, n)` pairs): the race's survivors are cached on the images it reached.
    """
    per_pair, left = job.clock.per_pair(), job.limits.remaining()
    if not math.isfinite(left) or per_pair <= 0:
        return min(job.settings.finalists, len(leaders))
    spare = left - job.limits.split.after_search - 1.1 * per_pair * sum(missing(c, n) for c in contained)
    fit = 0
    for node in leaders[: job.settings.finalists]:
        spare -= 1.1 * per_pair * missing(node, n)
        if spare < 0:
            break
        fit += 1
    return fit


def out_of_time(job: SynthJob, pairs: int) -> bool:
    """Would scoring `pairs` more (cam, image) pairs eat into tuning's or the comparison's time?"""
    left = job.limits.remaining()
    if not math.isfinite(left) or pairs == 0:
        return False
    per_pair = job.clock.per_pair()
    compare = job.limits.split.after_search
    return left - compare < 1.1 * per_pair * pairs


def finalise(job: SynthJob, race: RaceOutcome, scorer: RaceScorer, pool: Pool, stop: Stop) -> Final:
    """Re-score the finalists and the contained stdlib CAMs; the race's order when time is out."""
    got = _TrainScores(race)
    ordered = race.ordered
    if not stop.partial:
        try:
            ordered = _final_order(job, race, scorer, pool, got, stop)
        except NoTime:
            pass
        except KeyboardInterrupt:
            job.interrupted(stop)
    return Final(
        ordered,
        got.scores,
        got.images,
        got.values,
        got.stdlib,
        race.result,
        race.search_passes,
        race.exhaustive_passes,
        race.anchor_scores,
        race.anchor_images,
        {r: simplify(job.program.builder, node).nid for r, node in pool.contained.items()},
    )


def _final_order(
    job: SynthJob,
    race: RaceOutcome,
    scorer: RaceScorer,
    pool: Pool,
    got: _TrainScores,
    stop: Stop,
) -> tuple[Node, ...]:
    """The candidates with the best re-scored contender first (raises `NoTime` when none is)."""
    ordered = race.ordered
    job.limits.budget = None
    contained = list(pool.contained.values())
    leaders = list(ordered[: job.settings.finalists])
    n_train = _final_images(job, scorer, [*leaders, *contained], stop)
    fit = job.agree_timed(finalists_that_fit(job, leaders, contained, n_train, scorer.missing))
    deepest = int(race.result.evaluated().max()) if race.result.scores.numel() else 0
    if fit == 0 and 0 < deepest < n_train:
        # Not every image: the images the race reached, where its survivors cost nothing.
        fit = job.agree_timed(finalists_that_fit(job, leaders, contained, deepest, scorer.missing))
        if fit:
            job.log.say(
                f"no time to re-score the finalists on all {n_train} training images: "
                f"the final checks use the {deepest} the race reached"
            )
            n_train = deepest
    if fit == 0:
        job.log.say("no time left to re-score the finalists: the race's leader wins")
        raise NoTime
    finalists = list(ordered[:fit])
    stdlib = dict(pool.contained)
    extra = finalists + [n for n in stdlib.values() if n not in finalists]
    job.log.say(f"finalists: {len(finalists)} candidates and {len(stdlib)} stdlib CAMs on {n_train} images")
    done = _rescore(job, scorer, extra, got, n_train)
    for r, node in stdlib.items():
        if node in done:
            got.stdlib[r] = got.scores[node.nid]
    contenders = [n for n in done if n in finalists or n in pool.contained.values()]
    if not contenders:
        raise NoTime

    def oriented(n: Node) -> float:  # an undefined mean (NaN) is the worst, never the winner
        value = job.sign * got.scores[n.nid]
        return value if math.isfinite(value) else -math.inf

    best = max(contenders, key=oriented)
    incumbents = [n for n in stdlib.values() if n in contenders]
    if incumbents and best not in incumbents:
        best = _unless_confidently_better(job, best, max(incumbents, key=oriented), got, stdlib)
    if best is not ordered[0]:
        return (best, *(n for n in ordered if n is not best))
    return ordered


def _unless_confidently_better(
    job: SynthJob, leader: Node, incumbent: Node, got: _TrainScores, stdlib: Mapping[str, Node]
) -> Node:
    """`leader` when its paired difference with `incumbent` (oriented: positive is better) on the
    images both were re-scored on is above zero by `INCUMBENT_Z` standard errors, else `incumbent`.
    Images where either value is NaN are left out."""
    diff = job.sign * (got.values[leader.nid] - got.values[incumbent.nid])
    diff = diff[torch.isfinite(diff)]
    lower = -math.inf
    if diff.numel() > 1:
        lower = -float(paired_upper_bound(-diff, INCUMBENT_Z))
    if lower > 0:
        return leader
    name = next(r for r, n in stdlib.items() if n is incumbent)
    mean = float(diff.mean()) if diff.numel() else math.nan
    images = f"{diff.numel()} image" + ("" if diff.numel() == 1 else "s")
    job.log.say(
        f"the leader is not confidently better than {name} on {images} (paired difference "
        f"{mean:+.4g}, lower bound {lower:+.4g} at {INCUMBENT_Z:g} SE): {name} stays the winner"
    )
    return incumbent


def _final_images(job: SynthJob, scorer: RaceScorer, nodes: list[Node], stop: Stop) -> int:
    """How many training images the final checks use: every one, captured now when the race did
    not need them (a race that a limit stopped keeps the prefix it captured; a capture here stops
    where the time kept for tuning and the comparison starts)."""
    split = scorer.split
    groups = scorer.groups_read(nodes)
    target = split.total if stop.reason is None else split.count
    try:
        split.ensure(target, groups, job.group.stop_check(job.limits.check_final, job.timed))
    except StopSearch:
        job.log.say(f"time limit: the final checks use {split.count} of {split.total} training images")
    return scorer.captured_for(nodes)


def _rescore(
    job: SynthJob, scorer: RaceScorer, nodes: list[Node], got: _TrainScores, n_train: int
) -> list[Node]:
    """Score `nodes` on the first `n_train` training images (captured), one at a time, so a time
    limit (or a pair cost not yet measured) stops between them; the nodes done."""
    all_images = list(range(n_train))
    rows = scorer.add_rows(nodes)
    check = job.group.stop_check(job.limits.check_final, job.timed)
    done: list[Node] = []
    for node, row in zip(nodes, rows):
        pairs = scorer.missing(node, n_train)
        if job.agree_timed(bool(done or job.clock.pairs) and out_of_time(job, pairs)):
            job.log.say(f"time limit: {len(done)} of {len(nodes)} finalists re-scored")
            break
        try:
            values = scorer.values([row], all_images, check)[0]
        except StopSearch:
            job.log.say(f"time limit: {len(done)} of {len(nodes)} finalists re-scored")
            break
        got.record(node, values, n_train)
        done.append(node)
    return done

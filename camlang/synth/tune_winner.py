"""Phase 5b of `synthesize`: tune the winner's numeric constants on the selection split.

After the grid (the race and the final checks chose each constant hole among its few values),
`camlang.synth.tuning` moves the winner's constants continuously, inside each hole's grid, to
improve its mean objective on the captured training images. The winner is passed as enumerated
(before simplification), so its holes can be found against the grammar. Every evaluation goes
through the race's scorer: training images only (the holdout is captured later and never seen
here), and each value lands in the score cache like the race's.

Tuning gets the `tuning` share of `time` (`camlang.synth.limits.TimeSplit`) and at most
`MAX_EVALUATIONS` evaluations. On several workers under a time limit it is skipped: each rank's
optimiser would stop at its own clock, and they must take the same steps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from camlang.frontend.ir import Node
from camlang.synth.candidates import Search
from camlang.synth.finalise import Final
from camlang.synth.job import Stop, SynthJob
from camlang.synth.race_scorer import RaceScorer
from camlang.synth.racing import StopSearch
from camlang.synth.tuning import TunedConstant, constant_sites, tune_constants

#: Most evaluations of the objective (each one: the candidate on every captured training image).
MAX_EVALUATIONS = 40


@dataclass(frozen=True)
class TunedWinner:
    """What tuning did: the constants (grid value, tuned value, box), losses, time, why it ended."""

    constants: tuple[TunedConstant, ...] = ()
    grid_score: float | None = None  # the objective's mean (not oriented) with the grid's values
    score: float | None = None  # with the tuned values
    evaluations: int = 0
    seconds: float = 0.0
    budget_s: float | None = None
    stop: str = "no constants"
    node: Node | None = None  # the tuned winner, when it improved on the grid

    @property
    def values(self) -> tuple[tuple[str, float], ...]:
        """The tuned constants as (nonterminal, value) pairs, for the report."""
        return tuple((c.nonterminal, c.value) for c in self.constants)


def tune_winner(
    job: SynthJob, search: Search, final: Final, scorer: RaceScorer, stop: Stop
) -> tuple[Final, TunedWinner]:
    """The final outcome with the tuned winner first (when tuning improved it), and the record."""
    tuned = _tune(job, search, final, scorer, stop)
    if tuned.node is None or tuned.score is None:
        return final, tuned
    n = scorer.captured_for([final.winner])
    node = tuned.node
    values = scorer.values(scorer.add_rows([node]), list(range(n)))[0]  # cached by the tuning
    return (
        dataclasses.replace(
            final,
            ordered=(node, *(m for m in final.ordered if m is not node)),
            train_scores={**final.train_scores, node.nid: tuned.score},
            train_images={**final.train_images, node.nid: n},
            train_values={**final.train_values, node.nid: values},
        ),
        tuned,
    )


def _tune(job: SynthJob, search: Search, final: Final, scorer: RaceScorer, stop: Stop) -> TunedWinner:
    en, raw = search.en, final.winner
    sites = constant_sites(en.alts, en.start, raw, en.constants_of(raw))
    if not sites or stop.partial:
        return TunedWinner()
    if job.group.distributed and job.timed:
        return TunedWinner(stop="skipped: several workers under a time limit")
    split = job.limits.split
    seconds = math.inf
    if job.timed:
        seconds = max(0.0, min(split.tuning, job.limits.remaining() - split.compare))
    n = scorer.captured_for([raw])
    images = list(range(n))

    tuning_end = time.monotonic() + seconds

    def check() -> None:
        # an evaluation (or a capture the winner still needs) stops where tuning's share ends:
        # one evaluation of a costly metric on every image can take longer than the share
        if time.monotonic() >= tuning_end or job.limits.remaining() <= split.compare:
            raise StopSearch("time limit reached")

    start = None
    if final.train_images.get(raw.nid) == n and raw.nid in final.train_scores:
        start = -job.sign * final.train_scores[raw.nid]

    def loss(node: Node) -> float:
        row = scorer.add_rows([node])
        try:
            return -job.sign * float(scorer.values(row, images, check)[0].nanmean())
        except StopSearch:
            return math.inf  # never the best point; the tuner's own clock then stops it

    job.log.say(f"tuning {len(sites)} constants of the winner on {n} training images (up to {seconds:.0f}s)")
    try:
        t = tune_constants(
            job.program.builder, raw, sites, loss, seconds, max_evaluations=MAX_EVALUATIONS, start_loss=start
        )
    except StopSearch:
        return TunedWinner(stop="time")
    except KeyboardInterrupt:
        job.interrupted(stop)
        return TunedWinner(stop="interrupted")
    if not math.isfinite(t.start_loss):  # not even the grid's choice was scored in time
        return TunedWinner(stop="time")
    values = ", ".join(f"{c.nonterminal} = {c.grid_value:g} -> {c.value:.4g}" for c in t.constants)
    job.log.say(f"tuned constants: {values} ({t.evaluations} evaluations, {t.stop})")
    return TunedWinner(
        t.constants,
        -job.sign * t.start_loss,
        -job.sign * t.loss,
        t.evaluations,
        t.seconds,
        None if math.isinf(seconds) else seconds,
        t.stop,
        t.node if t.improved else None,
    )

"""`synthesize`: enumerate a grammar, prune with the oracles, race on the objective, report.

This module only runs the phases in order; each lives in its own module and hands the next a
typed record (`camlang.synth.job.SynthJob` holds what they all share):
0. **prepare** (`job`): resolve the grammar, the objective and the settings; start the clock.
1. **capture** (`capturing`): the terminals of every training image once (forward + partial
   backward, plus the score terminals when the grammar reads them), and of the holdout images.
   Every later evaluation of a candidate reuses them: the only other model calls are the
   objective's.
2. **enumerate** (`candidates`): bottom-up by size; the observer drops observationally equal and
   invalid terms on the probe batch (the first `probe` training images).
3. **deduplicate** (`candidates`): simplify the kept CAMs (normal forms), merge equal ones, find
   the stdlib CAMs the grammar contains and the stdlib CAMs outside it that can be scored for free.
4. **race** (`race_scorer`): the distinct CAMs on the training images, with the stdlib CAMs
   outside the grammar as anchors in the paired elimination (or score them all: `exhaustive`).
5. **finalise** (`finalise`): the `finalists` best of the race and the contained stdlib CAMs on
   every training image; the best mean is the winner.
6. **compare** (`holdout`): the winner and every stdlib CAM on the holdout (never used for
   selection), with the paired difference to the best stdlib CAM and a one-sentence verdict.
7. **report** (`reporting`): the `SynthResult` and a typed record of the run's statistics.

`time` bounds all of it: the search stops early enough to leave the measured cost of phases
5 and 6, and the run prints its estimate of the comparison's cost before starting it.

On several workers (`dist`, see `camlang.synth.sharding` and docs/scaling.md) the captures are
split by batches and gathered, so every rank holds the same terminals; enumeration and
deduplication are repeated on each rank (they give the same candidates everywhere, which is
checked), every scoring call is split over the images, and time-limit decisions are rank 0's,
broadcast. An interrupt or a lost worker then ends the synthesis on every rank (the run's partial
report and the score cache keep what finished) instead of returning the best so far.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from camlang.data import Dataset
from camlang.distributed.context import Dist
from camlang.frontend.ir import Node, to_text
from camlang.frontend.program import Program, SynthDef
from camlang.progress import ProgressDisplay
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth.candidates import deduplicate, enumerate_terms
from camlang.synth.capturing import HOLDOUT_CAPTURE_SHARE, TRAIN_CAPTURE_SHARE, capture_holdout, capture_train
from camlang.synth.equivalence import EquivalenceNotes
from camlang.synth.finalise import finalise
from camlang.synth.holdout import Holdout, compare_on_holdout
from camlang.synth.job import Stop, default_reference_cams, prepare_job
from camlang.synth.race_scorer import ANCHOR_FIELD_RATIO, RaceScorer, run_race
from camlang.synth.reporting import SynthOutcome, SynthStats, build_outcome
from camlang.synth.sharding import SynthGroup

__all__ = [
    "ANCHOR_FIELD_RATIO",
    "HOLDOUT_CAPTURE_SHARE",
    "TRAIN_CAPTURE_SHARE",
    "SynthOutcome",
    "SynthStats",
    "default_reference_cams",
    "synthesize",
]


def synthesize(
    program: Program,
    sdef: SynthDef,
    live: LiveModel,
    train: Dataset,
    holdout: Dataset | None,
    *,
    batch_size: int = 32,
    seed: int = 0,
    cache_dir: Path | None = None,
    resume: bool = False,
    progress: ProgressDisplay | None = None,
    reference_cams: dict[str, Node] | None = None,
    echo: Callable[[str], None] | None = None,
    dist: Dist | None = None,
) -> SynthOutcome:
    """Find the grammar's expression that best optimizes the objective on `train` (see module docs).

    `progress` is a rich `Progress` (a live task when it draws to a terminal, plain lines on its
    console otherwise); `echo` receives the plain lines instead when given. `dist` (a
    `camlang.distributed.Dist`) shares the work among a run's workers; every rank calls this and
    gets the same winner, and rank 0's result alone has the report's notes and pictures.
    """
    job = prepare_job(
        program,
        sdef,
        live,
        batch_size=batch_size,
        seed=seed,
        cache_dir=cache_dir,
        resume=resume,
        progress=progress,
        reference_cams=reference_cams,
        echo=echo,
        group=SynthGroup(dist),
    )
    stop = Stop()
    data = capture_train(job, train)
    search = enumerate_terms(job, data, stop)
    pool = deduplicate(job, search.en, data)
    before = job.counter.images
    hdata = capture_holdout(job, holdout, data, stop)
    scorer = RaceScorer(job, data, pool, hdata)
    race = run_race(job, scorer, pool, job.counter.images - before, stop)
    final = finalise(job, race, scorer, pool, hdata, stop)
    notes = EquivalenceNotes(job, search.observer)
    hold = Holdout()
    if not stop.partial:
        try:
            hold = compare_on_holdout(job, final, data, hdata, notes)
        except KeyboardInterrupt:
            job.interrupted(stop)
    job.group.check_same("winner", to_text(final.winner))
    return build_outcome(job, search, pool, final, hold, stop, data.count, notes)

"""`synthesize`: enumerate a grammar, prune with the oracles, race on the objective, report.

This module only runs the phases in order; each lives in its own module and hands the next a
typed record (`camlang.synth.job.SynthJob` holds what they all share):
0. **prepare** (`job`): resolve the grammar, the objective and the settings; start the clock.
1. **capture** (`capturing`): the training images' terminals (forward + partial backward) as
   the race asks for them, starting with the probe batch and the first round's images; the
   score terminals only for the images a candidate reading them is scored on. Every batch goes
   to the terminal store as it is captured, and stays in memory within `CAMLANG_SYNTH_MEMORY_MB`
   (`spill`: the later batches are read back from disk a chunk at a time, so memory stays flat as
   the image count grows). Every later evaluation of a candidate reuses them: the only other
   model calls are the objective's.
2. **enumerate** (`candidates`): bottom-up by size; the observer drops observationally equal and
   invalid terms on the probe batch (the first `probe` training images).
3. **deduplicate** (`candidates`): simplify the kept CAMs (normal forms), merge equal ones, find
   the stdlib CAMs the grammar contains and the stdlib CAMs outside it that can be scored for free.
4. **race** (`race_scorer`): the distinct CAMs on the training images, with the stdlib CAMs
   outside the grammar as anchors in the paired elimination (or score them all: `exhaustive`).
5. **finalise** (`finalise`): the `finalists` best of the race and the contained stdlib CAMs on
   every captured training image; the best mean is the winner. Then **tune** (`tune_winner`):
   its numeric constants, continuously, on the same images.
6. **compare** (`references`, `capturing`, `holdout`): under a time limit, every stdlib CAM on
   the same first training images first, to choose the references; the holdout is captured
   now, for the images the time left allows; the winner and every stdlib CAM on it (never used
   for selection), with the paired difference to the best stdlib CAM and a one-sentence verdict.
7. **report** (`reporting`): the `SynthResult` and a typed record of the run's statistics.

`time` bounds all of it, split by the rule of `camlang.synth.limits.TimeSplit` (search, tuning,
comparison; the run prints the split, and the report's `SynthResult.timing` shows it beside the
seconds each phase used): the race stops
early enough to leave the measured cost of the final checks and the later shares, and the run
prints its estimate of the comparison's cost before starting it.

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
from camlang.synth.capturing import capture_holdout_rows, capture_train
from camlang.synth.enumeration import Enumerator, constant_nonterminals
from camlang.synth.equivalence import EquivalenceNotes
from camlang.synth.finalise import finalise
from camlang.synth.holdout import Holdout, compare_on_holdout, comparison_order
from camlang.synth.job import Stop, default_reference_cams, prepare_job
from camlang.synth.limits import COMPARE_SHARE, TUNING_SHARE, PhaseEnds
from camlang.synth.race_scorer import ANCHOR_FIELD_RATIO, RaceScorer, run_race
from camlang.synth.references import reference_scores
from camlang.synth.reporting import SynthOutcome, SynthStats, build_outcome
from camlang.synth.sharding import SynthGroup
from camlang.synth.terminal_store import TerminalStore
from camlang.synth.tune_winner import tune_winner

#: Images the report pictures (`holdout.visuals`' count): all it reads of the training split.
PICTURED = 4

__all__ = [
    "ANCHOR_FIELD_RATIO",
    "COMPARE_SHARE",
    "TUNING_SHARE",
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
    store = TerminalStore.for_network(cache_dir, live.weights_digest, live.layer_path)
    split = job.limits.plan_split(holdout is not None, _has_constants(program, sdef))
    job.log.say(split.describe())
    lazy = capture_train(job, train, store)
    probe = lazy.prefix(job.settings.probe, complete=True)  # what enumeration observes
    search = enumerate_terms(job, probe, stop)
    pool = deduplicate(job, search.en, probe)
    del probe
    scorer = RaceScorer(job, lazy, pool)
    race = run_race(job, scorer, pool, stop)
    final = finalise(job, race, scorer, pool, stop)
    search_end = job.limits.elapsed()
    final, tuned = tune_winner(job, search, final, scorer, stop)
    ends = PhaseEnds(search_end, job.limits.elapsed())
    references = reference_scores(job, scorer, stop) if holdout is not None else None
    order = comparison_order(job, final, references)
    hdata = capture_holdout_rows(job, holdout, lazy, stop, store, *order.reads(job, final))
    notes = EquivalenceNotes(job, search.observer)
    hold = Holdout()
    if not stop.partial:
        try:
            # Without a holdout the comparison draws the first training images only.
            hold = compare_on_holdout(job, final, lazy.prefix(PICTURED), hdata, notes, order)
        except KeyboardInterrupt:
            job.interrupted(stop)
    job.group.check_same("winner", to_text(final.winner))
    return build_outcome(job, search, pool, final, hold, stop, lazy, notes, tuned, ends, store)


def _has_constants(program: Program, sdef: SynthDef) -> bool:
    """Does the grammar have numeric-constant holes (then tuning gets a share of the time)?"""
    en = Enumerator(program, program.grammars[sdef.grammar], 1, lambda nt, n, s: "kept")
    return bool(constant_nonterminals(en.alts))

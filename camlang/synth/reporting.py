"""Phase 7 of `synthesize`: the `SynthResult` for the report and a typed record of the run.

`SynthOutcome` is what `synthesize` returns: the winner, built in the program's builder, its
report section, and `SynthStats` (what the run did and measured beyond the report, for tests,
benchmarks and the REPL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from camlang.frontend.ir import Node, to_text
from camlang.passes.simplify import simplify
from camlang.report.model import Candidate, MetricInfo, PhaseSeconds, SynthCounts, SynthResult, SynthTiming
from camlang.synth.candidates import Pool, Search
from camlang.synth.capturing import LazySplit
from camlang.synth.compare import PairedComparison
from camlang.synth.equivalence import EquivalenceNotes
from camlang.synth.finalise import Final
from camlang.synth.holdout import Holdout
from camlang.synth.job import Stop, SynthJob
from camlang.synth.limits import PhaseEnds, TimeSplit
from camlang.synth.scoring import bootstrap
from camlang.synth.terminal_store import TerminalStore
from camlang.synth.tune_winner import TunedWinner


@dataclass(frozen=True)
class SynthStats:
    """What a synthesis did and measured, beyond the report (for tests, benchmarks, the REPL)."""

    terms_built: int
    ill_typed: int
    kept: Mapping[str, int]
    dropped: Mapping[str, Mapping[str, int]]
    levels_done: int
    stop_reason: str | None
    strategy: str
    ranking_compare: bool
    candidates: int
    per_candidate_image_passes: float
    race_rounds: tuple[int, ...]
    train_scores_winner: float | None
    train_ci_winner: tuple[float, float] | None
    contained_stdlib: tuple[str, ...]
    anchors: tuple[str, ...]
    stdlib_train: Mapping[str, float]
    train_images: Mapping[str, int]
    constants: tuple[tuple[str, float], ...]
    best_stdlib_train: str | None
    holdout_images: int
    holdout_estimate_s: float | None
    paired: PairedComparison | None
    seconds: float
    time_split: TimeSplit  # the planned shares of `time`
    search_seconds: float  # used by the search and tuning (everything before the holdout capture)
    compare_seconds: float  # used by the holdout capture and comparison
    train_captured: int  # training images whose terminals the race asked for
    train_score_captured: int  # of them, with the score terminals (S_masked, S_ablated)
    reused_passes: int  # forward passes the terminal store saved (read back, not recomputed)
    damaged_terminal_files: tuple[str, ...]  # stored batches that could not be read (captured again)
    tuning: TunedWinner
    scoring_seconds: float  # wall time of the race's and final checks' scoring calls
    scoring_passes: int  # the objective's forward passes in them
    scoring_calls: int  # the model calls they took (passes / calls: images per call)
    timing: SynthTiming  # the planned split and the seconds each phase used (the report's)


@dataclass(frozen=True)
class SynthOutcome:
    """What a synthesis returns: the winner (built in `program.builder`) and its report."""

    name: str
    node: Node
    source_text: str
    partial: bool
    result: SynthResult
    forward_passes: int
    search_forward_passes: int = 0
    stats: SynthStats | None = None


@dataclass(frozen=True)
class _Run:
    """What every phase produced, for the report."""

    search: Search
    pool: Pool
    final: Final
    hold: Holdout
    stop: Stop
    n_train: int
    split: LazySplit
    tuned: TunedWinner
    ends: PhaseEnds  # when the search and the tuning ended
    store: TerminalStore

    def constants_of(self, node: Node) -> tuple[tuple[str, float], ...]:
        """The constants `node` chose: tuned values for the tuned winner, else the grid's."""
        if self.tuned.node is node:
            return self.tuned.values
        return self.search.en.constants_of(node)


def build_outcome(
    job: SynthJob,
    search: Search,
    pool: Pool,
    final: Final,
    hold: Holdout,
    stop: Stop,
    split: LazySplit,
    notes: EquivalenceNotes,
    tuned: TunedWinner,
    ends: PhaseEnds,
    store: TerminalStore,
) -> SynthOutcome:
    """The report section of the run, its statistics, and the winner."""
    run = _Run(search, pool, final, hold, stop, split.count, split, tuned, ends, store)
    st = job.settings
    winner = final.winner
    shown = final.ordered[: max(1, st.top)]
    candidates = _candidates(job, run, shown, notes)
    counts = _counts(job, run)
    timing = _timing(job.limits.split, ends, counts.seconds)
    res = SynthResult(
        job.name,
        job.grammar.name,
        MetricInfo(st.objective, job.direction, job.objective.source_text),
        candidates,
        counts,
        stop.partial,
        hold.comparison,
        hold.visuals,
        None if hold.paired is None else hold.paired.sentence,
        timing,
    )
    stats = _stats(job, run, shown, counts.seconds, timing)
    job.log.say(f"done; {timing.describe()}")
    job.log.finish(st.max_size)
    return SynthOutcome(
        job.name,
        winner,
        to_text(simplify(job.program.builder, winner)),
        stop.partial,
        res,
        job.counter.images,
        final.search_passes,
        stats,
    )


def _candidates(
    job: SynthJob, run: _Run, shown: tuple[Node, ...], notes: EquivalenceNotes
) -> list[Candidate]:
    """The shown candidates' rows: simplified text, size, training mean, holdout interval, note."""
    en, final, hold = run.search.en, run.final, run.hold
    equalities = {n.nid: notes.of(n).note for n in shown}
    nan = math.nan
    rows = []
    for n in shown:
        iv = hold.intervals.get(n.nid)
        rows.append(
            Candidate(
                to_text(simplify(job.program.builder, n)) + constants_suffix(run.constants_of(n)),
                en.sizes.get(n.nid, n.size),
                final.train_scores.get(n.nid, nan),
                nan if iv is None else iv.mean,
                nan if iv is None else iv.ci_low,
                nan if iv is None else iv.ci_high,
                equalities.get(n.nid),
            )
        )
    return rows


def _counts(job: SynthJob, run: _Run) -> SynthCounts:
    """How many terms were built, how many stayed distinct after each oracle, and the cost (the
    run's seconds are measured here, once every phase is done)."""
    en = run.search.en
    start = job.grammar.start
    start_dropped = en.stats.dropped.get(start, {})
    start_built = en.stats.built.get(start, 0)
    distinct: dict[str, int] = {}
    after = start_built - start_dropped.get("syntactic", 0)
    distinct["syntactic"] = after
    after -= start_dropped.get("invalid", 0)
    distinct["valid"] = after
    after -= start_dropped.get("observational", 0)
    distinct["observational"] = after
    if run.search.observer.ranking:
        after -= start_dropped.get("ranking", 0)
        distinct["ranking"] = after
    grammar_nids = {n.nid for n in run.pool.cands}
    n_full = len({n for n, k in run.final.train_images.items() if k == run.n_train and n in grammar_nids})
    seconds = time.monotonic() - job.limits.started
    # Forward passes of the search itself (capture + selection), comparable with the exhaustive
    # estimate; the final full evaluations and the holdout report are counted in the outcome.
    return SynthCounts(
        start_built, distinct, n_full, run.final.search_passes, seconds, run.final.exhaustive_passes
    )


def _timing(split: TimeSplit, ends: PhaseEnds, seconds: float) -> SynthTiming:
    """The planned split of `time` and the seconds each phase used; the phases add up to
    `seconds`, the synthesis's whole time (the comparison runs from the tuning's end to it)."""
    search = min(ends.search, seconds)
    tuned = min(max(ends.tuning, search), seconds)
    spent = PhaseSeconds(search, tuned - search, seconds - tuned)
    planned = None if split.seconds is None else PhaseSeconds(split.search, split.tuning, split.compare)
    return SynthTiming(split.seconds, TimeSplit.rule(), planned, spent)


def _stats(
    job: SynthJob, run: _Run, shown: tuple[Node, ...], seconds: float, timing: SynthTiming
) -> SynthStats:
    st = job.settings
    en, observer, final, hold = run.search.en, run.search.observer, run.final, run.hold
    winner = final.winner
    winner_values = final.train_values.get(winner.nid)
    winner_ci = None
    if winner_values is not None:
        iv = bootstrap(winner_values[None], st.seed)[0]
        winner_ci = (iv.ci_low, iv.ci_high)
    search_seconds = min(seconds, run.ends.tuning)
    best_stdlib = (
        max(sorted(final.stdlib_train), key=lambda r: job.sign * final.stdlib_train[r])
        if final.stdlib_train
        else None
    )
    return SynthStats(
        terms_built=sum(en.stats.built.values()),
        ill_typed=en.stats.ill_typed,
        kept=dict(en.stats.kept),
        dropped={k: dict(v) for k, v in en.stats.dropped.items()},
        levels_done=en.stats.levels_done,
        stop_reason=run.stop.reason,
        strategy=st.strategy,
        ranking_compare=observer.ranking,
        candidates=len(run.pool.cands),
        per_candidate_image_passes=job.clock.passes_per_pair(),
        race_rounds=tuple(sorted(set(final.race.eliminated_at.values()))),
        train_scores_winner=final.train_scores.get(winner.nid),
        train_ci_winner=winner_ci,
        contained_stdlib=tuple(sorted(run.pool.contained)),
        anchors=tuple(sorted(run.pool.anchors)),
        stdlib_train=dict(final.stdlib_train),
        train_images={to_text(n): final.train_images.get(n.nid, 0) for n in shown},
        constants=run.constants_of(winner),
        best_stdlib_train=best_stdlib,
        holdout_images=hold.images,
        holdout_estimate_s=hold.estimate_s,
        paired=hold.paired,
        seconds=seconds,
        time_split=job.limits.split,
        search_seconds=search_seconds,
        compare_seconds=max(0.0, seconds - search_seconds),
        train_captured=run.split.count,
        train_score_captured=run.split.score_count,
        reused_passes=run.store.reused_passes,
        damaged_terminal_files=tuple(run.store.damaged),
        tuning=run.tuned,
        scoring_seconds=job.clock.seconds,
        scoring_passes=job.clock.passes,
        scoring_calls=job.clock.calls,
        timing=timing,
    )


def constants_suffix(chosen: tuple[tuple[str, float], ...]) -> str:
    """`  [t = 0.5, k = 2]`: the constant holes a candidate chose, for the report."""
    if not chosen:
        return ""
    return "  [" + ", ".join(f"{nt} = {value:g}" for nt, value in chosen) + "]"

"""`synthesize`: enumerate a grammar, prune with the oracles, race on the objective, report.

The phases, each a function below:
1. **capture**: the terminals of every training image once (forward + partial backward, plus
   the score terminals when the grammar reads them), and of the holdout images. Every later
   evaluation of a candidate reuses them: the only other model calls are the objective's.
2. **enumerate**: bottom-up by size; the observer drops observationally equal and invalid
   terms on the probe batch (the first `probe` training images).
3. **deduplicate**: simplify the kept CAMs (normal forms), merge equal ones, find the stdlib
   CAMs the grammar contains and the stdlib CAMs outside it that can be scored for free.
4. **race**: the distinct CAMs on the training images, with the stdlib CAMs outside the grammar
   as anchors in the paired elimination (or score them all: `exhaustive`).
5. **finalise**: the `finalists` best of the race and the contained stdlib CAMs on every
   training image; the best mean is the winner.
6. **compare**: the winner and every stdlib CAM on the holdout (never used for selection),
   with the paired difference to the best stdlib CAM and a one-sentence verdict.
7. **report**: the `SynthResult` and a typed record of the run's statistics.

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

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.data import Dataset
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, to_text
from camlang.frontend.program import GrammarDef, MetricDef, Program, SynthDef
from camlang.metrics._common import CallCounter
from camlang.passes.simplify import simplify
from camlang.report.model import Candidate, Interval, MetricInfo, SynthCounts, SynthResult, Visuals
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import referenced_cams
from camlang.synth.cache import ScoreCache
from camlang.synth.compare import PairedComparison, StdlibScoreCache, paired_comparison
from camlang.synth.enumeration import Enumerator, Fixed, Template
from camlang.synth.limits import Limits, PairClock, ProgressLog
from camlang.synth.observe import Observer, all_ranking_only
from camlang.synth.proof import prove_equivalent
from camlang.synth.racing import RaceResult, StopSearch, exhaustive, race
from camlang.synth.scoring import Scorer, SplitData, bootstrap, capture_split
from camlang.synth.settings import SynthSettings
from camlang.synth.sharding import SynthGroup

#: Race the stdlib CAMs outside the grammar as anchors when there are this many candidates per anchor.
ANCHOR_FIELD_RATIO = 8
#: Share of `time` the training capture may use (selection then uses the images captured).
TRAIN_CAPTURE_SHARE = 0.3
#: Share of `time` the holdout capture may use (the rest of its images are left out).
HOLDOUT_CAPTURE_SHARE = 0.25


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
class _Job:
    """Everything the phases share: resolved declarations, settings, limits and progress."""

    program: Program
    sdef: SynthDef
    settings: SynthSettings
    grammar: GrammarDef
    objective: MetricDef
    sign: float
    refs: dict[str, Node]
    live: LiveModel
    batch_size: int
    counter: CallCounter
    limits: Limits
    clock: PairClock
    log: ProgressLog
    cache_dir: Path | None
    resume: bool
    stdlib: frozenset[str]  # the reference CAMs (the objective's refs may add others)
    equivalences: dict[int, tuple[str | None, list[str]]] = field(default_factory=dict)
    group: SynthGroup = field(default_factory=SynthGroup)

    @property
    def name(self) -> str:
        return self.sdef.name

    @property
    def timed(self) -> bool:
        """Does a clock decide anything (a `time` limit)? Then rank 0 decides for every rank."""
        return self.limits.seconds is not None

    def score(self, scorer: Scorer, nodes: list[Node], images: list[int]) -> torch.Tensor:
        """`scorer(nodes, images)`, split over the workers' images (the full matrix on every rank)."""
        return self.group.score(scorer, nodes, images, self.counter)


@dataclass
class _Stop:
    """Why the search stopped early (time, budget) and whether the run is partial (interrupted).

    A search cut short by `time` or `budget` still gets its final checks and holdout comparison
    (time reserved them); only an interruption leaves a partial result.
    """

    partial: bool = False
    reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if reason == "interrupted":
            self.partial = True


class _NoTime(Exception):
    """The time limit leaves no room for a phase's optional work."""


def _interrupted(job: _Job, stop: _Stop) -> None:
    """Ctrl-C: keep the best so far in one process; end the synthesis on every rank otherwise.

    Each worker gets its own interrupt at its own point of the code, so no common result can be
    made from them: the run's partial report and the score cache keep what finished.
    """
    if job.group.distributed:
        raise KeyboardInterrupt
    stop.set("interrupted")


@dataclass(frozen=True)
class _Pool:
    """The distinct complete CAMs after deduplication, and the stdlib CAMs around them."""

    cands: list[Node]
    texts: list[str]
    contained: dict[str, Node]
    anchors: dict[str, Node]


@dataclass(frozen=True)
class _Final:
    """The training-split outcome: candidates best first, their scores and image counts."""

    ordered: list[Node]
    train_scores: dict[int, float]
    train_images: dict[int, int]
    train_values: dict[int, torch.Tensor]
    stdlib_train: dict[str, float]
    race: RaceResult
    search_passes: int
    exhaustive_passes: int | None


@dataclass(frozen=True)
class _Holdout:
    """The holdout comparison's numbers."""

    intervals: dict[int, Interval] = field(default_factory=dict)
    comparison: dict[str, Interval] = field(default_factory=dict)
    paired: PairedComparison | None = None
    images: int = 0
    estimate_s: float | None = None
    visuals: Visuals | None = None


def default_reference_cams(program: Program) -> dict[str, Node]:
    """The cams that came from the stdlib's cams.cam, by name."""
    return {
        n: c.node for n, c in program.cams.items() if c.node is not None and c.origin.endswith("cams.cam")
    }


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
    progress: Any = None,
    reference_cams: dict[str, Node] | None = None,
    echo: Callable[[str], None] | None = None,
    dist: Any = None,
) -> SynthOutcome:
    """Find the grammar's expression that best optimizes the objective on `train` (see module docs).

    `progress` is a rich `Progress` (a live task when it draws to a terminal, plain lines on its
    console otherwise); `echo` receives the plain lines instead when given. `dist` (a
    `camlang.distributed.Dist`) shares the work among a run's workers; every rank calls this and
    gets the same winner, and rank 0's result alone has the report's notes and pictures.
    """
    job = _prepare(program, sdef, live, batch_size, seed, cache_dir, resume, progress, reference_cams, echo)
    job = dataclasses.replace(job, group=SynthGroup(dist))
    stop = _Stop()
    data = _capture_train(job, train)
    en, observer = _enumerate(job, data, stop)
    pool = _deduplicate(job, en, data)
    before = job.counter.images
    hdata = _capture_holdout(job, holdout, data, stop)
    final = _race_and_finalise(job, data, pool, hdata, job.counter.images - before, stop)
    hold = _Holdout()
    if not stop.partial:
        try:
            hold = _compare(job, final, data, hdata, observer)
        except KeyboardInterrupt:
            _interrupted(job, stop)
    job.group.check_same("winner", to_text(final.ordered[0]))
    return _report(job, en, observer, pool, final, hold, stop, data.count)


# ---- phase 0: resolve the declarations and settings -------------------------------------------


def _prepare(
    program: Program,
    sdef: SynthDef,
    live: LiveModel,
    batch_size: int,
    seed: int,
    cache_dir: Path | None,
    resume: bool,
    progress: Any,
    reference_cams: dict[str, Node] | None,
    echo: Callable[[str], None] | None,
) -> _Job:
    settings = SynthSettings.from_def(sdef, seed)
    grammar = program.grammars.get(sdef.grammar)
    if grammar is None:
        raise CamlangError(f"synthesize `{sdef.name}`: unknown grammar `{sdef.grammar}`", span=sdef.span)
    objective = program.metrics.get(settings.objective)
    if objective is None:
        raise CamlangError(
            f"synthesize `{sdef.name}`: unknown objective metric `{settings.objective}`", span=sdef.span
        )
    refs = default_reference_cams(program) if reference_cams is None else dict(reference_cams)
    stdlib = frozenset(refs)
    for r in referenced_cams([objective.node]):
        node = program.cams[r].node if r in program.cams else None
        if r not in refs and node is not None:
            refs[r] = node
    counter = CallCounter()
    return _Job(
        program,
        sdef,
        settings,
        grammar,
        objective,
        1.0 if objective.direction == "maximize" else -1.0,
        refs,
        live,
        batch_size,
        counter,
        Limits(counter, settings.budget, settings.time),
        PairClock(),
        ProgressLog(sdef.name, progress, echo, settings.max_size),
        cache_dir,
        resume,
        stdlib,
    )


# ---- phase 1: capture -------------------------------------------------------------------------


def _grammar_terminals(en: Enumerator) -> set[str]:
    fixed: list[Node] = []

    def walk(t: Template) -> None:
        if isinstance(t, Fixed):
            fixed.append(t.node)
        elif not hasattr(t, "nonterminal"):
            for a in t.args:  # type: ignore[union-attr]
                walk(a)

    for alts in en.alts.values():
        for alt in alts:
            walk(alt.template)
    return terminals_used(fixed)


def _capture_train(job: _Job, train: Dataset) -> SplitData:
    dummy = Enumerator(job.program, job.grammar, job.settings.max_size, lambda nt, n, s: "kept")
    objective_refs = [job.refs[r] for r in referenced_cams([job.objective.node]) if r in job.refs]
    needs = _grammar_terminals(dummy) | terminals_used(objective_refs) | {"S", "P"}
    job.log.say(f"capturing {len(train)} training images ({', '.join(sorted(needs))})")
    limits = job.limits
    share_end = None if limits.seconds is None else time.monotonic() + TRAIN_CAPTURE_SHARE * limits.seconds

    def check() -> None:
        limits.check()
        if share_end is not None and time.monotonic() >= share_end:
            raise StopSearch("the training capture's share of the time limit reached")

    # Under a time limit, small batches let the capture stop in time; selection then uses the
    # images captured so far (a prefix of the training split) and says so.
    batch = job.batch_size if limits.seconds is None else max(1, min(job.batch_size, 4))
    try:
        before = job.group.stop_check(check, job.timed)
        data = capture_split(
            job.live, train, needs, batch, job.counter, before, keep_partial=True, group=job.group
        )
    except StopSearch as stop:
        raise CamlangError(
            f"synthesize `{job.name}`: {stop} while capturing the training data",
            hint="raise `budget` or `time`",
        ) from None
    if data.count < len(train):
        job.log.say(f"time allowed capturing {data.count} of {len(train)} training images")
    return data


def _capture_holdout(job: _Job, holdout: Dataset | None, data: SplitData, stop: _Stop) -> SplitData | None:
    """The holdout's terminals, for the winner and every stdlib CAM (captured before the search,
    so its cost is known and the comparison's estimate covers only scoring)."""
    if holdout is None or stop.partial:
        return None
    needs = set(data.terminals) | terminals_used(list(job.refs.values()))
    job.log.say(f"capturing {len(holdout)} holdout images")
    limits = job.limits
    # The holdout capture may use a share of the time; a prefix of the holdout is still disjoint
    # from the training split, and the comparison says how many images it used.
    share_end = None if limits.seconds is None else time.monotonic() + HOLDOUT_CAPTURE_SHARE * limits.seconds

    def check() -> None:
        if share_end is not None and time.monotonic() >= share_end:
            raise StopSearch("the holdout capture's share of the time limit reached")

    try:
        # under a time limit, small batches let the share check stop the capture in time
        batch = job.batch_size if limits.seconds is None else max(1, min(job.batch_size, 4))
        before = job.group.stop_check(check, job.timed)
        hdata = capture_split(
            job.live, holdout, needs, batch, job.counter, before, keep_partial=True, group=job.group
        )
    except KeyboardInterrupt:
        _interrupted(job, stop)
        return None
    if hdata.count < len(holdout):
        job.log.say(f"time allowed capturing {hdata.count} of {len(holdout)} holdout images")
    return hdata


# ---- phase 2: enumerate -----------------------------------------------------------------------


def _enumerate(job: _Job, data: SplitData, stop: _Stop) -> tuple[Enumerator, Observer]:
    st = job.settings
    probe_idx = list(range(min(st.probe, data.count)))
    observer = Observer(
        data.terminals_of(probe_idx),
        data.size,
        job.grammar.start,
        all_ranking_only([job.objective.node]),
        seed=st.seed,
    )
    en = Enumerator(job.program, job.grammar, st.max_size, observer.admit)
    job.limits.start_enumeration()
    check = job.group.stop_check(job.limits.check, job.timed)
    try:
        for k in en.levels():
            job.log.update(
                f"enumerating: size {k}/{st.max_size} · {en.stats.kept.get(job.grammar.start, 0)} candidates",
                k,
            )
            check()
    except StopSearch as reason:
        stop.set(str(reason))
    except KeyboardInterrupt:
        _interrupted(job, stop)
    finally:
        job.limits.enumeration_end = None
    return en, observer


# ---- phase 3: deduplicate ---------------------------------------------------------------------


def _deduplicate(job: _Job, en: Enumerator, data: SplitData) -> _Pool:
    cands: list[Node] = []
    texts: list[str] = []
    seen_simplified: set[int] = set()
    for _, node in en.terms(job.grammar.start):
        normal = simplify(job.program.builder, node)
        if normal.nid in seen_simplified:
            continue
        seen_simplified.add(normal.nid)
        cands.append(node)
        texts.append(to_text(normal))
    if not cands:
        raise CamlangError(
            f"synthesize `{job.name}`: grammar `{job.grammar.name}` gave no valid CAM within "
            f"max_size = {job.settings.max_size}",
            hint="raise max_size or check the grammar's types",
        )
    # A stdlib CAM is in the grammar when the enumerator built it, or when its normal form is one
    # a kept candidate simplifies to (`softmax_c(1 * S_masked)` is Score-CAM's weight).
    in_grammar = en.seen.get(job.grammar.start, set())
    contained = {
        r: node
        for r, node in job.refs.items()
        if node.nid in in_grammar or simplify(job.program.builder, node).nid in seen_simplified
    }
    captured = set(data.terminals)
    anchors = {
        r: node
        for r, node in sorted(job.refs.items())
        if r not in contained and terminals_used([node]) <= captured
    }
    # Every rank enumerated on its own: the race needs the same rows, in the same order, everywhere.
    job.group.check_same("candidate list", "\n".join(texts + sorted(contained) + ["|"] + list(anchors)))
    return _Pool(cands, texts, contained, anchors)


# ---- phases 4 and 5: race and finalise --------------------------------------------------------


def _reserve_seconds(job: _Job, pool: _Pool, n_train: int, hdata: SplitData | None) -> float:
    """Seconds the final checks and the holdout comparison will need, from the measured pair cost."""
    per_pair = job.clock.per_pair()
    n_refs = len(job.refs)
    finalise = (job.settings.finalists + len(pool.contained) + len(pool.anchors)) * n_train
    compare = 0 if hdata is None else (1 + n_refs) * hdata.count
    return 1.1 * per_pair * (finalise + compare)


def _finalists_that_fit(job: _Job, pool: _Pool, n_train: int, hdata: SplitData | None) -> int:
    """How many race leaders can be re-scored on every training image in the time left after
    the holdout comparison's share (at most `finalists`; 0 when not even the leader fits)."""
    per_pair, left = job.clock.per_pair(), job.limits.remaining()
    if not math.isfinite(left) or per_pair <= 0:
        return job.settings.finalists
    compare = 0.0 if hdata is None else per_pair * (1 + len(job.refs)) * hdata.count
    fit = int((left - compare) / (1.1 * per_pair * n_train)) - len(pool.contained)
    return max(0, min(job.settings.finalists, fit))


def _agree_timed(job: _Job, decision: Any) -> Any:
    """A decision read off the clock: rank 0's, on every rank (as it is without a time limit)."""
    return job.group.agree(decision) if job.timed else decision


def _out_of_time(job: _Job, n_train: int, hdata: SplitData | None) -> bool:
    """Would one more finalist on every training image eat into the comparison's time?"""
    left = job.limits.remaining()
    if not math.isfinite(left):
        return False
    per_pair = job.clock.per_pair()
    compare = 0.0 if hdata is None else per_pair * (1 + len(job.refs)) * hdata.count
    return left - compare < 1.1 * per_pair * n_train


def _race_and_finalise(
    job: _Job, data: SplitData, pool: _Pool, hdata: SplitData | None, holdout_passes: int, stop: _Stop
) -> _Final:
    st = job.settings
    n_train = data.count
    scorer = Scorer(job.live, data, job.objective, job.refs, job.counter, st.seed)
    anchor_nodes = list(pool.anchors.values())
    rows = pool.cands + anchor_nodes
    texts = pool.texts + [to_text(n) for n in anchor_nodes]
    group = job.group
    cache = ScoreCache(
        # rank 0 alone reads and writes the file; the other ranks get its values and keep the same copy
        ScoreCache.file_for(job.cache_dir, job.name) if group.is_main else None,
        {
            "grammar": job.grammar.name,
            "objective": st.objective,
            "max_size": st.max_size,
            "seed": st.seed,
            "model": job.live.name,
            "layer": job.live.layer_path,
            "n": n_train,
            "data": data.x[:4].sum().item(),
        },
        job.resume,
    )
    if group.distributed and job.resume:
        cache.values = group.agree(cache.values)
    before_search = job.counter.images - holdout_passes
    check_limits = group.stop_check(job.limits.check, job.timed)

    def values(ci: list[int], ii: list[int]) -> torch.Tensor:
        """Not-oriented metric values of rows `ci` on images `ii`, from the cache when present."""
        out = torch.full((len(ci), len(ii)), math.nan)
        todo = [j for j, c in enumerate(ci) if any(cache.get(texts[c], i) is None for i in ii)]
        for j, c in enumerate(ci):
            if j not in todo:
                out[j] = torch.tensor([cache.get(texts[c], i) for i in ii])  # type: ignore[misc]
        if todo:
            t0, p0 = time.monotonic(), job.counter.images
            got = job.score(scorer, [rows[ci[j]] for j in todo], ii)
            job.clock.add(time.monotonic() - t0, len(todo) * len(ii), job.counter.images - p0)
            for r, j in enumerate(todo):
                out[j] = got[r]
                for col, i in enumerate(ii):
                    cache.put(texts[ci[j]], i, float(got[r, col]))
            cache.save()
        return out

    def score(ci: list[int], ii: list[int]) -> torch.Tensor:
        check_limits()
        out = values(ci, ii)
        job.limits.reserve = _reserve_seconds(job, pool, n_train, hdata)
        best = float(job.sign * out.nanmean(1).max()) if out.numel() else math.nan
        left = job.limits.remaining()
        budget = (
            f" · {max(0.0, left - job.limits.reserve):.0f}s of search left" if math.isfinite(left) else ""
        )
        job.log.update(
            f"racing {len(pool.cands)} candidates on up to {len(ii) + min(ii, default=0)} images · "
            f"{job.counter.images} forward passes · best {best:.4g}{budget}"
        )
        return job.sign * out

    # Anchors cost their first round (every stdlib CAM on `race_first` images); they pay off
    # only when they can eliminate many candidates early, so a small field races without them.
    use_anchors = st.strategy != "exhaustive" and len(pool.cands) >= ANCHOR_FIELD_RATIO * len(anchor_nodes)
    n_anchor = len(anchor_nodes) if use_anchors else 0
    rows = rows[: len(pool.cands) + n_anchor]
    texts = texts[: len(rows)]
    if st.strategy == "exhaustive":
        keep = not group.distributed
        result: RaceResult = exhaustive(len(pool.cands), n_train, score, keep_on_interrupt=keep)
    else:
        result = race(
            len(rows),
            n_train,
            score,
            first=st.race_first,
            anchors=n_anchor,
            keep=min(st.finalists, len(pool.cands)),
            keep_on_interrupt=not group.distributed,
        )
    if result.stopped is not None:
        stop.set(result.stopped)
    # The holdout capture is the comparison's cost, not the search's.
    search_passes = job.counter.images - holdout_passes
    per_pair = job.clock.passes_per_pair()
    exhaustive_passes = (
        int(before_search + per_pair * len(pool.cands) * n_train) if st.strategy != "exhaustive" else None
    )
    n_cands = len(pool.cands)
    order = [i for i in result.ranking() if i < n_cands]
    means, seen_n = result.means(), result.evaluated()
    train_scores = {rows[i].nid: float(job.sign * means[i]) for i in order if int(seen_n[i]) > 0}
    train_images = {rows[i].nid: int(seen_n[i]) for i in order}
    ordered = [rows[i] for i in order]
    train_values: dict[int, torch.Tensor] = {}
    stdlib_train: dict[str, float] = {}
    if not stop.partial:
        try:
            # The budget bounds the search; the final checks always complete (time reserved them).
            job.limits.budget = None
            all_images = list(range(n_train))
            fit = _agree_timed(job, _finalists_that_fit(job, pool, n_train, hdata))
            if fit == 0:
                job.log.say("no time left to re-score the finalists: the race's leader wins")
                raise _NoTime
            finalists = ordered[:fit]
            stdlib = dict(pool.contained)
            extra = finalists + [n for n in stdlib.values() if n not in finalists]
            index = {n.nid: i for i, n in enumerate(rows)}
            for node in extra:
                if node.nid not in index:
                    index[node.nid] = len(rows)
                    rows.append(node)
                    texts.append(to_text(node))
            job.log.say(
                f"finalists: {len(finalists)} candidates and {len(stdlib)} stdlib CAMs on {n_train} images"
            )
            # One CAM at a time, so a time limit (or a pair cost not yet measured) stops between them.
            done: list[Node] = []
            for node in extra:
                if _agree_timed(job, bool(done or job.clock.pairs) and _out_of_time(job, n_train, hdata)):
                    job.log.say(f"time limit: {len(done)} of {len(extra)} finalists re-scored")
                    break
                row = values([index[node.nid]], all_images)[0]
                train_values[node.nid] = row
                train_scores[node.nid] = float(row.mean())
                train_images[node.nid] = n_train
                done.append(node)
            for r, node in stdlib.items():
                if node in done:
                    stdlib_train[r] = train_scores[node.nid]
            contenders = [n for n in done if n in finalists or n in pool.contained.values()]
            if not contenders:
                raise _NoTime
            best = max(contenders, key=lambda n: job.sign * train_scores[n.nid])
            if best is not ordered[0]:
                ordered = [best] + [n for n in ordered if n is not best]
        except _NoTime:
            pass
        except KeyboardInterrupt:
            _interrupted(job, stop)
    return _Final(
        ordered,
        train_scores,
        train_images,
        train_values,
        stdlib_train,
        result,
        search_passes,
        exhaustive_passes,
    )


# ---- phase 6: the holdout comparison ----------------------------------------------------------


def _compare(
    job: _Job, final: _Final, data: SplitData, hdata: SplitData | None, observer: Observer
) -> _Holdout:
    winner = final.ordered[0]
    scorer_train = Scorer(job.live, data, job.objective, job.refs, job.counter, job.settings.seed)
    if hdata is None:
        if not job.group.is_main:
            return _Holdout()
        return _Holdout(visuals=_visuals(scorer_train, data, job.name, winner, job.refs))
    shown = final.ordered[: max(1, job.settings.top)]
    ref_names = sorted(job.refs)
    cache = StdlibScoreCache(
        job.cache_dir if job.group.is_main else None,  # rank 0's cache decides what is scored
        hdata,
        hdata.count,
        job.objective.source_text,
        job.settings.seed,
        f"{job.live.loaded.source}@{job.live.layer_path}",
    )
    n = hdata.count
    cached = {r: cache.get(to_text(job.refs[r]), n) for r in ref_names}
    missing = [r for r in ref_names if cached[r] is None]
    per_pair = job.clock.per_pair()
    left = job.limits.remaining()
    # Required: the winner and the stdlib CAMs not cached; the other shown candidates if they fit.
    need_pairs = (1 + len(missing)) * n
    if math.isfinite(left) and per_pair > 0 and need_pairs * per_pair > left:
        n = max(2, min(n, int(left / (per_pair * (1 + len(missing))))))
        need_pairs = (1 + len(missing)) * n
        cached = {r: cache.get(to_text(job.refs[r]), n) for r in ref_names}
    others = shown[1:]
    if math.isfinite(left) and per_pair > 0:
        spare = max(0.0, left - need_pairs * per_pair)
        others = others[: int(spare / (per_pair * n))]
    if job.group.distributed:
        n, n_others, cached, missing = job.group.agree((n, len(others), cached, missing))
        others = shown[1 : 1 + n_others]
        need_pairs = (1 + len(missing)) * n
    estimate = per_pair * (need_pairs + len(others) * n)
    job.log.say(
        f"holdout comparison: {1 + len(others)} synthesized and {len(missing)} stdlib CAMs to score "
        f"({len(ref_names) - len(missing)} cached) on {n} images, about {estimate:.0f}s "
        f"({per_pair * 1000:.1f} ms per cam and image measured during the search)"
    )
    idx = list(range(n))
    hscorer = Scorer(job.live, hdata, job.objective, job.refs, job.counter, job.settings.seed)
    # The winner first, then one stdlib CAM at a time while time is left (a CAM's maps may cost
    # more than the search's measured pair cost, e.g. an SVD), then the other shown candidates.
    scored = [winner]
    syn_rows = [job.score(hscorer, [winner], idx)[0]]
    skipped: list[str] = []
    for r in missing:
        if _agree_timed(job, job.limits.remaining() <= 0):
            skipped.append(r)
            continue
        row = job.score(hscorer, [job.refs[r]], idx)[0]
        cached[r] = row
        cache.put(to_text(job.refs[r]), row)
    cache.save()
    for node in others:
        if _agree_timed(job, job.limits.remaining() <= per_pair * n):
            break
        scored.append(node)
        syn_rows.append(job.score(hscorer, [node], idx)[0])
    syn_vals = torch.stack(syn_rows)
    stdlib_vals = {r: v for r, v in cached.items() if v is not None}
    compared = [r for r in ref_names if r in stdlib_vals]
    rows = [syn_vals] + ([torch.stack([stdlib_vals[r] for r in compared])] if compared else [])
    ivs = bootstrap(torch.cat(rows), job.settings.seed)
    intervals = {node.nid: iv for node, iv in zip(scored, ivs)}
    comparison = {job.name: ivs[0]}
    for r, iv in zip(compared, ivs[len(scored) :]):
        comparison[r] = iv
    _, equal = _equivalence(job, observer, winner)
    equal = [r for r in equal if r in job.stdlib]
    paired = paired_comparison(
        syn_vals[0],
        {r: v for r, v in stdlib_vals.items() if r in job.stdlib},
        job.sign,
        job.settings.seed,
        equal[0] if equal else None,
        job.objective.name,
    )
    if paired is not None and skipped:
        note = f" Not compared (time limit): {', '.join(f'`{r}`' for r in skipped)}."
        paired = dataclasses.replace(paired, sentence=paired.sentence + note)
    if paired is not None:
        job.log.say(paired.sentence)
    else:
        job.log.say("no stdlib CAM could be scored on the holdout within the time limit: no verdict")
    shown_refs = {r: job.refs[r] for r in compared}
    visuals = None
    if job.group.is_main:
        visuals = _visuals(hscorer, hdata, job.name, winner, shown_refs if job.limits.remaining() > 0 else {})
    return _Holdout(intervals, comparison, paired, n, estimate, visuals)


# ---- phase 7: report --------------------------------------------------------------------------


def _report(
    job: _Job,
    en: Enumerator,
    observer: Observer,
    pool: _Pool,
    final: _Final,
    hold: _Holdout,
    stop: _Stop,
    n_train: int,
) -> SynthOutcome:
    st = job.settings
    winner = final.ordered[0]
    shown = final.ordered[: max(1, st.top)]
    notes = {n.nid: _equivalence(job, observer, n)[0] for n in shown}
    nan = math.nan
    constants = {n.nid: en.constants_of(n) for n in shown}
    candidates = [
        Candidate(
            to_text(simplify(job.program.builder, n)) + _constants_suffix(constants[n.nid]),
            en.sizes.get(n.nid, n.size),
            final.train_scores.get(n.nid, nan),
            hold.intervals[n.nid].mean if n.nid in hold.intervals else nan,
            hold.intervals[n.nid].ci_low if n.nid in hold.intervals else nan,
            hold.intervals[n.nid].ci_high if n.nid in hold.intervals else nan,
            notes.get(n.nid),
        )
        for n in shown
    ]
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
    if observer.ranking:
        after -= start_dropped.get("ranking", 0)
        distinct["ranking"] = after
    grammar_nids = {n.nid for n in pool.cands}
    n_full = len({n for n, k in final.train_images.items() if k == n_train and n in grammar_nids})
    seconds = time.monotonic() - job.limits.started
    # Forward passes of the search itself (capture + selection), comparable with the exhaustive
    # estimate; the final full evaluations and the holdout report are counted in the outcome.
    counts = SynthCounts(start_built, distinct, n_full, final.search_passes, seconds, final.exhaustive_passes)
    res = SynthResult(
        job.name,
        job.grammar.name,
        MetricInfo(st.objective, job.objective.direction, job.objective.source_text),  # type: ignore[arg-type]
        candidates,
        counts,
        stop.partial,
        hold.comparison,
        hold.visuals,
        None if hold.paired is None else hold.paired.sentence,
    )
    winner_values = final.train_values.get(winner.nid)
    winner_ci = None
    if winner_values is not None:
        iv = bootstrap(winner_values[None], st.seed)[0]
        winner_ci = (iv.ci_low, iv.ci_high)
    best_stdlib = (
        max(sorted(final.stdlib_train), key=lambda r: job.sign * final.stdlib_train[r])
        if final.stdlib_train
        else None
    )
    stats = SynthStats(
        terms_built=sum(en.stats.built.values()),
        ill_typed=en.stats.ill_typed,
        kept=dict(en.stats.kept),
        dropped={k: dict(v) for k, v in en.stats.dropped.items()},
        levels_done=en.stats.levels_done,
        stop_reason=stop.reason,
        strategy=st.strategy,
        ranking_compare=observer.ranking,
        candidates=len(pool.cands),
        per_candidate_image_passes=job.clock.passes_per_pair(),
        race_rounds=tuple(sorted(set(final.race.eliminated_at.values()))),
        train_scores_winner=final.train_scores.get(winner.nid),
        train_ci_winner=winner_ci,
        contained_stdlib=tuple(sorted(pool.contained)),
        anchors=tuple(sorted(pool.anchors)),
        stdlib_train=dict(final.stdlib_train),
        train_images={to_text(n): final.train_images.get(n.nid, 0) for n in shown},
        constants=constants[winner.nid],
        best_stdlib_train=best_stdlib,
        holdout_images=hold.images,
        holdout_estimate_s=hold.estimate_s,
        paired=hold.paired,
        seconds=seconds,
    )
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


def _constants_suffix(chosen: tuple[tuple[str, float], ...]) -> str:
    """`  [t = 0.5, k = 2]`: the constant holes a candidate chose, for the report."""
    if not chosen:
        return ""
    return "  [" + ", ".join(f"{nt} = {value:g}" for nt, value in chosen) + "]"


def _equivalence(job: _Job, obs: Observer, node: Node) -> tuple[str | None, list[str]]:
    """The note on a candidate's equalities with stdlib CAMs, and the names it equals (memoized).

    Proofs get at most 5 s each and none once less than 10 s of the time limit is left.
    """
    if not job.group.is_main:
        return None, []  # notes for the report, which rank 0 writes
    memo = job.equivalences.get(node.nid)
    if memo is None:
        memo = _equivalence_uncached(job, obs, node)
        job.equivalences[node.nid] = memo
    return memo


def _equivalence_uncached(job: _Job, obs: Observer, node: Node) -> tuple[str | None, list[str]]:
    notes: list[str] = []
    equal: list[str] = []
    for r, ref in sorted(job.refs.items()):
        try:
            same_probe = obs.equal_on_probe(node, ref)
        except KeyError:  # a terminal the probe did not capture
            continue
        if not same_probe:
            continue
        left = job.limits.remaining()
        if left < 10.0:
            notes.append(f"equal to stdlib `{r}` on the probe data (no proof tried: time limit)")
            equal.append(r)
            continue
        try:
            v = prove_equivalent(job.program.builder, node, ref, timeout_s=min(5.0, left / 4))
        except ImportError as err:  # the symbolic oracle's solver is not installed
            notes.append(f"equal to stdlib `{r}` on the probe data (no proof tried: {err})")
            equal.append(r)
            continue
        if v.status == "equivalent":
            notes.append(f"equivalent to stdlib `{r}` (proved: {v.method}, {v.detail})")
            equal.append(r)
        elif v.status == "not_equivalent":
            notes.append(
                f"equal to stdlib `{r}` on the probe data only (not for all inputs: counterexample found)"
            )
            equal.append(r)
        else:
            notes.append(f"equal to stdlib `{r}` on the probe data only")
            equal.append(r)
    return ("; ".join(notes) if notes else None), equal


def _visuals(
    scorer: Scorer, data: SplitData, name: str, winner: Node, refs: dict[str, Node], count: int = 4
) -> Visuals:
    idx = list(range(min(count, data.count)))
    shown = sorted(r for r, n in refs.items() if terminals_used([n]) <= set(data.terminals))
    names = [name] + shown
    nodes = [winner] + [refs[r] for r in shown]
    maps = scorer.maps(nodes, idx)
    masks = data.masks[torch.tensor(idx)] if data.masks is not None else None
    return Visuals(
        data.raw[torch.tensor(idx)], dict(zip(names, maps)), masks, predictions=[data.labels[i] for i in idx]
    )

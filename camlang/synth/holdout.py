"""Phase 6 of `synthesize`: the winner and every stdlib CAM on the holdout (never used for
selection), with the paired difference to the best stdlib CAM and a one-sentence verdict.

The run prints its estimate of the comparison's cost before starting it. What must be scored
(the winner, the stdlib CAMs not in the holdout cache) is fitted to the time left by using fewer
holdout images; the other shown candidates are scored only if they fit too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.frontend.ir import Node, to_text
from camlang.report.model import Interval, Visuals
from camlang.synth.compare import PairedComparison, StdlibScoreCache, paired_comparison
from camlang.synth.equivalence import EquivalenceNotes
from camlang.synth.finalise import Final
from camlang.synth.job import SynthJob
from camlang.synth.scoring import Scorer, SplitData, bootstrap


@dataclass(frozen=True)
class Holdout:
    """The holdout comparison's numbers (empty when it did not run)."""

    intervals: dict[int, Interval] = field(default_factory=dict)  # by node id
    comparison: dict[str, Interval] = field(default_factory=dict)  # the winner's and stdlib names
    paired: PairedComparison | None = None
    images: int = 0
    estimate_s: float | None = None
    visuals: Visuals | None = None


@dataclass(frozen=True)
class _Plan:
    """What the comparison scores, on how many images, and its estimated cost (rank 0's)."""

    images: int
    others: int  # shown candidates after the winner
    cached: dict[str, torch.Tensor | None]  # stdlib name -> its cached holdout values
    missing: tuple[str, ...]  # stdlib names to score
    estimate_s: float


@dataclass(frozen=True)
class _Scored:
    """The comparison's per-image values."""

    nodes: tuple[Node, ...]  # the winner, then the other shown candidates that fitted
    values: torch.Tensor  # [len(nodes), images]
    stdlib: dict[str, torch.Tensor]  # by stdlib name, the ones scored or cached
    skipped: tuple[str, ...]  # stdlib names left out by the time limit


def compare_on_holdout(
    job: SynthJob, final: Final, data: SplitData, hdata: SplitData | None, notes: EquivalenceNotes
) -> Holdout:
    """Score the winner, the stdlib CAMs and (time allowing) the other shown candidates on the
    holdout; the paired verdict against the best stdlib CAM. Without a holdout, only pictures."""
    winner = final.winner
    if hdata is None:
        if not job.group.is_main:
            return Holdout()
        scorer_train = Scorer(job.live, data, job.objective, job.refs, job.counter, job.settings.seed)
        return Holdout(visuals=visuals(scorer_train, data, job.name, winner, job.refs))
    shown = final.ordered[: max(1, job.settings.top)]
    cache = StdlibScoreCache(
        job.cache_dir if job.group.is_main else None,  # rank 0's cache decides what is scored
        hdata,
        hdata.count,
        job.objective.source_text,
        job.settings.seed,
        f"{job.live.loaded.source}@{job.live.layer_path}",
    )
    plan = _plan(job, cache, hdata.count, len(shown) - 1)
    job.log.say(
        f"holdout comparison: {1 + plan.others} synthesized and {len(plan.missing)} stdlib CAMs to score "
        f"({len(job.refs) - len(plan.missing)} cached) on {plan.images} images, about {plan.estimate_s:.0f}s "
        f"({job.clock.per_pair() * 1000:.1f} ms per cam and image measured during the search)"
    )
    hscorer = Scorer(job.live, hdata, job.objective, job.refs, job.counter, job.settings.seed)
    scored = _score(job, hscorer, cache, plan, shown[: 1 + plan.others])
    compared = [r for r in sorted(job.refs) if r in scored.stdlib]
    stdlib_rows = [torch.stack([scored.stdlib[r] for r in compared])] if compared else []
    ivs = bootstrap(torch.cat([scored.values, *stdlib_rows]), job.settings.seed)
    intervals = {node.nid: iv for node, iv in zip(scored.nodes, ivs)}
    comparison = {job.name: ivs[0]}
    for r, iv in zip(compared, ivs[len(scored.nodes) :]):
        comparison[r] = iv
    paired = _paired(job, scored, notes.of(winner).equal)
    shown_refs = {r: job.refs[r] for r in compared}
    pictures = None
    if job.group.is_main:
        pictures = visuals(hscorer, hdata, job.name, winner, shown_refs if job.limits.remaining() > 0 else {})
    return Holdout(intervals, comparison, paired, plan.images, plan.estimate_s, pictures)


def _plan(job: SynthJob, cache: StdlibScoreCache, count: int, n_shown_others: int) -> _Plan:
    """Fit the comparison to the time left: fewer images for what must be scored (the winner and
    the stdlib CAMs not cached), then as many other shown candidates as fit."""
    ref_names = sorted(job.refs)
    n = count
    cached = {r: cache.get(to_text(job.refs[r]), n) for r in ref_names}
    missing = [r for r in ref_names if cached[r] is None]
    per_pair = job.clock.per_pair()
    left = job.limits.remaining()
    need_pairs = (1 + len(missing)) * n
    if math.isfinite(left) and per_pair > 0 and need_pairs * per_pair > left:
        n = max(2, min(n, int(left / (per_pair * (1 + len(missing))))))
        need_pairs = (1 + len(missing)) * n
        cached = {r: cache.get(to_text(job.refs[r]), n) for r in ref_names}
    others = n_shown_others
    if math.isfinite(left) and per_pair > 0:
        spare = max(0.0, left - need_pairs * per_pair)
        others = min(others, int(spare / (per_pair * n)))
    plan = _Plan(n, others, cached, tuple(missing), 0.0)
    if job.group.distributed:
        plan = job.group.agree(plan)
        need_pairs = (1 + len(plan.missing)) * plan.images
    return dataclasses.replace(plan, estimate_s=per_pair * (need_pairs + plan.others * plan.images))


def _score(
    job: SynthJob, hscorer: Scorer, cache: StdlibScoreCache, plan: _Plan, candidates: tuple[Node, ...]
) -> _Scored:
    """The winner first, then one stdlib CAM at a time while time is left (a CAM's maps may cost
    more than the search's measured pair cost, e.g. an SVD), then the other shown candidates."""
    idx = list(range(plan.images))
    per_pair = job.clock.per_pair()
    winner, others = candidates[0], candidates[1:]
    scored = [winner]
    rows = [job.score(hscorer, [winner], idx)[0]]
    cached = dict(plan.cached)
    skipped: list[str] = []
    for r in plan.missing:
        if job.agree_timed(job.limits.remaining() <= 0):
            skipped.append(r)
            continue
        row = job.score(hscorer, [job.refs[r]], idx)[0]
        cached[r] = row
        cache.put(to_text(job.refs[r]), row)
    cache.save()
    for node in others:
        if job.agree_timed(job.limits.remaining() <= per_pair * plan.images):
            break
        scored.append(node)
        rows.append(job.score(hscorer, [node], idx)[0])
    stdlib = {r: v for r, v in cached.items() if v is not None}
    return _Scored(tuple(scored), torch.stack(rows), stdlib, tuple(skipped))


def _paired(job: SynthJob, scored: _Scored, winner_equals: tuple[str, ...]) -> PairedComparison | None:
    """The winner against the best stdlib CAM, with a note on the ones the time limit left out."""
    equal = [r for r in winner_equals if r in job.stdlib]
    paired = paired_comparison(
        scored.values[0],
        {r: v for r, v in scored.stdlib.items() if r in job.stdlib},
        job.sign,
        job.settings.seed,
        equal[0] if equal else None,
        job.objective.name,
    )
    if paired is not None and scored.skipped:
        note = f" Not compared (time limit): {', '.join(f'`{r}`' for r in scored.skipped)}."
        paired = dataclasses.replace(paired, sentence=paired.sentence + note)
    if paired is not None:
        job.log.say(paired.sentence)
    else:
        job.log.say("no stdlib CAM could be scored on the holdout within the time limit: no verdict")
    return paired


def visuals(
    scorer: Scorer, data: SplitData, name: str, winner: Node, refs: dict[str, Node], count: int = 4
) -> Visuals:
    """The first `count` images with the winner's and the `refs`' maps (those the data can draw)."""
    idx = list(range(min(count, data.count)))
    shown = sorted(r for r, n in refs.items() if terminals_used([n]) <= set(data.terminals))
    names = [name] + shown
    nodes = [winner] + [refs[r] for r in shown]
    maps = scorer.maps(nodes, idx)
    masks = data.masks[torch.tensor(idx)] if data.masks is not None else None
    return Visuals(
        data.raw[torch.tensor(idx)], dict(zip(names, maps)), masks, predictions=[data.labels[i] for i in idx]
    )

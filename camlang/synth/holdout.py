"""Phase 6 of `synthesize`: the winner and every stdlib CAM on the holdout (never used for
selection), with the paired difference to the best stdlib CAM and a one-sentence verdict.

The stdlib CAMs are compared in the order of their scores on the selection split (the training
split: the contained ones re-scored on every image, the race's anchors by their race means). The
winner and the first references (the best of them; under a time limit, the ones level with the
best on the same training images, `camlang.synth.references`) must be scored: they are scored
together on growing chunks of the holdout while the time left fits the next chunk at the cost
measured so far (fewer images when it is short; the stdlib CAMs' cached holdout scores cost
nothing). The other stdlib CAMs are scored on the same images while the time allows, best first,
and the other shown candidates after them; the report names the ones left out. The paired verdict
is against the best on the holdout of those scored. The run prints its estimate of the
comparison's cost before starting it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.frontend.ir import Node, to_text
from camlang.report.model import Interval, Visuals
from camlang.synth.compare import PairedComparison, StdlibScoreCache, paired_comparison
from camlang.synth.equivalence import EquivalenceNotes
from camlang.synth.finalise import Final
from camlang.synth.job import SynthJob
from camlang.synth.references import FIRST_REFERENCES, References
from camlang.synth.scoring import Scorer, SplitRows, bootstrap


@dataclass(frozen=True)
class Holdout:
    """The holdout comparison's numbers (empty when it did not run)."""

    intervals: dict[int, Interval] = field(default_factory=dict)  # by node id
    comparison: dict[str, Interval] = field(default_factory=dict)  # the winner's and stdlib names
    paired: PairedComparison | None = None
    images: int = 0
    estimate_s: float | None = None
    visuals: Visuals | None = None


#: Holdout images of the first scoring chunk (it measures the cost); chunks double up to the last.
FIRST_CHUNK = 8
MAX_CHUNK = 256


@dataclass(frozen=True)
class ComparisonOrder:
    """The stdlib CAMs in the order the comparison scores them (best on the selection split
    first) and how many of them it must score."""

    stdlib: tuple[str, ...]
    first: int

    def reads(self, job: SynthJob, final: Final) -> tuple[list[Node], int]:
        """What the holdout capture must serve, and how many CAMs are scored per image at least
        (the winner and the first references). Without a time limit: every shown candidate and
        stdlib CAM. With one: the winner and the first references (the capture adds the other
        stdlib CAMs' terminals except the score terminals); the other stdlib CAMs and shown
        candidates are scored when the capture served them (a score terminal such as `S_masked`
        costs a forward pass per channel and image)."""
        first = [job.refs[r] for r in self.stdlib[: self.first]]
        if job.limits.seconds is None:
            shown = list(final.ordered[: max(1, job.settings.top)])
            return shown + [job.refs[r] for r in self.stdlib], 1 + len(first)
        return [final.winner, *first], 1 + len(first)


def comparison_order(job: SynthJob, final: Final, references: References | None = None) -> ComparisonOrder:
    """The stdlib CAMs best first by their selection-split scores; the ones never scored on the
    selection split last, by name.

    `references` (`camlang.synth.references`: every stdlib CAM's mean on the same first training
    images) ranks first where given: equal evidence for all, the ones level with the best there
    first, and as many of them as it says are the first references (`FIRST_REFERENCES` without
    it). The rest is the fallback for the CAMs it lacks. With `references`, the contained stdlib
    CAMs the final checks re-scored (`_contained`) go first, by those means, and are always first
    references.

    Scores on a few images do not rank against scores on many: the CAMs scored past the race's
    first round (the contained ones re-scored in the final checks, the anchor that raced on, the
    candidates that survived) go first, by score; then the anchors the race scored on its first
    round only (`race_first` images), by score. Seen on ResNet-56 insertion, where the final
    checks had no time left: Eigen-Grad-CAM's mean on the first round's 4 images ranked it first,
    and Score-CAM (contained, raced under its normal form) was looked up under the stdlib node's
    id and counted as never scored. When the race dropped a contained CAM in its first round and
    the final checks had no time to re-score it, its 4-image mean is still all there is (README,
    session 10: Score-CAM left out on ResNet-56 insertion again).
    """
    first_round = job.settings.race_first
    means = references.means if references is not None else {}
    level = set(references.level) if references is not None else set()
    contained = _contained(job, final) if means else {}

    def train_score(r: str) -> tuple[int, float] | None:
        if r in contained:
            return -1, contained[r]
        if r in means:
            return (0 if r in level else 1), means[r]
        if r in final.stdlib_train:
            return 2, final.stdlib_train[r]
        # a contained CAM the final checks did not re-score has its race score under its normal form
        nid = final.contained_nids.get(r, job.refs[r].nid)
        if nid in final.train_scores:
            return (2 if final.train_images.get(nid, 0) > first_round else 3), final.train_scores[nid]
        if nid in final.anchor_scores:
            return (2 if final.anchor_images.get(nid, 0) > first_round else 3), final.anchor_scores[nid]
        return None

    scored = [(r, s) for r in sorted(job.stdlib) if (s := train_score(r)) is not None and math.isfinite(s[1])]
    scored.sort(key=lambda rs: (rs[1][0], -job.sign * rs[1][1]))
    ranked = [r for r, _ in scored]
    seen = set(ranked)
    names = tuple(ranked + [r for r in sorted(job.stdlib) if r not in seen])
    first = references.first(len(names)) if references is not None and means else FIRST_REFERENCES
    if references is not None:  # the contained ones join the first references; the level ones stay
        first += len(set(contained) - set(references.level[:first]))
    return ComparisonOrder(names, min(first, len(names)))


def _contained(job: SynthJob, final: Final) -> dict[str, float]:
    """The contained stdlib CAMs' means in the final checks (not oriented), which scored them on
    the most training images (every one, or the images the race reached), beside the finalists:
    the stdlib CAMs the winner was measured against on the most evidence. They are always first
    references. Seen on ResNet-56 insertion (session 13): all 10 stdlib CAMs were level on the
    references' 64 images, and Score-CAM, contained and re-scored on 1,000 images in the final
    checks, was 8th by mean on the 64 and never compared on the holdout."""
    return {r: v for r, v in final.stdlib_train.items() if math.isfinite(v) and r in job.stdlib}


@dataclass(frozen=True)
class _Plan:
    """What the comparison scores, on how many images, and its estimated cost (rank 0's)."""

    images: int
    others: int  # shown candidates after the winner
    cached: dict[str, torch.Tensor | None]  # stdlib name -> its cached holdout values
    missing: tuple[str, ...]  # stdlib names to score, best on the selection split first
    must: int  # the first `must` of `missing` are scored whatever their cost
    estimate_s: float


@dataclass(frozen=True)
class _Scored:
    """The comparison's per-image values."""

    nodes: tuple[Node, ...]  # the winner, then the other shown candidates that fitted
    values: torch.Tensor  # [len(nodes), images]
    stdlib: dict[str, torch.Tensor]  # by stdlib name, the ones scored or cached
    skipped: tuple[str, ...]  # stdlib names left out by the time limit
    images: int  # the holdout images they were scored on (a prefix)


def compare_on_holdout(
    job: SynthJob,
    final: Final,
    data: SplitRows,
    hdata: SplitRows | None,
    notes: EquivalenceNotes,
    order: ComparisonOrder,
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
    plan = _plan(job, cache, hdata.count, len(shown) - 1, order)
    job.log.say(
        f"holdout comparison: {1 + plan.others} synthesized and {plan.must} stdlib CAMs to score, "
        f"{len(plan.missing) - plan.must} more as time allows "
        f"({len(order.stdlib) - len(plan.missing)} cached) "
        f"on {plan.images} images, about {plan.estimate_s:.0f}s "
        f"({job.clock.per_pair() * 1000:.1f} ms per cam and image measured during the search)"
    )
    hscorer = Scorer(job.live, hdata, job.objective, job.refs, job.counter, job.settings.seed)
    scored = _score(job, hscorer, hdata, cache, plan, shown[: 1 + plan.others])
    compared = [r for r in sorted(order.stdlib) if r in scored.stdlib]
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
    return Holdout(intervals, comparison, paired, scored.images, plan.estimate_s, pictures)


def _plan(
    job: SynthJob, cache: StdlibScoreCache, count: int, n_shown_others: int, order: ComparisonOrder
) -> _Plan:
    """Fit the comparison to the time left: fewer images for what must be scored (the winner and
    the first references not cached), then as many other shown candidates as fit."""
    names = order.stdlib
    n = count

    def lookup(n: int) -> dict[str, torch.Tensor | None]:
        return {r: cache.get(to_text(job.refs[r]), n) for r in names}

    cached = lookup(n)
    must = [r for r in names[: order.first] if cached[r] is None]
    per_pair = job.clock.per_pair()
    left = job.limits.remaining()
    need_pairs = (1 + len(must)) * n
    if math.isfinite(left) and per_pair > 0 and need_pairs * per_pair > left:
        n = min(count, max(2, int(left / (per_pair * (1 + len(must))))))  # 2 at least, if there are
        need_pairs = (1 + len(must)) * n
        cached = lookup(n)
        must = [r for r in names[: order.first] if cached[r] is None]
    rest = [r for r in names[order.first :] if cached[r] is None]
    others = n_shown_others
    if math.isfinite(left) and per_pair > 0:
        spare = max(0.0, left - need_pairs * per_pair)
        others = min(others, int(spare / (per_pair * n)))
    plan = _Plan(n, others, cached, tuple(must + rest), len(must), 0.0)
    if job.group.distributed:
        plan = job.group.agree(plan)
        need_pairs = (1 + plan.must) * plan.images
    return dataclasses.replace(plan, estimate_s=per_pair * (need_pairs + plan.others * plan.images))


def _score(
    job: SynthJob,
    hscorer: Scorer,
    hdata: SplitRows,
    cache: StdlibScoreCache,
    plan: _Plan,
    candidates: tuple[Node, ...],
) -> _Scored:
    """The winner and the first references not cached, chunk by chunk while time is left (their
    measured cost decides how many holdout images fit: a CAM whose maps re-read score terminals
    can cost far more per image than the search's average pair); then, on those images, the
    other stdlib CAMs best first while their cost fits and the capture served them; then the
    other shown candidates."""
    winner, others = candidates[0], candidates[1:]
    must = plan.missing[: plan.must]
    rows, n, seconds = _score_in_chunks(job, hscorer, [winner, *(job.refs[r] for r in must)], plan.images)
    per_pair = max(job.clock.per_pair(), seconds / max(1, n * (1 + len(must))))
    idx = list(range(n))
    cached = {r: None if v is None else v[:n] for r, v in plan.cached.items()}
    for r, row in zip(must, rows[1:]):
        cached[r] = row
        cache.put(to_text(job.refs[r]), row)
    skipped: list[str] = []
    captured = set(hdata.rows([0]).terminals)
    for r in plan.missing[plan.must :]:
        room = job.limits.remaining() > per_pair * n
        if not job.agree_timed(room and terminals_used([job.refs[r]]) <= captured):
            skipped.append(r)
            continue
        row = job.score(hscorer, [job.refs[r]], idx)[0]
        cached[r] = row
        cache.put(to_text(job.refs[r]), row)
    cache.save()
    scored, values = [winner], [rows[0]]
    for node in others:
        if job.agree_timed(job.limits.remaining() <= per_pair * n):
            break
        if not terminals_used([node]) <= captured:
            continue
        scored.append(node)
        values.append(job.score(hscorer, [node], idx)[0])
    stdlib = {r: v for r, v in cached.items() if v is not None}
    return _Scored(tuple(scored), torch.stack(values), stdlib, tuple(skipped), n)


def _score_in_chunks(
    job: SynthJob, hscorer: Scorer, nodes: list[Node], count: int
) -> tuple[list[torch.Tensor], int, float]:
    """`nodes` on the first holdout images, in growing chunks while the time left fits the next
    one at the cost measured so far (the first chunk always): their rows, the image count and the
    seconds it took."""
    parts: list[list[torch.Tensor]] = [[] for _ in nodes]
    done, chunk, t0 = 0, FIRST_CHUNK, time.monotonic()
    while done < count:
        size = min(chunk, count - done)
        left = job.limits.remaining()
        if done > 0 and math.isfinite(left):
            per_image = max(1e-9, (time.monotonic() - t0) / done)
            size = job.agree_timed(min(size, int(left / per_image)))
            if size < 1:
                break
        idx = list(range(done, done + size))
        for part, node in zip(parts, nodes):
            part.append(job.score(hscorer, [node], idx)[0])
        done += size
        chunk = min(2 * chunk, MAX_CHUNK)
    return [torch.cat(part) for part in parts], done, time.monotonic() - t0


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
    note = left_out_note(scored.skipped, winner_equals)
    if paired is not None and note:
        paired = dataclasses.replace(paired, sentence=paired.sentence + note)
    if paired is not None:
        job.log.say(paired.sentence)
    else:
        job.log.say("no stdlib CAM could be scored on the holdout within the time limit: no verdict")
    return paired


def left_out_note(skipped: Sequence[str], winner_equals: Sequence[str]) -> str:
    """The verdict's note on the stdlib CAMs the time limit left out ("" when none). A stdlib CAM
    the winner is equal to is not named: the winner's holdout values are its values."""
    left = [r for r in skipped if r not in winner_equals]
    if not left:
        return ""
    return (
        " Not compared (time limit; the stdlib CAMs best on the selection split go first): "
        f"{', '.join(f'`{r}`' for r in left)}."
    )


def visuals(
    scorer: Scorer, data: SplitRows, name: str, winner: Node, refs: dict[str, Node], count: int = 4
) -> Visuals:
    """The first `count` images with the winner's and the `refs`' maps (those the data can draw)."""
    idx = list(range(min(count, data.count)))
    first = data.rows(idx)
    shown = sorted(r for r, n in refs.items() if terminals_used([n]) <= set(first.terminals))
    names = [name] + shown
    nodes = [winner] + [refs[r] for r in shown]
    maps = scorer.maps(nodes, idx)
    return Visuals(first.raw, dict(zip(names, maps)), first.masks, predictions=list(first.labels))

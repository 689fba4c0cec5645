"""Phase 4 of `synthesize`: race the distinct CAMs on the training images.

The stdlib CAMs outside the grammar race as anchors in the paired elimination when the field is
large enough to pay for them (or every candidate is scored: `exhaustive`). `RaceScorer` owns
the race's rows and the resume cache: every (row, image) value is scored once, saved, and read
back by the race, the final checks and a resumed run. Each scoring call also re-estimates the
time the final checks and the holdout comparison need, so a slow metric leaves the search less.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.frontend.ir import Node, to_text
from camlang.synth.cache import ScoreCache
from camlang.synth.candidates import Pool
from camlang.synth.capturing import LazySplit
from camlang.synth.job import Stop, SynthJob
from camlang.synth.racing import RaceResult, exhaustive, race
from camlang.synth.scoring import Scorer

#: Race the stdlib CAMs outside the grammar as anchors when there are this many candidates per anchor.
ANCHOR_FIELD_RATIO = 8
#: Under a time limit, (row, image) pairs scored per call between two limit checks
#: (`score_blocks`): 8 rows of a 256-image round took 110 s on ResNet-56's deletion, and overran
#: the search's time by 50 s, which the final checks then lacked.
TIMED_PIECE_PAIRS = 256
#: Under a time limit, a scoring block is sized to take about this long at the cost of a pair
#: measured so far (a row reading score terminals can cost 5x the average: tuning one such row
#: on ResNet-20's max-sensitivity took 200 s in one 256-pair block, against a share of 38 s)...
BLOCK_SECONDS = 10.0
#: ...but has at least this many pairs (a model call's worth of images for one row).
MIN_BLOCK_PAIRS = 32
#: Halving keeps the best candidate of each evidence family until this many images are scored.
PROTECT_FAMILIES = 64


def score_blocks(
    rows: int, images: int, timed: bool, pairs: Callable[[], int] = lambda: TIMED_PIECE_PAIRS
) -> Iterator[tuple[range, range]]:
    """The (rows, images) blocks scored between two limit checks, in order. Without a time limit,
    one block. Under one, about `pairs()` pairs each (asked again before each block, so it can
    follow the cost measured so far): a few rows on every image while one row's images fit, else
    one row on `pairs()` images at a time (tuning scores one row on up to 1,000 images; at 0.1 s
    a pair on ResNet-56's insertion that is 100 s between two checks)."""
    if not timed:
        yield range(rows), range(images)
        return
    r = 0
    while r < rows:
        budget = max(1, pairs())
        if images <= budget:
            step = max(1, budget // max(1, images))
            yield range(r, min(rows, r + step)), range(images)
            r += step
            continue
        c = 0
        while c < images:
            chunk = max(1, pairs()) if c else budget
            yield range(r, r + 1), range(c, min(images, c + chunk))
            c += chunk
        r += 1


def evidence_family(node: Node) -> frozenset[str]:
    """The terminals `node` reads (`A`, `GX_smooth`, `A@layer2`, ...): candidates built on the
    same evidence tend to be good or bad on the same images, so the race keeps each family's
    best through its first rounds."""
    return frozenset(terminals_used([node]))


@dataclass(frozen=True)
class RaceOutcome:
    """The race's ranking of the candidates (anchors left out) and what it cost."""

    result: RaceResult
    ordered: tuple[Node, ...]  # candidates best first
    train_scores: Mapping[int, float]  # by node id: the mean metric value (not oriented) seen
    train_images: Mapping[int, int]  # by node id: how many training images it was scored on
    search_passes: int  # forward passes of the capture and the race (not the holdout capture)
    exhaustive_passes: int | None  # the estimate for scoring every candidate on every image
    anchor_scores: Mapping[int, float]  # by node id: the anchors' race means (not oriented)
    anchor_images: Mapping[int, int]  # by node id: how many training images each anchor was scored on


@dataclass(frozen=True)
class _CacheKey:
    """Everything that determines the race's metric values (a cache file with another is stale)."""

    grammar: str
    objective: str
    objective_text: str  # its definition and the cams it reads: an edited metric is another key
    max_size: int
    seed: int
    model: str
    weights: str  # the network's weights digest: a retrained checkpoint at the same path differs
    layer: str | None
    n: int
    data: str  # a digest of the first captured images


def reserve_seconds(job: SynthJob, pool: Pool, n_train: int) -> float:
    """Seconds the final checks will need (from the measured pair cost), and the shares of
    `time` kept for tuning and the holdout comparison.

    The final checks re-score the `finalists` and the stdlib CAMs the grammar contains on the
    `n_train` images; the race's anchors are not re-scored there (the holdout comparison scores
    them, inside its own share), so they reserve nothing. Reserving for them (7 anchors) stopped
    ResNet-56's 23-minute deletion race at 256 of 1,000 images with 356 of the search's 759
    seconds unused; the final checks then took 80 seconds.
    """
    per_pair = job.clock.per_pair()
    finalise = (job.settings.finalists + len(pool.contained)) * n_train
    return 1.1 * per_pair * finalise + job.limits.split.after_search


class RaceScorer:
    """Metric values of the race's rows on training images, through the resume cache.

    Rows are the candidates, then the anchors; the final checks add the finalists and stdlib
    CAMs that are not rows yet (`add_rows`).
    """

    def __init__(self, job: SynthJob, split: LazySplit, pool: Pool) -> None:
        self.job, self.pool, self.split = job, pool, split
        self.n_train = split.total  # the race asks for images; the split captures them then
        anchors = list(pool.anchors.values())
        self.rows: list[Node] = [*pool.cands, *anchors]
        self.texts: list[str] = [*pool.texts, *(to_text(n) for n in anchors)]
        self._objective_refs = job.objective_refs
        self.cache = _open_cache(job, split, self._objective_refs)
        self._check_limits = job.group.stop_check(job.limits.check, job.timed)
        self._scorer: Scorer | None = None

    def groups_read(self, nodes: list[Node]) -> frozenset[str]:
        """The costly terminal groups scoring `nodes` needs (theirs or the objective's cams')."""
        return self.split.groups_read(nodes + self._objective_refs)

    def captured_for(self, nodes: list[Node]) -> int:
        """How many training images are captured with every terminal `nodes` read."""
        return self.split.count_with(self.groups_read(nodes))

    def scorer(self) -> Scorer:
        """The scorer of the training split (it reads the images captured so far, a chunk at a
        time, and keeps the call size an out-of-memory retry found)."""
        if self._scorer is None:
            job = self.job
            self._scorer = Scorer(
                job.live, self.split, job.objective, job.refs, job.counter, job.settings.seed
            )
        return self._scorer

    def keep_rows(self, count: int) -> None:
        """Race only the first `count` rows (the candidates and the anchors that pay off)."""
        del self.rows[count:]
        del self.texts[count:]

    def add_rows(self, nodes: list[Node]) -> list[int]:
        """The row of each of `nodes`, adding the ones that are not rows yet."""
        index = {n.nid: i for i, n in enumerate(self.rows)}
        for node in nodes:
            if node.nid not in index:
                index[node.nid] = len(self.rows)
                self.rows.append(node)
                self.texts.append(to_text(node))
        return [index[n.nid] for n in nodes]

    def values(self, ci: list[int], ii: list[int], check: Callable[[], None] | None = None) -> torch.Tensor:
        """Not-oriented metric values of rows `ci` on images `ii`, from the cache when present.

        Only the (row, image) pairs the cache lacks are scored, rows missing the same images
        together. Images not captured yet are captured first (their costly terminals only when a
        row that is not cached reads them); `check` (the race's limits by default) may stop that
        capture, and, under a time limit, the scoring between two blocks (`score_blocks`, sized
        to about `BLOCK_SECONDS` at the cost measured so far).
        """
        job = self.job
        out = torch.full((len(ci), len(ii)), math.nan)
        todo: dict[tuple[int, ...], list[int]] = {}  # the columns a row lacks -> those rows
        for j, c in enumerate(ci):
            cached = [self.cache.get(self.texts[c], i) for i in ii]
            # a cached NaN (the metric undefined on that image) stays NaN and is not scored again
            out[j] = torch.tensor([math.nan if v is None else v for v in cached])
            lacking = tuple(col for col, v in enumerate(cached) if v is None)
            if lacking:
                todo.setdefault(lacking, []).append(j)
        if not todo:
            return out
        check = check or self._check_limits
        nodes = [self.rows[ci[j]] for js in todo.values() for j in js]
        last = max(ii[col] for cols in todo for col in cols)
        self.split.ensure(last + 1, self.groups_read(nodes), check)
        seconds_per_pair = job.clock.per_pair()  # the latest block's, once one is scored

        def pairs() -> int:
            cost = seconds_per_pair
            size = TIMED_PIECE_PAIRS if cost <= 0 else int(BLOCK_SECONDS / cost)
            return job.agree_timed(min(TIMED_PIECE_PAIRS, max(MIN_BLOCK_PAIRS, size)))

        first = True
        for cols, js in todo.items():
            for rows, block in score_blocks(len(js), len(cols), job.timed, pairs):
                if not first and job.timed:
                    job.limits.reserve = reserve_seconds(job, self.pool, self.split.count)
                    check()
                first = False
                piece, images = (
                    js[rows.start : rows.stop],
                    [ii[col] for col in cols[block.start : block.stop]],
                )
                got, seconds = self._score([self.rows[ci[j]] for j in piece], images)
                seconds_per_pair = seconds / max(1, len(piece) * len(images))
                for r, j in enumerate(piece):
                    for k, i in enumerate(images):
                        value = float(got[r, k])
                        out[j, cols[block.start + k]] = value
                        self.cache.put(self.texts[ci[j]], i, value)
                self.cache.save()
        return out

    def _score(self, nodes: list[Node], ii: list[int]) -> tuple[torch.Tensor, float]:
        """Score `nodes` on images `ii` (captured); the values and the seconds it took (the job's
        clock records them too, for the cost of a pair)."""
        job = self.job
        t0, p0, c0 = time.monotonic(), job.counter.images, job.counter.calls
        scorer = self.scorer()
        before = scorer.call_size
        got = job.score(scorer, nodes, ii)
        if scorer.call_size != before:
            job.log.say(
                f"out of memory on a scoring call: continued at {scorer.call_size} images per call "
                "(same numbers)"
            )
        seconds, passes = time.monotonic() - t0, job.counter.images - p0
        job.clock.add(seconds, len(nodes) * len(ii), passes, job.counter.calls - c0)
        return got, seconds

    def oriented(self, ci: list[int], ii: list[int]) -> torch.Tensor:
        """The race's score function: checks the limits, scores, shows progress (higher is better)."""
        job = self.job
        self._check_limits()
        out = self.values(ci, ii)
        job.limits.reserve = reserve_seconds(job, self.pool, self.split.count)
        best = float(job.sign * out.nanmean(1).max()) if out.numel() else math.nan
        left = job.limits.remaining()
        budget = (
            f" · {max(0.0, left - job.limits.reserve):.0f}s of search left" if math.isfinite(left) else ""
        )
        job.log.update(
            f"racing {len(self.pool.cands)} candidates on up to {len(ii) + min(ii, default=0)} images · "
            f"{job.counter.images} forward passes · best {best:.4g}{budget}"
        )
        return job.sign * out

    def missing(self, node: Node, n: int) -> int:
        """How many of the first `n` training images have no cached value for `node` (a row's
        values are cached under its row text: a candidate's normal form)."""
        rows = [i for i, row in enumerate(self.rows) if row.nid == node.nid]
        text = self.texts[rows[0]] if rows else to_text(node)
        return sum(self.cache.get(text, i) is None for i in range(n))


def _open_cache(job: SynthJob, split: LazySplit, objective_refs: list[Node]) -> ScoreCache:
    """The resume cache of this synthesis: rank 0 alone reads and writes the file; the other
    ranks get its values and keep the same copy."""
    st = job.settings
    refs = sorted(to_text(n) for n in objective_refs)
    head = split.prefix(4).x.detach().cpu().contiguous()
    key = _CacheKey(
        grammar=job.grammar.name,
        objective=st.objective,
        objective_text="\n".join([job.objective.source_text, *refs]),
        max_size=st.max_size,
        seed=st.seed,
        model=job.live.name,
        weights=job.live.weights_digest,
        layer=job.live.layer_path,
        n=split.total,
        data=hashlib.sha256(head.numpy().tobytes()).hexdigest()[:16] + f"/{head.shape[0]}",
    )
    group = job.group
    path = ScoreCache.file_for(job.cache_dir, job.name) if group.is_main else None
    cache = ScoreCache(path, dataclasses.asdict(key), job.resume)
    if group.distributed and job.resume:
        cache.values = group.agree(cache.values)
    return cache


def run_race(job: SynthJob, scorer: RaceScorer, pool: Pool, stop: Stop) -> RaceOutcome:
    """Race (or score exhaustively) the pool's candidates on every training image they need
    (the split captures each image when a round first asks for it)."""
    st = job.settings
    n_train, n_cands = scorer.n_train, len(pool.cands)
    before_search = job.counter.images
    captured_before = max(1, scorer.split.count)
    # Anchors cost their first round (every stdlib CAM on `race_first` images); they pay off
    # only when they can eliminate many candidates early, so a small field races without them.
    n_anchors = len(pool.anchors)
    use_anchors = st.strategy != "exhaustive" and n_cands >= ANCHOR_FIELD_RATIO * n_anchors
    n_anchor = n_anchors if use_anchors else 0
    scorer.keep_rows(n_cands + n_anchor)
    if st.strategy == "exhaustive":
        keep = not job.group.distributed
        result: RaceResult = exhaustive(n_cands, n_train, scorer.oriented, keep_on_interrupt=keep)
    else:
        result = race(
            len(scorer.rows),
            n_train,
            scorer.oriented,
            first=st.race_first,
            anchors=n_anchor,
            keep=min(st.finalists, n_cands),
            keep_on_interrupt=not job.group.distributed,
            families=[evidence_family(node) for node in pool.cands],
            protect=PROTECT_FAMILIES,
        )
    if result.stopped is not None:
        stop.set(result.stopped)
    search_passes = job.counter.images
    per_pair = job.clock.passes_per_pair()
    exhaustive_passes = (
        # every image captured (at the probe images' capture cost) and every pair scored
        int(before_search * n_train / captured_before + per_pair * n_cands * n_train)
        if st.strategy != "exhaustive"
        else None
    )
    order = [i for i in result.ranking() if i < n_cands]
    means, seen_n = result.means(), result.evaluated()
    rows = scorer.rows
    anchors = range(n_cands, len(rows))
    return RaceOutcome(
        result,
        tuple(rows[i] for i in order),
        {rows[i].nid: float(job.sign * means[i]) for i in order if int(seen_n[i]) > 0},
        {rows[i].nid: int(seen_n[i]) for i in order},
        search_passes,
        exhaustive_passes,
        {rows[i].nid: float(job.sign * means[i]) for i in anchors if int(seen_n[i]) > 0},
        {rows[i].nid: int(seen_n[i]) for i in anchors},
    )

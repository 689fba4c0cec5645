"""Phase 1 of `synthesize`: capture terminals when the race asks for them.

A split's terminals are captured lazily, a prefix of its images at a time (`LazySplit`):
- the training split starts with the images enumeration probes and the first racing round
  scores (`max(probe, race_first)`), and grows as the racing rounds ask for more images;
- the score terminals (`S_masked`, `S_ablated`: one masked or ablated pass per channel and
  image) are a second, separate capture, made only for the images that a candidate reading them
  is scored on;
- the holdout is captured after the search (`capture_holdout`), for as many images as the
  comparison's time allows.

Every captured batch goes to the terminal store (`camlang.synth.terminal_store`) as it is made,
so a second synthesis on the same model and data, or a resumed one, reads it back. A capture
stopped by the budget or the time keeps the prefix it captured; the caller learns why through
`StopSearch`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.data import Dataset
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.runtime.metric_evaluation import referenced_cams
from camlang.synth.enumeration import Apply, Enumerator, Fixed, Template
from camlang.synth.job import Stop, SynthJob
from camlang.synth.racing import StopSearch
from camlang.synth.scoring import BatchStore, SplitData, capture_split, join_splits

#: Terminals that cost one model pass per channel and image: captured only where read.
SCORE_TERMINALS = frozenset({"S_masked", "S_ablated"})
#: Share of the search's time the first capture (probe batch, first round) may use; it keeps the
#: prefix it captured, so enumeration and racing keep the rest.
FIRST_CAPTURE_SHARE = 0.3


def grammar_terminals(en: Enumerator) -> set[str]:
    """The terminals the grammar's alternatives read (through their hole-free parts)."""
    fixed: list[Node] = []

    def walk(t: Template) -> None:
        if isinstance(t, Fixed):
            fixed.append(t.node)
        elif isinstance(t, Apply):
            for a in t.args:
                walk(a)

    for alts in en.alts.values():
        for alt in alts:
            walk(alt.template)
    return terminals_used(fixed)


def _capture_batch_size(job: SynthJob) -> int:
    """Under a time limit, small batches let a capture stop in time."""
    return job.batch_size if job.limits.seconds is None else max(1, min(job.batch_size, 4))


class LazySplit:
    """A split whose terminals are captured on demand, a prefix of its images at a time.

    `count` images have their base terminals (forward and partial backward), `score_count` of
    them their score terminals too. `data()` is the captured prefix as one `SplitData`; score
    terminals of images not yet scored are NaN there (nothing reads them: `ensure` comes first).
    """

    def __init__(self, job: SynthJob, ds: Dataset, needs: set[str], store: BatchStore | None) -> None:
        self.job, self.ds, self.store = job, ds, store
        self.needs = frozenset(needs)
        self.base = set(needs) - SCORE_TERMINALS
        self.scores = set(needs) & SCORE_TERMINALS
        self.parts: list[SplitData] = []
        self.score_parts: list[SplitData] = []
        self.count = 0
        self.score_count = 0
        self.seconds = {"base": 0.0, "score": 0.0}  # wall time of each kind of capture
        self._joined: SplitData | None = None
        self.batch = _capture_batch_size(job)

    @property
    def total(self) -> int:
        """Number of images in the split (captured or not)."""
        return len(self.ds)

    def seconds_per_image(self, with_scores: bool) -> float:
        """Measured capture seconds per image (0 before anything was captured)."""
        base = self.seconds["base"] / self.count if self.count else 0.0
        score = self.seconds["score"] / self.score_count if self.score_count else 0.0
        return base + (score if with_scores and self.scores else 0.0)

    def reads_scores(self, nodes: list[Node]) -> bool:
        """Do `nodes` (or the cams the objective reads) need the score terminals?"""
        return bool(self.scores and terminals_used(nodes) & self.scores)

    def ensure(self, n: int, with_scores: bool, check: Callable[[], None]) -> None:
        """Capture the first `n` images (score terminals too when `with_scores`).

        `check` runs before every batch; when it stops a capture short of `n` images, the
        prefix captured is kept and its `StopSearch` propagates.
        """
        n = min(n, self.total)
        if self.count < n:
            self._grow("base", n, check)
        if with_scores and self.scores and self.score_count < n:
            self._grow("score", n, check)

    def _grow(self, kind: str, n: int, check: Callable[[], None]) -> None:
        start = self.count if kind == "base" else self.score_count
        stop = min(self.total, n)  # exactly the images asked for (batches of at most `batch`)
        needs = self.base if kind == "base" else self.scores
        # A score capture costs a pass per channel and image: under a time limit, one image per
        # batch lets the limit stop it in time.
        batch = 1 if kind == "score" and self.job.timed else self.batch
        reasons: list[str] = []

        def before() -> None:
            try:
                check()
            except StopSearch as err:
                reasons.append(str(err))
                raise

        t0 = time.monotonic()
        part = capture_split(
            self.job.live,
            self.ds,
            set(needs),
            batch,
            self.job.counter,
            before,
            limit=stop,
            keep_partial=True,
            group=self.job.group,
            start=start,
            store=self.store,
        )
        self.seconds[kind] += time.monotonic() - t0
        if kind == "base":
            self.parts.append(part)
            self.count += part.count
        else:
            self.score_parts.append(part)
            self.score_count += part.count
        self._joined = None
        if reasons and start + part.count < n:
            raise StopSearch(reasons[0])

    @property
    def complete_count(self) -> int:
        """Images captured with every terminal (the score terminals included)."""
        return min(self.count, self.score_count) if self.scores else self.count

    def complete(self) -> SplitData:
        """The captured images that have every terminal (what the probe batch may use)."""
        data = self.data()
        return data if self.complete_count == data.count else _prefix(data, self.complete_count)

    def data(self) -> SplitData:
        """The captured prefix: base terminals, and score terminals (NaN where not captured)."""
        if self._joined is not None:
            return self._joined
        if not self.parts:
            raise CamlangError(f"data `{self.ds.name}` has no images to capture")
        base = join_splits(self.parts)
        terminals = dict(base.terminals)
        scored = join_splits(self.score_parts) if self.score_parts else None
        for name in sorted(self.scores):
            have = scored.terminals[name] if scored is not None else None
            terminals[name] = _pad(have, base.count, self._score_shape(name, base))
        self._joined = SplitData(
            base.x, base.raw, base.masks, base.logits, base.targets, terminals, base.labels
        )
        return self._joined

    def _score_shape(self, name: str, base: SplitData) -> tuple[int, ...]:
        """A score terminal's per-image shape `[C, 1, 1]` (C: the layer's channels)."""
        if self.score_parts:
            return tuple(self.score_parts[0].terminals[name].shape[1:])
        return (int(base.terminals["A"].shape[1]), 1, 1) if "A" in base.terminals else (1, 1, 1)


def _pad(have: torch.Tensor | None, count: int, shape: tuple[int, ...]) -> torch.Tensor:
    """`have` (a prefix of the images) padded with NaN rows to `count` images."""
    out = torch.full((count, *shape), math.nan)
    if have is not None:
        out[: have.shape[0]] = have[:count]
    return out


def _train_needs(job: SynthJob) -> set[str]:
    dummy = Enumerator(job.program, job.grammar, job.settings.max_size, lambda nt, n, s: "kept")
    objective_refs = [job.refs[r] for r in referenced_cams([job.objective.node]) if r in job.refs]
    return grammar_terminals(dummy) | terminals_used(objective_refs) | {"S", "P"}


def capture_train(job: SynthJob, train: Dataset, store: BatchStore | None) -> LazySplit:
    """The training split, with the images enumeration probes and the first round scores."""
    needs = _train_needs(job)
    split = LazySplit(job, train, needs, store)
    first = max(job.settings.probe, job.settings.race_first)
    terms = ", ".join(sorted(needs))
    job.log.say(f"capturing training images as the race asks ({terms}; {len(train)} at most)")
    share_end = (
        None
        if job.limits.seconds is None
        else time.monotonic() + FIRST_CAPTURE_SHARE * job.limits.split.search
    )

    def check() -> None:
        job.limits.check()
        if share_end is not None and time.monotonic() >= share_end:
            raise StopSearch("the first capture's share of the time limit reached")

    try:
        split.ensure(first, True, job.group.stop_check(check, job.timed))
    except StopSearch as stop:
        job.log.say(f"{stop}: {split.complete_count} training images captured to start with")
        if split.complete_count == 0:
            raise CamlangError(
                f"synthesize `{job.name}`: {stop} while capturing the training data",
                hint="raise `budget` or `time`",
            ) from None
    return split


#: Holdout images captured between two checks of the time the scoring needs.
HOLDOUT_CHUNK = 64


def capture_holdout(
    job: SynthJob,
    holdout: Dataset | None,
    train: LazySplit,
    stop: Stop,
    store: BatchStore | None,
    reads: Sequence[Node],
    scored_per_image: int,
) -> SplitData | None:
    """The holdout's terminals, captured after the search: the ones `reads` (the shown candidates,
    the stdlib CAMs the comparison must score, the objective's cams) and the metric need, for as
    many images as the time left can capture and score `scored_per_image` CAMs on; a prefix."""
    if holdout is None or stop.partial:
        return None
    objective_refs = [job.refs[r] for r in referenced_cams([job.objective.node]) if r in job.refs]
    needs = terminals_used([*reads, *objective_refs]) | {"S", "P"}
    split = LazySplit(job, holdout, needs, store)
    per_image = train.seconds_per_image(True) + job.clock.per_pair() * scored_per_image
    left = job.limits.remaining()
    n = len(holdout)
    if math.isfinite(left) and per_image > 0:
        n = max(2, min(n, int(left / (1.1 * per_image))))
    n = job.agree_timed(n)
    job.log.say(f"capturing {n} of {len(holdout)} holdout images")
    per_scored_image = 1.1 * job.clock.per_pair() * scored_per_image
    asked = 0

    def check() -> None:
        # the capture stops where the scoring of what it asked for would outlast the limit (the
        # first chunk only at the limit itself)
        if job.limits.remaining() <= (per_scored_image * asked if asked > HOLDOUT_CHUNK else 0.0):
            raise StopSearch("time limit reached")

    try:
        while asked < n:  # in chunks, so the check knows how much scoring it must leave room for
            asked = min(n, asked + HOLDOUT_CHUNK)
            split.ensure(asked, True, job.group.stop_check(check, job.timed))
    except StopSearch:
        pass
    except KeyboardInterrupt:
        job.interrupted(stop)
        return None
    usable = split.score_count if split.scores else split.count
    if usable == 0:
        return None
    hdata = split.data()
    if usable < hdata.count:
        hdata = _prefix(hdata, usable)
    if hdata.count < len(holdout):
        job.log.say(f"time allowed capturing {hdata.count} of {len(holdout)} holdout images")
    return hdata


def _prefix(data: SplitData, n: int) -> SplitData:
    """The first `n` images of `data`."""
    idx = list(range(n))
    i = torch.tensor(idx)
    return SplitData(
        data.x[i],
        data.raw[i],
        None if data.masks is None else data.masks[i],
        data.logits[i],
        data.targets[i],
        data.terminals_of(idx),
        data.labels[:n],
    )

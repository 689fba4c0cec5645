"""Phase 1 of `synthesize`: capture terminals when the race asks for them.

A split's terminals are captured lazily, a prefix of its images at a time (`LazySplit`):
- the training split starts with the images enumeration probes and the first racing round
  scores (`max(probe, race_first)`), and grows as the racing rounds ask for more images;
- the costly terminals are separate captures, one per group, made only for the images that a
  candidate reading them is scored on: the score terminals (`S_masked`, `S_ablated`: one masked
  or ablated pass per channel and image) and SmoothGrad's `GX_smooth` (a forward and backward
  pass per noisy copy);
- the holdout is captured after the search (`capture_holdout_rows`), for as many images as the
  comparison's time allows.

Every captured batch goes to the terminal store (`camlang.synth.terminal_store`) as it is made,
so a second synthesis on the same model and data, or a resumed one, reads it back. A capture
stopped by the budget or the time keeps the prefix it captured; the caller learns why through
`StopSearch`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.data import Dataset
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, split_key
from camlang.frontend.op_table import OPS
from camlang.frontend.value_types import INPUT_AXES, LAYER_AXES
from camlang.synth.enumeration import Apply, Enumerator, Fixed, Template
from camlang.synth.job import Stop, SynthJob
from camlang.synth.racing import StopSearch
from camlang.synth.scoring import BatchStore, CaptureOptions, SplitData, capture_into
from camlang.synth.spill import MemoryBudget, Shelf, SpillFolder

#: The costly terminals, by capture group: each group is captured only for the images a
#: candidate reading it is scored on. "score": a model pass per channel and image; "smooth": a
#: forward and backward pass per noisy copy (`runtime.smooth_gradient`); "rise": a forward pass per
#: random mask (`runtime.rise`).
COSTLY_GROUPS: dict[str, frozenset[str]] = {
    "score": frozenset({"S_masked", "S_ablated"}),
    "smooth": frozenset({"GX_smooth"}),
    "rise": frozenset({"RISE"}),
}
COSTLY_TERMINALS = frozenset().union(*COSTLY_GROUPS.values())
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

    `count` images have their base terminals (forward and partial backward); each costly group
    the split needs (`COSTLY_GROUPS`) has its own captured prefix. The captured batches are kept
    on shelves (`camlang.synth.spill`), one for the base terminals and one per costly group: in
    memory within the run's `budget`, on disk past it. `rows(idx)` reads images of the captured
    prefix back as one `SplitData` (a `SplitRows` for the `Scorer`); costly terminals of images
    not yet captured with them are NaN there (nothing reads them: `ensure` comes first).
    """

    def __init__(
        self,
        job: SynthJob,
        ds: Dataset,
        needs: set[str],
        store: BatchStore | None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.job, self.ds, self.store = job, ds, store
        self.needs = frozenset(needs)
        self.base = set(needs) - COSTLY_TERMINALS
        #: the costly groups this split needs, each with the terminals of it that it needs
        self.groups = {g: names & self.needs for g, names in COSTLY_GROUPS.items() if names & self.needs}
        self.budget = MemoryBudget.from_env() if budget is None else budget
        self.spill = SpillFolder()
        self.shelf = Shelf(self.budget, self.spill)
        self.costly_shelves = {g: Shelf(self.budget, self.spill) for g in self.groups}
        self.seconds = {"base": 0.0, **{g: 0.0 for g in self.groups}}  # wall time of each capture
        self.batch = _capture_batch_size(job)

    @property
    def count(self) -> int:
        """Images captured with their base terminals."""
        return self.shelf.count

    @property
    def all_groups(self) -> frozenset[str]:
        """Every costly group this split needs."""
        return frozenset(self.groups)

    def count_with(self, groups: frozenset[str]) -> int:
        """Images captured with their base terminals and those of every costly group in `groups`."""
        return min([self.count, *(self.costly_shelves[g].count for g in groups if g in self.groups)])

    @property
    def score_count(self) -> int:
        """Images captured with every costly terminal too."""
        return min([shelf.count for shelf in self.costly_shelves.values()], default=self.count)

    @property
    def spilled(self) -> int:
        """Captured images whose batches are on disk rather than in memory (every shelf)."""
        return self.shelf.spilled + sum(shelf.spilled for shelf in self.costly_shelves.values())

    @property
    def total(self) -> int:
        """Number of images in the split (captured or not)."""
        return len(self.ds)

    @property
    def size(self) -> tuple[int, int]:
        """Input resolution (H, W) of the captured images."""
        return self._first().size

    def seconds_per_image(self, groups: frozenset[str] | None = None) -> float:
        """Measured capture seconds per image, base terminals and the costly `groups` (None:
        every group the split needs); 0 before anything was captured."""
        chosen = self.all_groups if groups is None else groups & self.all_groups
        total = self.seconds["base"] / self.count if self.count else 0.0
        for g in chosen:
            shelf = self.costly_shelves[g]
            total += self.seconds[g] / shelf.count if shelf.count else 0.0
        return total

    def groups_read(self, nodes: list[Node]) -> frozenset[str]:
        """The costly groups `nodes` (or the cams the objective reads) need."""
        used = terminals_used(nodes)
        return frozenset(g for g, names in self.groups.items() if names & used)

    def ensure(self, n: int, groups: frozenset[str], check: Callable[[], None]) -> None:
        """Capture the first `n` images, with the terminals of the costly `groups` too.

        `check` runs before every batch; when it stops a capture short of `n` images, the
        prefix captured is kept and its `StopSearch` propagates.
        """
        n = min(n, self.total)
        if self.count < n:
            self._grow("base", n, check)
        for g in sorted(groups & self.all_groups):
            if self.costly_shelves[g].count < n:
                self._grow(g, n, check)

    def _grow(self, kind: str, n: int, check: Callable[[], None]) -> None:
        shelf = self.shelf if kind == "base" else self.costly_shelves[kind]
        start = shelf.count
        stop = min(self.total, n)  # exactly the images asked for (batches of at most `batch`)
        needs = self.base if kind == "base" else self.groups[kind]
        # A costly capture costs many passes per image: under a time limit, one image per batch
        # lets the limit stop it in time.
        batch = 1 if kind != "base" and self.job.timed else self.batch
        reasons: list[str] = []

        def before() -> None:
            try:
                check()
            except StopSearch as err:
                reasons.append(str(err))
                raise

        t0 = time.monotonic()
        got = capture_into(
            shelf.add,
            self.job.live,
            self.ds,
            set(needs),
            batch,
            self.job.counter,
            CaptureOptions(
                before, limit=stop, keep_partial=True, group=self.job.group, start=start, store=self.store
            ),
        )
        self.seconds[kind] += time.monotonic() - t0
        if got == 0:
            raise CamlangError(f"data `{self.ds.name}` has no images to capture")
        if reasons and start + got < n:
            raise StopSearch(reasons[0])

    @property
    def complete_count(self) -> int:
        """Images captured with every terminal (the costly ones included)."""
        return self.count_with(self.all_groups)

    def prefix(self, n: int, complete: bool = False) -> SplitData:
        """The first `n` captured images in memory (of those with every terminal, when `complete`)."""
        return self.rows(range(min(n, self.complete_count if complete else self.count)))

    def data(self) -> SplitData:
        """The whole captured prefix in memory (spilled batches read back): for small splits."""
        return self.rows(range(self.count))

    def rows(self, idx: Sequence[int]) -> SplitData:
        """Captured images `idx`, in that order: base terminals, and costly terminals (NaN where
        not captured)."""
        idx = list(idx)
        base = self.shelf.rows(idx)
        if not self.groups:
            return base
        terminals = dict(base.terminals)
        for group, names in sorted(self.groups.items()):
            shelf = self.costly_shelves[group]
            scored = [j for j, p in enumerate(idx) if p < shelf.count]
            have = shelf.rows([idx[j] for j in scored]) if scored else None
            for name in sorted(names):
                if have is not None and len(scored) == len(idx):
                    terminals[name] = have.terminals[name]
                    continue
                out = torch.full((len(idx), *self._costly_shape(group, name)), math.nan)
                if have is not None:
                    out[torch.tensor(scored, dtype=torch.long)] = have.terminals[name]
                terminals[name] = out
        return dataclasses.replace(base, terminals=terminals)

    def _first(self) -> SplitData:
        if not self.shelf.count:
            raise CamlangError(f"data `{self.ds.name}` has no images to capture")
        return self.shelf.first()

    def _costly_shape(self, group: str, name: str) -> tuple[int, ...]:
        """A costly terminal's per-image shape (keep-dims), from its type in the op table: each
        layer axis sized as the layer's `A`, each input axis as `X`, and 1 where the type has no
        such axis (`S_masked`: `[C, 1, 1]`; `GX_smooth`: `[Cin, Hin, Win]`)."""
        shelf = self.costly_shelves[group]
        if shelf.count:
            return tuple(shelf.first().terminals[name].shape[1:])
        return _shape_of_type(name, self._first().terminals)


def _shape_of_type(key: str, terminals: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The keep-dims per-image shape of terminal `key` (`S_masked`, `S_masked@layer2`) from its
    op-table type, sized by the captured `A` of its layer and the input `X`."""
    op, layer = split_key(key)
    ty = OPS[op].type_rule((), {"layer": layer})
    if ty.axes & set(LAYER_AXES):
        axes, like = LAYER_AXES, terminals.get(f"A@{layer}" if layer else "A")
    else:
        axes, like = INPUT_AXES, terminals.get("X")
    if like is None:
        return (1, 1, 1)
    return tuple(int(size) if axis in ty.axes else 1 for axis, size in zip(axes, like.shape[1:]))


def _train_needs(job: SynthJob) -> set[str]:
    dummy = Enumerator(job.program, job.grammar, job.settings.max_size, lambda nt, n, s: "kept")
    return grammar_terminals(dummy) | terminals_used(job.objective_refs) | {"S", "P"}


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
        split.ensure(first, split.all_groups, job.group.stop_check(check, job.timed))
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


@dataclass(frozen=True)
class SplitHead:
    """The first `count` images of a lazy split, read back a chunk at a time (a `SplitRows`)."""

    split: LazySplit
    count: int

    @property
    def size(self) -> tuple[int, int]:
        """Input resolution (H, W)."""
        return self.split.size

    def rows(self, idx: Sequence[int]) -> SplitData:
        """Images `idx` (each below `count`), in that order."""
        idx = list(idx)
        if any(not 0 <= i < self.count for i in idx):
            raise IndexError(f"the split's first {self.count} images do not include all of {idx}")
        return self.split.rows(idx)


def capture_holdout_rows(
    job: SynthJob,
    holdout: Dataset | None,
    train: LazySplit,
    stop: Stop,
    store: BatchStore | None,
    reads: Sequence[Node],
    scored_per_image: int,
) -> SplitHead | None:
    """The holdout's terminals, captured after the search: the ones `reads` (the shown candidates,
    the stdlib CAMs the comparison must score, the objective's cams) and the metric need, plus
    every stdlib CAM's terminals but the score terminals (one forward and backward pass serves
    them all; a score terminal costs a pass per channel and image), for as many images as the
    time left can capture and score `scored_per_image` CAMs on; a prefix of the holdout, its
    batches in memory within the training split's budget and on disk past it."""
    if holdout is None or stop.partial:
        return None
    cheap = terminals_used([job.refs[r] for r in sorted(job.stdlib)]) - COSTLY_TERMINALS
    needs = terminals_used([*reads, *job.objective_refs]) | cheap | {"S", "P"}
    split = LazySplit(job, holdout, needs, store, train.budget)
    # the capture cost of what this split captures (a costly group only the training split read,
    # such as GX_smooth for candidates that did not win, costs nothing here)
    per_image = train.seconds_per_image(split.all_groups) + job.clock.per_pair() * scored_per_image
    left = job.limits.remaining()
    n = len(holdout)
    if math.isfinite(left) and per_image > 0:
        n = min(n, max(2, int(left / (1.1 * per_image))))  # 2 at least, if there are
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
            split.ensure(asked, split.all_groups, job.group.stop_check(check, job.timed))
    except StopSearch:
        pass
    except KeyboardInterrupt:
        job.interrupted(stop)
        return None
    usable = split.complete_count
    if usable == 0:
        return None
    if usable < len(holdout):
        job.log.say(f"time allowed capturing {usable} of {len(holdout)} holdout images")
    return SplitHead(split, usable)

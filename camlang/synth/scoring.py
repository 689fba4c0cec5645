"""A split's captured terminals and the objective's values of CAM nodes on its images.

Every image is captured once (forward + partial backward, plus the score terminals when
something reads them); a candidate's maps are then evaluated from the captured terminals, so
the only other model calls are the objective metric's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from camlang.backends.torch_eager import TorchContext, evaluate, normalize_maps
from camlang.core.oom import OutOfMemory, split_on_oom
from camlang.data import Dataset
from camlang.data.base import Batch
from camlang.distributed.shard import shard_batches
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.frontend.program import MetricDef
from camlang.metrics._common import CallCounter
from camlang.report.model import Interval
from camlang.runtime.cam_engine import CamBatch, CamEngine
from camlang.runtime.capture import capture
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator, referenced_cams
from camlang.synth.observe import as_map
from camlang.synth.racing import StopSearch
from camlang.synth.sharding import SynthGroup


@dataclass(frozen=True)
class SplitData:
    """A split's images, masks and captured terminals (keep-dims layout), all on the CPU."""

    x: torch.Tensor
    raw: torch.Tensor
    masks: torch.Tensor | None
    logits: torch.Tensor
    targets: torch.Tensor
    terminals: dict[str, torch.Tensor]
    labels: list[int]

    @property
    def count(self) -> int:
        """Number of images."""
        return int(self.x.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """Input resolution (H, W)."""
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    def terminals_of(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """The captured terminals of images `idx` (batch-independent terminals as they are)."""
        i = torch.tensor(list(idx), dtype=torch.long)
        return {k: v[i] if v.shape[0] == self.count else v for k, v in self.terminals.items()}

    def rows(self, idx: Sequence[int]) -> SplitData:
        """Images `idx` of this split (copies), in that order."""
        i = torch.tensor(list(idx), dtype=torch.long)
        return SplitData(
            self.x[i],
            self.raw[i],
            None if self.masks is None else self.masks[i],
            self.logits[i],
            self.targets[i],
            self.terminals_of(idx),
            [self.labels[j] for j in idx],
        )

    @property
    def nbytes(self) -> int:
        """Bytes of its tensors (what keeping it in memory costs)."""
        tensors = [self.x, self.raw, self.logits, self.targets, *self.terminals.values()]
        if self.masks is not None:
            tensors.append(self.masks)
        return sum(t.numel() * t.element_size() for t in tensors)

    def tensors(self) -> dict[str, object]:
        """Its fields as a dict of tensors, for `torch.save` (`from_tensors` reads it back)."""
        saved: dict[str, object] = {
            "x": self.x,
            "raw": self.raw,
            "logits": self.logits,
            "targets": self.targets,
            "terminals": self.terminals,
            "labels": torch.tensor(self.labels, dtype=torch.long),
        }
        if self.masks is not None:
            saved["masks"] = self.masks
        return saved

    @staticmethod
    def from_tensors(saved: dict[str, Any]) -> SplitData:
        """The split `tensors()` wrote (read with `torch.load(..., weights_only=True)`)."""
        return SplitData(
            saved["x"],
            saved["raw"],
            saved.get("masks"),
            saved["logits"],
            saved["targets"],
            dict(saved["terminals"]),
            [int(v) for v in saved["labels"]],
        )


class SplitRows(Protocol):
    """Images of a split that a `Scorer` reads a chunk at a time: a `SplitData` in memory, or a
    split whose batches partly live on disk (`camlang.synth.capturing.LazySplit`)."""

    @property
    def count(self) -> int:
        """Number of images."""
        ...

    @property
    def size(self) -> tuple[int, int]:
        """Input resolution (H, W)."""
        ...

    def rows(self, idx: Sequence[int]) -> SplitData:
        """Images `idx`, in that order, as one split in memory."""
        ...


@dataclass(frozen=True)
class StoredBatch:
    """One batch's captured split, read back from a store, and the forward passes it took."""

    data: SplitData
    passes: int


class BatchStore(Protocol):
    """Where captured batches are kept between runs (`camlang.synth.terminal_store`)."""

    def load(self, needs: frozenset[str], start: int, stop: int, x: torch.Tensor) -> StoredBatch | None:
        """The stored batch of positions `start:stop` whose input images are `x`, if any."""
        ...

    def save(self, needs: frozenset[str], start: int, stop: int, part: SplitData, passes: int) -> None:
        """Keep one captured batch."""
        ...


@dataclass(frozen=True)
class CaptureOptions:
    """How `capture_into` walks a split (the defaults capture all of it, in one process).

    - `before_batch` runs before every batch (the limits check: it may raise `StopSearch`);
    - `limit`: capture images `start` to `limit` only (None: to the end);
    - `keep_partial`: a stop after the first batch keeps the images captured so far (a prefix);
    - `group`: the distributed group whose ranks share the batches;
    - `start`: the first image;
    - `store`: gives back batches captured before and keeps the new ones.
    """

    before_batch: Callable[[], None] | None = None
    limit: int | None = None
    keep_partial: bool = False
    group: SynthGroup | None = None
    start: int = 0
    store: BatchStore | None = None


def capture_split(
    live: LiveModel,
    ds: Dataset,
    needs: set[str],
    batch_size: int,
    counter: CallCounter,
    options: CaptureOptions = CaptureOptions(),
) -> SplitData:
    """Capture the terminals `needs` of `ds` as one split in memory (`capture_into` with the
    batches joined; its docs say the rest)."""
    kept: list[SplitData] = []
    capture_into(kept.append, live, ds, needs, batch_size, counter, options)
    if not kept:
        raise CamlangError(f"data `{ds.name}` has no images to capture")
    return join_splits(kept)


def capture_into(
    sink: Callable[[SplitData], None],
    live: LiveModel,
    ds: Dataset,
    needs: set[str],
    batch_size: int,
    counter: CallCounter,
    options: CaptureOptions = CaptureOptions(),
) -> int:
    """Capture the terminals `needs` of images `options.start` to `options.limit` (or the end)
    of `ds`, handing each kept batch to `sink` in order (so the caller decides what stays in
    memory); the number of images kept.

    `options.before_batch` runs before every batch (the limits check: it may raise
    `StopSearch`). With `options.keep_partial`, a stop after the first batch keeps the images
    captured so far (a prefix). An `options.store` gives back batches captured before (their
    recorded passes are counted, so a budget stops at the same image) and keeps the new ones.

    With a distributed `group` the batches are captured in rounds: in each round rank r captures
    batch `round start + r`, and one all-gather gives every rank the round's batches and their
    forward passes. The checks then run batch by batch on every rank, with the pass counter as one
    process would have it, so the captured prefix and the counter (the passes of the kept
    batches) do not depend on the number of workers; a stop discards the rest of its round.
    """
    before_batch, keep_partial = options.before_batch, options.keep_partial
    start, limit, store = options.start, options.limit, options.store
    group = options.group or SynthGroup()
    view = ds if limit is None or limit >= len(ds) else ds.limit(limit)
    shards = shard_batches(max(0, len(view) - start), batch_size)
    kept = 0

    def keep(part: SplitData) -> None:
        nonlocal kept
        sink(part)
        kept += part.count

    def stopped() -> bool:
        if before_batch is None:
            return False
        try:
            before_batch()
        except StopSearch:
            if not (keep_partial and kept):
                raise
            return True
        return False

    def capture_shard(j: int) -> SplitData:
        a, b = start + shards[j].start, start + shards[j].stop
        return _capture_or_load(live, view, range(a, b), needs, counter, store)

    for first in range(0, len(shards), group.world_size):
        if not group.distributed:
            if stopped():
                break
            keep(capture_shard(first))
            continue
        base = counter.images
        j = first + group.rank
        part = capture_shard(j) if j < len(shards) else None
        gathered = group.all_gather((part, counter.images - base))
        counter.images = base
        for got, passes in gathered[: len(shards) - first]:  # ranks past the last batch sent None
            if stopped():
                return kept
            assert got is not None  # the ranks that had no batch are past the slice's end
            keep(got)
            counter.images += int(passes)
    return kept


def _capture_or_load(
    live: LiveModel,
    ds: Dataset,
    images: range,
    needs: set[str],
    counter: CallCounter,
    store: BatchStore | None,
) -> SplitData:
    """One batch: read back from `store` (its passes counted) or captured (and stored)."""
    batch = ds.get(images)
    frozen_needs = frozenset(needs)
    if store is not None:
        got = store.load(frozen_needs, images.start, images.stop, batch.x)
        if got is not None:
            counter.images += got.passes
            # the store matched the network and the input images; the masks and raw images are
            # the data set's own now (a folder that gained masks or boxes keeps the same `x`)
            return dataclasses.replace(got.data, raw=batch.raw, masks=batch.masks)
    before = counter.images
    part = _capture_batch(live, batch, needs, counter)
    if store is not None:
        store.save(frozen_needs, images.start, images.stop, part, counter.images - before)
    return part


def _capture_batch(live: LiveModel, batch: Batch, needs: set[str], counter: CallCounter) -> SplitData:
    """One batch's images and terminals, on the CPU."""
    cap = capture(live.module, live.layer, batch.x.to(live.device), needs, None, counter=counter)
    targets = cap.targets.cpu()
    return SplitData(
        batch.x,
        batch.raw,
        batch.masks,
        cap.logits.detach().cpu(),
        targets,
        {k: v.detach().cpu() for k, v in cap.terminals.items()},
        [int(t) for t in targets],
    )


def join_splits(parts: list[SplitData]) -> SplitData:
    """The batches as one split, in order."""
    masks = [p.masks for p in parts if p.masks is not None]
    return SplitData(
        torch.cat([p.x for p in parts]),
        torch.cat([p.raw for p in parts]),
        torch.cat(masks) if masks else None,
        torch.cat([p.logits for p in parts]),
        torch.cat([p.targets for p in parts]),
        {k: torch.cat([p.terminals[k] for p in parts]) for k in parts[0].terminals},
        [label for p in parts for label in p.labels],
    )


#: Bytes a scoring call may hold per chunk of images (their terminals and each cam's map): a call
#: over more images is made in chunks, so its memory does not grow with the image count. It does
#: not depend on where the terminals live, so the chunks (and every number) are the same with and
#: without spilling.
SCORE_CALL_BYTES = 64 * 2**20
#: Images per model call of a metric (the `Evaluator`'s `chunk_size`). A scoring call's chunk is a
#: multiple of it, so a call of one candidate makes the same model calls as one unchunked call.
MODEL_CALL_IMAGES = 128


class Scorer:
    """Objective values of CAM nodes on images of a split, batched across cams.

    The split's images are read a chunk at a time (`SplitRows.rows`); a chunk that runs out of
    memory is scored again in halves (`camlang.core.oom.split_on_oom`), and the size that fitted
    is kept for the calls after it (`call_size`).
    """

    def __init__(
        self,
        live: LiveModel,
        data: SplitRows,
        objective: MetricDef,
        refs: dict[str, Node],
        counter: CallCounter,
        seed: int,
    ) -> None:
        self.live, self.data, self.objective, self.refs = live, data, objective, refs
        self.counter, self.seed = counter, seed
        self.size = data.size
        self.call_size: int | None = None  # images per call after running out of memory
        self._image_bytes: int | None = None

    def maps(self, nodes: list[Node], idx: list[int]) -> list[torch.Tensor]:
        """Normalized maps `[len(idx), H, W]` of each node."""
        return self._maps(nodes, self.data.rows(idx))

    def _maps(self, nodes: list[Node], rows: SplitData) -> list[torch.Tensor]:
        ctx = TorchContext(dict(rows.terminals), self.size)
        with torch.no_grad():
            vals = evaluate(nodes, ctx)
        return [normalize_maps(as_map(vals[n.nid], rows.count), self.size) for n in nodes]

    def chunk_images(self, n_maps: int) -> int:
        """Images per scoring call of `n_maps` maps (at most `SCORE_CALL_BYTES` held)."""
        if self._image_bytes is None:
            self._image_bytes = self.data.rows([0]).nbytes if self.data.count else 1
        h, w = self.size
        per_image = self._image_bytes + n_maps * h * w * 4
        size = max(1, SCORE_CALL_BYTES // max(1, per_image))
        return size - size % MODEL_CALL_IMAGES if size > MODEL_CALL_IMAGES else size

    def __call__(self, nodes: list[Node], idx: list[int]) -> torch.Tensor:
        """Metric values `[len(nodes), len(idx)]` (not oriented)."""
        ref_names = sorted(referenced_cams([self.objective.node]))
        missing = [r for r in ref_names if r not in self.refs]
        if missing:
            raise CamlangError(f"the objective reads ref({missing[0]}), which is not a known cam")
        if not idx:
            return torch.empty(len(nodes), 0)
        size = self.chunk_images(len(nodes) + len(ref_names))
        if self.call_size is not None:
            size = min(size, self.call_size)
        try:
            out, fitted = split_on_oom(
                lambda a, b: self._score(nodes, ref_names, idx[a:b]),
                len(idx),
                size,
                lambda parts: torch.cat(parts, dim=1),
                release=_release_memory,
            )
        except OutOfMemory as err:
            raise CamlangError(
                f"out of memory even on {err.tried} image(s) while scoring candidates on "
                f"{self.live.device}: {err}",
                hint="free memory on the device (or use a smaller model or images), then run again "
                "with --resume (every value scored so far is kept)",
                code="E602",
            ) from None
        if fitted < size:
            self.call_size = fitted
        return out

    def _score(self, nodes: list[Node], ref_names: list[str], idx: list[int]) -> torch.Tensor:
        """One call: metric values `[len(nodes), len(idx)]` of the images `idx`."""
        names = [f"c{i}" for i in range(len(nodes))]
        all_nodes = nodes + [self.refs[r] for r in ref_names]
        rows = self.data.rows(idx)
        device = self.live.device
        maps = [m.to(device) for m in self._maps(all_nodes, rows)]
        by_name = dict(zip(names + ref_names, maps))
        logits, targets = rows.logits.to(device), rows.targets.to(device)
        batch = CamBatch(by_name, {}, logits, targets, self.counter)
        engine = CamEngine(self.live.module, self.live.layer, dict(zip(names, nodes)))
        ev = Evaluator(self.live, engine, chunk_size=MODEL_CALL_IMAGES, counter=self.counter, seed=self.seed)
        masks = rows.masks.to(device) if rows.masks is not None else None
        x = rows.x.to(device)
        # Positions in this split key the metrics' random draws: stable however candidates are batched.
        indices = torch.tensor(idx, dtype=torch.long)
        out = ev.score(names, batch, x, masks, {self.objective.name: self.objective}, indices=indices)
        return out.values[self.objective.name].cpu()


def _release_memory() -> None:
    """Give the CUDA allocator's cached blocks back before a retry in smaller calls."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bootstrap(values: torch.Tensor, seed: int, draws: int = 1000) -> list[Interval]:
    """Mean and 95% percentile bootstrap CI over images, per row of `values [K, N]` (paired draws)."""
    n = values.shape[1]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (draws, n), generator=gen)  # the same draws for every row: paired
    out: list[Interval] = []
    for row in values:  # one row at a time: [draws, N] floats, not [K, draws, N]
        means = row[idx].nanmean(-1)
        lo, hi = torch.nanquantile(means, 0.025), torch.nanquantile(means, 0.975)
        out.append(Interval(float(row.nanmean()), float(lo), float(hi)))
    return out

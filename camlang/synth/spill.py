"""Captured batches within a memory budget: the first ones in memory, the rest on disk.

A synthesis captures its training images a batch at a time (`camlang.synth.capturing`). A
`Shelf` keeps a split's batches in image order: while the run's `MemoryBudget` has room a batch
stays in memory; after that each batch goes to a file of the run's spill folder and is read back
(`torch.load(..., weights_only=True)`) for the images a scoring call asks for, then dropped. So
the memory the captured terminals take stays under the budget however many images are captured,
and every value read back is the one captured (the files hold the tensors themselves).

The first batches stay in memory because they are read the most (the probe batch, the race's
first rounds, the pictures). The spill folder is a temporary folder of this process, removed
when the run is done (or at exit); nothing in it is reused by another run (the terminal store,
`camlang.synth.terminal_store`, is what a second run reads).

The budget is `CAMLANG_SYNTH_MEMORY_MB` megabytes (default `DEFAULT_MEMORY_MB`); 0 spills every
batch.
"""

from __future__ import annotations

import bisect
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from camlang.errors import CamlangError
from camlang.synth.scoring import SplitData, join_splits

#: The environment variable that sets the budget, in megabytes.
MEMORY_ENV = "CAMLANG_SYNTH_MEMORY_MB"
#: Megabytes of captured terminals a synthesis keeps in memory by default.
DEFAULT_MEMORY_MB = 1024


def memory_budget_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The budget `CAMLANG_SYNTH_MEMORY_MB` asks for, in bytes (the default when unset)."""
    env = os.environ if environ is None else environ
    text = env.get(MEMORY_ENV, "").strip()
    if not text:
        return DEFAULT_MEMORY_MB * 2**20
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0:
        raise CamlangError(
            f"{MEMORY_ENV} must be a number of megabytes (0 or more), got `{text}`",
            hint=f"e.g. {MEMORY_ENV}={DEFAULT_MEMORY_MB}",
        )
    return int(mb * 2**20)


class MemoryBudget:
    """Bytes of captured batches a run may keep in memory (shared by its splits)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @staticmethod
    def from_env() -> MemoryBudget:
        """The budget `CAMLANG_SYNTH_MEMORY_MB` sets."""
        return MemoryBudget(memory_budget_bytes())

    def take(self, nbytes: int) -> bool:
        """Reserve `nbytes` if they fit (True), else reserve nothing (False)."""
        if self.used + nbytes > self.limit:
            return False
        self.used += nbytes
        return True


class SpillFolder:
    """The files of the batches that did not fit: a temporary folder, made on the first spill and
    removed with this object (or at exit)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.files = 0
        self._cleanup: weakref.finalize | None = None

    def write(self, part: SplitData) -> Path:
        """Save `part` to a new file of the folder."""
        if self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="camlang-spill-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)
        file = self.path / f"{self.files:06d}.pt"
        self.files += 1
        torch.save(part.tensors(), file)
        return file

    @staticmethod
    def read(file: Path) -> SplitData:
        """The batch saved in `file`."""
        return SplitData.from_tensors(torch.load(file, map_location="cpu", weights_only=True))

    def close(self) -> None:
        """Remove the folder now."""
        if self._cleanup is not None:
            self._cleanup()


@dataclass(frozen=True)
class _Batch:
    """One captured batch: images `start` to `start + count`, in memory or in a spill file."""

    start: int
    count: int
    data: SplitData | None
    file: Path | None


class Shelf:
    """A split's captured batches in image order (each appended after the last), in memory while
    `budget` has room and in `spill`'s files after that."""

    def __init__(self, budget: MemoryBudget, spill: SpillFolder) -> None:
        self.budget, self.spill = budget, spill
        self.batches: list[_Batch] = []
        self.starts: list[int] = []
        self.count = 0

    @property
    def spilled(self) -> int:
        """Images whose batch lives on disk."""
        return sum(b.count for b in self.batches if b.data is None)

    def add(self, part: SplitData) -> None:
        """Keep the next batch (images `count` to `count + part.count`)."""
        if self.budget.take(part.nbytes):
            batch = _Batch(self.count, part.count, part, None)
        else:
            batch = _Batch(self.count, part.count, None, self.spill.write(part))
        self.batches.append(batch)
        self.starts.append(self.count)
        self.count += part.count

    def first(self) -> SplitData:
        """The first batch (a split's shapes and sizes)."""
        return self._load(self.batches[0])

    def rows(self, idx: Sequence[int]) -> SplitData:
        """Images `idx` (each below `count`), in that order, as one split in memory."""
        loaded: dict[int, SplitData] = {}
        pieces: list[SplitData] = []
        for j, positions in self._runs(idx):
            if j not in loaded:  # a spilled batch is read once per call
                loaded[j] = self._load(self.batches[j])
            start = self.batches[j].start
            pieces.append(loaded[j].rows([p - start for p in positions]))
        if not pieces:
            return self.first().rows([])
        return pieces[0] if len(pieces) == 1 else join_splits(pieces)

    def _runs(self, idx: Sequence[int]) -> list[tuple[int, list[int]]]:
        """`idx` cut into runs of positions in the same batch: (batch number, positions)."""
        runs: list[tuple[int, list[int]]] = []
        for p in idx:
            if not 0 <= p < self.count:
                raise IndexError(f"image {p} is not captured ({self.count} are)")
            j = bisect.bisect_right(self.starts, p) - 1
            if runs and runs[-1][0] == j:
                runs[-1][1].append(p)
            else:
                runs.append((j, [p]))
        return runs

    def _load(self, batch: _Batch) -> SplitData:
        if batch.data is not None:
            return batch.data
        assert batch.file is not None
        return self.spill.read(batch.file)

"""Captured terminals on disk, one file per batch of images, written as they are computed.

A second synthesis on the same model and data (or a `--resume`d one) reads a batch back instead
of running the network again. A file is named by a digest of the network (its weights digest and
target layer), the terminals it holds and the batch's positions, and it keeps the batch's input
images: a file whose images differ from the batch asked for (other data) is not used.

A file that cannot be read (torn, damaged or of another shape) is captured again and overwritten;
`damaged` names it, and the run's report warns.

A batch read back records the forward passes its capture took; the caller adds them to the pass
counter, so a `budget` keeps the same prefix of images whether or not the cache was warm (the
network itself is not called: `reused_passes` says how many passes the cache saved).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from camlang.synth.scoring import SplitData, StoredBatch


class TerminalStore:
    """Batches of captured terminals in `folder` (None: nothing is stored)."""

    def __init__(self, folder: Path | None, network: str) -> None:
        self.folder = folder
        self.network = network
        self.reused_passes = 0
        #: Stored batch files that could not be read (torn, damaged or foreign): captured again.
        self.damaged: list[str] = []

    @staticmethod
    def for_network(cache_dir: Path | None, weights_digest: str, layer: str | None) -> TerminalStore:
        """The store of a network (its weights digest and target layer) under `cache_dir`."""
        folder = None if cache_dir is None else Path(cache_dir) / "terminals"
        return TerminalStore(folder, f"{weights_digest}@{layer}")

    def _file(self, needs: frozenset[str], start: int, stop: int) -> Path | None:
        if self.folder is None:
            return None
        key = json.dumps([self.network, sorted(needs), start, stop])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"

    def load(self, needs: frozenset[str], start: int, stop: int, x: torch.Tensor) -> StoredBatch | None:
        """The stored batch of positions `start:stop` whose input images are `x`, if any."""
        path = self._file(needs, start, stop)
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(saved, dict) or not torch.equal(saved.get("x", torch.empty(0)), x):
                return None
            data = SplitData.from_tensors(saved)
            passes = int(saved["passes"])
        except Exception:  # noqa: BLE001 - garbage bytes make the weights-only unpickler raise
            # anything (IndexError "pop from empty list" among others): a torn, damaged or foreign
            # file is captured again and overwritten, never the end of the run
            self.damaged.append(path.name)
            return None
        self.reused_passes += passes
        return StoredBatch(data, passes)

    def save(self, needs: frozenset[str], start: int, stop: int, part: SplitData, passes: int) -> None:
        """Write one captured batch (atomically; no-op without a folder)."""
        path = self._file(needs, start, stop)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {**part.tensors(), "passes": passes}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(saved, tmp)
        os.replace(tmp, path)

"""The run's result cache: finished batches of `evaluate` and finished checks, as they finish.

Each action gets a section, named by a digest of everything its results depend on (cams, metrics,
model, data, seed). Each rank appends to its own file in `<out>/cache/`, one JSON line per
finished unit (a batch of images, or one property), and flushes it at once, so an interrupt, a
crash or a lost worker loses at most the unit in flight. Every line carries the run's id:

- without `--resume`, a section reads only the lines of this run (so the partial report of an
  interrupted run counts exactly what this run finished);
- with `--resume`, it reads every line, whatever run and whatever number of workers wrote it,
  and the action skips the units already there.

Synthesis scores have their own cache (`camlang.synth.cache`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["RunCache", "Section"]


class RunCache:
    """The cache folder of one run (None: nothing is kept, as in the REPL)."""

    def __init__(self, folder: Path | None, dist: Any, resume: bool, run_id: str | None = None) -> None:
        self.folder = folder
        self.dist = dist
        self.resume = resume
        self.run_id = run_id or uuid.uuid4().hex[:12]

    def section(self, kind: str, key: Any) -> Section:
        """The cache of one action; `key` is anything JSON-serialisable its results depend on."""
        text = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
        return Section(self, f"{kind}-{digest}")


class Section:
    """One action's cached units, across ranks."""

    def __init__(self, cache: RunCache, name: str) -> None:
        self.cache = cache
        self.name = name
        folder = cache.folder
        self.path = None if folder is None else folder / f"{name}-rank{cache.dist.rank}.jsonl"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not cache.resume:
                self.path.write_text("", encoding="utf-8")

    def append(self, unit: Any) -> None:
        """Keep one finished unit (flushed before returning)."""
        if self.path is None:
            return
        line = json.dumps({"run": self.cache.run_id, "unit": unit}, allow_nan=True, default=_plain)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def units(self, this_run_only: bool | None = None) -> Iterator[Any]:
        """The units every rank has written (this run's only, unless resuming)."""
        folder = self.cache.folder
        if folder is None or not folder.is_dir():
            return
        only_this = (not self.cache.resume) if this_run_only is None else this_run_only
        for path in sorted(folder.glob(f"{self.name}-rank*.jsonl")):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash: that unit is simply redone
                if only_this and row.get("run") != self.cache.run_id:
                    continue
                yield row.get("unit")


def _plain(value: Any) -> Any:
    """JSON for tensors and arrays inside a unit (as nested lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot keep a {type(value).__name__} in the run cache")

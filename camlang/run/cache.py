"""The run's result cache: finished batches of `evaluate` and finished checks, as they finish.

Each action gets a section, named by a digest of everything its results depend on (cams, metrics,
model, data, seed). Each rank appends to its own file in `<out>/cache/`, one sealed JSON line per
finished unit (a batch of images, or one property; `camlang.core.records`), in one write, so an
interrupt, a crash or a lost worker loses at most the unit in flight. Every line carries the run's
id:

- without `--resume`, a section reads only the lines of this run (so the partial report of an
  interrupted run counts exactly what this run finished);
- with `--resume`, it reads every line, whatever run and whatever number of workers wrote it,
  and the action skips the units already there.

A cache is only a cache: whatever is wrong with a line (cut short by a kill, garbage bytes,
invalid UTF-8 or JSON, a checksum that does not match, another section's or another camlang
version's record) drops that line alone, and its unit is computed again. `heal` does this for the
whole folder when a run resumes, before any rank reads it: damaged lines are removed from their
files, unreadable whole-file caches are removed, and each file that lost something gets a warning
naming it and the count. Synthesis scores have their own cache (`camlang.synth.cache`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from camlang.core.atomic import remove_quietly, write_atomic, write_failure
from camlang.core.records import append_record, read_log, read_sealed, seal
from camlang.core.version import __version__
from camlang.errors import CamlangError
from camlang.synth.cache import SCORE_SCHEMA

__all__ = ["CACHE_SCHEMA", "RunCache", "Section", "heal"]

#: Version of the line format (1 was unsealed JSON lines). Lines of other versions are dropped.
CACHE_SCHEMA = 2

#: Whole-file caches synthesis keeps in the same folder, as sealed records of its layout
#: (`camlang.synth.cache`); `heal` removes the ones it cannot read.
SEALED_FILES = ("synth-*.json", "stdlib-holdout-*.json")


class RunCache:
    """The cache folder of one run (None: nothing is kept, as in the REPL).

    `warn` receives a warning when a read drops records (the run passes `RunState.warn`).
    """

    def __init__(
        self,
        folder: Path | None,
        dist: Any,
        resume: bool,
        run_id: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = folder
        self.dist = dist
        self.resume = resume
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.warn = warn

    def section(self, kind: str, key: Any) -> Section:
        """The cache of one action; `key` is anything JSON-serialisable its results depend on."""
        text = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
        return Section(self, f"{kind}-{digest}")

    def dropped(self, path: Path, count: int) -> None:
        """Say that a read of `path` dropped `count` records (the run's warnings drop repeats)."""
        if self.warn is not None and count:
            self.warn(dropped_warning(path, count))


class Section:
    """One action's cached units, across ranks."""

    def __init__(self, cache: RunCache, name: str) -> None:
        self.cache = cache
        self.name = name
        folder = cache.folder
        self.path = None if folder is None else folder / f"{name}-rank{cache.dist.rank}.jsonl"
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not cache.resume:
                    write_atomic(self.path, b"")
            except OSError as err:
                raise _write_error(self.path, err) from None

    def append(self, unit: Any) -> None:
        """Keep one finished unit (written in one call before returning)."""
        if self.path is None:
            return
        body = {"v": CACHE_SCHEMA, "camlang": __version__, "section": self.name, "run": self.cache.run_id}
        try:
            append_record(self.path, body | {"unit": unit}, default=_plain)
        except OSError as err:
            raise _write_error(self.path, err) from None

    def units(self, this_run_only: bool | None = None) -> Iterator[Any]:
        """The units every rank has written (this run's only, unless resuming)."""
        folder = self.cache.folder
        if folder is None or not folder.is_dir():
            return
        only_this = (not self.cache.resume) if this_run_only is None else this_run_only
        for path in sorted(folder.glob(f"{self.name}-rank*.jsonl")):
            log = read_log(path, lambda r: _current(r, self.name))
            self.cache.dropped(path, log.dropped)
            for row in log.records:
                if only_this and row.get("run") != self.cache.run_id:
                    continue
                yield row.get("unit")


def _current(record: dict[str, Any], section: str) -> bool:
    """Is `record` a line this camlang writes, for `section` (not copied from another file)?"""
    return (
        record.get("v") == CACHE_SCHEMA
        and record.get("camlang") == __version__
        and record.get("section") == section
        and "unit" in record
    )


def heal(folder: Path) -> list[str]:
    """Drop what cannot be trusted from a cache folder before a resumed run reads it.

    Run it on one process while no other writes to the folder. Returns one warning per file
    that lost something (none when all is well).
    """
    if not folder.is_dir():
        return []
    warnings: list[str] = []
    for leftover in [*folder.glob(".*.tmp"), *folder.glob("*.tmp")]:
        remove_quietly(leftover)  # the temporary of a write a kill cut short
    for path in sorted(folder.glob("*-rank*.jsonl")):
        section = path.name.rsplit("-rank", 1)[0]
        log = read_log(path, lambda r, s=section: _current(r, s))  # type: ignore[misc]
        if not log.dropped and log.error is None:
            continue
        try:
            write_atomic(path, b"".join(seal(r) + b"\n" for r in log.records))
        except OSError as err:
            raise _write_error(path, err) from None
        warnings.append(dropped_warning(path, log.dropped, log.error))
    for pattern in SEALED_FILES:
        for path in sorted(folder.glob(pattern)):
            record = read_sealed(path)
            if record is not None and (record.get("camlang"), record.get("v")) == (__version__, SCORE_SCHEMA):
                continue
            remove_quietly(path)
            warnings.append(dropped_warning(path, 1))  # the whole file is one sealed record
    return warnings


def dropped_warning(path: Path, count: int, error: str | None = None) -> str:
    """The warning for records dropped from a cache file (named from its output folder)."""
    name = Path(path.parent.name) / path.name
    why = f"unreadable ({error})" if error else f"{count} damaged or out-of-date record(s) dropped"
    return f"cache file {name}: {why}; that work is done again"


def _write_error(path: Path, err: OSError) -> CamlangError:
    message, hint = write_failure(path, err)
    return CamlangError(message, hint=hint)


def _plain(value: Any) -> Any:
    """JSON for tensors and arrays inside a unit (as nested lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot keep a {type(value).__name__} in the run cache")

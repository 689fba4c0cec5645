"""The resume cache: per-candidate, per-image metric values of a synthesis run, as JSON.

The enumeration is deterministic (same program, data, seed), so an interrupted run resumes by
re-enumerating (no model pass) and reusing every metric value already paid for. The file is
keyed by a digest of everything that determines the values; a stale file is ignored.

Each file is one sealed record (`camlang.core.records`: JSON whose checksum is checked before a
value is trusted), written to a temporary name and renamed. A file that is damaged, cut short or
written by another camlang version is not an error: it is ignored (`dropped` says why), its
values are computed again, and the next save replaces it. `camlang run --resume` removes such
files first and warns (`camlang.run.cache.heal`). `read_values` and `write_values` give the same
to the other caches of synthesis (`camlang.synth.compare.StdlibScoreCache`).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from camlang.core.atomic import write_failure
from camlang.core.records import read_sealed, write_sealed
from camlang.core.version import __version__
from camlang.errors import CamlangError

__all__ = ["SCORE_SCHEMA", "ScoreCache", "read_values", "write_values"]

#: Version of the files' layout (files of other versions are ignored).
SCORE_SCHEMA = 2


def read_values(path: Path, digest: str) -> tuple[dict[str, Any] | None, str | None]:
    """The `values` of the cache file `path` when its key digest is `digest`.

    Returns (values, None), or (None, why) when the file could not be used: missing, damaged
    (checksum), another camlang version or layout, or another key (then `why` is None: a stale
    file is not damage).
    """
    if not path.is_file():
        return None, None
    record = read_sealed(path)
    if record is None:
        return None, "damaged (its checksum does not match)"
    if record.get("v") != SCORE_SCHEMA or record.get("camlang") != __version__:
        return None, f"written by camlang {record.get('camlang', '?')}, layout {record.get('v', '?')}"
    values = record.get("values")
    if record.get("digest") != digest or not isinstance(values, dict):
        return None, None
    return values, None


def write_values(path: Path, digest: str, values: dict[str, Any]) -> None:
    """Replace the cache file `path` with `values` under key `digest` (atomically); a failed write
    (a full disk) is a `CamlangError` naming the file."""
    body = {"v": SCORE_SCHEMA, "camlang": __version__, "digest": digest, "values": values}
    try:
        write_sealed(path, body)
    except OSError as err:
        message, hint = write_failure(path, err)
        raise CamlangError(message, hint=hint) from None


class ScoreCache:
    """Metric values by (candidate expression, image position); saved atomically."""

    def __init__(self, path: Path | None, key: dict[str, Any], resume: bool) -> None:
        self.path = path
        self.digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.values: dict[str, dict[int, float]] = {}
        #: Why the file on disk was not used (damaged, another version), or None.
        self.dropped: str | None = None
        if path is not None and resume:
            found, self.dropped = read_values(path, self.digest)
            if found is not None:
                self.values, self.dropped = _parse(found)

    @staticmethod
    def file_for(cache_dir: Path | None, name: str) -> Path | None:
        """The cache file of synthesis `name` in `cache_dir` (None: no caching)."""
        return None if cache_dir is None else Path(cache_dir) / f"synth-{name}.json"

    def get(self, expr: str, image: int) -> float | None:
        return self.values.get(expr, {}).get(image)

    def put(self, expr: str, image: int, value: float) -> None:
        self.values.setdefault(expr, {})[image] = value

    def save(self) -> None:
        """Write the cache (no-op without a path)."""
        if self.path is None:
            return
        clean = {
            k: {str(i): (v if math.isfinite(v) else None) for i, v in d.items()}
            for k, d in self.values.items()
        }
        write_values(self.path, self.digest, clean)


def _parse(found: dict[str, Any]) -> tuple[dict[str, dict[int, float]], str | None]:
    """Values by expression and image from a file's JSON; entries of the wrong shape are dropped."""
    values: dict[str, dict[int, float]] = {}
    bad = 0
    for expr, row in found.items():
        if not isinstance(row, dict):
            bad += 1
            continue
        try:
            values[expr] = {int(i): math.nan if v is None else float(v) for i, v in row.items()}
        except (TypeError, ValueError):
            bad += 1
    return values, (f"{bad} malformed record(s)" if bad else None)

"""The resume cache: per-candidate, per-image metric values of a synthesis run, as JSON.

The enumeration is deterministic (same program, data, seed), so an interrupted run resumes by
re-enumerating (no model pass) and reusing every metric value already paid for. The file is
keyed by a digest of everything that determines the values; a stale file is ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from camlang.errors import CamlangError


class ScoreCache:
    """Metric values by (candidate expression, image position); saved atomically."""

    def __init__(self, path: Path | None, key: dict[str, Any], resume: bool) -> None:
        self.path = path
        self.digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.values: dict[str, dict[int, float]] = {}
        if path is not None and resume and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise CamlangError(
                    f"cannot read the synthesis cache {path}: {err}",
                    hint="delete it, or run without --resume",
                ) from None
            if data.get("digest") == self.digest:
                self.values = {
                    k: {int(i): math.nan if v is None else float(v) for i, v in d.items()}
                    for k, d in data["values"].items()
                }

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        clean = {
            k: {str(i): (v if math.isfinite(v) else None) for i, v in d.items()}
            for k, d in self.values.items()
        }
        tmp.write_text(json.dumps({"digest": self.digest, "values": clean}), encoding="utf-8")
        os.replace(tmp, self.path)

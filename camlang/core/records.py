"""Checksummed JSON records: one per line of a log (JSON lines), or one per file.

A sealed record is a JSON object whose first member is `"sum"`, a BLAKE2b digest of the bytes
that follow it on the line:

    {"sum":"3f2a9c0d1e4b5a69","v":2,"camlang":"0.1.0","run":"…","unit":[…]}

It is still plain JSON (any JSON reader can read it), but a reader that checks the sum tells a
damaged record (a torn write, garbage bytes, a flipped bit, invalid UTF-8) from a good one before
trusting a single value in it. The readers here never raise on bad content: they return the good
records and count the ones they dropped, so a cache can recompute what it lost and say so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camlang.core.atomic import append_line, write_atomic

__all__ = ["LogRead", "append_record", "read_log", "read_sealed", "seal", "unseal", "write_sealed"]

_PREFIX = b'{"sum":"'
_DIGEST = 16  # hex characters
_START = len(_PREFIX) + _DIGEST + 2  # the digest, then `",`


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST // 2).hexdigest().encode("ascii")


def seal(body: Mapping[str, Any], default: Callable[[Any], Any] | None = None) -> bytes:
    """`body` (a non-empty JSON object) as one line of sealed JSON, without the newline.

    `default` turns values JSON does not know (tensors) into ones it does. NaN and infinities
    are kept (as Python's json writes them).
    """
    if not body:
        raise ValueError("a sealed record needs at least one member")
    text = json.dumps(dict(body), allow_nan=True, default=default, ensure_ascii=True)
    rest = text[1:].encode("ascii")
    return _PREFIX + _digest(rest) + b'",' + rest


def unseal(raw: bytes) -> dict[str, Any] | None:
    """The record in `raw` (one sealed line), or None when it is damaged in any way."""
    raw = raw.rstrip(b"\r\n")
    if len(raw) <= _START or not raw.startswith(_PREFIX) or raw[_START - 2 : _START] != b'",':
        return None
    rest = raw[_START:]
    if raw[len(_PREFIX) : len(_PREFIX) + _DIGEST] != _digest(rest):
        return None
    try:
        value = json.loads(b"{" + rest)
    except ValueError:  # a record sealed as written cannot fail here, but a forged sum could
        return None
    if not isinstance(value, dict):
        return None
    return value


@dataclass(frozen=True)
class LogRead:
    """What a log file held: its good records in file order, and how many lines were dropped
    (damaged, or refused by the reader's `accept`). `error` says why the file could not be read
    at all (then `records` is empty)."""

    records: tuple[dict[str, Any], ...]
    dropped: int
    error: str | None = None


def read_log(path: Path, accept: Callable[[dict[str, Any]], bool] | None = None) -> LogRead:
    """The sealed records of a JSON-lines file; damaged lines (and lines `accept` refuses) are
    skipped and counted. A missing file is an empty log."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return LogRead((), 0)
    except OSError as err:
        return LogRead((), 0, err.strerror or str(err))
    records: list[dict[str, Any]] = []
    dropped = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        record = unseal(line)
        if record is None or (accept is not None and not accept(record)):
            dropped += 1
        else:
            records.append(record)
    return LogRead(tuple(records), dropped)


def append_record(path: Path, body: Mapping[str, Any], default: Callable[[Any], Any] | None = None) -> None:
    """Append one sealed record to a JSON-lines file (one write; see `camlang.core.atomic`)."""
    append_line(path, seal(body, default))


def read_sealed(path: Path) -> dict[str, Any] | None:
    """The one sealed record a whole file holds, or None (missing, unreadable or damaged)."""
    try:
        return unseal(Path(path).read_bytes())
    except OSError:
        return None


def write_sealed(path: Path, body: Mapping[str, Any], default: Callable[[Any], Any] | None = None) -> None:
    """Replace `path` with one sealed record, atomically (`camlang.core.atomic.write_atomic`)."""
    write_atomic(path, seal(body, default) + b"\n")

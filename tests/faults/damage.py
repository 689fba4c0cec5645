"""Ways a cache file gets damaged, as functions the campaign applies at random places.

A log (`*.jsonl`, one sealed record per line) is damaged at one line; a whole-file cache (one
sealed record) as a whole. Each function says what a correct reader must make of the result:
which records are gone and how many bad lines it should count (`Hurt`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from camlang.core.records import seal, unseal

#: Bytes a torn write or a disk error leaves behind (no newline: that would make two bad lines).
GARBAGE = bytes(b for b in range(256) if b != 10)


@dataclass(frozen=True)
class Hurt:
    """The damaged bytes, the records (line numbers) they no longer hold, and how many bad lines a
    reader must count (lines cut away whole cannot be counted: their work is simply redone)."""

    data: bytes
    lost: frozenset[int]
    bad_lines: int


def _resealed(line: bytes, **changes: object) -> bytes:
    record = unseal(line)
    assert record is not None
    record.pop("sum", None)
    return seal(record | changes)


def _lines(data: bytes) -> list[bytes]:
    return [line for line in data.split(b"\n") if line]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _inside(line: bytes, rng: random.Random) -> int:
    """A position inside `line`, past the checksum (so the damage is to the content)."""
    return rng.randrange(30, len(line) - 1)


class NoLine(Exception):
    """The log has no line left to damage this way (all are damaged already, or too short)."""


def _one_line(
    change: Callable[[bytes, random.Random], bytes],
) -> Callable[[bytes, random.Random, frozenset[int]], Hurt]:
    """A damage to one random line of a log (not one of `avoid`, already damaged)."""

    def damage(data: bytes, rng: random.Random, avoid: frozenset[int] = frozenset()) -> Hurt:
        lines = _lines(data)
        choices = [i for i, line in enumerate(lines) if i not in avoid and len(line) > 40]
        if not choices:
            raise NoLine
        i = rng.choice(choices)
        lines[i] = change(lines[i], rng)
        return Hurt(_join(lines), frozenset({i}), 1)

    return damage


def _garbage(line: bytes, rng: random.Random) -> bytes:
    at = _inside(line, rng)
    return line[:at] + bytes(rng.choice(GARBAGE) for _ in range(rng.randrange(1, 12))) + line[at:]


def _invalid_utf8(line: bytes, rng: random.Random) -> bytes:
    at = _inside(line, rng)
    return line[:at] + b"\xc3\x28" + line[at + 2 :]


def _flipped_digit(line: bytes, rng: random.Random) -> bytes:
    """A digit changed inside the record: still valid JSON, but not what was sealed."""
    digits = [i for i in range(30, len(line)) if chr(line[i]).isdigit()]
    at = rng.choice(digits)
    other = rng.choice([d for d in b"0123456789" if d != line[at]])
    return line[:at] + bytes([other]) + line[at + 1 :]


def _zeroed(line: bytes, rng: random.Random) -> bytes:
    at = _inside(line, rng)
    size = rng.randrange(1, max(2, min(64, len(line) - at)))
    return line[:at] + b"\0" * size + line[at + size :]


def _unsealed(line: bytes, rng: random.Random) -> bytes:
    """The record as camlang wrote it before records were sealed (no checksum)."""
    record = unseal(line)
    assert record is not None
    record.pop("sum", None)
    return json.dumps(record).encode("ascii")


def _torn_last(data: bytes, rng: random.Random, avoid: frozenset[int] = frozenset()) -> Hurt:
    lines = _lines(data)
    if len(lines) - 1 in avoid or len(lines[-1]) < 2:
        raise NoLine
    last = lines[-1]
    return Hurt(_join(lines[:-1]) + last[: rng.randrange(1, len(last))], frozenset({len(lines) - 1}), 1)


def _truncated(data: bytes, rng: random.Random, avoid: frozenset[int] = frozenset()) -> Hurt:
    lines = _lines(data)
    cut = rng.randrange(1, len(data))
    kept, starts = data[:cut], [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    # a line cut just before its newline is whole: its seal still verifies, so the reader keeps it
    whole = sum(1 for end in starts[1:] if end - 1 <= cut)
    partial = kept and not kept.endswith(b"\n") and cut not in {end - 1 for end in starts[1:]}
    return Hurt(kept, frozenset(range(whole, len(lines))), 1 if partial else 0)


#: Every damage, by name, as applied to a log file (JSON lines).
LOG_DAMAGE: dict[str, Callable[[bytes, random.Random, frozenset[int]], Hurt]] = {
    "torn last line": _torn_last,
    "garbage bytes": _one_line(_garbage),
    "invalid UTF-8": _one_line(_invalid_utf8),
    "invalid JSON": _one_line(lambda line, rng: line[: _inside(line, rng)] + b"{]"),
    "zeroed block": _one_line(_zeroed),
    "checksum mismatch": _one_line(_flipped_digit),
    "unsealed (old layout)": _one_line(_unsealed),
    "wrong schema version": _one_line(lambda line, rng: _resealed(line, v=99)),
    "another camlang version": _one_line(lambda line, rng: _resealed(line, camlang="0.0.1")),
    "record of another key": _one_line(lambda line, rng: _resealed(line, section="evaluate-000000000000")),
    "truncated file": _truncated,
}


def _whole(change: Callable[[bytes, random.Random], bytes]) -> Callable[[bytes, random.Random], bytes]:
    return lambda data, rng: change(data.rstrip(b"\n"), rng) + b"\n"


#: The same damages to a whole-file cache (one sealed record). Its reader drops the file, except a
#: file of another key: that is a stale cache, not a damaged one, and is silently not used.
FILE_DAMAGE: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "torn last line": lambda data, rng: data[: rng.randrange(1, len(data) - 1)],
    "garbage bytes": _whole(_garbage),
    "invalid UTF-8": _whole(_invalid_utf8),
    "invalid JSON": _whole(lambda line, rng: line[: _inside(line, rng)] + b"{]"),
    "zeroed block": _whole(_zeroed),
    "checksum mismatch": _whole(_flipped_digit),
    "unsealed (old layout)": _whole(_unsealed),
    "wrong schema version": _whole(lambda line, rng: _resealed(line, v=99)),
    "another camlang version": _whole(lambda line, rng: _resealed(line, camlang="0.0.1")),
    "record of another key": _whole(lambda line, rng: _resealed(line, digest="0" * 16)),
    "truncated file": lambda data, rng: data[: rng.randrange(0, len(data) // 2)],
}

#: A whole-file damage its reader cannot tell from a good file of other settings (not a warning).
STALE = "record of another key"

assert set(LOG_DAMAGE) == set(FILE_DAMAGE)

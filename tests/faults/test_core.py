"""The leaves the campaign leans on: sealed records, atomic writes and appends, the output lock."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camlang.core.atomic import append_line, write_atomic, write_failure
from camlang.core.lock import LOCK_NAME, LockHeld, OutputLock
from camlang.core.records import append_record, read_log, read_sealed, seal, unseal, write_sealed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, min_size=1, max_size=5))
def test_a_sealed_record_reads_back_as_written(body: dict[str, object]) -> None:
    line = seal(body)
    assert b"\n" not in line and json.loads(line) == {"sum": json.loads(line)["sum"], **body}
    got = unseal(line)
    assert got is not None and {k: v for k, v in got.items() if k != "sum"} == body


@given(st.data())
def test_any_change_to_a_sealed_record_is_caught(data: st.DataObject) -> None:
    line = seal({"unit": [1.5, 2.5, "x"], "run": "abc"})
    position = data.draw(st.integers(0, len(line) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != line[position]))
    damaged = line[:position] + bytes([byte]) + line[position + 1 :]
    got = unseal(damaged)
    # a changed byte is refused, unless it only changed the JSON's spelling of the same record
    assert got is None or got == unseal(line)


def test_read_log_keeps_good_lines_and_counts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    for i in range(4):
        append_record(path, {"i": i})
    data = path.read_bytes().split(b"\n")
    data[1] = b"\xff\xfe not json"  # garbage (invalid UTF-8 too)
    data[2] = data[2][:-3] + b"9}}"  # digest no longer matches
    path.write_bytes(b"\n".join(data) + b'{"sum":"cut sh')  # and a torn last line
    log = read_log(path)
    assert [r["i"] for r in log.records] == [0, 3] and log.dropped == 3 and log.error is None
    assert read_log(path, accept=lambda r: r["i"] > 0).dropped == 4
    assert read_log(tmp_path / "missing.jsonl") == read_log(tmp_path / "missing.jsonl")
    assert read_log(tmp_path / "missing.jsonl").records == ()


def test_an_append_after_a_torn_line_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    append_record(path, {"i": 0})
    with path.open("ab") as f:
        f.write(seal({"i": 1})[:10])  # a kill in the middle of an append
    append_record(path, {"i": 2})
    log = read_log(path)
    assert [r["i"] for r in log.records] == [0, 2] and log.dropped == 1


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """`os.write` fails with ENOSPC once `budget` bytes have been written (a disk filling up)."""
    real = os.write
    left = [budget]

    def write(fd: int, data: bytes | memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_atomic(path, b"old and complete")
    _full_disk_after(monkeypatch, 5)
    with pytest.raises(OSError) as caught:
        write_atomic(path, b"new and much longer than five bytes")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_bytes() == b"old and complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left
    message, hint = write_failure(path, caught.value)
    assert str(path) in message and "disk is full" in message and "--resume" in hint


def test_a_full_disk_during_an_append_keeps_the_earlier_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    append_record(path, {"i": 0})
    _full_disk_after(monkeypatch, 7)
    with pytest.raises(OSError):
        append_record(path, {"i": 1})
    monkeypatch.undo()
    append_record(path, {"i": 2})
    log = read_log(path)
    assert [r["i"] for r in log.records] == [0, 2] and log.dropped == 1


def test_sealed_files(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    write_sealed(path, {"values": {"a": 1}})
    assert read_sealed(path) is not None and json.loads(path.read_text())["values"] == {"a": 1}
    path.write_bytes(path.read_bytes()[:20])
    assert read_sealed(path) is None and read_sealed(tmp_path / "missing.json") is None
    append_line(tmp_path / "plain.txt", b"x")
    assert (tmp_path / "plain.txt").read_bytes() == b"x\n"


HOLD = """
import sys, time
from pathlib import Path
from camlang.core.lock import OutputLock
lock = OutputLock.acquire(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_the_lock_names_a_live_holder_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as held:
            OutputLock.acquire(tmp_path)
        assert held.value.holder.pid == holder.pid and f"pid {holder.pid}" in str(held.value)
    finally:
        holder.kill()  # kill -9: the lock file stays, naming a dead process
        holder.wait()
    assert (tmp_path / LOCK_NAME).is_file()
    lock = OutputLock.acquire(tmp_path)
    assert lock.stale is not None and lock.stale.pid == holder.pid
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    with OutputLock.acquire(tmp_path) as again:
        assert again.stale is None

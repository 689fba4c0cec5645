"""A full disk: the run stops with a clean error naming the file it could not write, everything
finished stays readable (the complete report, the cache up to its last whole record), and the run
resumed once there is space again ends with every number of an uninterrupted one.

The disk fills up at a random byte of what the run writes into its output folder (a patched
`os.write`, which every camlang output goes through: `camlang.core.atomic`)."""

from __future__ import annotations

import errno
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from faultkit import Tally, assert_same, clean, report, run_here

from camlang.core.records import read_log

SEED = int(os.environ.get("CAMLANG_FAULT_SEED", random.randrange(1 << 30)))

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")


@contextmanager
def disk(folder: Path, free: int | None) -> Iterator[list[int]]:
    """Writes into `folder` fail with ENOSPC after `free` bytes (None: never); yields the count
    of bytes written there."""
    real, written, root = os.write, [0], str(folder.resolve())

    def write(fd: int, data: bytes | memoryview) -> int:
        try:
            inside = os.readlink(f"/proc/self/fd/{fd}").startswith(root)
        except OSError:
            inside = False
        if not inside:
            return real(fd, data)
        if free is not None and written[0] >= free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        room = len(data) if free is None else min(len(data), free - written[0])
        n = real(fd, bytes(data[:room]))
        written[0] += n
        return n

    os.write = write  # type: ignore[assignment]
    try:
        yield written
    finally:
        os.write = real


def test_a_full_disk_stops_the_run_cleanly_and_resume_finishes(
    small_program: Path, small_reference: Path, tmp_path: Path, tally: Tally
) -> None:
    with disk(tmp_path / "count", None) as written:
        assert run_here(small_program, tmp_path / "count").code == 0
    total = written[0]
    rng = random.Random(SEED)
    out = tmp_path / "out"
    out.mkdir()
    kept = ("report.json", "report.html")
    for name in kept:  # the folder holds a complete report: a full disk must not cost it
        shutil.copy(small_reference / name, out / name)
    before = {name: (out / name).read_bytes() for name in kept}
    for step, free in enumerate(sorted(rng.sample(range(total), 4))):
        with disk(out, free):
            ran = run_here(small_program, out, *(["--resume"] if step else []))
        context = f"disk full after {free} of {total} bytes (seed {SEED})"
        if ran.code == 0:  # a resumed run had less to write than the room left: no fault
            assert clean(ran, tally), ran.stderr[-2000:]
            break
        tally.fault("disk full (ENOSPC)")
        assert ran.code == 1 and clean(ran, tally), f"{context}: {ran.stderr[-2000:]}"
        text = ran.stderr.replace("\n", " ")
        assert "the disk is full: cannot write " + str(out) in text, f"{context}: {ran.stderr[-2000:]}"
        assert {name: (out / name).read_bytes() for name in kept} == before, context
        assert not list(out.rglob("*.tmp")), context  # no temporary left behind
        for path in (out / "cache").glob("*.jsonl"):
            assert read_log(path).dropped <= 1, context  # at most the record being written
    ran = run_here(small_program, out, "--resume")
    assert ran.code == 0 and clean(ran, tally), ran.stderr[-2000:]
    assert_same(report(small_reference), report(out), tally, f"resume after a full disk (seed {SEED})")

"""Two runs on one output folder: the second gets a clear error naming the first one's pid (with one
worker or two, on either side), the first finishes untouched, and the lock of a killed run is
taken over by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import (
    ROOT,
    Ran,
    Tally,
    assert_same,
    camlang_command,
    clean,
    env_with_hook,
    report,
    run_here,
)

from camlang.core.lock import LOCK_NAME


def _start_paused(
    program: Path, out: Path, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[str], Path]:
    """A run that stops before its first evaluate batch is kept, holding its lock, until `go`."""
    go, mark = tmp_path / "go", tmp_path / "paused"
    spec = {
        "point": "evaluate",
        "at": 1,
        "rank": 0,
        "when": "before",
        "mark": str(mark),
        "pause_until": str(go),
    }
    proc = subprocess.Popen(
        camlang_command(program, out, *extra),
        env=env_with_hook(spec),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not mark.is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    return proc, go


def _second_run_is_refused(
    small_program: Path, out: Path, holder: int, tally: Tally, launches: tuple[tuple[str, ...], ...]
) -> None:
    for extra in launches:
        if extra:
            got = subprocess.run(
                camlang_command(small_program, out, *extra),
                env=env_with_hook(),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            ran = Ran(got.returncode, got.stdout, got.stderr)
        else:
            ran = run_here(small_program, out)
        tally.fault("a second run on the same --out" + (" (2 workers)" if extra else ""))
        assert ran.code == 1 and clean(ran, tally), ran.stderr
        assert f"another camlang run (pid {holder}" in ran.stderr and str(out) in ran.stderr, ran.stderr


@pytest.mark.parametrize("first_workers", [1, 2])
def test_a_second_run_on_the_same_folder_is_refused(
    small_program: Path, small_reference: Path, tmp_path: Path, tally: Tally, first_workers: int
) -> None:
    out = tmp_path / "out"
    extra = ("--workers", "2") if first_workers == 2 else ()
    proc, go = _start_paused(small_program, out, tmp_path, *extra)
    try:
        # a second `--workers 2` is refused by its launcher, before any worker starts: once is enough
        launches = ((), ("--workers", "2")) if first_workers == 1 else ((),)
        _second_run_is_refused(small_program, out, proc.pid, tally, launches)
        go.touch()
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = Ran(proc.returncode, stdout, stderr)
    assert first.code == 0 and clean(first, tally), stderr[-3000:]
    assert_same(
        report(small_reference), report(out), tally, f"the first of two runs ({first_workers} worker(s))"
    )
    assert not (out / LOCK_NAME).exists()


def test_the_lock_of_a_killed_run_is_taken_over(
    small_program: Path, small_reference: Path, tmp_path: Path, tally: Tally
) -> None:
    out = tmp_path / "out"
    proc, _ = _start_paused(small_program, out, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert str(proc.pid) in (out / LOCK_NAME).read_text()  # the dead run's lock is still there
    ran = run_here(small_program, out, "--resume")
    tally.fault("a stale lock of a killed run")
    assert ran.code == 0 and clean(ran, tally), ran.stderr[-3000:]
    assert f"locked by a run that ended without finishing (pid {proc.pid}" in ran.stderr.replace("\n", " ")
    assert_same(report(small_reference), report(out), tally, "the run after a killed one")

"""A hypothesis state machine over run / crash / kill / damage / resume, on the small program: in
any order, a finished run ends with the uninterrupted run's report, and a complete report in the
folder only ever holds those numbers (a failed run never replaces it).

A kill is simulated in this process (a real `kill -9` is `test_kill.py`'s): the run stops at a
random cached batch without writing anything more, and leaves its lock behind, naming a dead pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from damage import LOG_DAMAGE, NoLine
from faultkit import TALLY, assert_same, clean, report, run_here
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from camlang.core.lock import LOCK_NAME
from camlang.errors import CamlangError
from camlang.run import cache as run_cache
from camlang.run import program as run_program


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no handler writes a report)."""


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _drop(lock: Any) -> None:
    """What the kernel does to a killed process's lock: the flock goes, the file stays."""
    os.close(lock._fd)
    lock._fd = None


class RunKillDamageResume(RuleBasedStateMachine):
    """One output folder, and the faults a user's runs of it may meet."""

    program: Path
    expected: dict[str, Any]
    base: Path
    runs = 0

    @initialize()
    def start(self) -> None:
        RunKillDamageResume.runs += 1
        self.out = self.base / f"out-{RunKillDamageResume.runs}"
        shutil.rmtree(self.out, ignore_errors=True)

    def _run(self, resume: bool) -> Any:
        ran = run_here(self.program, self.out, *(["--resume"] if resume else []))
        assert clean(ran, TALLY), ran.stderr[-3000:]
        return ran

    @rule(
        at=st.integers(1, 4),
        before=st.booleans(),
        how=st.sampled_from(["Ctrl-C", "error", "kill"]),
        resume=st.booleans(),
    )
    def stopped_run(self, at: int, before: bool, how: str, resume: bool) -> None:
        real_append, real_write = run_cache.Section.append, run_program._ReportWriter.write
        real_release = run_program.OutputLock.release
        passes, killed = [0], [False]

        def append(section: run_cache.Section, unit: Any) -> None:
            passes[0] += 1
            fire = passes[0] == at
            if not (fire and before):
                real_append(section, unit)
            if fire:
                if how == "kill":
                    killed[0] = True
                    raise _Killed
                raise KeyboardInterrupt if how == "Ctrl-C" else CamlangError("the data went away")

        def write(writer: Any, state: Any, finished: bool = False) -> None:
            if not killed[0]:
                real_write(writer, state, finished)

        mp = pytest.MonkeyPatch()
        mp.setattr(run_cache.Section, "append", append)
        mp.setattr(run_program._ReportWriter, "write", write)
        mp.setattr(
            run_program.OutputLock, "release", lambda lock: _drop(lock) if killed[0] else real_release(lock)
        )
        try:
            try:
                ran = self._run(resume)
            except _Killed:
                ran = None
        finally:
            mp.undo()
        if ran is None:  # what SIGKILL leaves: the lock file names a process that is gone
            (self.out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "", "started": ""}))
            TALLY.fault("state machine: kill")
        elif passes[0] >= at:
            assert ran.code in (1, 130), ran.stderr[-2000:]
            TALLY.fault(f"state machine: {how}")

    @rule(how=st.sampled_from(sorted(LOG_DAMAGE)), pick=st.integers(0, 100), seed=st.integers(0, 1000))
    def damage(self, how: str, pick: int, seed: int) -> None:
        import random

        logs = sorted((self.out / "cache").glob("*.jsonl")) if (self.out / "cache").is_dir() else []
        logs = [p for p in logs if p.stat().st_size]
        if not logs:
            return
        path = logs[pick % len(logs)]
        try:
            hurt = LOG_DAMAGE[how](path.read_bytes(), random.Random(seed), frozenset())
        except NoLine:
            return
        path.write_bytes(hurt.data)
        TALLY.fault(f"state machine: {how}")

    @rule()
    def resume(self) -> None:
        ran = self._run(resume=True)
        assert ran.code == 0, ran.stderr[-2000:]
        assert_same(self.expected, report(self.out), TALLY, "state machine: resumed run")
        assert not (self.out / "report.partial.json").exists()

    @invariant()
    def a_complete_report_holds_the_reference_numbers(self) -> None:
        if hasattr(self, "out") and (self.out / "report.json").is_file():
            doc = report(self.out)
            if doc["partial"] is False:
                assert_same(self.expected, doc, None, "state machine: the complete report")

    def teardown(self) -> None:
        if hasattr(self, "out"):
            self.resume()


def test_run_kill_damage_resume(small_program: Path, small_reference: Path, tmp_path: Path) -> None:
    RunKillDamageResume.program = small_program
    RunKillDamageResume.expected = report(small_reference)
    RunKillDamageResume.base = tmp_path
    test = RunKillDamageResume.TestCase
    test.settings = settings(
        max_examples=4,
        stateful_step_count=4,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each step is a run
        suppress_health_check=list(HealthCheck),
    )
    test().runTest()

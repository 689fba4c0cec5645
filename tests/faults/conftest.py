"""Fixtures of the fault campaign (`faultkit` holds its tools): the programs, one uninterrupted
reference run of each, and the campaign's tally, printed at the end of the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faultkit import PROGRAM, SMALL_PROGRAM, TALLY, Tally, clean, run_here, write_tied_net


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.injected:
        terminalreporter.write_line(TALLY.summary())
        for loss in TALLY.losses[:10]:
            terminalreporter.write_line(f"  lost: {loss}")


@pytest.fixture
def tally() -> Tally:
    return TALLY


# ---- the reference run ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "all.cam"
    path.write_text(PROGRAM, encoding="utf-8")
    write_tied_net(path.parent / "tied.pt")
    return path


@pytest.fixture(scope="session")
def small_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults-small") / "small.cam"
    path.write_text(SMALL_PROGRAM, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference(program: Path) -> Path:
    """An uninterrupted run of `PROGRAM` (its folder: report, cache, export)."""
    out = program.parent / "reference"
    ran = run_here(program, out)
    assert ran.code == 0 and clean(ran), ran.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def small_reference(small_program: Path) -> Path:
    out = small_program.parent / "reference"
    ran = run_here(small_program, out)
    assert ran.code == 0 and clean(ran), ran.stderr[-3000:]
    return out

"""The limits of one synthesis (forward-pass budget, wall-clock time) and its progress lines.

`time` bounds the whole synthesis and is split by one stated rule (`TimeSplit`):
- the holdout comparison (its capture, after the search, and its scoring) gets `COMPARE_SHARE`
  of `time` when there is a holdout;
- tuning the winner's constants gets `TUNING_SHARE` when the grammar has constant holes;
- the search (training captures as the race asks for them, enumeration, race, final checks)
  gets the rest, and whatever the search and the tuning leave goes to the comparison.
Inside the search, the race stops early enough to leave the final checks their measured cost:
the reserve is re-estimated from the cost of one (cam, image) evaluation as the search goes, so
a slow metric leaves the race less time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from camlang.metrics._common import CallCounter
from camlang.progress import ProgressDisplay
from camlang.synth.racing import StopSearch

#: Least seconds between two plain progress lines (when the output is not a terminal).
PLAIN_INTERVAL_S = 5.0
#: Share of `time` kept for the final checks before their cost is measured.
RESERVE_SHARE = 0.1
#: Share of `time` for the holdout comparison (its capture and scoring), when there is a holdout.
COMPARE_SHARE = 0.35
#: Share of `time` for tuning the winner's constants, when the grammar has constant holes.
TUNING_SHARE = 0.1
#: Share of the search's time the enumeration may use (the rest is for racing).
ENUMERATION_SHARE = 0.4


@dataclass(frozen=True)
class TimeSplit:
    """How `time` is shared between search, tuning and comparison (seconds; 0 without a limit)."""

    seconds: float | None
    search: float
    tuning: float
    compare: float

    @staticmethod
    def plan(seconds: float | None, has_holdout: bool, has_constants: bool) -> TimeSplit:
        """The rule of the module docs."""
        if seconds is None:
            return TimeSplit(None, 0.0, 0.0, 0.0)
        compare = COMPARE_SHARE * seconds if has_holdout else 0.0
        tuning = TUNING_SHARE * seconds if has_constants else 0.0
        return TimeSplit(seconds, seconds - compare - tuning, tuning, compare)

    @staticmethod
    def rule() -> str:
        """The rule of the module docs, in one line (the report states it beside the split)."""
        return (
            f"holdout comparison {COMPARE_SHARE:.0%} of time when there is a holdout, tuning "
            f"{TUNING_SHARE:.0%} when the grammar has constant holes, the search the rest"
        )

    @property
    def after_search(self) -> float:
        """Seconds kept after the search (tuning and comparison)."""
        return self.tuning + self.compare

    def describe(self) -> str:
        """One line for the progress output."""
        if self.seconds is None:
            return "no time limit"
        return (
            f"time {self.seconds:.0f}s: search {self.search:.0f}s, tuning {self.tuning:.0f}s, "
            f"holdout comparison {self.compare:.0f}s"
        )


@dataclass(frozen=True)
class PhaseEnds:
    """When the search and the tuning ended, in seconds since the synthesis started (the holdout
    comparison runs from the tuning's end to the end of the synthesis)."""

    search: float
    tuning: float


class Limits:
    """Raises `StopSearch` from `check()` once the budget or the search's share of time is spent."""

    def __init__(self, counter: CallCounter, budget: int | None, seconds: float | None) -> None:
        self.counter = counter
        self.budget = budget
        self.started = time.monotonic()
        self.seconds = seconds
        self.end = None if seconds is None else self.started + seconds
        # Until a scoring call measured the cost of a (cam, image) pair, keep a share of the
        # time for the final checks and the holdout comparison.
        self.split = TimeSplit.plan(seconds, False, False)
        self.reserve = 0.0 if seconds is None else RESERVE_SHARE * seconds
        self.enumeration_end: float | None = None

    def plan_split(self, has_holdout: bool, has_constants: bool) -> TimeSplit:
        """Share `time` out (see the module docs); the race's reserve covers the shares after it."""
        self.split = TimeSplit.plan(self.seconds, has_holdout, has_constants)
        if self.seconds is not None:
            self.reserve = RESERVE_SHARE * self.seconds + self.split.after_search
        return self.split

    def check_final(self) -> None:
        """Stop the final checks when only the time kept for tuning and comparison is left."""
        if self.end is not None and time.monotonic() + self.split.after_search >= self.end:
            raise StopSearch("time limit reached")

    def start_enumeration(self) -> None:
        """Enumeration may use at most `ENUMERATION_SHARE` of the time left for the search."""
        if self.end is not None:
            search_left = max(0.0, self.end - self.reserve - time.monotonic())
            self.enumeration_end = time.monotonic() + ENUMERATION_SHARE * search_left

    def elapsed(self) -> float:
        """Seconds since the synthesis started."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left of the whole synthesis (inf without a time limit)."""
        return float("inf") if self.end is None else self.end - time.monotonic()

    def check(self) -> None:
        """Stop the search when the budget is used or the time left is only the reserve."""
        if self.budget is not None and self.counter.images >= self.budget:
            raise StopSearch(f"budget of {self.budget} forward passes reached")
        now = time.monotonic()
        if self.end is not None and now + self.reserve >= self.end:
            raise StopSearch("time limit reached")
        if self.enumeration_end is not None and now >= self.enumeration_end:
            raise StopSearch("the enumeration's share of the time limit reached")


class PairClock:
    """The measured cost of scoring one (cam, image) pair: seconds and forward passes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.pairs = 0
        self.passes = 0
        self.calls = 0  # model calls, for the images per call of the scoring loop

    def add(self, seconds: float, pairs: int, passes: int, calls: int = 0) -> None:
        """Record one scoring call."""
        self.seconds += seconds
        self.pairs += pairs
        self.passes += passes
        self.calls += calls

    def per_pair(self, fallback: float = 0.0) -> float:
        """Seconds per pair (`fallback` before anything was measured)."""
        return self.seconds / self.pairs if self.pairs else fallback

    def passes_per_pair(self) -> float:
        """Forward passes per pair."""
        return self.passes / self.pairs if self.pairs else 0.0


class ProgressLog:
    """Progress of a synthesis: a rich task when drawing to a terminal, else plain lines.

    Plain lines go to `echo` (or the progress display's console) at most one every
    `PLAIN_INTERVAL_S` seconds; `say` prints a line at once (estimates, phase changes).
    """

    def __init__(
        self,
        name: str,
        progress: ProgressDisplay | None,
        echo: Callable[[str], None] | None,
        total: int,
    ) -> None:
        self.name = name
        # A rich display says whether it draws (`disable`); a plain one draws its own lines.
        live = progress is not None and not getattr(progress, "disable", False)
        self.display = progress if live else None
        self.task = None if self.display is None else self.display.add_task(f"synthesize {name}", total=total)
        if echo is None and progress is not None and not live and progress.console is not None:
            echo = progress.console.print
        self.echo = echo
        self.last = -float("inf")
        self.started = time.monotonic()

    def update(self, text: str, completed: int | None = None) -> None:
        """Show the current state (rate-limited when plain)."""
        if self.display is not None and self.task is not None:
            self.display.update(self.task, description=f"{self.name}: {text}", completed=completed)
            return
        now = time.monotonic()
        if self.echo is not None and now - self.last >= PLAIN_INTERVAL_S:
            self.last = now
            self.echo(f"synthesize {self.name} [{now - self.started:.0f}s]: {text}")

    def say(self, text: str) -> None:
        """Print one line now (above the live display, or plain)."""
        line = f"synthesize {self.name} [{time.monotonic() - self.started:.0f}s]: {text}"
        if self.display is not None:
            if self.display.console is not None:
                self.display.console.print(line)
        elif self.echo is not None:
            self.echo(line)

    def finish(self, total: int) -> None:
        """Mark the task complete."""
        if self.display is not None and self.task is not None:
            self.display.update(self.task, completed=total)

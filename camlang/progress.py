"""Progress display shared by run, synthesis and checks.

On a terminal it is a transient rich progress bar. When the output is not a terminal (CI logs,
`nohup`, a batch scheduler) long work still reports itself, as plain lines, at most one every
`interval` seconds per task, plus one when a long task finishes (short ones stay quiet). Off rank 0 of a
distributed run (`enabled=False`) it prints nothing.

Both displays take the same calls: `add_task(description, total=...)` and
`update(task, advance=..., completed=..., total=..., description=...)`, used as context managers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

#: Seconds between two plain progress lines of one task.
PLAIN_INTERVAL_S = 5.0


class ProgressDisplay(Protocol):
    """What both displays offer: rich's `Progress` and `PlainProgress`."""

    @property
    def console(self) -> Console | None:
        """Where the display prints (None: a silent plain display)."""
        ...

    def __enter__(self) -> ProgressDisplay: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def add_task(self, description: str, *, total: float | None = ...) -> TaskID:
        """A new task (None total: unknown length)."""
        ...

    def update(
        self,
        task_id: TaskID,
        *,
        advance: float | None = ...,
        completed: float | None = ...,
        total: float | None = ...,
        description: str | None = ...,
    ) -> None:
        """Move a task on, or change its total or description."""
        ...


def make_progress(
    console: Console | None = None, *, enabled: bool = True, interval: float = PLAIN_INTERVAL_S
) -> ProgressDisplay:
    """A progress display for `console` (bar on a terminal, plain lines otherwise)."""
    console = console or Console()
    if not enabled:
        return PlainProgress(None, interval)
    if not console.is_terminal:
        return PlainProgress(console, interval)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    started: float
    last_print: float
    finished: bool = False


class PlainProgress:
    """Progress as plain, timestamped lines, rate-limited per task (None console: silent)."""

    def __init__(self, console: Console | None, interval: float = PLAIN_INTERVAL_S) -> None:
        self.console = console
        self.interval = interval
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for task_id, task in self.tasks.items():
            if not task.finished and exc_type is None and self._long(task):
                self._print(task_id, force=True)

    def add_task(self, description: str, total: float | None = None, **_: object) -> TaskID:
        now = time.monotonic()
        task_id = TaskID(len(self.tasks))
        self.tasks[task_id] = _Task(description, total, 0.0, now, now)
        return task_id

    def update(
        self,
        task_id: int,
        *,
        advance: float | None = None,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **_: object,
    ) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        done = task.total is not None and task.completed >= task.total
        self._print(task_id, force=done and not task.finished and self._long(task))
        task.finished = task.finished or done

    def _long(self, task: _Task) -> bool:
        """Worth a closing line: it printed before, or ran for more than one interval."""
        return task.last_print > task.started or time.monotonic() - task.started >= self.interval

    def _print(self, task_id: int, force: bool = False) -> None:
        task = self.tasks[task_id]
        now = time.monotonic()
        if self.console is None or (not force and now - task.last_print < self.interval):
            return
        task.last_print = now
        count = f"{task.completed:,.0f}"
        if task.total:
            count += f" of {task.total:,.0f} ({100.0 * task.completed / task.total:.0f}%)"
        stamp = time.strftime("%H:%M:%S")
        self.console.print(
            f"[{stamp}] {task.description}: {count}, {now - task.started:.0f} s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

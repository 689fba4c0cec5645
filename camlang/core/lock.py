"""One writer per output folder: a lock file holding the pid of the run that writes there.

The lock is an advisory `flock` on `<folder>/.camlang.lock`, and the file records who holds it
(pid, host, start time) so that a second run can name the first. The kernel releases a `flock`
when its process dies, however it dies, so the lock of a killed run (`kill -9`, a crash, a power
cut of that process) is never stuck: the next run finds the file, takes the lock, and says whose
it was (`OutputLock.stale`).

Removing the file on release is safe because `acquire` checks, after locking, that the file it
locked is still the one at the path (a run that locked a file another run just removed tries
again).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_NAME", "LockHeld", "LockHolder", "OutputLock"]

LOCK_NAME = ".camlang.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who wrote a lock file (pid 0 when the file said nothing readable)."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        """ "pid 1234 on host, since 2026-01-01T10:00:00+00:00"."""
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        since = f", since {self.started}" if self.started else ""
        return f"pid {self.pid}{where}{since}" if self.pid else f"an unknown process{where}"


class LockHeld(Exception):
    """Another live process holds the lock of `folder`."""

    def __init__(self, folder: Path, holder: LockHolder) -> None:
        super().__init__(f"{folder} is locked by {holder.describe()}")
        self.folder = folder
        self.holder = holder


def _read_holder(fd: int) -> LockHolder:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode("utf-8"))
        return LockHolder(int(doc.get("pid", 0)), str(doc.get("host", "")), str(doc.get("started", "")))
    except (OSError, ValueError, AttributeError, TypeError):
        return LockHolder(0, "", "")


class OutputLock:
    """The lock of one output folder, held from `acquire` to `release` (or the process's end)."""

    def __init__(self, folder: Path, fd: int, stale: LockHolder | None) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = fd
        #: The holder recorded by a run that ended without releasing the lock (killed), if any.
        self.stale = stale

    @classmethod
    def acquire(cls, folder: Path) -> OutputLock:
        """Lock `folder` (created if needed) for this process; raises `LockHeld` when a live
        process holds it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        for _ in range(20):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeld(folder, holder) from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed this file as we locked it: lock the new one
                os.close(fd)
                continue
            # a record left in a file nobody locks: its run ended without releasing (killed)
            left = _read_holder(fd)
            stale = left if left.pid else None
            started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8") + b"\n", 0)
            return cls(folder, fd, stale)
        raise OSError(f"cannot lock {path}: it keeps being replaced")

    def release(self) -> None:
        """Give the lock up and remove the lock file (safe to call twice)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

"""Files written whole or not at all, and appends that never glue two records together.

`write_atomic` writes to a temporary name beside the target and renames it into place, so a
reader (or a run resumed after a crash) sees the old file or the new one, never half of one. The
temporary name carries the writer's pid, so two processes never write into the same temporary.
A failed write (a full disk, a kill) leaves the old file as it was.

`append_line` adds one line to a log file, starting it on a fresh line when the file's last
line was cut short (a kill in the middle of an append): the torn line stays unreadable, the new
one does not join it.

Both write through `os.write`, one call per chunk, so a test can stand in for a full disk by
patching that one function. Errors are plain `OSError`s with the target's name in `filename`;
`write_failure` words one for the user (this leaf cannot import `camlang.errors`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["append_line", "remove_quietly", "write_atomic", "write_atomic_all", "write_failure"]

#: Error numbers that mean the disk (or the user's quota) is full.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str is written as UTF-8): all of it, or nothing.

    Folders are created. On any failure the temporary file is removed and the error raised
    with `filename` set to `path`.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, raw)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        remove_quietly(tmp)
        raise OSError(err.errno, err.strerror, str(path)) from err
    except BaseException:
        remove_quietly(tmp)  # a Ctrl-C mid-write: leave no temporary behind
        raise


def write_atomic_all(files: list[tuple[Path, bytes]]) -> None:
    """Replace several files together: every temporary is written before the first rename, so a
    failed write (a full disk) replaces none of them (a crash between two renames can still
    leave some renamed: each file is then whole, old or new)."""
    done: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.all.tmp")
            write_atomic(tmp, data)
            done.append((tmp, path))
    except BaseException:
        for tmp, _ in done:
            remove_quietly(tmp)
        raise
    for tmp, path in done:
        os.replace(tmp, path)


def append_line(path: Path, line: bytes) -> None:
    """Append `line` (a newline is added) to `path`, on a line of its own, in one write."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            _write_all(fd, (b"\n" if torn else b"") + line + b"\n")
        finally:
            os.close(fd)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err


def remove_quietly(path: Path) -> None:
    """Delete `path` if it is there (a leftover temporary); errors are ignored."""
    try:
        os.unlink(path)
    except OSError:
        pass


def write_failure(path: Path | str, err: OSError) -> tuple[str, str]:
    """The message and hint of a failed write of `path`, for a `CamlangError`."""
    if err.errno in DISK_FULL:
        return (
            f"the disk is full: cannot write {path}",
            "free some space, then run again with --resume: everything finished is kept",
        )
    return (
        f"cannot write {path}: {err.strerror or err}",
        "check that the output folder is writable and has free space",
    )

"""This process's place in a distributed run, and the collectives a run needs.

A run is distributed when the launcher (torchrun, or `camlang run --workers N`) sets `WORLD_SIZE`
above 1 in the environment. Then `Dist.from_env` joins the process group: gloo on the CPU, NCCL
with CUDA (worker k then uses `cuda:k`, k being its local rank). Every collective has the process
group's timeout, so no worker waits for ever on a peer that died: it gets an error instead, which
`_collective` turns into `WorkerFailure`.

Objects travel pickled (`gather_object`, `all_gather_object`, `broadcast_object_list`), which is
how a run moves per-image values to rank 0 and a synthesis's scores to every rank;
docs/scaling.md gives their sizes.
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import torch

from camlang.errors import CamlangError

T = TypeVar("T")

#: The process group's default timeout (seconds); `--collective-timeout` overrides it.
DEFAULT_TIMEOUT_S = 1800.0


class WorkerFailure(Exception):
    """Another worker failed or was lost, or the launcher stopped this one; the run must end."""

    def __init__(self, message: str, rank: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rank = rank


@dataclass(frozen=True)
class Dist:
    """Rank, world size and device of this process (rank 0 of 1 when not distributed)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: str
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints progress and writes the report."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def single(device: str = "cpu") -> Dist:
        """One process, no process group."""
        return Dist(0, 1, 0, 1, device)

    @staticmethod
    def from_env(
        device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None
    ) -> Dist:
        """Join the launcher's process group when `WORLD_SIZE` > 1; otherwise one process.

        Sets this worker's intra-op threads to `threads`, or to cores / local workers.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, threads if threads else cores // max(1, local_world)))
        if world <= 1:
            return Dist.single(device)
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        backend = "gloo"
        if device.startswith("cuda"):
            if torch.cuda.device_count() <= local_rank:
                raise CamlangError(
                    f"worker {rank} needs cuda:{local_rank}, but this machine has "
                    f"{torch.cuda.device_count()} GPU(s)",
                    hint="start at most one worker per GPU on each machine",
                )
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
            backend = "nccl"
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout_s))
        _stop_on_sigterm()
        return Dist(rank, world, local_rank, local_world, device, backend)

    # ---- collectives (no-ops with one process)
    def gather(self, obj: T) -> list[T] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        self._collective("gather", lambda: dist.gather_object(obj, out, dst=0))
        return out

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        self._collective("all_gather", lambda: dist.all_gather_object(out, obj))
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        self._collective("broadcast", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            self._collective("barrier", dist.barrier)

    def close(self) -> None:
        """Leave the process group (safe to call twice, and after a failure)."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                try:
                    dist.destroy_process_group()
                except Exception:  # noqa: BLE001 - a broken group cannot be left cleanly; exiting is enough
                    pass

    def _collective(self, name: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except (RuntimeError, ValueError, ConnectionError) as err:
            # The run is ending: the launcher's SIGTERM, which follows a lost worker at about the same
            # moment, must not interrupt the partial report this failure leads to.
            _ignore_sigterm()
            raise WorkerFailure(
                f"collective `{name}` failed on rank {self.rank}: {_first_line(err)}"
            ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _ignore_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to change
        pass


def _stop_on_sigterm() -> None:
    """The launcher stops the other workers with SIGTERM when one fails: end this one cleanly."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the report finish
        raise WorkerFailure("stopped by the launcher because another worker failed or was lost")

    signal.signal(signal.SIGTERM, handler)


# ---- failure notes: how rank 0 learns which rank failed and why


def note_failure(folder: Path, rank: int, message: str) -> None:
    """Leave `message` where rank 0 looks for the reason a worker ended (best effort)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"failed-rank-{rank}.txt").write_text(message + "\n", encoding="utf-8")
    except OSError:
        pass


def read_failures(folder: Path) -> dict[int, str]:
    """The failure notes left in `folder`, by rank."""
    out: dict[int, str] = {}
    for path in sorted(folder.glob("failed-rank-*.txt")) if folder.is_dir() else []:
        try:
            out[int(path.stem.rsplit("-", 1)[1])] = path.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            continue
    return out


def clear_failures(folder: Path) -> None:
    """Remove the failure notes of an earlier run."""
    for path in folder.glob("failed-rank-*.txt") if folder.is_dir() else []:
        path.unlink(missing_ok=True)

"""`camlang run FILE`: execute a program's actions in order and write the report.

Each synthesis runs as a step of its own before the first action that needs its cam (any unused
ones at the end; `camlang.run.plan`).
The report (report.json, report.html, PNGs) is rewritten after every action, and every finished
batch of an evaluate and every finished check goes into the run's cache (`camlang.run.cache`), so
Ctrl-C, a crash or a lost worker keeps everything that finished: the report is marked partial and
counts what it covers ("412 of 200,000 images"); `--resume` continues from the cache, after
dropping what it cannot trust from it (`camlang.run.cache.heal`). Relative export paths are
written inside the output folder.

Until the run finishes, its report is partial; when the folder already holds a complete report,
the partial one is written beside it (report.partial.json, `camlang.report.writer`) and never
over it. One run at a time writes to an output folder (`lock_output`).

With several workers (torchrun, or `--workers N`; see `camlang.distributed`), every rank runs
this same driver on its share of the work; rank 0 alone prints and writes the report.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from camlang.core.lock import LockHeld, OutputLock
from camlang.core.oom import is_out_of_memory
from camlang.core.version import __version__
from camlang.distributed import Dist, WorkerFailure
from camlang.distributed.context import DEFAULT_TIMEOUT_S, clear_failures, note_failure, read_failures
from camlang.errors import CamlangError
from camlang.frontend import syntax as s
from camlang.frontend.check import check_file
from camlang.frontend.diagnostics import CompileError
from camlang.frontend.program import Program
from camlang.report import Export, RunReport, print_summary, write_report
from camlang.report.writer import COMPLETE, PARTIAL, PngMemo, complete_report_exists, remove_partial
from camlang.run.cache import RunCache, heal
from camlang.run.plan import Synthesize, plan_steps
from camlang.run.state import RunOptions, RunState
from camlang.synth import SynthOutcome

__all__ = ["LOCKED_ENV", "RunOptions", "RunState", "lock_output", "run_file", "run_program"]

#: Exit code of a run that a worker failure ended (the launcher's own convention is non-zero too).
EXIT_WORKER_FAILED = 3


def run_program(
    program: Program,
    options: RunOptions,
    console: Console | None = None,
    dist: Dist | None = None,
    synthesized: dict[str, SynthOutcome] | None = None,
) -> tuple[RunReport | None, int]:
    """Run every action; returns the report (None off rank 0) and the exit code.

    Exit codes: 0, 130 when interrupted, 3 when a worker failed or was lost. `synthesized`, when
    given (empty), receives the winners of the run's syntheses as they are found (the API's cams).
    """
    console = console or Console(stderr=False)
    dist = dist or Dist.single(options.device)
    torch.manual_seed(options.seed)
    cache_dir = options.out_dir / "cache"
    run_id = dist.broadcast(RunCache(None, dist, False).run_id)
    state = RunState(
        program, options, console, dist=dist, cache=RunCache(cache_dir, dist, options.resume, run_id)
    )
    if synthesized is not None:
        state.synthesized = synthesized
    state.cache.warn = state.warn  # records a cache read drops are named in the report
    # where this run's report goes until it finishes: beside a complete one, never over it
    writer = _ReportWriter(PARTIAL if dist.is_main and complete_report_exists(options.out_dir) else COMPLETE)
    if dist.is_main:
        clear_failures(cache_dir)
        if options.resume:
            for warning in heal(cache_dir):
                state.warn(warning)
    dist.barrier()
    state.report = RunReport(
        __version__,
        program.main.name,
        _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        options.seed,
        options.device,
        world_size=dist.world_size,
    )
    status = 0
    try:
        for step in plan_steps(program):
            _run_step(state, step)
            writer.write(state)
    except KeyboardInterrupt:
        _keep_unfinished(state)
        state.update_report(partial=True)
        state.warn("interrupted by the user (Ctrl-C): the report holds what finished")
        status = 130
    except WorkerFailure as failure:
        _keep_unfinished(state)
        reason = _failure_reason(state, failure)
        state.update_report(partial=True, failure=reason)
        state.warn(f"the run stopped early: {reason}; the report holds what finished")
        status = EXIT_WORKER_FAILED
    except BaseException as err:
        # This worker's own error: leave a note naming it for rank 0, then let it propagate.
        if dist.distributed:
            note_failure(cache_dir, dist.rank, f"{type(err).__name__}: {getattr(err, 'message', err)}")
        if dist.is_main:
            _keep_unfinished(state)
            who = "rank 0" if dist.distributed else "the run"
            state.update_report(partial=True, failure=f"{who} failed: {getattr(err, 'message', err)}")
            try:
                writer.write(state)
            except Exception as write_err:  # noqa: BLE001 - the original error matters more
                print(f"could not write the partial report: {write_err}", file=sys.stderr)
        raise
    writer.write(state, finished=True)
    return (state.report if dist.is_main else None), status


def _keep_unfinished(state: RunState) -> None:
    """Put the finished part of the interrupted action into the report."""
    part, state.unfinished = state.unfinished, None
    if part is None or not state.is_main:
        return
    if isinstance(part, list):
        state.add(checks=part)
    else:
        state.add(evaluations=(part,))


def _failure_reason(state: RunState, failure: WorkerFailure) -> str:
    """Which rank failed and why, from the notes failed workers leave (waits briefly for them)."""
    folder = state.options.out_dir / "cache"
    deadline = time.monotonic() + 3.0
    notes = read_failures(folder)
    while not notes and time.monotonic() < deadline:
        time.sleep(0.2)
        notes = read_failures(folder)
    notes.pop(state.dist.rank, None)
    if notes:
        return "; ".join(f"rank {rank} failed: {text}" for rank, text in sorted(notes.items()))
    return f"a worker failed or was lost ({failure.message})"


@dataclass(frozen=True)
class _ReportWriter:
    """Writes a run's report: partial ones under `partial_stem` (beside a complete report, never
    over it), the complete one when the run finishes; each grid and chart is drawn once."""

    partial_stem: str
    memo: PngMemo = field(default_factory=PngMemo)

    def write(self, state: RunState, finished: bool = False) -> None:
        """The complete report when the run `finished` whole (the partial files go), else what
        the run has so far, as a partial report."""
        if not state.is_main:
            return
        state.update_report(warnings=tuple(state.warnings))
        assert state.report is not None
        out, grid = state.options.out_dir, state.options.grid_images
        if finished and not state.report.partial:
            write_report(out, state.report, grid, COMPLETE, self.memo)
            remove_partial(out)
        else:
            partial = dataclasses.replace(state.report, partial=True)
            write_report(out, partial, grid, self.partial_stem, self.memo)


def _run_step(state: RunState, step: Synthesize | s.Action) -> None:
    """One step: a synthesis or an action, with the same error handling (spans, out of memory)."""
    try:
        if isinstance(step, Synthesize):
            state.synthesize(step.name)
        else:
            _dispatch(state, step)
    except CamlangError as err:
        if err.span is None and not isinstance(step, Synthesize):  # point at the action that failed
            err.span = step.span
        if err.code != "E602" and "out of memory" in err.message.lower():  # worded for its data
            raise _out_of_memory(state, err) from None
        raise
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        raise _out_of_memory(state, err) from None


def _out_of_memory(state: RunState, err: BaseException) -> CamlangError:
    """Running out of memory, as a user error naming the batch size to use instead."""
    size = state.options.batch_size
    return CamlangError(
        f"out of memory on a batch of {size} image(s) on {state.options.device}: "
        f"{getattr(err, 'message', err)}",
        hint=f"run again with --batch-size {max(1, size // 2)} --resume (everything finished is kept)",
        code="E602",
        span=getattr(err, "span", None),  # a CamlangError's, pointing at the action
    )


def _dispatch(state: RunState, action: s.Action) -> None:
    from camlang.run.actions import run_checks, run_evaluate

    match action:
        case s.Evaluate():
            result = run_evaluate(state, action)
            if result is not None:
                state.add(evaluations=(result,))
        case s.Check():
            rows = run_checks(state, [p.name for p in action.properties])
            if rows is not None:
                state.add(checks=rows)
        case s.Heatmaps() | s.Watch():
            from camlang.concepts.run_hook import run_concept_action

            run_concept_action(state, action)
        case s.Export():
            from camlang.run.export import write_module

            node, text = state.cam_node(action.cam.name)
            if not state.is_main:
                return
            target = Path(action.path.value)
            if not target.is_absolute():
                target = state.options.out_dir / target
            path = write_module(action.cam.name, node, text, target)
            state.console.print(f"exported [bold]{action.cam.name}[/] to {path}")
            state.add(exports=(Export(action.cam.name, str(path)),))


def run_file(
    file: str | Path,
    *,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    seed: int = 0,
    resume: bool = False,
    threads: int | None = None,
    collective_timeout: float = DEFAULT_TIMEOUT_S,
) -> int:
    """The `camlang run` command on this process: check, run, write the report, print the summary.

    Under a launcher (`WORLD_SIZE` > 1) this process is one worker of the run.
    """
    program = check_file(file)
    if program.has_errors:
        raise CompileError(program.diagnostics)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CamlangError(f"device {device} is not available on this machine", hint="use --device cpu")
    if batch_size <= 0:
        raise CamlangError(f"--batch-size must be positive, got {batch_size}")
    dist = Dist.from_env(device, collective_timeout, threads)
    if dist.is_main:
        for d in program.diagnostics:
            from camlang.frontend.diagnostics import render

            print(render(d), file=sys.stderr)
    out = Path(out_dir) if out_dir is not None else Path("camlang-out") / Path(file).stem
    options = RunOptions(out, dist.device, batch_size, seed, resume)
    console = Console()
    started = time.perf_counter()
    try:
        lock = lock_output(out, dist)
        try:
            report, status = run_program(program, options, console, dist)
        finally:
            if lock is not None:
                lock.release()
    finally:
        dist.close()
    if report is not None:
        print_summary(report, console)
        where = f" ({dist.world_size} workers)" if dist.distributed else ""
        page = out / f"{COMPLETE}.html"
        if report.partial and (out / f"{PARTIAL}.html").is_file():
            page = out / f"{PARTIAL}.html"
        console.print(f"report: {page}{where} ({time.perf_counter() - started:.1f} s)")
        if report.failure:
            print(f"error: {report.failure}", file=sys.stderr)
    return status


#: Set by `camlang run --workers` for its workers: the output folder the launcher has locked.
LOCKED_ENV = "CAMLANG_LOCKED_OUT"


def lock_output(out: Path, dist: Dist | None = None) -> OutputLock | None:
    """Lock the output folder for this run (`camlang.core.lock`), on rank 0; None when a launcher
    holds the lock for its workers, or on the other ranks.

    A second run on the same folder gets a `CamlangError` naming the first one's pid, on every
    rank. The lock of a killed run is taken over (and said so).
    """
    if os.environ.get(LOCKED_ENV) == str(Path(out).resolve()):
        return None
    lock: OutputLock | None = None
    error: tuple[str, str] | None = None
    if dist is None or dist.is_main:
        try:
            lock = OutputLock.acquire(Path(out))
        except LockHeld as held:
            error = (
                f"another camlang run ({held.holder.describe()}) is writing to {out}",
                "wait for it to finish, or pass another --out",
            )
        except OSError as err:
            error = (f"cannot lock the output folder {out}: {err.strerror or err}", "pass a writable --out")
    if dist is not None:
        error = dist.broadcast(error)
    if error is not None:
        if lock is not None:
            lock.release()
        raise CamlangError(error[0], hint=error[1])
    if lock is not None and lock.stale is not None:
        print(
            f"note: {out} was locked by a run that ended without finishing ({lock.stale.describe()}); "
            "this run takes over",
            file=sys.stderr,
        )
    return lock

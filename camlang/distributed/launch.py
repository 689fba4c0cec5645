"""`camlang run FILE --workers N`: start N local workers through torch's elastic launcher.

This is the launcher `torchrun --standalone --nproc-per-node N` uses (`elastic_launch`, c10d
rendezvous on a free local port, no restarts). Each worker runs `python -m camlang run FILE ...`
with the launcher's `RANK`/`WORLD_SIZE` environment, exactly as under torchrun. When a worker fails
or is killed, the launcher stops the others (SIGTERM, then SIGKILL after its grace period); rank 0
then writes the partial report, and this function names the failed rank.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from camlang.errors import CamlangError

#: Worker exit codes that mean "stopped because of another worker", not a root cause.
_SECONDARY_EXITS = (3, 130, -int(signal.SIGTERM), -int(signal.SIGINT))


def launch_workers(workers: int, worker_args: list[str], out_dir: Path) -> int:
    """Run `camlang run` with `worker_args` on `workers` local processes; returns the exit code."""
    if workers < 1:
        raise CamlangError(f"--workers must be at least 1, got {workers}")
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=workers,
        run_id=f"camlang-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        elastic_launch(config, sys.executable)("-m", "camlang", "run", *worker_args)
    except ChildFailedError as err:
        return _report_failure(err.failures, out_dir)
    except SignalException as sig:
        print(f"interrupted ({signal.Signals(sig.sigval).name}): the workers were stopped", file=sys.stderr)
        return 130
    return 0


def _report_failure(failures: dict[int, Any], out_dir: Path) -> int:
    """Name the failed rank(s), record them in report.json, and choose the exit code."""
    causes = {r: f for r, f in failures.items() if f.exitcode not in _SECONDARY_EXITS}
    if not causes and all(f.exitcode == 130 for f in failures.values()):
        return 130  # Ctrl-C: every worker stopped on its own
    shown = causes or failures
    parts = []
    for rank, f in sorted(shown.items()):
        if f.exitcode < 0:
            how = f"killed by signal {f.signal_name()}"
        else:
            how = f"exit code {f.exitcode}"
            message = f.message if isinstance(f.message, str) else (f.message or {}).get("message", "")
            if message and "<N/A>" not in message and "To enable traceback" not in message:
                how += f": {message}"
        parts.append(f"worker rank {rank} failed ({how})")
    text = "; ".join(parts)
    print(f"error: {text}", file=sys.stderr)
    _record(out_dir, text)
    return 3


def _record(out_dir: Path, text: str) -> None:
    """Name the failure in the partial report rank 0 wrote (when it did not know the rank); a
    complete report is never touched (`camlang.report.writer.latest_partial_report`)."""
    from camlang.core.atomic import write_atomic
    from camlang.report.writer import latest_partial_report

    path = latest_partial_report(out_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        doc = None
    if path is None or doc is None:
        print(f"no partial report was written in {out_dir}", file=sys.stderr)
        return
    known = doc.get("failure") or ""
    if not known or known.startswith("a worker failed or was lost"):
        doc["failure"] = text
        doc["partial"] = True
        try:
            write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        except OSError:
            return  # a full disk: the report as rank 0 wrote it stays
        _rename_in_html(path.with_suffix(".html"), text)
    print(f"partial report: {path.with_suffix('.html')}", file=sys.stderr)


def _rename_in_html(path: Path, text: str) -> None:
    """Name the failed rank and its error in report.html too (its banner said only that a worker
    failed or was lost)."""
    from camlang.core.atomic import write_atomic
    from camlang.report.html import rename_failure

    try:
        page = path.read_text(encoding="utf-8")
        write_atomic(path, rename_failure(page, text))
    except OSError:
        return

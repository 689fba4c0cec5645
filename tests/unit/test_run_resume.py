"""Nothing finished is lost: per-batch cache, partial report with counts, --resume, plain progress."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from camlang.distributed import Dist, shard_batches
from camlang.frontend.check import check_text
from camlang.progress import PlainProgress, make_progress
from camlang.run.cache import RunCache
from camlang.run.program import RunOptions, run_program
from camlang.runtime.metric_evaluation import Evaluator

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 12, size = 64, seed = 1)
evaluate [gradcam, gradcampp] on shapes, test with [average_drop, stability]
"""


def _run(out: Path, resume: bool = False) -> tuple[Any, int]:
    program = check_text(PROGRAM, "t.cam", ROOT)
    assert not program.has_errors, program.diagnostics
    options = RunOptions(out, batch_size=2, resume=resume)
    return run_program(program, options, Console(file=io.StringIO()))


def _table(report: Any) -> dict[str, float]:
    ev = report.evaluations[0]
    return {
        f"{c}/{m}/{field}": getattr(s, field)
        for c, row in ev.table.items()
        for m, s in row.items()
        for field in ("mean", "std", "n")
    }


def test_interrupt_keeps_finished_batches_and_resume_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full, status = _run(tmp_path / "full")
    assert status == 0 and not full.partial

    real = Evaluator.score
    calls = [0]

    def score_then_stop(self: Evaluator, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "score", score_then_stop)
    out = tmp_path / "stopped"
    partial, status = _run(out)
    assert status == 130 and partial.partial
    ev = partial.evaluations[0]
    assert ev.data["evaluated"] == "4 of 12 images"
    assert {s.n for row in ev.table.values() for s in row.values()} == {4}
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["partial"] is True and doc["evaluations"][0]["data"]["evaluated"] == "4 of 12 images"
    assert any("4 of 12 images" in w for w in doc["warnings"])

    monkeypatch.setattr(Evaluator, "score", real)
    resumed, status = _run(out, resume=True)
    assert status == 0 and not resumed.partial
    assert _table(resumed) == pytest.approx(_table(full), abs=1e-6)
    assert "evaluated" not in resumed.evaluations[0].data
    # the resumed run scored only the 8 images the first one had not finished
    assert resumed.evaluations[0].model["forward_images"] < full.evaluations[0].model["forward_images"]


def test_shards_cover_every_batch_once() -> None:
    for world in (1, 2, 3, 5):
        seen = [b for r in range(world) for b in shard_batches(23, 4, r, world)]
        assert sorted((b.start, b.stop) for b in seen) == [(s, min(s + 4, 23)) for s in range(0, 23, 4)]
    assert [b.number for b in shard_batches(23, 4, 1, 2)] == [1, 3, 5]


def test_cache_reads_this_run_unless_resuming(tmp_path: Path) -> None:
    dist = Dist.single()
    first = RunCache(tmp_path, dist, resume=False, run_id="a").section("evaluate", {"k": 1})
    first.append([[0, {"c": {"m": 1.0}}, {"c": False}]])
    assert len(list(first.units())) == 1
    # a second, fresh run starts its section empty; a resumed run sees the earlier units
    again = RunCache(tmp_path, dist, resume=True, run_id="b").section("evaluate", {"k": 1})
    assert len(list(again.units())) == 1
    fresh = RunCache(tmp_path, dist, resume=False, run_id="c").section("evaluate", {"k": 1})
    assert list(fresh.units()) == []
    other_key = RunCache(tmp_path, dist, resume=True, run_id="d").section("evaluate", {"k": 2})
    assert list(other_key.units()) == []


def test_plain_progress_lines_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    assert isinstance(make_progress(console), PlainProgress)
    clock = [0.0]
    monkeypatch.setattr("camlang.progress.time.monotonic", lambda: clock[0])
    with PlainProgress(console, interval=5.0) as progress:
        task = progress.add_task("evaluate on test", total=100)
        for _ in range(100):
            clock[0] += 0.5  # 50 s of work, one update every half second
            progress.update(task, advance=1)
    lines = buf.getvalue().splitlines()
    assert 9 <= len(lines) <= 11, lines
    assert lines[-1].endswith("evaluate on test: 100 of 100 (100%), 50 s")
    silent = io.StringIO()
    with make_progress(Console(file=silent), enabled=False) as quiet:
        quiet.update(quiet.add_task("x", total=1), advance=1)
    assert silent.getvalue() == ""

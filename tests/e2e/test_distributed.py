"""`camlang run` on several processes (gloo, localhost): same numbers as one process (evaluate,
synthesis with its scoring split over the workers, checks), `--resume` across worker counts,
failures end every worker with a partial report, and torchrun works like `--workers`."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camlang.cli import main
from tests.faults.faultkit import camlang_command

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# The synthesis's `time` never runs out here, but it makes every time decision go through rank 0's
# broadcast (stop checks, finalists that fit, the holdout comparison's share): with 2 workers a
# missing or extra broadcast on one rank would hang or fail the run.
PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
model bandit = mlp([5, 6, 6, 2], weights = "{ROOT}/models/banditnet.pt")
data train = synthetic_shapes(count = 8, size = 64, seed = 0)
data test = synthetic_shapes(count = 10, size = 64, seed = 1)
synthesize best from gradient_weights {{
  model = shapes
  data = train
  holdout = test
  objective = average_drop
  max_size = 3
  time = "900s"
}}
property same = equivalent(gradcam, hirescam)
property robust_bandit = saliency_robust(bandit, at = [1, 1, 0, 1, 1], eps = 1.0, delta = 0.75)
property nonneg = nonnegative(gradcam)
evaluate [gradcam, gradcampp, best] on shapes, test with [average_drop, energy_pointing_game, stability]
check same, robust_bandit, nonneg
model tied = mlp([4, 16, 16, 6], weights = "tied.pt")
property tied_violated = robust(tied, at = [0.5, 0.5, 0.5, 0.5], eps = 0.025)
check tied_violated
"""


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from test_distributed_pieces import tied_net

    path = tmp_path_factory.mktemp("dist") / "small.cam"
    path.write_text(PROGRAM, encoding="utf-8")
    # one property alone in its check statement: with 2 workers its output disjuncts are dealt
    torch.save(tied_net().state_dict(), path.parent / "tied.pt")
    return path


@pytest.fixture(scope="module")
def one_worker(program: Path) -> Path:
    out = program.parent / "one"
    assert main(["run", str(program), "--out", str(out), "--batch-size", "4"]) == 0
    return out


@pytest.fixture(scope="module")
def two_workers(program: Path) -> Path:
    out = program.parent / "two"
    got = _run(camlang_command(program, out, "--workers", "2", batch="4"))
    assert got.returncode == 0, got.stderr[-3000:]
    return out


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _per_image(out: Path) -> dict[int, Any]:
    """Per-image metric values from the run's evaluate cache (all ranks' files)."""
    rows: dict[int, Any] = {}
    for path in (out / "cache").glob("evaluate-*-rank*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for index, values, _nan in json.loads(line)["unit"]:
                rows[index] = values
    return rows


def _close(a: float | None, b: float | None) -> bool:
    """Equal up to float32 rounding: how images fall into model calls (one process's chunks, or
    each rank's share) changes the last bits of a batched convolution."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _assert_same_results(a: dict[str, Any], b: dict[str, Any], resumed: bool = False) -> None:
    """The numbers agree (`resumed`: `b` took its per-image values from the cache, so paid no passes)."""
    for ea, eb in zip(a["evaluations"], b["evaluations"], strict=True):
        assert ea["cams"] == eb["cams"]
        for cam, row in ea["table"].items():
            for metric, cell in row.items():
                other = eb["table"][cam][metric]
                assert cell["n"] == other["n"] and cell["nan_count"] == other["nan_count"]
                assert _close(cell["mean"], other["mean"]), (cam, metric, cell, other)
                assert _close(cell["std"], other["std"]), (cam, metric, cell, other)
                assert cell["rank"] == other["rank"]
        if not resumed:
            assert ea["model"]["forward_images"] == eb["model"]["forward_images"]
    for sa, sb in zip(a["syntheses"], b["syntheses"], strict=True):
        _assert_same_synthesis(sa, sb, resumed)
    assert [(c["property"], c["status"]) for c in a["checks"]] == [
        (c["property"], c["status"]) for c in b["checks"]
    ]
    for ca, cb in zip(a["checks"], b["checks"], strict=True):
        assert (ca["counterexample"] is None) == (cb["counterexample"] is None)
        if ca["counterexample"] is not None and ca["kind"] in ("robust", "saliency_robust", "vnnlib"):
            assert all(_close(u, v) for u, v in zip(ca["counterexample"], cb["counterexample"], strict=True))


def _assert_same_synthesis(sa: dict[str, Any], sb: dict[str, Any], resumed: bool = False) -> None:
    """The winner, the candidate table, the holdout intervals and the counts agree (a resumed run
    measured no scoring cost, so its estimate of an exhaustive search's passes differs)."""
    assert [c["expression"] for c in sa["candidates"]] == [c["expression"] for c in sb["candidates"]]
    assert sa["partial"] == sb["partial"] is False
    for ca, cb in zip(sa["candidates"], sb["candidates"], strict=True):
        assert (ca["rank"], ca["size"]) == (cb["rank"], cb["size"])
        assert _close(ca["train_score"], cb["train_score"]), (ca, cb)
        for key in ("mean", "ci_low", "ci_high"):
            assert _close(ca["holdout"][key], cb["holdout"][key]), (ca, cb)
    assert sorted(sa["comparison"]) == sorted(sb["comparison"])
    for cam, iv in sa["comparison"].items():
        other = sb["comparison"][cam]
        assert (iv["rank"], iv["best"]) == (other["rank"], other["best"]), cam
        for key in ("mean", "ci_low", "ci_high"):
            assert _close(iv[key], other[key]), (cam, iv, other)
    counts = ("enumerated", "distinct_after", "fully_evaluated") + (
        () if resumed else ("exhaustive_forward_passes",)
    )
    assert {k: sa["counts"][k] for k in counts} == {k: sb["counts"][k] for k in counts}
    assert sa["verdict"].split(" ")[0] == sb["verdict"].split(" ")[0]


def _synth_cache(out: Path) -> dict[str, dict[str, float | None]]:
    doc = json.loads((out / "cache" / "synth-best.json").read_text(encoding="utf-8"))
    return dict(doc["values"])


def test_two_workers_give_the_numbers_of_one(one_worker: Path, two_workers: Path) -> None:
    a, b = _report(one_worker), _report(two_workers)
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert not a["partial"] and not b["partial"]
    assert len(a["evaluations"]) == 1 and len(a["syntheses"]) == 1 and len(a["checks"]) == 4
    _assert_same_results(a, b)
    rows_a, rows_b = _per_image(one_worker), _per_image(two_workers)
    assert sorted(rows_a) == sorted(rows_b) == list(range(10))
    for index, values in rows_a.items():
        for cam, per in values.items():
            for metric, v in per.items():
                assert _close(v, rows_b[index][cam][metric]), (index, cam, metric)
    assert a["checks"][3]["status"] == "violated"
    # both ranks really worked: each wrote its own share of the batches
    assert len(list((two_workers / "cache").glob("evaluate-*-rank1.jsonl"))) == 1
    # the synthesis's forward passes (capture + scoring, counted over both ranks) are one process's
    assert a["syntheses"][0]["counts"]["forward_passes"] == b["syntheses"][0]["counts"]["forward_passes"]
    # rank 0's score cache holds every (candidate, image) value both ranks scored, as one process's
    cache_a, cache_b = _synth_cache(one_worker), _synth_cache(two_workers)
    assert sorted(cache_a) == sorted(cache_b) and cache_a
    for expr, values in cache_a.items():
        assert sorted(values) == sorted(cache_b[expr]) == [str(i) for i in range(8)], expr
        for i, v in values.items():
            assert _close(v, cache_b[expr][i]), (expr, i)


def test_one_worker_resumes_what_two_workers_cached(
    program: Path, one_worker: Path, two_workers: Path
) -> None:
    out = program.parent / "resumed-one"
    shutil.copytree(two_workers, out)
    (out / "report.json").unlink()
    assert main(["run", str(program), "--out", str(out), "--batch-size", "4", "--resume"]) == 0
    a, b = _report(one_worker), _report(out)
    _assert_same_results(a, b, resumed=True)
    # every candidate score came from the cache: the search paid only the training capture
    assert b["syntheses"][0]["counts"]["forward_passes"] == 8
    assert a["syntheses"][0]["counts"]["forward_passes"] > 8


def test_torchrun_works_like_workers(program: Path, one_worker: Path, two_workers: Path) -> None:
    """Two workers under torchrun, resuming what one worker cached (both in one run, to save time)."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = program.parent / "torchrun"
    shutil.copytree(one_worker, out)
    (out / "report.json").unlink()
    got = _run(
        [
            torchrun,
            "--nproc-per-node",
            "2",
            "-m",
            "camlang",
            "run",
            str(program),
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--resume",
        ]
    )
    assert got.returncode == 0, got.stderr[-3000:]
    doc = _report(out)
    assert doc["world_size"] == 2
    _assert_same_results(_report(two_workers), doc, resumed=True)
    assert doc["syntheses"][0]["counts"]["forward_passes"] == 8  # scores from one worker's cache


KILL_PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 400, size = 64, seed = 1)
evaluate [gradcam, scorecam] on shapes, test with [deletion]
"""


def _kill_rank1_once(proc: subprocess.Popen[str], out: Path, ready: Callable[[], bool]) -> str:
    """Wait (at most 240 s) until ``ready()``, SIGKILL worker rank 1, and return the launcher's
    standard error once it has exited, which must be with a failure."""
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not ready():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        workers = _workers_of(out, proc.pid)
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None)
    return stderr


def _workers_of(out: Path, launcher: int) -> dict[int, int]:
    """Live worker processes of the run writing to `out`, by rank (from /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == launcher:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            if str(out).encode() not in cmd:
                continue
            env = dict(
                kv.split(b"=", 1) for kv in (entry / "environ").read_bytes().split(b"\0") if b"=" in kv
            )
            found[int(env.get(b"RANK", b"-1"))] = int(entry.name)
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the workers")
def test_killed_worker_ends_the_run_with_a_partial_report(tmp_path: Path) -> None:
    program = tmp_path / "kill.cam"
    program.write_text(KILL_PROGRAM, encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        camlang_command(program, out, "--workers", "2", batch="2"),
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def rank1_wrote_two_batches() -> bool:
        shard = list((out / "cache").glob("evaluate-*-rank1.jsonl")) if (out / "cache").is_dir() else []
        return bool(shard) and shard[0].read_text(encoding="utf-8").count("\n") >= 2

    stderr = _kill_rank1_once(proc, out, rank1_wrote_two_batches)
    assert "rank 1" in stderr, stderr[-3000:]
    doc = _report(out)
    assert doc["partial"] is True
    assert "rank 1" in (doc["failure"] or "")
    page = (out / "report.html").read_text(encoding="utf-8")
    # the banner names the rank and its error (rank 0 wrote it before the launcher knew them)
    assert '<p class="banner failure">worker rank 1 failed (killed by signal SIGKILL)</p>' in page, doc[
        "failure"
    ]
    evaluated = doc["evaluations"][0]["data"]["evaluated"]
    done = int(evaluated.split(" of ")[0].replace(",", ""))
    assert 4 <= done < 400 and evaluated.endswith("of 400 images")
    assert doc["evaluations"][0]["table"]["gradcam"]["deletion"]["n"] == done
    assert _workers_of(out, proc.pid) == {}, "a worker was left running"


SYNTH_KILL_PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data train = synthetic_shapes(count = 64, size = 64, seed = 0)
synthesize best from gradient_weights {{
  model = shapes
  data = train
  objective = deletion
  max_size = 5
}}
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the workers")
def test_worker_killed_during_synthesis_ends_every_worker(tmp_path: Path) -> None:
    """Both ranks race together: losing one mid-race ends the other (no wait for a dead peer)."""
    program = tmp_path / "synth.cam"
    program.write_text(SYNTH_KILL_PROGRAM, encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camlang", "run", str(program), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = out / "cache" / "synth-best.json"
    stderr = _kill_rank1_once(proc, out, cache.is_file)  # rank 0 saves after a scoring call
    assert "rank 1" in stderr, stderr[-3000:]
    doc = _report(out)
    assert doc["partial"] is True and "rank 1" in (doc["failure"] or "")
    assert json.loads(cache.read_text(encoding="utf-8"))["values"], "the scores gathered so far are kept"
    assert _workers_of(out, proc.pid) == {}, "a worker was left running"


def test_worker_error_is_named_in_the_partial_report(tmp_path: Path) -> None:
    """Rank 1 fails with its own error after its first batch (the fault campaign's hook raises it):
    the run stops, the error is named with its rank, and rank 0's finished batches are kept."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (64, 64), (30 * i, 100, 200)).save(folder / f"img{i}.png")
    program = tmp_path / "bad.cam"
    program.write_text(
        'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n'
        f'model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"\n'
        'data d = images("imgs", size = 64)\nevaluate [gradcam] on shapes, d with [sparsity]\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    fault = {
        "point": "evaluate",
        "at": 1,
        "rank": 1,
        "raise": "the disk of img2.png went away",
        "mark": str(tmp_path / "m"),
    }
    env = {
        **ENV,
        "PYTHONPATH": f"{ROOT / 'tests' / 'faults' / 'hook'}:{ROOT}",
        "CAMLANG_FAULT": json.dumps(fault),
    }
    cmd = camlang_command(program, out, "--workers", "2", batch="2")
    got = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert got.returncode not in (0, 130)
    assert "rank 1" in got.stderr and "img2.png" in got.stderr, got.stderr[-3000:]
    doc = _report(out)
    assert doc["partial"] is True and doc["world_size"] == 2
    assert doc["failure"].startswith("rank 1 failed") and "img2.png" in doc["failure"]
    # what finished is kept: rank 1's first batch, and rank 0's batches 0 and 2 unless stopped sooner
    if doc["evaluations"]:
        assert doc["evaluations"][0]["data"]["evaluated"] in (
            "2 of 8 images",
            "4 of 8 images",
            "6 of 8 images",
        )

"""The three defects of issue 26, pinned: a failed --resume destroyed the complete report, garbage
bytes in the evaluate cache were an internal error, and a truncated synthesis cache stopped the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import Tally, assert_same, assert_same_run, clean, copy_run, report, run_here

from camlang.errors import CamlangError


@pytest.mark.parametrize("failure", ["error", "interrupt"])
def test_a_failed_resume_keeps_the_complete_report(
    small_program: Path,
    small_reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: Tally,
    failure: str,
) -> None:
    out = copy_run(small_reference, tmp_path / "out")
    before = {name: (out / name).read_bytes() for name in ("report.json", "report.html")}

    def fails(*args: object, **kwargs: object) -> object:
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise CamlangError("the weights file went away")

    monkeypatch.setattr("camlang.run.state.load_model", fails)
    ran = run_here(small_program, out, "--resume")
    tally.fault(f"failed resume ({failure})")
    assert ran.code == (130 if failure == "interrupt" else 1) and clean(ran, tally), ran.stderr
    # the complete report is untouched; the failed run's report is beside it
    assert {name: (out / name).read_bytes() for name in before} == before
    partial = report(out, "report.partial")
    assert partial["partial"] is True and partial["evaluations"] == []
    page = (out / "report.partial.html").read_text(encoding="utf-8")
    assert "This is report.partial.html" in page and 'href="report.html"' in page
    assert "This is report.html, the complete report" in before["report.html"].decode("utf-8")
    assert "report.partial.html" in ran.stdout.replace("\n", "") or failure == "error"

    # the next run that finishes replaces the complete report and removes the partial one
    monkeypatch.undo()
    ran = run_here(small_program, out, "--resume")
    assert ran.code == 0 and clean(ran, tally), ran.stderr
    assert not (out / "report.partial.json").exists() and not (out / "report.partial.html").exists()
    assert_same(report(small_reference), report(out), tally, "resume after a failed resume")


def test_garbage_in_the_evaluate_cache_is_dropped_and_recomputed(
    small_program: Path, small_reference: Path, tmp_path: Path, tally: Tally
) -> None:
    out = copy_run(small_reference, tmp_path / "out")
    (path,) = (out / "cache").glob("evaluate-*-rank0.jsonl")
    data = path.read_bytes()
    middle = data.index(b"\n", len(data) // 3) + 20  # inside the second line or so
    path.write_bytes(data[:middle] + b"\xff\xfe\x00 garbage \xc3" + data[middle:])
    ran = run_here(small_program, out, "--resume")
    tally.fault("garbage bytes in the evaluate cache")
    assert ran.code == 0 and clean(ran, tally), ran.stderr[-2000:]
    doc = report(out)
    assert doc["partial"] is False
    warning = [w for w in doc["warnings"] if path.name in w]
    assert warning == [
        f"cache file cache/{path.name}: 1 damaged or out-of-date record(s) dropped; that work is done again"
    ], doc["warnings"]
    assert_same(report(small_reference), doc, tally, "garbage in the evaluate cache")
    assert doc["evaluations"][0]["model"]["forward_images"] > 0  # the dropped batch was evaluated again


def test_a_truncated_synthesis_cache_is_recomputed(
    program: Path, reference: Path, tmp_path: Path, tally: Tally
) -> None:
    out = copy_run(reference, tmp_path / "out")
    path = out / "cache" / "synth-best.json"
    values = json.loads(path.read_text(encoding="utf-8"))["values"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    ran = run_here(program, out, "--resume")
    tally.fault("truncated synthesis cache")
    assert ran.code == 0 and clean(ran, tally), ran.stderr[-2000:]
    doc = report(out)
    expected = "cache file cache/synth-best.json: 1 damaged or out-of-date record(s) dropped"
    assert any(w.startswith(expected) for w in doc["warnings"]), doc["warnings"]
    assert_same_run(reference, out, tally, "truncated synthesis cache")
    # the scores were computed again (more than the training capture's passes)
    assert doc["syntheses"][0]["counts"]["forward_passes"] > 8
    assert json.loads(path.read_text(encoding="utf-8"))["values"] == values


def test_a_damaged_terminal_file_is_captured_again_and_named(
    program: Path, reference: Path, tmp_path: Path, tally: Tally
) -> None:
    out = copy_run(reference, tmp_path / "out")
    stored = sorted((out / "cache" / "terminals").glob("*.pt"))
    assert stored, "the reference run stores its captured terminals"
    stored[0].write_bytes(b"\x8a\x17 not a torch file" * 5)  # kill -9, then garbage, then --resume
    ran = run_here(program, out, "--resume")
    tally.fault("garbage in a stored terminal file")
    assert ran.code == 0 and clean(ran, tally), ran.stderr[-2000:]
    doc = report(out)
    warning = [w for w in doc["warnings"] if stored[0].name in w]
    assert len(warning) == 1 and "captured again" in warning[0], doc["warnings"]
    assert_same_run(reference, out, tally, "garbage in a stored terminal file")
    torch_file = stored[0].read_bytes()
    assert torch_file[:2] == b"PK", "the damaged file was written again (a torch zip archive)"

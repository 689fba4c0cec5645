"""`camlang run --resume` continues a property from the pieces an interrupted run proved: they are
kept in the run's cache as they are proved, and not searched again (camlang/smt/pieces.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from camlang.cli import main
from tests.e2e.test_distributed_pieces import tied_net

PROGRAM = """model tied = mlp([4, 16, 16, 6], weights = "tied.pt")
property tied_holds = robust(tied, at = [0.5, 0.5, 0.5, 0.5], eps = 0.02, timeout = 60)
check tied_holds
"""


def _pieces(out: Path) -> list[dict[str, object]]:
    (path,) = (out / "cache").glob("pieces-*-rank0.jsonl")
    return [json.loads(line)["unit"] for line in path.read_text(encoding="utf-8").splitlines()]


def _status(out: Path) -> str:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return str(report["checks"][0]["status"])


def test_resume_skips_the_pieces_an_interrupted_run_proved(tmp_path: Path) -> None:
    torch.save(tied_net().state_dict(), tmp_path / "tied.pt")
    program = tmp_path / "tied.cam"
    program.write_text(PROGRAM, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(program), "--out", str(out)]) == 0
    assert _status(out) == "holds"
    proved = _pieces(out)
    assert len(proved) >= 2 and len({(p["list"], p["piece"]) for p in proved}) == len(proved)

    # an interruption after the first piece: the verdict was not kept, one piece was
    for stale in (out / "cache").glob("check-*.jsonl"):
        stale.unlink()
    (path,) = (out / "cache").glob("pieces-*-rank0.jsonl")
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    (out / "report.json").unlink()
    assert main(["run", str(program), "--out", str(out), "--resume"]) == 0
    assert _status(out) == "holds"
    # the first piece was not proved again; the others were, once each
    assert sorted((p["list"], p["piece"]) for p in _pieces(out)) == sorted(
        (p["list"], p["piece"]) for p in proved
    )

    # other weights in the same file: neither the verdict nor the proofs kept are theirs
    torch.save(tied_net(seed=2).state_dict(), tmp_path / "tied.pt")
    (out / "report.json").unlink()
    assert main(["run", str(program), "--out", str(out), "--resume"]) == 0
    assert _status(out) == "violated"  # decided again (this network is not robust there)


def test_ctrl_c_inside_a_property_is_not_kept_as_its_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C during the second piece stops the run (partial report, exit 130) without keeping
    "unknown: interrupted" as the property's verdict; `--resume` decides it from the first piece on."""
    from camlang.smt import search

    torch.save(tied_net().state_dict(), tmp_path / "tied.pt")
    program = tmp_path / "tied.cam"
    program.write_text(PROGRAM, encoding="utf-8")
    out = tmp_path / "out"
    real = search.decide_disjunct
    calls: list[int] = []

    def interrupted_at_the_second_piece(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "decide_disjunct", interrupted_at_the_second_piece)
    assert main(["run", str(program), "--out", str(out)]) == 130
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["partial"] and report["checks"] == []
    kept = [line for path in (out / "cache").glob("check-*.jsonl") for line in path.read_text().splitlines()]
    assert kept == []  # no verdict was kept for the interrupted property
    assert len(_pieces(out)) == 1  # the first piece was proved before the interrupt

    monkeypatch.setattr(search, "decide_disjunct", real)
    assert main(["run", str(program), "--out", str(out), "--resume"]) == 0
    assert _status(out) == "holds"
    pieces = _pieces(out)
    assert len(pieces) == len({(p["list"], p["piece"]) for p in pieces}) >= 2  # none proved twice

"""`camlang run` reports the pointing game tolerance it used, and random metrics ignore --batch-size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camlang import cli

ROOT = Path(__file__).resolve().parents[2]
SOURCE = f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shapes = checkpoint("{ROOT / "models" / "shapes_cnn.pt"}", arch = "shapes_cnn") at "features.6"
data d = synthetic_shapes(count = 5, size = 64, seed = 1)
metric pointing_15px = maximize pointing(L, MASK, 15)
metric noisy = minimize mean(abs(L_at(noise(X, 0.1)) - L))
evaluate [gradcam] on shapes, d with [pointing_game, pointing_15px, noisy]
"""


def _run(tmp_path: Path, batch_size: int, capsys: pytest.CaptureFixture[str]) -> dict:
    src = tmp_path / "prog.cam"
    src.write_text(SOURCE, encoding="utf-8")
    out = tmp_path / f"out{batch_size}"
    assert cli.main(["run", str(src), "--out", str(out), "--batch-size", str(batch_size)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    return {"json": json.loads((out / "report.json").read_text()), "html": (out / "report.html").read_text()}


def test_tolerance_is_reported_and_batching_does_not_matter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _run(tmp_path, 1, capsys)
    three = _run(tmp_path, 3, capsys)
    (evaluation,) = one["json"]["evaluations"]
    settings = {m["name"]: m.get("settings", {}) for m in evaluation["metrics"]}
    assert settings["pointing_game"] == {"pointing tolerance": "4.29 px (15/224 of the 64-px shorter side)"}
    assert settings["pointing_15px"] == {"pointing tolerance": "15 px (as given)"}
    assert settings["noisy"] == {}
    assert "pointing tolerance: 4.29 px (15/224 of the 64-px shorter side)" in one["html"]
    table_one = evaluation["table"]["gradcam"]
    table_three = three["json"]["evaluations"][0]["table"]["gradcam"]
    assert table_one["noisy"]["mean"] > 0
    assert table_one["noisy"]["mean"] == pytest.approx(table_three["noisy"]["mean"], abs=1e-6)
    assert table_one["noisy"]["std"] == pytest.approx(table_three["noisy"]["std"], abs=1e-6)

"""End-to-end: `evaluate ... for concept SET.NAME` explains a probe concept's logit instead of a class."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console

from camlang.frontend.check import check_file
from camlang.run.program import run_program
from camlang.run.state import RunOptions

ROOT = Path(__file__).resolve().parents[2]
SOURCE = f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shortcut = checkpoint("{ROOT / "models" / "shortcut_cnn.pt"}", arch = "shapes_cnn") at "features.6"
data fit = synthetic_shapes(count = 96, seed = 30)
data held = synthetic_shapes(count = 48, seed = 31)
data test = synthetic_shapes(count = 6, seed = 32)
concepts seen = probes(shortcut, fit, held, layer = "penultimate", concepts = ["red", "blue", "small"])
metric concept_logit = maximize S
evaluate [gradcam, layercam] on shortcut, test with [pointing_game, concept_logit]
evaluate [gradcam, layercam] on shortcut, test with [pointing_game, concept_logit] for concept seen.red
"""


def test_a_concept_target_changes_the_maps_and_pointing_runs(tmp_path: Path) -> None:
    src = tmp_path / "prog.cam"
    src.write_text(SOURCE, encoding="utf-8")
    program = check_file(src)
    assert not program.has_errors, program.diagnostics
    report, status = run_program(program, RunOptions(tmp_path / "out"), Console(file=io.StringIO()))
    assert status == 0 and report is not None
    by_class, by_concept = report.evaluations
    assert by_concept.name == "evaluate gradcam, layercam on shortcut, test for concept seen.red"
    assert by_class.name == "evaluate gradcam, layercam on shortcut, test"
    assert by_concept.visuals is not None and by_class.visuals is not None
    assert list(by_concept.visuals.predictions) == ["seen.red"] * 6
    for cam in ("gradcam", "layercam"):
        class_maps = torch.as_tensor(by_class.visuals.maps[cam])
        concept_maps = torch.as_tensor(by_concept.visuals.maps[cam])
        assert class_maps.shape == concept_maps.shape
        assert (class_maps - concept_maps).abs().max() > 0.05, cam
        pointing = by_concept.table[cam]["pointing_game"]
        assert pointing.n == 6 and 0.0 <= pointing.mean <= 1.0
        # S is the target score: the class logit in one evaluate, red's probe logit in the other.
        assert by_concept.table[cam]["concept_logit"].mean != by_class.table[cam]["concept_logit"].mean

"""A run's steps: each synthesis runs as its own step before the first action that needs its cam
(unused ones at the end), and the checked program is never written to."""

from __future__ import annotations

from pathlib import Path

from camlang.frontend import syntax as s
from camlang.frontend.check import check_file, check_text
from camlang.run.plan import Synthesize, plan_steps, syntheses_needed

ROOT = Path(__file__).resolve().parents[2]

HEADER = """
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model shapes = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data d = synthetic_shapes(count = 4, size = 64, seed = 1)
synthesize a from gradient_weights { model = shapes  data = d  objective = deletion  max_size = 3 }
synthesize b from gradient_weights { model = shapes  data = d  objective = deletion  max_size = 3 }
"""


def _kinds(steps: list[object]) -> list[str]:
    return [f"synthesize {x.name}" if isinstance(x, Synthesize) else type(x).__name__ for x in steps]


def test_quickstart_synthesizes_before_the_evaluate_that_reads_it() -> None:
    program = check_file(ROOT / "examples" / "quickstart.cam")
    assert not program.has_errors
    assert _kinds(list(plan_steps(program))) == ["synthesize best", "Evaluate", "Check", "Export"]


def test_unused_synthesis_runs_last_and_each_runs_once() -> None:
    program = check_text(
        HEADER + 'evaluate [gradcam] on shapes, d with [sparsity]\nexport a to "a.py"\n'
        "evaluate [a, gradcam] on shapes, d with [sparsity]\n",
        "t.cam",
        ROOT,
    )
    assert not program.has_errors, program.diagnostics
    steps = list(plan_steps(program))
    assert _kinds(steps) == ["Evaluate", "synthesize a", "Export", "Evaluate", "synthesize b"]
    evaluate = steps[-2]
    assert isinstance(evaluate, s.Evaluate)
    assert syntheses_needed(program, evaluate) == ["a"]
    assert "a" not in program.cams  # planning writes nothing into the checked program

"""synthesize(): rediscovery, racing against exhaustive, honesty of the report (small and fast)."""

from __future__ import annotations

import pytest

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.frontend.program import Program
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import SynthOutcome, prove_equivalent, synthesize
from tests.conftest import demo_live_model

PRELUDE = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
metric like_gradcampp = maximize -mean(abs(L - ref(gradcampp)))
metric like_gradcam = maximize -mean(abs(L - ref(gradcam)))
metric like_layercam = maximize -mean(abs(L - ref(layercam)))
metric like_scorecam = maximize -mean(abs(L - ref(scorecam)))
metric deletion8 = minimize deletion_auc(L, 8)
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 8, size = 64, seed = 0)
data te = synthetic_shapes(count = 4, size = 64, seed = 1)
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def live() -> LiveModel:
    """The demo CNN (trained checkpoint when present, else seeded random weights)."""
    return demo_live_model()


def run(
    live: LiveModel,
    grammar: str,
    objective: str,
    max_size: int,
    extra: str = "",
    n_train: int = 8,
    n_hold: int = 4,
) -> tuple[Program, SynthOutcome]:
    src = (
        PRELUDE
        + f"synthesize best from {grammar} {{ model = m data = tr holdout = te objective = {objective} "
    )
    prog = check_text(src + f"max_size = {max_size} probe = 8 {extra} }}\n", file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    out = synthesize(
        prog, prog.synths["best"], live, synthetic_shapes(n_train, 64, 0), synthetic_shapes(n_hold, 64, 1)
    )
    return prog, out


@pytest.mark.parametrize(
    ("grammar", "objective", "target"),
    [
        ("gradient_weights", "like_gradcampp", "gradcampp"),
        ("gradient_weights", "like_layercam", "layercam"),
        ("score_based", "like_scorecam", "scorecam"),
    ],
)
def test_rediscovery_is_proved(live: LiveModel, grammar: str, objective: str, target: str) -> None:
    prog, out = run(live, grammar, objective, 4)
    ref = prog.cams[target].node
    assert ref is not None
    v = prove_equivalent(prog.builder, out.node, ref, timeout_s=20)
    assert v.status == "equivalent", (out.source_text, v)
    assert out.result.candidates[0].train_score == pytest.approx(0.0, abs=1e-6)
    assert f"stdlib `{target}`" in (out.result.candidates[0].equivalence_note or "")


def test_rediscovery_of_gradcam_reports_probe_equalities(live: LiveModel) -> None:
    prog, out = run(live, "gradient_weights", "like_gradcam", 3)
    note = out.result.candidates[0].equivalence_note or ""
    assert "stdlib `gradcam` (proved" in note
    assert out.result.candidates[0].train_score == pytest.approx(0.0, abs=1e-6)
    # at a global-average-pooled layer G is constant per channel: HiResCAM and XGrad-CAM are then
    # equal to Grad-CAM on the data, but not for all inputs
    for other in ("hirescam", "xgradcam"):
        assert f"equal to stdlib `{other}` on the probe data only" in note


def test_racing_matches_exhaustive_with_fewer_passes(live: LiveModel) -> None:
    _, raced = run(live, "gradient_weights", "deletion8", 4, n_train=16)
    _, full = run(live, "gradient_weights", "deletion8", 4, 'strategy = "exhaustive"', n_train=16)
    print(
        f"forward passes (search): racing {raced.search_forward_passes}, "
        f"exhaustive {full.search_forward_passes}"
    )
    assert raced.search_forward_passes < full.search_forward_passes
    win = full.result.candidates[0]
    if raced.source_text != full.source_text:
        # the exhaustive per-image scores of the racing winner must lie within the winner's spread
        racing_in_full = [
            c for c in full.result.candidates if c.expression == raced.result.candidates[0].expression
        ]
        assert racing_in_full and abs(racing_in_full[0].train_score - win.train_score) < 0.02
    assert full.result.counts.fully_evaluated >= full.stats.candidates


@pytest.mark.parametrize("objective", ["deletion", "average_drop", "pointing_game"])
def test_honest_report_against_every_stdlib_cam(live: LiveModel, objective: str) -> None:
    prog, out = run(live, "gradient_weights", objective, 3)
    res = out.result
    refs = [n for n, c in prog.cams.items() if c.origin.endswith("cams.cam")]
    assert set(refs) <= set(res.comparison) and "best" in res.comparison
    for iv in res.comparison.values():
        assert iv.ci_low <= iv.mean + 1e-9 and iv.mean <= iv.ci_high + 1e-9
    sign = 1 if prog.metrics[objective].direction == "maximize" else -1
    winner = out.stats.train_scores_winner
    for name, score in out.stats.stdlib_train.items():
        assert sign * winner >= sign * score - 1e-9, name
    # At this global-average-pooled layer HiResCAM and XGrad-CAM give Grad-CAM's map, so the
    # enumerator may keep only the first of them; the rest are covered by its comparison.
    contained = set(out.stats.contained_stdlib)
    assert {"gradcam", "layercam"} <= contained
    assert contained & {"hirescam", "xgradcam", "gradcam"}
    assert res.visuals is not None and "best" in res.visuals.maps
    assert res.counts.enumerated >= res.counts.distinct_after["observational"] >= 1

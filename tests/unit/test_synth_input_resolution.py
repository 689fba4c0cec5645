"""The `input_resolution` grammar: input-resolution cams beside layer-resolution ones in synthesis."""

from __future__ import annotations

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.synth import synthesize
from camlang.synth.enumeration import Enumerator
from camlang.synth.observe import Observer
from tests.conftest import demo_live_model

PRELUDE = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
metric deletion8 = minimize deletion_auc(L, 8)
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 4, size = 64, seed = 0)
data te = synthetic_shapes(count = 4, size = 64, seed = 1)
cam up_gradcam = upsample(relu(sum_c(mean_hw(G) * A)))
cam guided = upsample(relu(sum_c(mean_hw(G) * A))) * max_c(abs(GX))
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_counts_and_types_are_as_documented() -> None:
    prog = check_text(PRELUDE, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    g = prog.grammars["input_resolution"]
    counts = []
    for size in (4, 5, 6):
        en = Enumerator(prog, g, size, lambda *a: "kept")
        en.run()
        terms = [node for _, node in en.terms(g.start)]
        assert all(t.ty.is_input_map for t in terms)
        counts.append(len(terms))
    assert counts == [18, 126, 162]


def test_probe_equality_across_resolutions() -> None:
    prog = check_text(PRELUDE, file_checks=False)
    g = torch.Generator().manual_seed(0)
    terms = {
        "A": torch.randn(4, 6, 5, 5, generator=g).relu(),
        "G": torch.randn(4, 6, 5, 5, generator=g),
        "X": torch.randn(4, 3, 10, 10, generator=g),
        "GX": torch.randn(4, 3, 10, 10, generator=g),
    }
    obs = Observer(terms, (10, 10), "cam")
    gradcam, up, guided = (prog.cams[n].node for n in ("gradcam", "up_gradcam", "guided"))
    assert gradcam is not None and up is not None and guided is not None
    assert obs.equal_on_probe(up, gradcam) and obs.equal_on_probe(gradcam, up)  # the same map, shown
    assert not obs.equal_on_probe(guided, gradcam)


def test_synthesis_compares_input_resolution_winners_with_layer_cams() -> None:
    src = PRELUDE + (
        "synthesize best from input_resolution { model = m data = tr holdout = te objective = deletion8 "
        "max_size = 4 probe = 4 }\n"
    )
    prog = check_text(src, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    out = synthesize(
        prog, prog.synths["best"], demo_live_model(), synthetic_shapes(4, 64, 0), synthetic_shapes(4, 64, 1)
    )
    assert out.node.ty.is_input_map and "GX" in out.source_text
    assert out.stats is not None and out.stats.paired is not None  # compared with the stdlib cams

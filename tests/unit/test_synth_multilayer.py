"""Layer-indexed terminals in synthesis: a two-layer CAM that is optimal by construction is found.

The objective is the distance to `target`, a fusion of LayerCAM-style maps at two layers of the
demo CNN (`features.2`, 32x32, and the target layer `features.6`, 16x16). Only a term that reads
both layers reaches distance 0; the grammar offers single-layer terms at either layer, a layer
hole and the two-layer fusion, so the synthesizer must pick the fusion and the right layer.
"""

from __future__ import annotations

import pytest

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.frontend.ir import layers_read, to_text
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import prove_equivalent, synthesize
from camlang.synth.enumeration import Enumerator
from tests.conftest import demo_live_model

SOURCE = """
cam fine = relu(sum_c(relu(G) * A))@"features.2"
cam target = minmax(upsample(fine)) + minmax(upsample(relu(sum_c(A * mean_hw(G)))))
metric like_target = maximize -mean(abs(L - ref(target)))
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 6, size = 64, seed = 0)
grammar two_layers {
  cam -> upsample(m@l) | upsample(m) | minmax(upsample(m@l)) + minmax(upsample(m))
  m   -> relu(sum_c(w * A))
  w   -> mean_hw(G) | relu(G) | G
  l   -> "features.2" | "features.6"
}
synthesize best from two_layers { model = m data = tr objective = like_target max_size = 6 probe = 6 }
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def live() -> LiveModel:
    return demo_live_model()


def test_the_grammar_reaches_both_layers_and_the_fusion() -> None:
    prog = check_text(SOURCE, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    en = Enumerator(prog, prog.grammars["two_layers"], 6, lambda nt, n, s: "kept")
    en.run()
    texts = [to_text(n) for _, n in en.terms("cam")]
    fusion = 'minmax(upsample(relu(sum_c(relu(G@"features.2") * A@"features.2")))) + '
    assert any(t.startswith(fusion) and t.endswith("A))))") for t in texts), texts
    assert {layers_read([n]) for _, n in en.terms("cam")} >= {
        frozenset(),
        frozenset({"features.2"}),
        frozenset({"features.6"}),
    }


def test_synthesis_finds_the_two_layer_cam(live: LiveModel) -> None:
    prog = check_text(SOURCE, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    out = synthesize(prog, prog.synths["best"], live, synthetic_shapes(6, 64, 0), None)
    target = prog.cams["target"].node
    assert target is not None
    assert layers_read([out.node]) == frozenset({"features.2"}), out.source_text
    assert out.result.candidates[0].train_score == pytest.approx(0.0, abs=1e-6), out.source_text
    verdict = prove_equivalent(prog.builder, out.node, target, timeout_s=10)
    assert verdict.status in ("equivalent", "unknown"), verdict  # upsample has no SMT encoding
    assert verdict.status != "not_equivalent"


def test_the_stdlib_multilayer_grammar_compiles_with_its_layer_hole() -> None:
    prog = check_text('import "stdlib/cams.cam"\nimport "stdlib/grammars.cam"\n', file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    en = Enumerator(prog, prog.grammars["multilayer"], 6, lambda nt, n, s: "kept")
    en.run()
    terms = [n for _, n in en.terms("cam")]
    assert len(terms) == 96 and en.stats.ill_typed == 0  # docs/grammars.md
    assert {layers_read([n]) for n in terms} == {frozenset({"layer1"}), frozenset({"layer2"})}
    layercam2 = 'minmax(upsample(relu(sum_c(relu(G@"layer2") * A@"layer2")))) + minmax(upsample('
    assert any(to_text(n).startswith(layercam2) for n in terms)


def test_the_stdlib_panel_grammar_mixes_every_kind_of_evidence() -> None:
    prog = check_text('import "stdlib/cams.cam"\nimport "stdlib/grammars.cam"\n', file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    en = Enumerator(prog, prog.grammars["panel"], 6, lambda nt, n, s: "kept")
    en.run()
    terms = [n for _, n in en.terms("cam")]
    assert len(terms) == 496 and en.stats.ill_typed == 0  # docs/grammars.md
    layers = {layers_read([n]) for n in terms}
    assert {frozenset(), frozenset({"layer1"}), frozenset({"layer2"})} <= layers
    texts = {to_text(n) for n in terms}
    # Grad-CAM as written in stdlib/cams.cam; Score-CAM with its temperature hole at t = 1
    gradcam = prog.cams["gradcam"].node
    assert gradcam is not None and to_text(gradcam) in texts
    assert "relu(sum_c(softmax_c(1 * S_masked) * A))" in texts

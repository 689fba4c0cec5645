"""The editor features as pure functions (no client): completion contexts, hover on settings,
the outline, and diagnostics of imported files."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from camlang.lsp import features
from camlang.lsp.analysis import analyze
from camlang.lsp.completion import complete

ROOT = Path(__file__).resolve().parents[2]

SYNTH = """import "stdlib/grammars.cam"
import "stdlib/metrics.cam"
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn")
data d = synthetic_shapes()
synthesize best from gradient_weights {
  model = m
  data = d
  objective = deletion
  max_size = 5
}
grammar g {
  cam -> relu(sum_c(w * A))
  w -> mean_hw(G) | sum_hw(G)
}
"""


def _labels(before: str) -> list[str]:
    program = analyze(SYNTH, ROOT / "x.cam").program
    return [c.label for c in complete(before, program, ROOT)]


def test_completion_contexts() -> None:
    assert _labels("model r = ")[:2] == ["torchvision", "checkpoint"]
    assert "synthetic_shapes" in _labels("data q = syn")
    assert "max_size = 9" in _labels("synthesize s from g {\n  max")
    assert "best" in _labels("synthesize s from g {\n  model = b")  # a value, not a setting
    assert _labels("cam c = relu(A) # rel") == []
    assert "stdlib/metrics.cam" in _labels('import "stdlib/m')
    assert "resnet50" in _labels('model r = torchvision("resnet5')
    assert "layer4.2" in _labels('model r = torchvision("resnet50") at ["layer3", "layer4.')
    assert _labels("ev") == ["evaluate"]
    assert {"deletion", "gradient_weights", "sum_hw"} <= set(_labels("cam c = x + "))


def test_hover_on_a_setting_and_a_grammar() -> None:
    analysis = analyze(SYNTH, ROOT / "x.cam")
    hover = features.hover(analysis, lsp.Position(8, 4))
    assert hover is not None and "max_size = 9" in hover.contents.value
    hover = features.hover(analysis, lsp.Position(4, 23))
    assert hover is not None and "grammar gradient_weights" in hover.contents.value


def test_outline_lists_declarations_and_productions() -> None:
    symbols = features.document_symbols(analyze(SYNTH, ROOT / "x.cam"))
    assert [s.name for s in symbols] == ["m", "d", "best", "g"]
    grammar = symbols[-1]
    assert [c.name for c in grammar.children or []] == ["cam", "w"]
    assert grammar.selection_range.start == lsp.Position(10, 8)


def test_an_error_in_an_imported_file_is_shown_on_its_import(tmp_path: Path) -> None:
    (tmp_path / "lib.cam").write_text("cam ok = relu(sum_c(A))\ncam broken = sum_c(mean_c(A))\n")
    text = 'cam first = relu(sum_c(A))\nimport "lib.cam"\n'
    analysis = analyze(text, (tmp_path / "main.cam").resolve())
    (diag,) = features.diagnostics(analysis)
    assert diag.code == "E301" and diag.range.start == lsp.Position(1, 0)
    assert diag.message.startswith(f"{tmp_path / 'lib.cam'}:2:14: sum_c expects")


PARITY = [
    *(p.read_text() for p in sorted((ROOT / "examples").glob("*.cam"))),
    'import "stdlib/cams.cam"\ncam bad = sum_c(mean_c(A))\ncam a = relu(\n'
    "metric m = minimize mean(A)\ncam gradcam = A\n",
    'model m = torchvision("resnet18", wieghts = none) at "layer4"\ndata d = synthetic_shapes(count = -1)\n',
    'import "nowhere.cam"\nevaluate [x] on m, d with [y]\ncheck p\nexport q to "q.py"\n',
]


def _key(diags: list) -> list[tuple[object, ...]]:
    return [
        (d.code, d.severity, d.message, d.span.start, d.span.end, d.span.source.name, d.hint, d.notes)
        for d in diags
    ]


def test_diagnostics_are_those_of_camlang_check() -> None:
    from camlang.frontend.check import check_text
    from camlang.lsp.incremental import PieceParser

    parser = PieceParser()  # one parser across documents, as after many edits
    for text in PARITY:
        path = (ROOT / "examples" / "doc.cam").resolve()
        expected = check_text(text, str(path), path).diagnostics
        got = analyze(text, path, str(path), parser).program.diagnostics
        assert _key(got) == _key(expected)


def test_layer_names_after_at_and_in_a_layer_hole() -> None:
    """After `@"` and among a layer hole's alternatives: the declared models' layer paths."""
    demo = ["features", *(f"features.{i}" for i in range(7)), "pool", "classifier"]
    assert _labels('cam c = relu(sum_c(A@"') == demo
    assert _labels('cam c = gradcam@"features.') == demo[1:8]
    assert _labels('grammar h {\n  cam -> upsample(m@l)\n  l -> "features.2" | "features.') == demo[1:8]
    assert _labels('grammar h {\n  l -> "cl') == ["classifier"]
    program = analyze(SYNTH, ROOT / "x.cam").program
    (item,) = complete('cam c = G@"po', program, ROOT)
    assert (item.label, item.kind, item.detail) == ("pool", "layer", "layer of m")
    # a torchvision model: its blocks and their convolutions; the `at` layer comes first
    text = 'model r = torchvision("resnet18") at "layer4[-1]"\nmodel s = mlp([4, 3, 2])\n'
    program = analyze(text, ROOT / "y.cam").program
    labels = [c.label for c in complete('cam c = A@"', program, ROOT)]
    assert labels[0] == "layer4[-1]" and "0" in labels and "3" in labels and "4" not in labels
    assert [c.label for c in complete('cam c = A@"layer2.0.c', program, ROOT)] == [
        "layer2.0.conv1",
        "layer2.0.conv2",
    ]
    assert _labels('cam c = A@"nothing') == [] and _labels('data q = images("x') == []

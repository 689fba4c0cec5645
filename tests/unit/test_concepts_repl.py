"""REPL: `:concepts` lists the concept sources; a `heatmaps` action prints coloured matrices."""

from __future__ import annotations

from pathlib import Path

from camlang.repl.session import Session

ROOT = Path(__file__).resolve().parents[2]


def test_concepts_command_and_heatmap_matrix(tmp_path: Path) -> None:
    sess = Session(tmp_path / "out")
    assert sess.execute(":concepts").output == "no concept sets declared"
    decls = (
        f'model net = checkpoint("{ROOT / "models" / "shortcut_cnn.pt"}", arch = "shapes_cnn")\n'
        "data d = synthetic_shapes(count = 120, seed = 32)\n"
        'concepts truth = annotations(d, concepts = ["red", "green", "blue", "yellow"])\n'
    )
    assert sess.execute(decls).ok
    listing = sess.execute(":concepts").output
    assert listing == "concepts truth = annotations: red, green, blue, yellow"
    result = sess.execute("heatmaps truth on net, d")
    assert result.ok, result.render()
    out = result.output
    assert "\x1b[" in out  # coloured cells
    for name in ("circle: differential", "square: differential", "red", "yellow"):
        assert name in out
    assert (tmp_path / "out" / "concepts" / "concepts.json").is_file()
    bad = sess.execute('concepts oops = annotations(d, concepts = ["red", "purple"])')
    assert not bad.ok and 'unknown concept "purple"' in bad.render()

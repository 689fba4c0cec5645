"""The language server's piece-by-piece parser gives what `parse_with_recovery` gives: the same
statements, spans and syntax diagnostics, on every example, the stdlib and broken files, and
after edits that reuse cached pieces."""

from __future__ import annotations

from pathlib import Path

import pytest

from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.source import SourceFile
from camlang.lsp.incremental import PieceParser

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))

BROKEN = [
    "cam a = relu(\ncam b = relu(A)\n",
    'model m = torchvision("resnet18") at\ncam ok = sum_c(A)\nmetric m2 = minimize\n',
    'cam c = relu(A) +\n# a comment\ndata d = images("x"\n',
    "synthesize s from g {\n  model = m\n  data = \n}\ncam z = 'a'\n",
    "cam a = A ^ 2\nevaluate [a on m, d with [x]\n",
    "cam a = relu(sum_c(A))\ncam a = relu(sum_c(A))\ncam b = (\ncam b = (\n",  # repeated statements
]


def _same(text: str, parser: PieceParser) -> None:
    source = SourceFile("t.cam", text)
    expected, expected_diags = parse_with_recovery(source)
    module, diags, pieces = parser.parse_document(source)
    assert module.statements == expected.statements
    assert [pieces.relocate(st.span).start for st in module.statements] == [
        st.span.start for st in expected.statements
    ]
    assert [pieces.relocate(st.span).end for st in module.statements] == [
        st.span.end for st in expected.statements
    ]
    key = [(d.code, d.message, d.span.start, d.span.end, d.hint) for d in expected_diags]
    assert [(d.code, d.message, d.span.start, d.span.end, d.hint) for d in diags] == key


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_files_parse_the_same(path: Path) -> None:
    _same(path.read_text(), PieceParser())


@pytest.mark.parametrize("text", BROKEN)
def test_broken_files_give_the_same_diagnostics(text: str) -> None:
    _same(text, PieceParser())


def test_edits_reuse_pieces_and_stay_exact() -> None:
    parser = PieceParser()
    text = (ROOT / "examples" / "quickstart.cam").read_text()
    _same(text, parser)
    cached = dict(parser.pieces)
    edited = text.replace("max_size = 5", "max_size = 55").replace("cam", "cam", 1)
    _same(edited, parser)
    reused = sum(1 for key, parsed in parser.pieces.items() if cached.get(key) is parsed)
    assert reused == len(parser.pieces) - 1  # only the edited statement was parsed again
    _same('import "stdlib/cams.cam"\n' + edited, parser)  # every piece moved
    for text in BROKEN:
        _same(text, parser)

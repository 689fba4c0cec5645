"""The Pygments lexer: it covers every character, classifies with the op table, and is the
`cam` entry point pyproject.toml declares."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, String

from camlang.frontend.pygments_lexer import CamLexer

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_tokens_cover_the_text_without_errors(path: Path) -> None:
    text = path.read_text()
    tokens = list(CamLexer().get_tokens(text))
    assert "".join(v for _, v in tokens) == text
    assert all(kind is not Error for kind, _ in tokens)


def test_classes() -> None:
    tokens = dict(
        (v, k)
        for k, v in CamLexer().get_tokens(
            'cam g = relu(A) * 2 # why\nmetric m = minimize mean(L)\nimport "x"\n'
        )
    )
    assert tokens["cam"] in Keyword and tokens["minimize"] in Keyword
    assert tokens["relu"] is Name.Builtin and tokens["A"] is Name.Constant and tokens["g"] is Name
    assert tokens["2"] in Number and tokens['"x"'] in String and tokens["# why"] in Comment


def test_bad_input_is_an_error_token_not_a_crash() -> None:
    tokens = list(CamLexer().get_tokens("cam a = A ^ 2\n"))
    assert "".join(v for _, v in tokens) == "cam a = A ^ 2\n"
    assert any(kind is Error for kind, _ in tokens)


def test_the_entry_point_finds_the_lexer(tmp_path: Path) -> None:
    """Pygments finds `cam` through the entry point pyproject.toml declares (a stand-in
    dist-info carries it, so the test does not need a reinstall)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["pygments.lexers"]["cam"]
    info = tmp_path / "camlang_lexer-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: camlang-lexer\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[pygments.lexers]\ncam = {target}\n")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from pygments.lexers import get_lexer_by_name, get_lexer_for_filename\n"
        "print(type(get_lexer_by_name('cam')).__name__, type(get_lexer_for_filename('a.cam')).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path), str(ROOT)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["CamLexer", "CamLexer"]

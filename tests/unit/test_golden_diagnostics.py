"""Golden diagnostics: each `.cam` file in tests/golden/diagnostics states what the checker must say.

A comment `# expect: CODE LINE:COL MESSAGE-SUBSTRING` asks for one diagnostic with that code at that
position whose message contains the substring; `# expect: none` marks a clean file. The checker
must produce exactly the expected set: nothing missing, nothing extra.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camlang.frontend.check import check_file
from camlang.frontend.diagnostics import render

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "diagnostics"
FILES = sorted(GOLDEN.glob("*.cam"))
EXPECT = re.compile(r"#\s*expect:\s*(?:(none)\s*$|([EW]\d{3})\s+(\d+):(\d+)\s+(.+?)\s*$)")
LARK_NAMES = re.compile(
    r"\b(RPAR|LPAR|LSQB|RSQB|LBRACE|RBRACE|COMMA|EQUAL|VBAR|COMPOP|ADDOP|MULOP)\b|__ANON|\$END"
)


def expectations(path: Path) -> list[tuple[str, int, int, str]]:
    found: list[tuple[str, int, int, str]] = []
    marked_clean = False
    for line in path.read_text(encoding="utf-8").splitlines():
        m = EXPECT.search(line)
        if m is None:
            continue
        if m.group(1):
            marked_clean = True
        else:
            found.append((m.group(2), int(m.group(3)), int(m.group(4)), m.group(5)))
    assert found or marked_clean, f"{path.name} states no expectation (add `# expect: none` if it is clean)"
    return found


def test_the_golden_folder_is_populated() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_file(path: Path) -> None:
    expected = expectations(path)
    got = check_file(path).diagnostics
    actual = [(d.code, *d.span.line_col(), d.message) for d in got]
    unmatched = list(actual)
    for code, line, col, needle in expected:
        hit = next((a for a in unmatched if a[:3] == (code, line, col) and needle in a[3]), None)
        assert hit is not None, f"{path.name}: no {code} at {line}:{col} containing {needle!r}; got {actual}"
        unmatched.remove(hit)
    assert not unmatched, f"{path.name}: unexpected diagnostics {unmatched}"
    for d in got:
        assert d.span.source.path == path.resolve(), "every diagnostic points into the file itself"
        assert not LARK_NAMES.search(d.message), d.message
        text = render(d)
        assert f"--> {d.span.location()}" in text and "^" in text

"""Spans, source files, diagnostic codes and rustc-style rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camlang.frontend.diagnostics import CODES, CompileError, Diagnostic, DiagnosticBag, render, render_all
from camlang.frontend.source import NO_SPAN, SourceFile, Span

ROOT = Path(__file__).resolve().parents[2]


def test_source_file_lines_and_columns() -> None:
    src = SourceFile("f.cam", "ab\ncde\n\nf")
    assert src.line_count == 4
    assert src.line_col(0) == (1, 1) and src.line_col(2) == (1, 3)
    assert src.line_col(3) == (2, 1) and src.line_col(7) == (3, 1) and src.line_col(8) == (4, 1)
    assert src.line_col(-5) == (1, 1) and src.line_col(999) == (4, 2)  # clamped
    assert [src.line_text(i) for i in range(1, 5)] == ["ab", "cde", "", "f"]


def test_span_validation_text_and_join() -> None:
    src = SourceFile("f.cam", "cam a = A")
    span = Span(src, 4, 5)
    assert span.text == "a" and span.location() == "f.cam:1:5"
    assert span.join(Span(src, 8, 9)) == Span(src, 4, 9)
    with pytest.raises(ValueError):
        Span(src, 5, 4)
    with pytest.raises(ValueError):
        Span(src, 0, 100)


def test_render_matches_the_house_style() -> None:
    src = SourceFile("examples/bad.cam", "# header\n# more\n\ncam bad = sum_c(mean_c(A))\n")
    start = src.text.index("sum_c")
    d = Diagnostic(
        "E301",
        "sum_c expects a tensor with channels, got Map[H, W]",
        Span(src, start, start + len("sum_c(mean_c(A))")),
        hint="mean_c already removed the channel axis",
    )
    lines = render(d).split("\n")
    assert lines[0] == "error[E301]: sum_c expects a tensor with channels, got Map[H, W]"
    assert lines[1] == " --> examples/bad.cam:4:11"
    assert lines[2] == "  |"
    assert lines[3] == "4 | cam bad = sum_c(mean_c(A))"
    assert lines[4] == "  | " + " " * 10 + "^" + "~" * (len("sum_c(mean_c(A))") - 1)
    assert lines[5] == "  = hint: mean_c already removed the channel axis"
    assert lines[4].index("^") == lines[3].index("sum_c")


def test_gutter_widens_with_the_line_number() -> None:
    src = SourceFile("f.cam", "\n" * 11 + "cam x = y\n")
    lines = render(Diagnostic("E101", "unknown name `y`", Span(src, 19, 20))).split("\n")
    assert lines[1] == "  --> f.cam:12:9"
    assert lines[3] == "12 | cam x = y"
    assert lines[4] == "   |         ^"


def test_multiline_span_underlines_to_the_end_of_its_first_line() -> None:
    src = SourceFile("f.cam", "grammar g {\n  a -> A\n}\n")
    lines = render(Diagnostic("E401", "bad", Span(src, 8, len(src.text) - 1))).split("\n")
    assert lines[4] == "  | " + " " * 8 + "^~~"  # `g {`: the rest of the first line


def test_empty_span_still_gets_one_caret_and_notes_are_shown() -> None:
    src = SourceFile("f.cam", "cam a =")
    d = Diagnostic("E001", "unexpected end of file", Span(src, 7, 7), notes=("a note",), hint="a hint")
    lines = render(d).split("\n")
    assert lines[4] == "  |        ^"
    assert lines[5:] == ["  = note: a note", "  = hint: a hint"]


def test_render_without_a_span() -> None:
    d = Diagnostic("E900", "cannot read model.pt", hint="check the path")
    assert render(d) == "error[E900]: cannot read model.pt\n  = hint: check the path"
    assert "-->" not in render(Diagnostic("E900", "x", NO_SPAN))


def test_color_rendering_uses_ansi_codes() -> None:
    plain = render(Diagnostic("W001", "missing", severity="warning"))
    tinted = render(Diagnostic("W001", "missing", severity="warning"), color=True)
    assert "\x1b[1;33m" in tinted and re.sub(r"\x1b\[[0-9;]*m", "", tinted) == plain


def test_render_all_orders_by_position_and_counts() -> None:
    src = SourceFile("f.cam", "cam a = b\ncam c = d\n")
    late = Diagnostic("E101", "unknown name `d`", Span(src, 18, 19))
    early = Diagnostic("E101", "unknown name `b`", Span(src, 8, 9))
    warn = Diagnostic("W002", "redefining", Span(src, 4, 5), severity="warning")
    text = render_all([late, early, warn])
    assert text.index("redefining") < text.index("`b`") < text.index("`d`")
    assert text.endswith("2 errors, 1 warning")
    assert render_all([early]).endswith("\n\n1 error")
    assert render_all([]) == ""


def test_bag_and_compile_error() -> None:
    bag = DiagnosticBag()
    bag.warning("W001", "w")
    assert not bag.has_errors and bag.errors == []
    bag.error("E101", "e1")
    bag.add(Diagnostic("E102", "e2"))
    assert bag.has_errors and [d.code for d in bag.errors] == ["E101", "E102"]
    err = CompileError(bag.items)
    assert err.diagnostics == bag.items and str(err) == "w; e1; e2"


def test_every_code_raised_anywhere_is_documented() -> None:
    used: set[str] = set()
    for path in sorted((ROOT / "camlang").rglob("*.py")):
        used |= set(re.findall(r'"([EW]\d{3})"', path.read_text()))
    assert {"E001", "E101", "E301", "E700", "E712", "E900"} <= used, "the scan missed known codes"
    assert used <= set(CODES), sorted(used - set(CODES))
    assert all(re.fullmatch(r"[EW]\d{3}", c) and meaning for c, meaning in CODES.items())

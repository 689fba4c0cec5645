"""Grammar-driven and mutation fuzzing of the front end (2,000 hypothesis cases plus every 13th truncation).

Whatever the text, parse + check return a program or diagnostics whose spans lie inside the
text; no other exception may escape, and everything the checker builds passes `verify()`.
"""

from __future__ import annotations

from pathlib import Path

import lark
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from camlang.frontend.check import check_text
from camlang.frontend.diagnostics import CODES, render
from camlang.frontend.ir import verify
from camlang.paths import grammar_path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    p.name: p.read_text()
    for p in sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))
}
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
# from_lark's generation is the slow part (tens of ms per text on a 2-core machine), so the cheap
# mutation test carries most of the 2,000 cases.
GRAMMAR_CASES = settings(max_examples=300, suppress_health_check=_HEALTH)
MUTATION_CASES = settings(max_examples=1700, suppress_health_check=_HEALTH)


def assert_clean(text: str) -> None:
    """Parse and check `text`; only diagnostics inside the text (and a verified IR) may come back."""
    program = check_text(text, "fuzz.cam", file_checks=False)
    for d in program.diagnostics:
        assert d.code in CODES, d.code
        if d.span.source.name == "fuzz.cam":
            assert 0 <= d.span.start <= d.span.end <= len(text), (d, len(text))
        assert d.message and render(d)
    roots = [c.node for c in program.cams.values() if c.node is not None]
    roots += [m.node for m in program.metrics.values()]
    verify(program.builder, roots)


def _grammar_strategy() -> st.SearchStrategy[str]:
    grammar = lark.Lark(grammar_path().read_text(), parser="lalr", start="start")
    names = st.sampled_from(
        [
            "A",
            "G",
            "S",
            "P",
            "X",
            "L",
            "MASK",
            "S_masked",
            "relu",
            "sum_c",
            "mean_hw",
            "pow",
            "where",
            "ref",
            "iou",
            "blur",
            "argmax",
            "gradcam",
            "m",
            "d",
            "g",
            "cam",
            "w",
        ]
    )
    explicit: dict[str, st.SearchStrategy[str]] = {
        # Names and keywords are padded (most of the time) so that `cam` NAME does not glue into one name.
        "NAME": st.one_of(names.map(lambda n: f" {n} "), names),
        "STRING": st.sampled_from(['"x.py"', '"m.pt"', '"a b"', '""', '"\\"q\\""', '"features.6"']),
        "NUMBER": st.sampled_from(["0", "1", "2.5", ".5", "1e-6", "3.", "1e999"]).map(lambda n: f" {n} "),
        "COMMENT": st.just("# note\n"),
        "WS": st.sampled_from([" ", "\n", "\t"]),
    }
    for term in grammar.terminals:
        if isinstance(term.pattern, lark.lexer.PatternStr) and term.pattern.value.isalpha():
            word = term.pattern.value
            explicit[term.name] = st.sampled_from([f" {word} ", f" {word} ", word])
    return from_lark(grammar, explicit=explicit)


GENERATED = _grammar_strategy()


@GRAMMAR_CASES
@given(GENERATED)
@example("cam a = 1 < 2 < 3")
@example('import "a\x00b"')
@example("cam c = relu(sum_c(A)) cam c = c * c")
def test_text_generated_from_the_grammar(text: str) -> None:
    assert_clean(text)


def _windows() -> list[str]:
    out = []
    for text in SHIPPED.values():
        lines = text.split("\n")
        for i in range(len(lines)):
            out.append("\n".join(lines[i : i + 6]))
    return out


WINDOWS = _windows()
TOKENS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "->",
    "|",
    "-",
    "*",
    "<",
    '"',
    "'",
    "#",
    "\n",
    "cam",
    "metric",
    "A",
    "MASK",
    "L",
    "relu",
    "0",
    "1e999",
    "^",
    "\x00",
    "é",
    "model",
    "import",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(WINDOWS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "truncate"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 10)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap" and j < len(text):
            text = text[:i] + text[j] + text[i + 1 : j] + text[i] + text[j + 1 :]
        elif kind == "truncate":
            text = text[:i]
    return text


@MUTATION_CASES
@given(mutated())
def test_mutated_pieces_of_shipped_programs(text: str) -> None:
    assert_clean(text)


def test_every_truncation_of_the_shipped_files() -> None:
    # Whole files (the tour imports the stdlib), cut at every 13th character.
    for text in SHIPPED.values():
        for cut in range(0, len(text), 13):
            assert_clean(text[:cut])

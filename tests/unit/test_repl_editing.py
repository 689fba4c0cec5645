"""The prompt_toolkit adapters' pure parts: completion analysis, highlighting, validation, toolbar."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.validation import ValidationError

from camlang.repl.completer import analyze
from camlang.repl.lexer import highlight, split_lines
from camlang.repl.session import Session
from camlang.repl.toolbar import toolbar_fragments
from camlang.repl.validator import CamValidator


@pytest.fixture
def session(tmp_path: Path) -> Session:
    sess = Session(tmp_path / "out")
    assert sess.execute('import "stdlib/cams.cam"').kind == "ok"
    assert sess.execute("data test = synthetic_shapes(count = 4, size = 32)").kind == "ok"
    return sess


def texts(text: str, session: Session) -> list[str]:
    return [c.text for c in analyze(text, session)]


def test_completes_declared_names_first(session: Session) -> None:
    got = analyze("gradc", session)
    assert [c.text for c in got] == ["gradcam", "gradcam_elementwise", "gradcampp"]
    assert all(c.start == -5 for c in got) and "relu(sum_c(mean_hw(G) * A))" in got[0].meta


def test_ops_carry_signature_and_doc(session: Session) -> None:
    (blur,) = [c for c in analyze("metric m = maximize mean(bl", session) if c.text == "blur"]
    assert blur.display.startswith("blur(") and "sigma" in blur.display and blur.meta


def test_terminals_and_keywords(session: Session) -> None:
    assert "S_masked" in texts("relu(S_m", session)
    assert texts("synth", session) == ["synthesize"]  # statement keyword at the start
    assert "minimize" in texts("metric m = min", session)


def test_commands_and_their_arguments(session: Session) -> None:
    assert texts(":gr", session) == [":grid"]
    assert texts(":use d", session) == ["data"]
    assert texts(":use data t", session) == ["test"]
    assert texts(":grid gradcam hi", session) == ["hirescam"]
    assert texts(":type relu(sum_c(G * A", session) == ["A"]


def test_paths_inside_strings(session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.pt").write_bytes(b"")
    (tmp_path / "mine.cam").write_text("")
    monkeypatch.chdir(tmp_path)
    assert texts('model m = checkpoint("mo', session) == ["models/"]
    got = analyze('model m = checkpoint("models/n', session)
    assert [(c.text, c.start) for c in got] == [("net.pt", -1)]
    assert texts(":load mi", session) == ["mine.cam"]
    assert texts('import "x" # "mo', session) == []  # inside a comment, not a string


def test_highlight_covers_text_and_classifies_tokens() -> None:
    text = 'cam x = relu(sum_c(G * A)) # note\nmetric m = maximize gini(L)\n"open'
    frags = highlight(text, {"x"})
    assert "".join(t for _, t in frags) == text
    styles = dict((t, st) for st, t in frags)
    assert (
        styles["cam"] == "class:keyword" and styles["relu"] == "class:op" and styles["G"] == "class:terminal"
    )
    assert styles["x"] == "class:declared" and styles["# note"] == "class:comment"
    assert styles["maximize"] == "class:keyword" and styles['"open'] == "class:error"
    assert len(split_lines(frags)) == 3
    cmd = highlight(":type relu(A)")
    assert cmd[0] == ("class:command", ":type") and ("class:op", "relu") in cmd


def test_validator_marks_syntax_error_position() -> None:
    validator = CamValidator()
    with pytest.raises(ValidationError) as info:
        validator.validate(Document("cam x = relu(A))"))
    assert info.value.cursor_position == 15 and "E001" in info.value.message
    validator.validate(Document("cam x = relu("))  # unfinished: Enter continues instead
    validator.validate(Document("cam x = unknown_name"))  # names are the session's business
    validator.validate(Document(":load foo"))


def test_toolbar_shows_selection(session: Session) -> None:
    text = "".join(t for _, t in toolbar_fragments(session))
    assert "data test" in text and "model -" in text and "image 0" in text

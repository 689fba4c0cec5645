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


def test_layer_names_after_at_and_in_a_layer_hole(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `@"` and among a layer hole's alternatives: the declared models' named modules,
    built once per model (without weights, on the meta device) and cached."""
    from types import SimpleNamespace

    import torch

    from camlang.models import DEMO_CHECKPOINT
    from camlang.repl import layer_names

    assert texts('cam c = A@"', session) == []  # no model declared yet
    ok = session.execute(
        f'model m = checkpoint("{DEMO_CHECKPOINT.as_posix()}", arch = "shapes_cnn") at "features[-1]"'
    )
    assert ok.kind == "ok"
    demo = ["features", *(f"features.{i}" for i in range(7)), "pool", "classifier"]
    built = []
    real = layer_names._build_on_meta
    monkeypatch.setattr(layer_names, "_build_on_meta", lambda m: built.append(m) or real(m))
    assert texts('cam c = relu(sum_c(A@"', session) == ["features[-1]", *demo]
    got = analyze('cam c = gradcam@"features.', session)
    assert [(c.text, c.start, c.meta) for c in got][:2] == [
        ("features.0", -9, "layer of m"),
        ("features.1", -9, "layer of m"),
    ]
    assert texts('grammar h {\n  cam -> upsample(lm@l)\n  l -> "features.2" | "po', session) == ["pool"]
    (tmp_path / "pool.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert texts('model q = checkpoint("po', session) == ["pool.pt"]  # a path, not a layer
    assert len(built) == 1  # one build, then the cache
    assert session.execute("model r = mlp([4, 3, 2])").kind == "ok"
    assert texts('cam c = G@"', session)[-4:] == ["0", "1", "2", "3"]
    assert len(built) == 2  # only the new model was built
    # once a model is loaded, its own modules replace the guess
    loaded = SimpleNamespace(module=torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))
    assert layer_names.LayerNames().of("m", session.program.models["m"], loaded) == ("features[-1]", "0")


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

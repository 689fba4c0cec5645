"""The pure REPL session: statements, bare expressions, commands, errors (no prompt_toolkit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from camlang.frontend.check import check_file
from camlang.models import ShapesCNN
from camlang.repl.session import Session, is_incomplete, starts_with_statement, syntax_diagnostics

DEMO = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model net = checkpoint("net.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 8, size = 48, seed = 1)
evaluate [gradcam] on net, test with [sparsity]
"""


def write_demo(folder: Path) -> Path:
    """`folder/demo.cam` with a random-weights ShapesCNN checkpoint beside it."""
    gen = torch.Generator().manual_seed(0)
    net = ShapesCNN()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    torch.save(net.state_dict(), folder / "net.pt")
    path = folder / "demo.cam"
    path.write_text(DEMO, encoding="utf-8")
    return path


@pytest.fixture
def session(tmp_path: Path) -> Session:
    opened: list[Path] = []
    sess = Session(tmp_path / "out", opener=opened.append, truecolor=True)
    sess.opened = opened  # type: ignore[attr-defined]
    result = sess.execute(f":load {write_demo(tmp_path)}")
    assert result.kind == "ok", result.render()
    return sess


def test_load_reports_counts_and_skips_actions(session: Session) -> None:
    assert session.current_model == "net" and session.current_data == "test"
    assert "gradcam" in session.program.cams and "deletion" in session.program.metrics
    assert session.program.actions == []  # the file's evaluate is listed, not run
    assert "1 action in the file not run" in session.execute(":load " + str(session.loaded_files[0])).output


def test_cam_expression_shows_heatmap_png_and_preview(session: Session) -> None:
    result = session.execute("relu(sum_c(G * A))")
    assert result.kind == "heatmap", result.render()
    assert "Map[H, W]" in result.output and "predicted" in result.output
    assert result.image_path is not None and result.image_path.parent == session.out_dir
    with Image.open(result.image_path) as img:
        assert img.size[0] >= 48 and img.mode == "RGB"
    assert result.preview is not None and "\x1b[38;2;" in result.preview and "▀" in result.preview
    assert str(result.image_path) in result.output
    assert session.execute(":open").kind == "ok"
    assert session.opened == [result.image_path]  # type: ignore[attr-defined]


def test_metric_expression_reads_current_cam(session: Session) -> None:
    session.execute("gradcam")
    result = session.execute("mean(L)")
    assert result.kind == "value", result.render()
    value = float(result.output.split("= ")[1].split()[0])
    assert 0.0 <= value <= 1.0
    assert "L = gradcam" in result.output
    # pointing game with the ground-truth mask is 0 or 1 on one image
    hit = session.execute("pointing(L, MASK, 15)")
    assert hit.kind == "value" and hit.output.split("= ")[1].split()[0] in ("0", "1")


def test_non_map_values_show_statistics(session: Session) -> None:
    vec = session.execute("mean_hw(G)")
    assert vec.kind == "value" and "Vector[C]" in vec.output and "shape 64" in vec.output
    total = session.execute("sum(relu(A))")
    assert total.kind == "value" and float(total.output.split("= ")[1].split()[0]) >= 0


def test_declaration_extends_session_and_redefinition_warns(session: Session) -> None:
    first = session.execute("cam mine = relu(sum_c(relu(G) * A))")
    assert first.kind == "ok" and "cam mine : Map[H, W]" in first.output
    again = session.execute("cam mine = sum_c(A)")
    assert again.kind == "ok"
    assert [d.code for d in again.diagnostics] == ["W002"]
    assert session.program.cams["mine"].source_text == "sum_c(A)"


def test_errors_are_diagnostics_and_session_goes_on(session: Session) -> None:
    bad = session.execute("cam bad = sum_c(mean_c(A))")
    assert bad.kind == "error" and bad.diagnostics[0].code == "E301"
    assert "^~~~" in bad.render()
    typo = session.execute("gradc")
    assert typo.kind == "error" and "did you mean `gradcam`" in (typo.diagnostics[0].hint or "")
    assert (
        typo.diagnostics[0].span.start == 0 and typo.diagnostics[0].span.end == 5
    )  # caret on the user's text
    assert session.execute("gradcam").kind == "heatmap"


def test_context_errors_fall_back_to_metric_and_report_cam_reading(session: Session) -> None:
    both = session.execute("A + L")  # A only in cams, L only in metrics
    assert both.kind == "error" and both.diagnostics[0].code == "E302"


def test_type_ir_simplify(session: Session) -> None:
    assert "Tensor[C, H, W]" in session.execute(":type G * A").output
    ir = session.execute(":ir relu(relu(sum_c(G * A * 1)))").output
    assert "lowered" in ir and "after simplify" in ir and "relu(sum_c(G * A))" in ir
    assert session.execute(":simplify relu(relu(sum_c(G * A * 1)))").output == "relu(sum_c(G * A))"


def test_selection_commands(session: Session) -> None:
    assert session.execute(":image 3").kind == "ok" and session.image == 3
    assert session.status()["image"] == "3/8"
    out_of_range = session.execute(":image 8")
    assert out_of_range.kind == "error" and "out of range" in out_of_range.diagnostics[0].message
    assert session.execute(":use model nope").kind == "error"
    assert session.execute(":use cam hirescam").kind == "ok" and session.current_cam == "hirescam"
    assert "* model net" in session.execute(":models").output
    assert "gradcam" in session.execute(":cams").output


def test_evaluate_action_prints_table(session: Session) -> None:
    result = session.execute("evaluate [gradcam, hirescam] on net, test with [sparsity]")
    assert result.kind == "ok", result.render()
    assert "gradcam" in result.output and "sparsity" in result.output


def test_grid_export_save_reload(session: Session, tmp_path: Path) -> None:
    grid = session.execute(":grid gradcam hirescam")
    assert grid.kind == "ok" and grid.image_path is not None and grid.image_path.is_file()
    session.execute("cam mine = relu(sum_c(relu(G) * A))")
    exported = session.execute(f":export mine {tmp_path / 'mine.py'}")
    assert exported.kind == "ok" and "class" in (tmp_path / "mine.py").read_text()
    statement = session.execute('export mine to "stmt.py"')  # relative: inside the output folder
    assert statement.kind == "ok" and (session.out_dir / "stmt.py").is_file()
    saved = tmp_path / "saved.cam"
    assert session.execute(f":save {saved}").kind == "ok"
    program = check_file(saved)
    assert not program.has_errors, program.diagnostics
    assert "mine" in program.cams and "net" in program.models
    reloaded = session.execute(":reload")
    assert reloaded.kind == "ok" and "mine" in session.program.cams and session.state.models == {}


def test_history_help_quit_and_unknown_command(session: Session) -> None:
    session.execute(":type A")
    assert ":type A" in session.execute(":history").output
    assert ":grid" in session.execute(":help").output
    assert session.execute(":quit").kind == "exit"
    unknown = session.execute(":lod x")
    assert unknown.kind == "error" and "did you mean `load`" in (unknown.diagnostics[0].hint or "")


def test_without_model_shows_type_only(tmp_path: Path) -> None:
    sess = Session(tmp_path)
    result = sess.execute("relu(sum_c(G * A))")
    assert result.kind == "value" and "Map[H, W]" in result.output and result.image_path is None
    assert sess.execute(":load missing.cam").kind == "error"


def test_internal_errors_are_caught(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(session, "run_source", boom)
    result = session.execute("gradcam")
    assert result.kind == "internal" and result.output.startswith(
        "internal error, please report: RuntimeError"
    )


def test_keyboard_interrupt_becomes_result(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "run_source", interrupt)
    assert session.execute("gradcam").kind == "interrupted"


@pytest.mark.parametrize(
    ("text", "incomplete"),
    [
        ("cam x = relu(", True),
        ("grammar g {", True),
        ("relu(sum_c(G *", True),
        ("cam x = relu(A", True),
        ("gradcam", False),
        ("cam x = relu(sum_c(A))", False),
        (":help", False),
        ("relu(A))", False),
    ],
)
def test_is_incomplete(text: str, incomplete: bool) -> None:
    assert is_incomplete(text) is incomplete


def test_statement_detection_and_syntax_diagnostics() -> None:
    assert starts_with_statement("cam x = A") and starts_with_statement("# c\nmodel m = x()")
    assert not starts_with_statement("camx") and not starts_with_statement("data_x + 1")
    (d,) = syntax_diagnostics("relu(A))")
    assert d.code == "E001" and d.span.start == 7 and d.span.source.text == "relu(A))"
    assert syntax_diagnostics(":anything goes") == [] and syntax_diagnostics("cam x = A") == []

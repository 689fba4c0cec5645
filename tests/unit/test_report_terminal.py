"""The rich terminal summary: every section printed, best per metric highlighted, NaN dimmed."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console
from rich.text import Text

from camlang.report import print_summary
from camlang.report.sample import sample_report
from camlang.report.terminal import checks_table, eval_table


def _render(report: object) -> str:
    console = Console(record=True, width=160, color_system=None, force_terminal=False)
    print_summary(report, console)  # type: ignore[arg-type]
    return console.export_text()


def test_summary_lists_every_section() -> None:
    text = _render(sample_report())
    for needle in (
        "evaluate #1",
        "evaluate #2",
        "pointing_game ↑",
        "deletion_auc ↓",
        "NaN (4 of 4) #3",
        "relu(mean_hw(G)) * A",
        "1520 enumerated",
        "exhaustive: 30400",
        "holdout comparison",
        "violated",
        "unknown",
        "z3 (bounds)",
        "exported gradcam -> out/gradcam_module.py",
        "warning: sample report",
        "layer features.3 (default)",
        "synthesize best_deletion: time 20 s: search 2.1 s of 11.0 s, tuning 0.3 s of 2.0 s, "
        "holdout comparison 1.1 s of 7.0 s",
    ):
        assert needle in text, needle
    assert "partial (interrupted)" not in text


def test_partial_is_announced() -> None:
    text = _render(sample_report(partial=True))
    assert text.count("partial (interrupted)") == 2  # banner and the synthesis title


def _styles(cell: object) -> set[str]:
    assert isinstance(cell, Text)
    return {str(span.style) for span in cell.spans}


def test_best_cells_are_bold_green_and_nan_dimmed() -> None:
    ev = sample_report().evaluations[0]
    table = eval_table(ev)
    columns = {str(col.header): list(col.cells) for col in table.columns}
    pointing = columns["pointing_game ↑"]  # cams: gradcam, gradcam++, eigencam
    assert "bold green" in _styles(pointing[0])
    assert "bold green" not in _styles(pointing[1])
    assert "dim italic" in _styles(pointing[2])
    deletion = columns["deletion_auc ↓"]  # tie at 0.21: both best
    assert "bold green" in _styles(deletion[0]) and "bold green" in _styles(deletion[1])
    assert "bold green" not in _styles(deletion[2])


def test_check_verdicts_are_coloured() -> None:
    checks = list(sample_report().checks)
    table = checks_table(checks)
    verdicts = list(table.columns[2].cells)
    assert all(isinstance(v, Text) for v in verdicts)
    assert [(str(v), str(v.style)) for v in verdicts if isinstance(v, Text)] == [
        ("holds", "bold green"),
        ("violated", "bold red"),
        ("unknown", "bold yellow"),
    ]


def test_markup_in_names_is_not_interpreted() -> None:
    report = replace(sample_report(), warnings=["[bold]not markup[/bold]"])
    assert "[bold]not markup[/bold]" in _render(report)


def test_brackets_in_user_names_survive() -> None:
    report = sample_report(partial=True)
    ev = replace(report.evaluations[1], name="evaluate [x]", cams=["cam[bold]"], table={})
    report = replace(report, evaluations=[ev])
    text = _render(report)
    assert "evaluate [x]" in text and "cam[bold]" in text

"""The rich terminal summary printed at the end of `camlang run`."""

from __future__ import annotations

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from camlang.report.model import CheckResult, EvalResult, RunReport, SynthResult
from camlang.report.ranking import direction_arrow, fmt_number, fmt_stat, rank_table, rank_values

STATUS_STYLE = {"holds": "bold green", "violated": "bold red", "unknown": "bold yellow"}


def eval_table(ev: EvalResult, compact: bool = False) -> Table:
    """CAMs x metrics with the best per metric in bold green and NaN cells dimmed.

    `compact` shows means and ranks only (the report keeps the spread), for narrow terminals.
    """
    model = ev.model.get("name", "?")
    layer = ev.model.get("layer", "?")
    default = " (default)" if ev.model.get("layer_chosen_by_default") else ""
    data = f"{ev.data.get('name', '?')} (n={ev.data.get('count', '?')})"
    caption = f"model {model}, layer {layer}{default}; data {data}"
    table = Table(title=Text(ev.name), caption=Text(caption), title_style="bold", show_lines=False)
    table.add_column("cam", style="bold")
    for m in ev.metrics:
        table.add_column(Text(f"{m.name} {direction_arrow(m.direction)}"), justify="right")
    ranks = rank_table(ev)
    for cam in ev.cams:
        cells: list[Text] = []
        for m in ev.metrics:
            r = ranks[m.name][cam]
            stat = ev.table.get(cam, {}).get(m.name)
            shown = (
                fmt_number(stat.mean, 3)
                if compact and stat is not None and not stat.is_nan
                else fmt_stat(stat)
            )
            text = Text(shown)
            text.append(f" #{r.rank}", style="dim")
            if r.best:
                text.stylize("bold green", 0, len(text) - len(f" #{r.rank}"))
            elif r.is_nan:
                text.stylize("dim italic")
            cells.append(text)
        table.add_row(Text(cam), *cells)
    return table


def synth_table(sy: SynthResult) -> Table:
    """Top-k candidates of a synthesis with holdout scores and CIs."""
    obj = sy.objective
    partial = " [partial (interrupted)]" if sy.partial else ""
    c = sy.counts
    stages = ", ".join(f"{v} after {k}" for k, v in c.distinct_after.items())
    caption = (
        f"{c.enumerated} enumerated ({stages}); {c.fully_evaluated} fully evaluated; "
        f"{c.forward_passes} forward passes"
    )
    if c.exhaustive_forward_passes is not None:
        caption += f" (exhaustive: {c.exhaustive_forward_passes})"
    caption += f"; {c.seconds:.1f} s"
    table = Table(
        title=Text(f"{sy.name}: {obj.name} {direction_arrow(obj.direction)}{partial}"),
        caption=Text(caption),
        title_style="bold",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"),
        ("expression", "left"),
        ("size", "right"),
        ("train", "right"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)
    table.add_column("holdout", justify="right")
    table.add_column("CI", justify="right")
    table.add_column("note")
    for i, cand in enumerate(sy.candidates, start=1):
        table.add_row(
            str(i),
            Text(cand.expression, style="bold" if i == 1 else ""),
            str(cand.size),
            fmt_number(cand.train_score),
            fmt_number(cand.holdout_mean),
            Text(f"[{fmt_number(cand.ci_low)}, {fmt_number(cand.ci_high)}]"),
            Text(cand.equivalence_note or ""),
        )
    return table


def comparison_table(sy: SynthResult) -> Table:
    """Holdout means with CIs: the synthesized winner against stdlib CAMs."""
    table = Table(title=Text(f"{sy.name}: holdout comparison"), title_style="bold")
    table.add_column("cam", style="bold")
    table.add_column(Text(f"{sy.objective.name} {direction_arrow(sy.objective.direction)}"), justify="right")
    table.add_column("CI", justify="right")
    ranks = rank_values({k: v.mean for k, v in sy.comparison.items()}, sy.objective.direction)
    for name, iv in sy.comparison.items():
        style = "bold green" if ranks[name].best else ""
        table.add_row(
            Text(name),
            Text(fmt_number(iv.mean), style=style),
            Text(f"[{fmt_number(iv.ci_low)}, {fmt_number(iv.ci_high)}]"),
        )
    return table


def checks_table(checks: list[CheckResult]) -> Table:
    """Verdicts of `check` statements, coloured by status."""
    table = Table(title="checks", title_style="bold")
    for col in ("property", "kind", "verdict", "backend", "seconds", "reason"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for ch in checks:
        backend = ch.backend + (" (bounds)" if ch.decided_by_bounds else "")
        table.add_row(
            Text(ch.property),
            Text(ch.kind),
            Text(ch.status, style=STATUS_STYLE[ch.status]),
            Text(backend),
            f"{ch.seconds:.2f}",
            Text(ch.reason),
        )
    return table


def print_full_width(console: Console, table: Table) -> None:
    """Print `table`; to a pipe or a file, at its natural width rather than cut to the console's 80
    columns."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def print_summary(report: RunReport, console: Console) -> None:
    """Print the run's tables (evaluations, syntheses, checks), exports and warnings to `console`."""
    if report.partial:
        console.print(Text("partial (interrupted): results below are incomplete", style="bold white on red"))
    for ev in report.evaluations:
        # a "0.512 ± 0.03 #1" cell needs about 16 columns; drop the spread when they do not fit
        compact = console.is_terminal and console.width < 24 + 17 * len(ev.metrics)
        print_full_width(console, eval_table(ev, compact))
    for sy in report.syntheses:
        print_full_width(console, synth_table(sy))
        if sy.comparison:
            print_full_width(console, comparison_table(sy))
        if sy.verdict:
            console.print(Text(f"{sy.name}: {sy.verdict}"))
        if sy.timing is not None:
            console.print(Text(f"{sy.name}: {sy.timing.describe()}", style="dim"))
    if report.checks:
        print_full_width(console, checks_table(list(report.checks)))
    for ex in report.exports:
        console.print(Text.assemble("exported ", (ex.cam, "bold"), f" -> {ex.path}"))
    for w in report.warnings:
        console.print(Text(f"warning: {w}", style="yellow"))

"""Heatmaps and concept sources in the terminal: coloured matrices (rich) and one-line listings."""

from __future__ import annotations

import io
import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from camlang.concepts.heatmaps import SemanticHeatmaps
from camlang.frontend.program import Program


def _colour(value: float, signed: bool) -> str:
    """A background colour: blue (low/negative) to red (high/positive)."""
    if math.isnan(value):
        return "grey30"
    t = (value + 1) / 2 if signed else value
    t = min(max(t, 0.0), 1.0)
    red, blue = int(255 * t), int(255 * (1 - t))
    return f"rgb({red},{int(80 + 60 * (1 - abs(2 * t - 1)))},{blue})"


def heatmap_table(heat: SemanticHeatmaps, cls: int, which: str = "differential") -> Table:
    """One class's correct, incorrect or differential heatmap as a coloured rich table."""
    mat = {"correct": heat.correct, "incorrect": heat.incorrect, "differential": heat.differential}[which][
        cls
    ]
    signed = which == "differential"
    table = Table(
        title=f"{heat.classes[cls]}: {which} (row c_i, column c_j: P[c_i > c_j])",
        show_lines=False,
        pad_edge=False,
    )
    table.add_column("")
    for name in heat.concepts:
        table.add_column(name[:7], justify="right")
    for i, name in enumerate(heat.concepts):
        cells = []
        for j in range(len(heat.concepts)):
            v = float(mat[i, j])
            text = "  -  " if i == j or math.isnan(v) else f"{v:+.2f}" if signed else f"{v:.2f}"
            cells.append(Text(text, style=f"on {_colour(v, signed)}"))
        table.add_row(name, *cells)
    return table


def render_heatmaps(heat: SemanticHeatmaps, color: bool = True, width: int = 140) -> str:
    """Every class's differential heatmap, as terminal text (ANSI colours when `color`)."""
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, color_system="truecolor" if color else None
    )
    for c in range(len(heat.classes)):
        console.print(heatmap_table(heat, c))
    return buf.getvalue().rstrip()


def list_concept_sources(program: Program) -> str:
    """`:concepts`: one line per concept set and monitor."""
    lines = []
    for name, cdef in program.concept_sets.items():
        names = cdef.args.get("concepts")
        what = ", ".join(names) if names else "all annotated concepts"
        if cdef.kind == "discovered":
            what = f"{cdef.args['count']} concepts found by NMF (seed {cdef.args['seed']})"
        where = (
            f' on layer "{cdef.args["layer"]}" of `{cdef.args["model"].name}`'
            if cdef.kind in ("probes", "discovered")
            else ""
        )
        lines.append(f"concepts {name} = {cdef.kind}{where}: {what}")
    for name, mdef in program.monitors.items():
        lines.append(
            f"monitor {name} over `{mdef.args['concepts'].name}` on `{mdef.args['model'].name}`, "
            f"fpr {mdef.args['fpr']:g}"
        )
    return "\n".join(lines) if lines else "no concept sets declared"

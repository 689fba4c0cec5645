"""The one entry point `camlang.run.program` calls for the concept actions."""

from __future__ import annotations

from typing import Any

from camlang.concepts.actions import run_heatmaps, run_watch
from camlang.concepts.build import ConceptRuntime
from camlang.concepts.heatmaps import SemanticHeatmaps
from camlang.concepts.report import ConceptReport
from camlang.frontend import syntax as s


def run_concept_action(state: Any, action: s.Heatmaps | s.Watch) -> SemanticHeatmaps | None:
    """Run a `heatmaps` or `monitor ... on` action; its report goes to `<out>/concepts/` and
    into the run's main report (`state.report.concepts`), when the state has one.

    Returns the heatmaps of a `heatmaps` action (the REPL prints them as coloured matrices).
    """
    if not getattr(state, "is_main", True):
        return None  # rank 0 computes the concept sections alone: they need no collectives
    if state.concepts is None:
        state.concepts = (ConceptRuntime(state), ConceptReport(state.options.out_dir))
    runtime, report = state.concepts
    heat = None
    match action:
        case s.Heatmaps():
            heat = run_heatmaps(runtime, report, action, state.console)
        case s.Watch():
            run_watch(runtime, report, action, state.console)
    if getattr(state, "report", None) is not None:
        state.update_report(concepts=report.main_sections())
    return heat

"""The one entry point `camlang.run.program` calls for the concept actions."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console

from camlang.concepts.actions import run_heatmaps, run_watch
from camlang.concepts.build import ConceptRuntime
from camlang.concepts.heatmaps import SemanticHeatmaps
from camlang.concepts.report import ConceptReport
from camlang.concepts.state import ConceptState, RunOutput
from camlang.frontend import syntax as s
from camlang.report.model import ConceptSection


class ConceptRunState(ConceptState, Protocol):
    """A run's state as the concept actions use it: they keep their fitted sources, monitors and
    report on it (`concepts`, made on first use) and add their sections to its report."""

    concepts: tuple[ConceptRuntime, ConceptReport] | None

    @property
    def options(self) -> RunOutput: ...

    @property
    def console(self) -> Console: ...

    def update_report(self, *, concepts: tuple[ConceptSection, ...]) -> None:
        """Replace the report's concept sections."""
        ...


def run_concept_action(state: ConceptRunState, action: s.Heatmaps | s.Watch) -> SemanticHeatmaps | None:
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

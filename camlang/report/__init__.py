"""Run reports: report.json, a self-contained report.html, PNG grids and charts, terminal output.

The run driver builds a `RunReport` from the dataclasses in `camlang.report.model` and calls
`write_report(out_dir, report)` and `print_summary(report, console)`. `ansi_preview` and
`overlay_rgb` are shared with the REPL.
"""

from camlang.report.ansi import ansi_preview, detect_truecolor
from camlang.report.colormap import jet, overlay_rgb
from camlang.report.model import (
    Candidate,
    CheckResult,
    ConceptSection,
    EvalResult,
    Export,
    Interval,
    MetricInfo,
    PhaseSeconds,
    RunReport,
    Stat,
    SynthCounts,
    SynthResult,
    SynthTiming,
    Visuals,
)
from camlang.report.ranking import Rank, rank_metric, rank_table, rank_values
from camlang.report.schema import SCHEMA_VERSION, report_to_dict, validate_report_dict
from camlang.report.terminal import print_summary
from camlang.report.writer import ReportPaths, write_report

__all__ = [
    "SCHEMA_VERSION",
    "Candidate",
    "CheckResult",
    "ConceptSection",
    "EvalResult",
    "Export",
    "Interval",
    "MetricInfo",
    "PhaseSeconds",
    "Rank",
    "ReportPaths",
    "RunReport",
    "Stat",
    "SynthCounts",
    "SynthResult",
    "SynthTiming",
    "Visuals",
    "ansi_preview",
    "detect_truecolor",
    "jet",
    "overlay_rgb",
    "print_summary",
    "rank_metric",
    "rank_table",
    "rank_values",
    "report_to_dict",
    "validate_report_dict",
    "write_report",
]

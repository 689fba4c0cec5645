"""report.html: one self-contained page (inline CSS, PNGs as base64 data URIs, no scripts).

The page must read well offline and when mailed around, so it references nothing outside itself:
no fonts, no stylesheets, no scripts, no http(s) links. Every user-supplied string goes through
`html.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from camlang.report.html_concepts import render_concepts
from camlang.report.html_parts import data_uri, img, meta_table, plain
from camlang.report.model import CheckResult, EvalResult, MetricInfo, RunReport, SynthResult, SynthTiming
from camlang.report.ranking import direction_arrow, fmt_number, fmt_stat, rank_table, rank_values
from camlang.report.schema import SCHEMA_VERSION

__all__ = ["data_uri", "failure_banner", "render_html", "rename_failure"]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; line-height: 1.4; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em 2em 3em; }
h1 { font-size: 1.6em; margin: 0.2em 0; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
     margin-top: 2em; } h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0; background: #fff; }
th, td { border: 1px solid #d6d6d6; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #fff4e0; } td.nan { color: #888; font-style: italic; }
.rank { color: #777; font-size: 0.8em; margin-left: 0.3em; font-weight: normal; }
.meta td:first-child { font-weight: 600; background: #f6f6f8; }
.banner { background: #b3261e; color: #fff; padding: 0.6em 1em; font-weight: bold; border-radius: 4px; }
.badge { display: inline-block; padding: 0.05em 0.5em; border-radius: 3px; font-weight: 600; }
.partial { background: #b3261e; color: #fff; }
tr.holds td.status { background: #d8f0dc; color: #14532d; } tr.violated td.status { background: #fbdcdc;
     color: #7f1d1d; } tr.unknown td.status { background: #fdf1c7; color: #713f12; }
.warnings li { color: #7a4b00; } .muted { color: #777; }
.charts { display: flex; flex-wrap: wrap; gap: 0.8em; } .charts img { border: 1px solid #e0e0e0;
     background: #fff; } img.grid { max-width: 100%; border: 1px solid #e0e0e0; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: #f3f3f5; padding: 0.6em; overflow-x: auto; }
nav a { margin-right: 1em; }
"""


def _evaluation(ev: EvalResult, idx: int, pngs: Mapping[str, Any]) -> str:
    out = [f'<section id="eval-{idx}"><h2>{escape(ev.name)}</h2>']
    model_rows = list(ev.model.items())
    if ev.model.get("layer_chosen_by_default"):
        model_rows.append(
            ("note", "the layer was chosen by default; name one in the model declaration to override")
        )
    out.append('<div class="charts"><div><h3>model</h3>' + meta_table(model_rows) + "</div>")
    out.append("<div><h3>data</h3>" + meta_table(list(ev.data.items())) + "</div></div>")
    out.append(_definitions(ev))
    ranks = rank_table(ev)
    head = "".join(
        f'<th title="{escape(m.description)}">{escape(m.name)} {direction_arrow(m.direction)}</th>'
        for m in ev.metrics
    )
    rows = []
    for cam in ev.cams:
        cells = []
        for m in ev.metrics:
            stat = ev.table.get(cam, {}).get(m.name)
            r = ranks[m.name][cam]
            cls = "num best" if r.best else ("num nan" if r.is_nan else "num")
            rank = f'<span class="rank">#{r.rank}{" (NaN)" if r.is_nan else ""}</span>'
            cells.append(f'<td class="{cls}">{escape(fmt_stat(stat))}{rank}</td>')
        rows.append(f"<tr><th>{escape(cam)}</th>{''.join(cells)}</tr>")
    out.append("<h3>metrics</h3>")
    out.append(
        '<p class="muted">mean ± std over images (charts: 95% bootstrap CI of the mean); #rank per metric (↓ '
        "lower is better, ↑ higher is better); "
        "best in bold; NaN ranks last.</p>"
    )
    out.append(f"<table><tr><th>cam</th>{head}</tr>{''.join(rows)}</table>")
    descs = [m for m in ev.metrics if m.description or m.settings]
    if descs:
        items = "".join(
            f"<li><b>{escape(m.name)}</b>: {escape(m.description)}{_settings(m)}</li>" for m in descs
        )
        out.append(f"<ul class='muted'>{items}</ul>")
    charts = pngs.get("charts", {})
    if charts:
        out.append('<div class="charts">')
        out.extend(img(png, f"{ev.name}: {name}") for name, png in charts.items())
        out.append("</div>")
    if pngs.get("grid") is not None:
        out.append("<h3>heatmaps</h3>" + img(pngs["grid"], f"{ev.name}: heatmap grid", "grid"))
    out.append("</section>")
    return "\n".join(out)


def _definitions(ev: EvalResult) -> str:
    """A collapsible block with what each evaluated cam computes."""
    known = [c for c in ev.cams if c in ev.definitions]
    if not known:
        return ""
    rows = "".join(
        f"<tr><th>{escape(c)}</th><td><code>{escape(ev.definitions[c])}</code></td></tr>" for c in known
    )
    return (
        f'<details class="definitions"><summary>cam definitions ({len(known)})</summary>'
        f"<table><tr><th>cam</th><th>definition</th></tr>{rows}</table></details>"
    )


def _synthesis(sy: SynthResult, idx: int, pngs: Mapping[str, Any]) -> str:
    badge = ' <span class="badge partial">partial (interrupted)</span>' if sy.partial else ""
    out = [f'<section id="synth-{idx}"><h2>{escape(sy.name)}{badge}</h2>']
    obj = sy.objective
    out.append(
        f"<p>objective: <b>{escape(obj.name)}</b> "
        f"({escape(obj.direction)} {direction_arrow(obj.direction)})</p>"
    )
    out.append(f"<h3>grammar</h3><pre>{escape(sy.grammar)}</pre>")
    rows = "".join(
        f"<tr><td class='num'>{i + 1}</td><td><code>{escape(c.expression)}</code></td>"
        f"<td class='num'>{c.size}</td>"
        f"<td class='num'>{fmt_number(c.train_score)}</td><td class='num'>{fmt_number(c.holdout_mean)}</td>"
        f"<td class='num'>[{fmt_number(c.ci_low)}, {fmt_number(c.ci_high)}]</td>"
        f"<td>{escape(c.equivalence_note or '')}</td></tr>"
        for i, c in enumerate(sy.candidates)
    )
    out.append(
        f"<h3>top {len(sy.candidates)} candidates</h3><table><tr><th>#</th><th>expression</th><th>size</th>"
        f"<th>train</th><th>holdout mean</th><th>holdout CI</th><th>equivalence</th></tr>{rows}</table>"
    )
    c = sy.counts
    count_rows: list[tuple[str, Any]] = [("enumerated", c.enumerated)]
    count_rows += [(f"distinct after {k}", v) for k, v in c.distinct_after.items()]
    count_rows += [("fully evaluated", c.fully_evaluated), ("forward passes", c.forward_passes)]
    if c.exhaustive_forward_passes is not None:
        ratio = c.exhaustive_forward_passes / c.forward_passes if c.forward_passes else math.inf
        count_rows.append(
            ("exhaustive forward passes", f"{c.exhaustive_forward_passes} ({fmt_number(ratio, 3)}x more)")
        )
    count_rows.append(("seconds", f"{c.seconds:.2f}"))
    out.append("<h3>counts</h3>" + meta_table(count_rows))
    if sy.timing is not None:
        out.append(_timing(sy.timing))
    if sy.comparison:
        ranks = rank_values({k: v.mean for k, v in sy.comparison.items()}, obj.direction)
        crow = "".join(
            f"<tr><th>{escape(name)}</th><td class='num{' best' if ranks[name].best else ''}'>"
            f"{fmt_number(iv.mean)}"
            f"<span class='rank'>#{ranks[name].rank}</span></td>"
            f"<td class='num'>[{fmt_number(iv.ci_low)}, {fmt_number(iv.ci_high)}]</td></tr>"
            for name, iv in sy.comparison.items()
        )
        out.append(
            f"<h3>holdout comparison</h3><table><tr><th>cam</th><th>mean</th><th>CI</th></tr>{crow}</table>"
        )
    if pngs.get("chart") is not None:
        out.append('<div class="charts">' + img(pngs["chart"], f"{sy.name}: holdout comparison") + "</div>")
    if pngs.get("grid") is not None:
        out.append("<h3>winner vs stdlib</h3>" + img(pngs["grid"], f"{sy.name}: winner vs stdlib", "grid"))
    out.append("</section>")
    return "\n".join(out)


def _timing(t: SynthTiming) -> str:
    """The planned split of `time` and the seconds each phase used."""
    planned = t.planned
    phases = (
        ("search", t.spent.search, None if planned is None else planned.search),
        ("tuning", t.spent.tuning, None if planned is None else planned.tuning),
        ("holdout comparison", t.spent.comparison, None if planned is None else planned.comparison),
        ("total", t.spent.total, t.limit),
    )
    rows = "".join(
        f"<tr><th>{name}</th><td class='num'>{'-' if plan is None else f'{plan:.2f}'}</td>"
        f"<td class='num'>{spent:.2f}</td></tr>"
        for name, spent, plan in phases
    )
    limit = "no time limit" if t.limit is None else f"time = {t.limit:g} s"
    return (
        f"<h3>time</h3><p class='muted'>{escape(limit)}; {escape(t.rule)}</p>"
        f"<table class='time'><tr><th>phase</th><th>planned (s)</th><th>spent (s)</th></tr>{rows}</table>"
    )


def _counterexample(values: list[Any] | None, limit: int = 12) -> str:
    if values is None:
        return ""
    flat: list[Any] = []
    stack: list[Any] = [values]
    while stack and len(flat) <= limit:
        v = stack.pop(0)
        if isinstance(v, list | tuple):
            stack = list(v) + stack
        else:
            flat.append(v)
    text = ", ".join(fmt_number(float(x)) if isinstance(x, int | float) else str(x) for x in flat[:limit])
    return f"[{text}{', …' if len(flat) > limit or stack else ''}]"


def _checks(checks: Sequence[CheckResult]) -> str:
    rows = []
    for ch in checks:
        replay = plain(dict(ch.replay)) if ch.replay else ""
        rows.append(
            f'<tr class="{escape(ch.status)}"><td>{escape(ch.property)}</td><td>{escape(ch.kind)}</td>'
            f'<td class="status">{escape(ch.status)}</td><td>{escape(ch.backend)}'
            f"{' (bounds)' if ch.decided_by_bounds else ''}</td><td class='num'>{ch.seconds:.2f}</td>"
            f"<td>{escape(ch.reason)}</td><td><code>{escape(_counterexample(ch.counterexample))}</code></td>"
            f"<td>{escape(replay)}</td></tr>"
        )
    return (
        '<section id="checks"><h2>checks</h2><table><tr><th>property</th><th>kind</th><th>verdict</th>'
        "<th>backend</th><th>seconds</th><th>reason</th><th>counterexample</th><th>replay</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def render_html(
    report: RunReport,
    eval_pngs: Sequence[Mapping[str, Any]],
    synth_pngs: Sequence[Mapping[str, Any]],
) -> str:
    """The whole report page. `eval_pngs[i]` is {"grid": bytes|None, "charts": {metric: bytes}};
    `synth_pngs[i]` is {"grid": bytes|None, "chart": bytes|None}."""
    title = f"camlang report: {report.source_file}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
    ]
    if report.partial:
        parts.append(
            '<p class="banner">partial (interrupted): the run was stopped; results below are incomplete.</p>'
        )
    if report.failure:
        parts.append(failure_banner(report.failure))
    parts.append(
        meta_table(
            [
                ("camlang", report.camlang_version),
                ("source", report.source_file),
                ("created", report.created),
                ("seed", report.seed),
                ("device", report.device),
                ("workers", report.world_size),
                ("status", "partial (interrupted)" if report.partial else "complete"),
            ]
        )
    )
    nav = [f'<a href="#eval-{i}">{escape(ev.name)}</a>' for i, ev in enumerate(report.evaluations)]
    nav += [f'<a href="#synth-{i}">{escape(sy.name)}</a>' for i, sy in enumerate(report.syntheses)]
    if report.checks:
        nav.append('<a href="#checks">checks</a>')
    if report.concepts:
        nav.append('<a href="#concepts">concepts</a>')
    nav.append('<a href="#warnings">warnings</a>')
    parts.append("<nav>" + "".join(nav) + "</nav>")
    if report.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in report.warnings)
        parts.append(f'<section id="warnings"><h2>warnings</h2><ul class="warnings">{items}</ul></section>')
    else:
        parts.append('<section id="warnings"><h2>warnings</h2><p class="muted">none</p></section>')
    parts.extend(
        _evaluation(ev, i, p) for i, (ev, p) in enumerate(zip(report.evaluations, eval_pngs, strict=True))
    )
    parts.extend(
        _synthesis(sy, i, p) for i, (sy, p) in enumerate(zip(report.syntheses, synth_pngs, strict=True))
    )
    if report.checks:
        parts.append(_checks(report.checks))
    if report.concepts:
        parts.append(render_concepts(report.concepts))
    if report.exports:
        items = "".join(f"<li>{escape(e.cam)}: <code>{escape(e.path)}</code></li>" for e in report.exports)
        parts.append(f'<section id="exports"><h2>exports</h2><ul>{items}</ul></section>')
    parts.append(
        f'<p class="muted">report schema {SCHEMA_VERSION}; '
        f"written by camlang {escape(report.camlang_version)}</p>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _settings(m: MetricInfo) -> str:
    return "".join(f" <i>({escape(k)}: {escape(v)})</i>" for k, v in m.settings.items())


def failure_banner(failure: str) -> str:
    """The banner that names why a partial run stopped (which rank failed, and its error)."""
    return f'<p class="{_FAILURE_CLASS}">{escape(failure)}</p>'


_FAILURE_CLASS = "banner failure"


def rename_failure(page: str, failure: str) -> str:
    """``page`` (a written report.html) with its failure banner saying ``failure`` instead: the
    launcher learns the failed rank and its error only after rank 0 wrote the report."""
    start = page.find(f'<p class="{_FAILURE_CLASS}">')
    if start < 0:
        anchor = page.find("</h1>")
        if anchor < 0:
            return page
        start = end = anchor + len("</h1>")
    else:
        end = page.index("</p>", start) + len("</p>")
    return page[:start] + failure_banner(failure) + page[end:]

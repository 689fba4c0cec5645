"""The concepts part of report.html: heatmap matrices, probes, localisation, monitors and ROCs.

It renders every field `camlang.concepts` writes into a section (docs/report_schema.md, "Concept
section"), so the page shows what report.json holds: a discovered set's patches, each AUROC's
bootstrap interval, the detectors' thresholds, the requested false-positive rate beside the
realised one, the paired AUROC difference, and the PGD test's success rate and detector note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from camlang.report.html_parts import img, meta_table, plain
from camlang.report.model import ConceptSection
from camlang.report.ranking import fmt_number


def render_concepts(sections: Sequence[ConceptSection]) -> str:
    """Semantic and differential heatmaps, localisation tables, monitor tables and ROC curves."""
    out = ['<section id="concepts"><h2>concepts</h2>']
    for i, sec in enumerate(sections):
        out.append(f'<div id="concepts-{i}"><h3>{escape(sec.kind)}: {escape(sec.title)}</h3>')
        out.append(_heatmaps(sec) if sec.kind == "heatmaps" else _monitor(sec))
        out.append("</div>")
    out.append("</section>")
    return "\n".join(out)


def _concept_img(sec: ConceptSection, path: str, alt: str, cls: str = "") -> str:
    png = sec.images.get(path)
    if png is None:  # not kept in memory: link the file next to the report instead
        return f'<p class="muted">{escape(alt)}: <code>{escape(path)}</code></p>'
    return img(png, alt, cls)


def _heatmaps(sec: ConceptSection) -> str:
    d = sec.data
    source = d.get("source")
    probes = source.get("probes", []) if isinstance(source, Mapping) else []
    if isinstance(source, Mapping):
        source = {k: v for k, v in source.items() if k != "probes"}
    meta = [(k, d[k]) for k in ("concepts", "model", "data", "accuracy") if k in d] + [("source", source)]
    out = [
        meta_table(meta),
        _probe_table(probes),
        '<p class="muted">per class: P[c_i &gt; c_j] over correctly and incorrectly '
        "classified images, and their difference (correct - incorrect); the largest differential cells "
        "are listed as sentences.</p>",
    ]
    if isinstance(d.get("patches_png"), str):
        out.append("<h4>discovered concepts: top patches</h4>")
        out.append(_concept_img(sec, d["patches_png"], f"{sec.title}: top patches per concept", "grid"))
    for c in d.get("classes", []):
        out.append(f"<h4>{escape(str(c['class']))} ({c['correct']} correct, {c['incorrect']} incorrect)</h4>")
        out.append(_concept_img(sec, c["png"], f"{c['class']}: semantic and differential heatmaps", "grid"))
        if c.get("top_cells"):
            out.append("<ul>" + "".join(f"<li>{escape(str(s))}</li>" for s in c["top_cells"]) + "</ul>")
    out.append(_localisation(d.get("localisation")))
    return "\n".join(out)


def _localisation(rows: Sequence[Mapping[str, Any]] | None) -> str:
    if not rows:
        return ""
    body = "".join(
        f"<tr><th>{escape(str(r['class']))}</th><td class='num'>{r['errors']}</td>"
        f"<td class='num'>{r['encoder']}</td><td class='num'>{r['head']}</td>"
        f"<td class='num'>{fmt_number(float(r['encoder_share']))}</td></tr>"
        for r in rows
    )
    errors = sum(int(r["errors"]) for r in rows)
    encoder = sum(int(r["encoder"]) for r in rows)
    return (
        "<h4>fault localisation</h4><table><tr><th>class</th><th>errors</th><th>encoder</th>"
        f"<th>head</th><th>encoder share</th></tr>{body}</table>"
        f"<p>{encoder} of {errors} errors localised to the encoder, {errors - encoder} to the head.</p>"
    )


def _probe_table(probes: Sequence[Mapping[str, Any]]) -> str:
    """Each concept probe's held-out accuracy against chance."""
    if not probes:
        return ""
    keys = ("accuracy", "balanced_accuracy", "chance", "positives", "heldout")
    body = "".join(
        f"<tr><th>{escape(str(r.get('concept')))}</th>"
        + "".join(f"<td class='num'>{escape(plain(r.get(k)))}</td>" for k in keys)
        + "</tr>"
        for r in probes
    )
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in keys)
    return f"<table><tr><th>probe (held-out)</th>{head}</tr>{body}</table>"


#: The monitor section's own fields, in the order the page lists them.
_MONITOR_META = (
    ("monitor", "monitor"),
    ("data", "data"),
    ("fpr", "calibration FPR"),
    ("pgd_success_rate", "PGD success rate (flipped share of the correct images)"),
    ("adversarial_detector", "adversarial detector"),
)


def _monitor(sec: ConceptSection) -> str:
    d = sec.data
    out = [meta_table([(label, d[k]) for k, label in _MONITOR_META if k in d])]
    for test, entry in d.get("tests", {}).items():
        out.append(f"<h4>{escape(str(test))}</h4>" + _detector_table(entry.get("detectors", [])))
        diff = entry.get("combined_minus_msp")
        if isinstance(diff, Mapping):
            out.append(
                "<p>paired AUROC difference, combined - MSP: "
                f"{escape(_interval(diff.get('estimate'), diff.get('low'), diff.get('high')))} (95% CI)</p>"
            )
        out.append('<div class="charts">' + _concept_img(sec, entry["roc_png"], f"ROC: {test}") + "</div>")
    return "\n".join(out)


#: Detector columns after the AUROC: (JSON key, header).
_DETECTOR_COLUMNS = (
    ("tpr_at_5_fpr", "TPR@5%FPR"),
    ("threshold", "threshold"),
    ("calibrated_tpr", "calibrated TPR"),
    ("calibrated_fpr", "calibrated FPR"),
    ("requested_fpr", "requested FPR"),
)


def _detector_table(dets: Sequence[Mapping[str, Any]]) -> str:
    """One row per detector: AUROC with its bootstrap interval (best in bold), the rates, counts."""
    best = max((x["auroc"] for x in dets if x.get("auroc") is not None), default=None)
    rows = []
    for x in dets:
        auroc = fmt_number(_num(x.get("auroc")))
        if "auroc_low" in x or "auroc_high" in x:
            auroc = _interval(x.get("auroc"), x.get("auroc_low"), x.get("auroc_high"))
        cls = "num best" if best is not None and x.get("auroc") == best else "num"
        cells = "".join(
            f"<td class='num'>{fmt_number(_num(x[k])) if k in x else '-'}</td>" for k, _ in _DETECTOR_COLUMNS
        )
        rows.append(
            f"<tr><th>{escape(str(x['detector']))}</th><td class='{cls}'>{escape(auroc)}</td>{cells}"
            f"<td class='num'>{x.get('positives', '')}</td><td class='num'>{x.get('negatives', '')}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for _, h in _DETECTOR_COLUMNS)
    return (
        f"<table><tr><th>detector</th><th>AUROC</th>{head}<th>positives</th><th>negatives</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _interval(estimate: object, low: object, high: object) -> str:
    """`0.853 [0.84, 0.866]`."""
    return f"{fmt_number(_num(estimate))} [{fmt_number(_num(low))}, {fmt_number(_num(high))}]"


def _num(x: object) -> float:
    return float(x) if isinstance(x, int | float) else math.nan

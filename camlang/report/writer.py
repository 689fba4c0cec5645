"""`write_report`: report.json, report.html and the PNGs, all in one output directory.

Layout of `out_dir`:

    report.json                      schema in docs/report_schema.md
    report.html                      self-contained (the PNGs again, as data URIs)
    images/01-evaluate-1-grid.png    heatmap grid per evaluation (when visuals were given)
    images/01-evaluate-1-<metric>.png  bar chart per metric
    images/s01-<synth>-grid.png      winner vs stdlib grid, s01-<synth>-comparison.png chart
    concepts/*.png                   concept heatmap matrices and monitor ROC curves (camlang.concepts
                                     writes them; written here only when missing)

Files are written to a temporary name and renamed (`camlang.core.atomic`), so an interrupted
write never leaves a truncated report.json behind.

A run that has not finished (still running, interrupted, failed) writes its report as
`report.partial.json` and `report.partial.html` (PNGs in `images/partial/`) when the folder
already holds a complete report, so the last complete report is never replaced by a partial
one; a run that finishes writes `report.*` and removes the partial files (`PARTIAL`,
`complete_report_exists`, `remove_partial`). Each page says which of the two it is.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from camlang.core.atomic import write_atomic, write_atomic_all, write_failure
from camlang.errors import CamlangError
from camlang.report.charts import comparison_chart, metric_chart
from camlang.report.grid import png_bytes, render_grid
from camlang.report.html import render_html
from camlang.report.model import RunReport
from camlang.report.schema import dumps_report, report_to_dict


@dataclass(frozen=True)
class ReportPaths:
    """Where `write_report` put things. `images` lists every PNG, in the order they were written."""

    out_dir: Path
    json: Path
    html: Path
    images: tuple[Path, ...]


def slug(name: str) -> str:
    """A file-name-safe form of a section or metric name ("evaluate #1" -> "evaluate-1")."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return s[:48] or "section"


#: The file stem of the complete report, and of the partial report written beside it.
COMPLETE, PARTIAL = "report", "report.partial"


def _write_bytes(path: Path, data: bytes) -> None:
    """Write `path` atomically; a failure (a full disk) is a `CamlangError` naming the file."""
    try:
        write_atomic(path, data)
    except OSError as e:
        message, hint = write_failure(path, e)
        raise CamlangError(message, hint=hint) from None


def complete_report_exists(out_dir: Path) -> bool:
    """Does `out_dir` hold a readable report.json of a run that finished?"""
    try:
        doc = json.loads((Path(out_dir) / f"{COMPLETE}.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("partial") is False


def remove_partial(out_dir: Path) -> None:
    """Remove the partial report's files (after a complete report was written)."""
    out_dir = Path(out_dir)
    for suffix in (".json", ".html"):
        (out_dir / f"{PARTIAL}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(out_dir / "images" / "partial", ignore_errors=True)


def latest_partial_report(out_dir: Path) -> Path | None:
    """The JSON of the newest partial report in `out_dir` (report.partial.json, or a report.json
    marked partial), or None when there is none."""
    found = []
    for stem in (PARTIAL, COMPLETE):
        path = Path(out_dir) / f"{stem}.json"
        try:
            doc = json.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("partial") is True:
                found.append((path.stat().st_mtime, stem == PARTIAL, path))
        except (OSError, ValueError):
            continue
    return max(found)[2] if found else None


def _which(stem: str, report: RunReport) -> str:
    """The line at the top of the page that says which report this is."""
    started = f"the run of {html.escape(report.created)}"
    if stem == PARTIAL:
        return (
            f'<p class="banner which">This is {PARTIAL}.html, the partial report of {started}. '
            f'The last complete report is kept: <a href="{COMPLETE}.html">{COMPLETE}.html</a>.</p>'
        )
    if report.partial:
        return (
            f'<p class="banner which">This is {stem}.html, the partial report of {started}; '
            "no run in this folder has finished yet.</p>"
        )
    return f'<p class="muted which">This is {stem}.html, the complete report of {started}.</p>'


def _prepare(out_dir: Path, images: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise CamlangError(
            f"report directory {out_dir} exists and is not a directory",
            hint="pass another output directory or remove the file",
        )
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CamlangError(
            f"cannot create report directory {images}: {e.strerror or e}",
            hint="choose a writable output directory",
        ) from e
    return images


class PngMemo:
    """The PNGs already drawn for a run's report sections: a run rewrites its report after every
    action, and draws each grid and chart once. Keyed by the section itself (held here, so that
    its id is never reused by another object)."""

    def __init__(self) -> None:
        self._drawn: dict[tuple[int, str], tuple[object, bytes]] = {}

    def get(self, section: object, what: str, draw: Callable[[], bytes]) -> bytes:
        """The PNG `what` of `section`, drawn by `draw()` the first time."""
        hit = self._drawn.get((id(section), what))
        if hit is None or hit[0] is not section:
            hit = (section, draw())
            self._drawn[(id(section), what)] = hit
        return hit[1]


def _grid_png(visuals: Any, cams: Any, rows: int) -> bytes:
    return png_bytes(render_grid(visuals, cams, rows))


def write_report(
    out_dir: Path, report: RunReport, grid_images: int = 8, name: str = COMPLETE, memo: PngMemo | None = None
) -> ReportPaths:
    """Write report.json, report.html and PNG grids/charts for `report` into `out_dir`.

    `grid_images` caps the rows of each heatmap grid (0 writes no grids). `name` is `COMPLETE`
    or `PARTIAL` (the partial report beside a complete one, PNGs in images/partial/). `memo`
    keeps the PNGs drawn by earlier calls for the same sections. Returns the paths.
    """
    if grid_images < 0:
        raise CamlangError(f"grid_images must be 0 or more, got {grid_images}")
    if name not in (COMPLETE, PARTIAL):
        raise ValueError(f"a report is named {COMPLETE} or {PARTIAL}, not {name}")
    out_dir = Path(out_dir)
    images_dir = _prepare(out_dir, out_dir / "images" / ("partial" if name == PARTIAL else ""))
    written: list[Path] = []
    drawn = memo or PngMemo()
    key = f"grid{grid_images}"

    def save(name: str, png: bytes) -> str:
        path = images_dir / name
        _write_bytes(path, png)
        written.append(path)
        return path.relative_to(out_dir).as_posix()

    eval_rel: list[dict[str, Any]] = []
    eval_png: list[dict[str, Any]] = []
    for i, ev in enumerate(report.evaluations, start=1):
        stem = f"{i:02d}-{slug(ev.name)}"
        rel: dict[str, Any] = {"grid": None, "charts": {}}
        png: dict[str, Any] = {"grid": None, "charts": {}}
        if ev.visuals is not None and grid_images > 0:
            png["grid"] = drawn.get(ev, key, partial(_grid_png, ev.visuals, ev.cams, grid_images))
            rel["grid"] = save(f"{stem}-grid.png", png["grid"])
        for k, metric in enumerate(ev.metrics, start=1):
            chart = drawn.get(ev, f"chart-{metric.name}", partial(metric_chart, ev, metric))
            png["charts"][metric.name] = chart
            rel["charts"][metric.name] = save(f"{stem}-m{k}-{slug(metric.name)}.png", chart)
        eval_rel.append(rel)
        eval_png.append(png)

    synth_rel: list[dict[str, Any]] = []
    synth_png: list[dict[str, Any]] = []
    for i, sy in enumerate(report.syntheses, start=1):
        stem = f"s{i:02d}-{slug(sy.name)}"
        srel: dict[str, Any] = {"grid": None, "chart": None}
        spng: dict[str, Any] = {"grid": None, "chart": None}
        if sy.visuals is not None and grid_images > 0:
            spng["grid"] = drawn.get(
                sy, key, partial(_grid_png, sy.visuals, list(sy.visuals.maps), grid_images)
            )
            srel["grid"] = save(f"{stem}-grid.png", spng["grid"])
        if sy.comparison:
            compared = partial(comparison_chart, sy.objective, dict(sy.comparison))
            spng["chart"] = drawn.get(sy, "comparison", compared)
            srel["chart"] = save(f"{stem}-comparison.png", spng["chart"])
        synth_rel.append(srel)
        synth_png.append(spng)

    for sec in report.concepts:
        for concept_rel, concept_png in sec.images.items():
            path = out_dir / concept_rel
            if not path.is_file():
                _write_bytes(path, concept_png)
                written.append(path)

    json_path, html_path = out_dir / f"{name}.json", out_dir / f"{name}.html"
    doc = report_to_dict(report, eval_rel, synth_rel)
    # the page says which report it is, first thing under its title
    page = render_html(report, eval_png, synth_png).replace("</h1>", "</h1>\n" + _which(name, report), 1)
    try:  # both or neither: a full disk never leaves a new report.json beside an old report.html
        write_atomic_all([(json_path, dumps_report(doc).encode("utf-8")), (html_path, page.encode("utf-8"))])
    except OSError as e:
        message, hint = write_failure(e.filename or json_path, e)
        raise CamlangError(message, hint=hint) from None
    return ReportPaths(out_dir=out_dir, json=json_path, html=html_path, images=tuple(written))

"""`write_report`: report.json, report.html and the PNGs, all in one output directory.

Layout of `out_dir`:

    report.json                      schema in docs/report_schema.md
    report.html                      self-contained (the PNGs again, as data URIs)
    images/01-evaluate-1-grid.png    heatmap grid per evaluation (when visuals were given)
    images/01-evaluate-1-<metric>.png  bar chart per metric
    images/s01-<synth>-grid.png      winner vs stdlib grid, s01-<synth>-comparison.png chart
    concepts/*.png                   concept heatmap matrices and monitor ROC curves (camlang.concepts
                                     writes them; written here only when missing)

Files are written to a temporary name and renamed, so an interrupted write never leaves a
truncated report.json behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _prepare(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise CamlangError(
            f"report directory {out_dir} exists and is not a directory",
            hint="pass another output directory or remove the file",
        )
    images = out_dir / "images"
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CamlangError(
            f"cannot create report directory {images}: {e.strerror or e}",
            hint="choose a writable output directory",
        ) from e
    return images


def write_report(out_dir: Path, report: RunReport, grid_images: int = 8) -> ReportPaths:
    """Write report.json, report.html and PNG grids/charts for `report` into `out_dir`.

    `grid_images` caps the rows of each heatmap grid (0 writes no grids). Returns the paths.
    """
    if grid_images < 0:
        raise CamlangError(f"grid_images must be 0 or more, got {grid_images}")
    out_dir = Path(out_dir)
    images_dir = _prepare(out_dir)
    written: list[Path] = []

    def save(name: str, png: bytes) -> str:
        path = images_dir / name
        try:
            _write_bytes(path, png)
        except OSError as e:
            raise CamlangError(f"cannot write {path}: {e.strerror or e}", hint="check free disk space") from e
        written.append(path)
        return path.relative_to(out_dir).as_posix()

    eval_rel: list[dict[str, Any]] = []
    eval_png: list[dict[str, Any]] = []
    for i, ev in enumerate(report.evaluations, start=1):
        stem = f"{i:02d}-{slug(ev.name)}"
        rel: dict[str, Any] = {"grid": None, "charts": {}}
        png: dict[str, Any] = {"grid": None, "charts": {}}
        if ev.visuals is not None and grid_images > 0:
            png["grid"] = png_bytes(render_grid(ev.visuals, ev.cams, grid_images))
            rel["grid"] = save(f"{stem}-grid.png", png["grid"])
        for k, metric in enumerate(ev.metrics, start=1):
            chart = metric_chart(ev, metric)
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
            spng["grid"] = png_bytes(render_grid(sy.visuals, list(sy.visuals.maps), grid_images))
            srel["grid"] = save(f"{stem}-grid.png", spng["grid"])
        if sy.comparison:
            spng["chart"] = comparison_chart(sy.objective, dict(sy.comparison))
            srel["chart"] = save(f"{stem}-comparison.png", spng["chart"])
        synth_rel.append(srel)
        synth_png.append(spng)

    for sec in report.concepts:
        for concept_rel, concept_png in sec.images.items():
            path = out_dir / concept_rel
            if not path.is_file():
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_bytes(path, concept_png)
                except OSError as e:
                    raise CamlangError(
                        f"cannot write {path}: {e.strerror or e}", hint="check free disk space"
                    ) from e
                written.append(path)

    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    doc = report_to_dict(report, eval_rel, synth_rel)
    try:
        _write_bytes(json_path, dumps_report(doc).encode("utf-8"))
        _write_bytes(html_path, render_html(report, eval_png, synth_png).encode("utf-8"))
    except OSError as e:
        raise CamlangError(f"cannot write the report into {out_dir}: {e.strerror or e}") from e
    return ReportPaths(out_dir=out_dir, json=json_path, html=html_path, images=tuple(written))

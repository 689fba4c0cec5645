"""The concepts part of a run's report: labelled PNG heatmap matrices, sentences, tables, ROC curves.

Written into `<out>/concepts/` (PNG files, `concepts.json`, `concepts.md`); `main_sections()`
gives the same sections, PNG bytes included, for the run's report.html and report.json. Every file
goes through `camlang.core.atomic.write_atomic`: a kill or a full disk mid-write leaves the
previous file whole, never a truncated one.
"""

from __future__ import annotations

import copy
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from camlang.concepts.bootstrap import Evidence, Interval  # noqa: E402
from camlang.concepts.discover import PatchGrid  # noqa: E402
from camlang.concepts.heatmaps import SemanticHeatmaps, top_cells  # noqa: E402
from camlang.concepts.localise import Localisation  # noqa: E402
from camlang.concepts.roc import DetectorResult  # noqa: E402
from camlang.core.atomic import write_atomic, write_failure  # noqa: E402
from camlang.errors import CamlangError  # noqa: E402
from camlang.report.model import ConceptSection  # noqa: E402

#: Where the concept PNGs lie, relative to the run's output folder.
FOLDER = "concepts"


@dataclass
class ConceptReport:
    """Accumulates the concept sections of one run and rewrites the files after each action."""

    out_dir: Path
    sections: list[dict[str, Any]] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    #: PNG bytes by file name (relative to `folder`), kept for the main report's HTML.
    pngs: dict[str, bytes] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.out_dir / FOLDER

    def _save(self, fig: Figure, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.pngs[name] = buffer.getvalue()
        _write(self.folder / name, self.pngs[name])
        return name

    def save_patches(self, title: str, grid: PatchGrid, names: tuple[str, ...]) -> str:
        """A PNG of each discovered concept's top patches (one row per concept); its file name."""
        k, t = grid.pixels.shape[:2]
        fig, axes = plt.subplots(k, t, figsize=(0.9 * t + 0.8, 0.9 * k), squeeze=False)
        for c in range(k):
            for j in range(t):
                ax = axes[c][j]
                ax.imshow(grid.pixels[c, j].permute(1, 2, 0).clamp(0, 1).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
            axes[c][0].set_ylabel(names[c], fontsize=8)
        fig.suptitle(f"{title}: top patches per discovered concept", fontsize=9)
        return self._save(fig, f"{_slug(title)}-patches.png")

    def main_sections(self) -> tuple[ConceptSection, ...]:
        """The sections for the run's main report: PNG paths made relative to the output folder."""
        out = []
        for section in self.sections:
            data = copy.deepcopy(section)
            names = [c["png"] for c in data.get("classes", [])] + [
                t["roc_png"] for t in data.get("tests", {}).values()
            ]
            if "patches_png" in data:
                names.append(data["patches_png"])
                data["patches_png"] = f"{FOLDER}/{data['patches_png']}"
            for c in data.get("classes", []):
                c["png"] = f"{FOLDER}/{c['png']}"
            for test in data.get("tests", {}).values():
                test["roc_png"] = f"{FOLDER}/{test['roc_png']}"
            images = {f"{FOLDER}/{name}": self.pngs[name] for name in names}
            out.append(ConceptSection(data["kind"], data["title"], data, images))
        return tuple(out)

    def add_heatmaps(
        self, title: str, heat: SemanticHeatmaps, loc: Localisation | None, extra: dict[str, Any]
    ) -> None:
        """Per class: correct, incorrect and differential matrices, top cells as sentences; localisation."""
        stem = _slug(title)
        classes: list[dict[str, Any]] = []
        lines = [f"## Semantic heatmaps: {title}", ""]
        if "patches_png" in extra:
            lines += [
                "Discovered concepts, each shown by the image patches where it is strongest:",
                "",
                f"![discovered concepts]({extra['patches_png']})",
                "",
            ]
        for c, name in enumerate(heat.classes):
            png = self._save(_matrices(heat, c), f"{stem}-{_slug(name)}.png")
            cells = top_cells(heat, c, 3)
            classes.append(
                {
                    "class": name,
                    "correct": int(heat.n_correct[c]),
                    "incorrect": int(heat.n_incorrect[c]),
                    "png": png,
                    "top_cells": [cell.sentence() for cell in cells],
                }
            )
            lines += (
                [
                    f"### {name} ({int(heat.n_correct[c])} correct, {int(heat.n_incorrect[c])} incorrect)",
                    "",
                    f"![{name}]({png})",
                    "",
                ]
                + [f"- {cell.sentence()}" for cell in cells]
                + [""]
            )
        section: dict[str, Any] = {"kind": "heatmaps", "title": title, "classes": classes, **extra}
        if loc is not None:
            rows = loc.table()
            section["localisation"] = rows
            lines += [
                "### Fault localisation",
                "",
                "| class | errors | encoder | head |",
                "|---|---|---|---|",
            ]
            lines += [f"| {r['class']} | {r['errors']} | {r['encoder']} | {r['head']} |" for r in rows]
            lines += ["", f"{loc.encoder_share():.1%} of {loc.errors} errors localised to the encoder.", ""]
        self.sections.append(section)
        self.markdown += lines
        self.write()

    def add_monitor(
        self,
        title: str,
        results: dict[str, list[DetectorResult]],
        extra: dict[str, Any],
        evidence: dict[str, Evidence] | None = None,
    ) -> None:
        """ROC curves and a table of every detector on every test set.

        With `evidence`, each AUROC has its bootstrap interval, each test set the paired AUROC
        difference of the combined detector against MSP, and the realised FPR on the test set
        stands beside the requested one.
        """
        stem = _slug(title)
        evidence = evidence or {}
        lines = [
            f"## Monitor: {title}",
            "",
            "| test set | detector | AUROC [95% CI] | TPR@5%FPR | calibrated TPR | FPR asked / realised |",
            "|---|---|---|---|---|---|",
        ]
        section: dict[str, Any] = {"kind": "monitor", "title": title, "tests": {}, **extra}
        for test, rows in results.items():
            fig, ax = plt.subplots(figsize=(4, 4))
            for r in rows:
                ax.plot(r.roc[0], r.roc[1], label=f"{r.detector} (AUROC {r.auroc:.2f})")
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set_xlabel("false-positive rate")
            ax.set_ylabel("true-positive rate")
            ax.set_title(f"{title}: {test}")
            ax.legend(fontsize=7)
            png = self._save(fig, f"{stem}-{_slug(test)}-roc.png")
            ev = evidence.get(test)
            section["tests"][test] = {
                "roc_png": png,
                "detectors": [
                    {
                        "detector": r.detector,
                        "auroc": _num(r.auroc),
                        "tpr_at_5_fpr": r.tpr_at_5_fpr,
                        "threshold": _num(r.threshold),
                        "calibrated_tpr": r.calibrated_tpr,
                        "calibrated_fpr": r.calibrated_fpr,
                        "positives": r.positives,
                        "negatives": r.negatives,
                        **_interval_fields(ev, r.detector),
                    }
                    for r in rows
                ],
            }
            lines += [_monitor_row(test, r, ev) for r in rows]
            if ev is not None and ev.difference is not None:
                d = ev.difference
                section["tests"][test]["combined_minus_msp"] = _interval_json(d)
                verdict = "above zero" if d.excludes_zero() else "not above zero"
                lines.append(f"\nPaired AUROC difference, combined - MSP: {d.text()} (95% CI {verdict}).\n")
            lines.append(f"\n![ROC {test}]({png})\n")
        self.sections.append(section)
        self.markdown += lines + [""]
        self.write()

    def write(self) -> None:
        """(Re)write concepts.json and concepts.md, each whole or not at all."""
        _write(self.folder / "concepts.json", json.dumps({"sections": self.sections}, indent=2))
        _write(self.folder / "concepts.md", "# Concepts\n\n" + "\n".join(self.markdown))


def _write(path: Path, data: bytes | str) -> None:
    """Replace `path` atomically (a kill mid-write leaves the old file); a failed write (a full
    disk) is a `CamlangError` naming the file."""
    try:
        write_atomic(path, data)
    except OSError as e:
        message, hint = write_failure(path, e)
        raise CamlangError(message, hint=hint) from None


def _matrices(heat: SemanticHeatmaps, c: int) -> Figure:
    k = len(heat.concepts)
    fig, axes = plt.subplots(1, 3, figsize=(3 * (2 + 0.35 * k), 2 + 0.35 * k))
    panels = [
        ("correct", heat.correct[c], "viridis", (0, 1)),
        ("incorrect", heat.incorrect[c], "viridis", (0, 1)),
        ("differential (correct - incorrect)", heat.differential[c], "coolwarm", (-1, 1)),
    ]
    for ax, (label, mat, cmap, (lo, hi)) in zip(axes, panels):
        ax.imshow(torch.nan_to_num(mat, nan=0.0).numpy(), cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks(range(k), heat.concepts, rotation=90, fontsize=7)
        ax.set_yticks(range(k), heat.concepts, fontsize=7)
        ax.set_title(f"{heat.classes[c]}: {label}", fontsize=8)
        ax.set_xlabel("c_j")
        ax.set_ylabel("c_i (cell: P[c_i > c_j])")
    fig.tight_layout()
    return fig


def _monitor_row(test: str, r: DetectorResult, ev: Evidence | None) -> str:
    ci = ev.intervals.get(r.detector) if ev is not None else None
    auc = f"{r.auroc:.3f}" if ci is None or ci.resamples == 0 else ci.text()
    fpr = f"{r.calibrated_fpr:.3f}" if ev is None else f"{ev.requested_fpr:.3f} / {r.calibrated_fpr:.3f}"
    return f"| {test} | {r.detector} | {auc} | {r.tpr_at_5_fpr:.3f} | {r.calibrated_tpr:.3f} | {fpr} |"


def _interval_json(ci: Interval) -> dict[str, float | None]:
    return {"estimate": _num(ci.estimate), "low": _num(ci.low), "high": _num(ci.high)}


def _interval_fields(ev: Evidence | None, detector: str) -> dict[str, Any]:
    if ev is None:
        return {}
    ci = ev.intervals.get(detector)
    out: dict[str, Any] = {"requested_fpr": ev.requested_fpr}
    if ci is not None:
        out["auroc_low"], out["auroc_high"] = _num(ci.low), _num(ci.high)
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "x"


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x

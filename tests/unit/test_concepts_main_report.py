"""The concept results (heatmaps, localisation, monitor) appear in the run's report.html and
report.json, built from a small concept result, as `camlang run` does after each concept action."""

from __future__ import annotations

import base64
import json
import re
from html import escape
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from camlang.concepts.heatmaps import semantic_heatmaps, top_cells
from camlang.concepts.localise import fit_localiser, localise
from camlang.concepts.monitor import DETECTORS
from camlang.concepts.report import ConceptReport
from camlang.concepts.roc import evaluate_detector
from camlang.errors import CamlangError
from camlang.report import RunReport, validate_report_dict, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONCEPTS = ("red", "blue", "small")
CLASSES = ("circle", "square")
PROBES = {
    "kind": "probes",
    "layer": "features.3",
    "concepts": list(CONCEPTS),
    "probes": [
        {
            "concept": c,
            "accuracy": 0.9,
            "balanced_accuracy": 0.85,
            "chance": 0.5,
            "positives": 7,
            "heldout": 20,
        }
        for c in CONCEPTS
    ],
}


def _concept_report(out: Path) -> ConceptReport:
    """Heatmaps with localisation and a monitor over 40 seeded images, into `out/concepts/`."""
    scores, labels, predictions, _, _ = _inputs()
    heat = semantic_heatmaps(*_inputs())
    correct = predictions == labels
    loc = localise(fit_localiser(heat, scores, labels, correct), scores, labels, predictions)
    report = ConceptReport(out)
    report.add_heatmaps(
        "truth on net, test",
        heat,
        loc,
        {"concepts": "truth", "model": "net", "data": "test", "source": PROBES, "accuracy": 0.8},
    )
    detector_scores = torch.randn(40, generator=torch.Generator().manual_seed(1)) + (~correct).float()
    rows = [evaluate_detector(d, detector_scores + 0.1 * i, ~correct, 0.5) for i, d in enumerate(DETECTORS)]
    report.add_monitor(
        "watch on test", {"misclassified in test": rows}, {"monitor": "watch", "data": "test", "fpr": 0.05}
    )
    return report


def _run_report(concepts: ConceptReport) -> RunReport:
    return RunReport(
        "0", "concepts.cam", "2026-01-01T00:00:00+00:00", 0, "cpu", concepts=concepts.main_sections()
    )


def test_report_html_and_json_hold_the_concept_sections(tmp_path: Path) -> None:
    concepts = _concept_report(tmp_path)
    paths = write_report(tmp_path, _run_report(concepts))
    html = paths.html.read_text(encoding="utf-8")
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    validate_report_dict(doc)

    assert '<section id="concepts">' in html and '<a href="#concepts">' in html
    assert "probe (held-out)" in html and "features.3" in html and "<td class='num'>0.85</td>" in html
    heat, monitor = doc["concepts"]
    assert heat["kind"] == "heatmaps" and monitor["kind"] == "monitor"
    # one labelled PNG matrix per class, a file next to the report and the same bytes embedded in the HTML
    embedded = {
        base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    }
    assert [c["class"] for c in heat["classes"]] == list(CLASSES)
    for c in heat["classes"]:
        png = (tmp_path / c["png"]).read_bytes()
        assert c["png"].startswith("concepts/") and png.startswith(PNG_MAGIC) and png in embedded
        assert c["top_cells"] and all(escape(sentence) in html for sentence in c["top_cells"])
        assert f"{c['class']} ({c['correct']} correct, {c['incorrect']} incorrect)" in html
    # the sentences are the differential heatmap's top cells
    heat_again = semantic_heatmaps(*_inputs())
    assert heat["classes"][0]["top_cells"] == [cell.sentence() for cell in top_cells(heat_again, 0, 3)]
    # localisation table: every error counted once
    rows = heat["localisation"]
    assert sum(r["errors"] for r in rows) == 8 and all(r["encoder"] + r["head"] == r["errors"] for r in rows)
    assert "fault localisation" in html and f"of {8} errors localised to the encoder" in html
    # the monitor table: every detector with AUROC and TPR@5%FPR, and the ROC curve
    (test,) = monitor["tests"].values()
    assert [d["detector"] for d in test["detectors"]] == ["monitor", "msp", "energy", "combined"]
    assert all(0.0 <= d["auroc"] <= 1.0 and 0.0 <= d["tpr_at_5_fpr"] <= 1.0 for d in test["detectors"])
    assert "<th>AUROC</th><th>TPR@5%FPR</th>" in html and "combined" in html
    assert (tmp_path / test["roc_png"]).read_bytes() in embedded
    # the concepts/ folder output is unchanged: paths there stay relative to it
    side = json.loads((tmp_path / "concepts" / "concepts.json").read_text())
    assert side["sections"][0]["classes"][0]["png"] == Path(heat["classes"][0]["png"]).name


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...], tuple[str, ...]]:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(40, len(CONCEPTS), generator=gen)
    labels = torch.arange(40) % 2
    predictions = labels.clone()
    predictions[:8] = 1 - predictions[:8]  # 4 errors per class
    return scores, labels, predictions, CONCEPTS, CLASSES


def test_writer_restores_missing_concept_pngs_in_another_folder(tmp_path: Path) -> None:
    concepts = _concept_report(tmp_path / "run")
    paths = write_report(tmp_path / "copy", _run_report(concepts))
    doc = json.loads(paths.json.read_text())
    for c in doc["concepts"][0]["classes"]:
        assert (tmp_path / "copy" / c["png"]).read_bytes() == (tmp_path / "run" / c["png"]).read_bytes()


def test_a_report_without_concepts_still_validates_and_a_bad_section_is_named(tmp_path: Path) -> None:
    doc = json.loads(write_report(tmp_path, RunReport("0", "a.cam", "now", 0, "cpu")).json.read_text())
    assert doc["concepts"] == [] and '<section id="concepts">' not in (tmp_path / "report.html").read_text()
    del doc["concepts"]
    validate_report_dict(doc)  # reports written before the key existed stay readable
    doc["concepts"] = [{"kind": "monitor", "title": "m"}]
    with pytest.raises(CamlangError, match=r"concepts\[0\]: missing key 'tests'"):
        validate_report_dict(doc)


def test_run_hook_puts_sections_into_the_state_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_concept_action` hands the run state's report the concept sections after each action."""
    import dataclasses

    from camlang.concepts import run_hook
    from camlang.frontend import syntax as s

    concepts = _concept_report(tmp_path)

    class State(SimpleNamespace):
        def update_report(self, **changes: object) -> None:
            self.report = dataclasses.replace(self.report, **changes)

    state = State(
        is_main=True,
        concepts=(object(), concepts),
        report=RunReport("0", "a.cam", "now", 0, "cpu"),
        console=None,
        options=SimpleNamespace(out_dir=tmp_path),
    )
    monkeypatch.setattr(run_hook, "run_watch", lambda *args: None)
    action = s.Watch.__new__(s.Watch)
    assert run_hook.run_concept_action(state, action) is None
    assert [sec.kind for sec in state.report.concepts] == ["heatmaps", "monitor"]

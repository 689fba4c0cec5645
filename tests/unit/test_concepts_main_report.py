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

from camlang.concepts.discover import PatchGrid
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


def _full_concept_report(out: Path) -> ConceptReport:
    """Every field the concept actions can write: discovered patches, AUROC intervals, the
    requested FPR, the paired difference, and the PGD test's success rate and detector note."""
    from camlang.concepts.bootstrap import Evidence, Interval

    report = _concept_report(out)
    patches = report.save_patches("found", _grid(), CONCEPTS)
    scores, labels, predictions, _, _ = _inputs()
    heat = semantic_heatmaps(*_inputs())
    extra = {"concepts": "found", "model": "net", "data": "test", "source": {"kind": "discovered"}}
    report.add_heatmaps("found on net, test", heat, None, {**extra, "patches_png": patches})
    wrong = predictions != labels
    rows = [evaluate_detector(d, torch.randn(40) + wrong.float(), wrong, 0.5) for d in DETECTORS]
    ci = {d: Interval(0.7, 0.61, 0.79, 0.95, 100) for d in DETECTORS}
    evidence = Evidence(ci, Interval(0.05, 0.012, 0.093, 0.95, 100), 0.05)
    extra = {
        "monitor": "watch",
        "data": "test",
        "fpr": 0.05,
        "pgd_success_rate": 0.625,
        "adversarial_detector": "fitted on FGSM L-inf 8/255, not on the test attack",
    }
    report.add_monitor(
        "watch on pgd", {"PGD eps=0.03 on test": rows}, extra, {"PGD eps=0.03 on test": evidence}
    )
    return report


def test_report_html_renders_every_concept_field_report_json_holds(tmp_path: Path) -> None:
    paths = write_report(tmp_path, _run_report(_full_concept_report(tmp_path)))
    html = paths.html.read_text(encoding="utf-8")
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    validate_report_dict(doc)
    _, _, found, monitor = doc["concepts"]
    # a discovered set's patches: the PNG file beside the report, embedded in the page
    assert found["patches_png"] == "concepts/found-patches.png"
    embedded = {
        base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    }
    assert (tmp_path / found["patches_png"]).read_bytes() in embedded and "top patches" in html
    # the PGD test's section fields and every detector field
    assert monitor["pgd_success_rate"] == 0.625 and "PGD success rate" in html and "0.625" in html
    assert escape(monitor["adversarial_detector"]) in html
    (test,) = monitor["tests"].values()
    det = test["detectors"][0]
    assert {"threshold", "requested_fpr", "auroc_low", "auroc_high"} <= set(det)
    assert "<th>threshold</th>" in html and "<th>requested FPR</th>" in html
    assert f"{det['auroc']:.4g} [0.61, 0.79]" in html  # each AUROC with its bootstrap interval
    assert f"<td class='num'>{det['threshold']:.4g}</td>" in html
    assert test["combined_minus_msp"] == {"estimate": 0.05, "low": 0.012, "high": 0.093}
    assert "combined - MSP: 0.05 [0.012, 0.093]" in html
    # a monitor written without evidence shows a dash where it has no requested FPR
    assert "<td class='num'>-</td>" in html


def test_concept_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write (here a full disk half-way through concepts.json) leaves the previous
    concepts.json whole and no temporary beside it, and is a user error naming the file."""
    import errno
    import os

    report = _concept_report(tmp_path)
    folder = tmp_path / "concepts"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    json.loads(before["concepts.json"])
    real = os.write

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 64:
            real(fd, bytes(data[:64]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    report.sections.append({"kind": "monitor", "title": "more", "tests": {}})
    with pytest.raises(CamlangError, match=r"the disk is full: cannot write .*concepts\.json"):
        report.write()
    with pytest.raises(CamlangError, match=r"cannot write .*\.png"):
        report.save_patches("x", _grid(), CONCEPTS)
    monkeypatch.setattr(os, "write", real)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # old files, no temporaries


def _grid() -> PatchGrid:
    """Two random 4x4 patches for each of the three concepts."""
    return PatchGrid(torch.rand(3, 2, 3, 4, 4), torch.zeros(3, 2), torch.zeros(3, 2, 2), torch.ones(3, 2))

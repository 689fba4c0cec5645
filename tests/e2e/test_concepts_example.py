"""End-to-end: examples/concepts.cam writes the concepts report, in under 3 minutes, and the
probe-layer mistake (which needs the model, so it is found at run time) is a clear diagnostic."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from camlang.cli import main
from camlang.data.shapes import COLOUR_FAMILIES, SHAPE_CLASSES
from camlang.report import validate_report_dict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def concepts_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("concepts")
    started = time.perf_counter()
    assert main(["run", str(ROOT / "examples" / "concepts.cam"), "--out", str(out)]) == 0
    return out, time.perf_counter() - started


def test_example_writes_heatmaps_localisation_and_roc(concepts_out: tuple[Path, float]) -> None:
    out, seconds = concepts_out
    print(f"examples/concepts.cam took {seconds:.1f} s")
    assert seconds < 180
    report = json.loads((out / "concepts" / "concepts.json").read_text())
    heatmaps = [s for s in report["sections"] if s["kind"] == "heatmaps"]
    monitors = [s for s in report["sections"] if s["kind"] == "monitor"]
    assert [h["concepts"] for h in heatmaps] == ["truth", "seen"] and len(monitors) == 1
    for h in heatmaps:
        assert [c["class"] for c in h["classes"]] == list(SHAPE_CLASSES)
        for c in h["classes"]:
            assert (out / "concepts" / c["png"]).stat().st_size > 1000
            assert c["incorrect"] >= 20 and c["top_cells"]
            assert any(colour in c["top_cells"][0] for colour in COLOUR_FAMILIES), c["top_cells"][0]
        rows = h["localisation"]
        assert sum(r["errors"] for r in rows) == sum(c["incorrect"] for c in h["classes"])
        assert all(r["encoder"] + r["head"] == r["errors"] for r in rows)
    (monitor,) = monitors
    assert len(monitor["tests"]) == 2  # misclassifications and PGD examples
    for test in monitor["tests"].values():
        assert (out / "concepts" / test["roc_png"]).is_file()
        assert [d["detector"] for d in test["detectors"]] == ["monitor", "msp", "energy", "combined"]
    md = (out / "concepts" / "concepts.md").read_text()
    assert "held" in md and "| class | errors | encoder | head |" in md and "AUROC" in md


def test_example_report_html_and_json_show_the_concepts(concepts_out: tuple[Path, float]) -> None:
    out, _ = concepts_out
    doc = json.loads((out / "report.json").read_text())
    validate_report_dict(doc)
    side = json.loads((out / "concepts" / "concepts.json").read_text())["sections"]
    assert [(s["kind"], s["title"]) for s in doc["concepts"]] == [(s["kind"], s["title"]) for s in side]
    html = (out / "report.html").read_text()
    assert '<section id="concepts">' in html and "fault localisation" in html and "TPR@5%FPR" in html
    for section in doc["concepts"]:
        for png in [c["png"] for c in section.get("classes", [])] + [
            t["roc_png"] for t in section.get("tests", {}).values()
        ]:
            data = (out / png).read_bytes()
            assert base64.b64encode(data).decode("ascii") in html, png


def test_probe_on_a_layer_without_spatial_or_vector_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cam = tmp_path / "bad_layer.cam"
    cam.write_text(
        'model vit = torchvision("vit_b_16", weights = none)\n'
        "data a = synthetic_shapes(count = 2, size = 224, seed = 1)\n"
        "data b = synthetic_shapes(count = 2, size = 224, seed = 2)\n"
        'concepts seen = probes(vit, a, b, layer = "encoder.layers.encoder_layer_0", concepts = ["red", "blue"])\n'
        "heatmaps seen on vit, b\n"
    )
    assert main(["run", str(cam), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error[E821]" in err and f"{cam}:4:1" in err
    assert "has output shape (2, 197, 768); a concept probe needs spatial output" in err
    assert "Traceback" not in err

"""End-to-end: every example checks, and the quickstart and BanditNet examples run."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from camlang.cli import main

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXAMPLES = sorted((ROOT / "examples").glob("*.cam"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_checks(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(example)]) == 0, capsys.readouterr().err
    assert ": ok (" in capsys.readouterr().out


@pytest.fixture(scope="module")
def quickstart_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quickstart")
    started = time.perf_counter()
    assert main(["run", str(ROOT / "examples" / "quickstart.cam"), "--out", str(out)]) == 0
    print(f"quickstart took {time.perf_counter() - started:.1f} s")
    return out


def test_quickstart_runs_and_writes_the_report(quickstart_out: Path) -> None:
    tmp_path = quickstart_out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["partial"] is False
    (evaluation,) = report["evaluations"]
    cams = evaluation["cams"]
    assert len(cams) == 11 and "best" in cams
    assert len(evaluation["metrics"]) >= 6
    for cam in cams:
        for metric in evaluation["metrics"]:
            cell = evaluation["table"][cam][metric["name"]]
            assert cell["n"] == 64
            assert cell["nan_count"] == 0
    (synthesis,) = report["syntheses"]
    assert synthesis["candidates"], "the synthesis reports its top candidates"
    verdicts = {c["property"]: c["status"] for c in report["checks"]}
    assert verdicts == {"same": "violated", "robust_bandit": "holds"}
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "http://" not in html and "https://" not in html
    exported = tmp_path / "best_cam.py"
    assert exported.exists()
    spec = importlib.util.spec_from_file_location("best_cam", exported)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = next(
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__
    )
    from camlang.data import synthetic_shapes
    from camlang.models import load_demo_model

    model = load_demo_model().module
    maps = cls(model, model.features[6])(synthetic_shapes(2, 64, seed=5).get([0, 1]).x)
    assert maps.shape == (2, 64, 64) and float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH")
def test_quickstart_report_renders_in_chromium(quickstart_out: Path, tmp_path: Path) -> None:
    """Open the real report in headless Chromium and count broken images."""
    from tests.e2e.test_report_browser import COUNT_IMAGES

    assert CHROMIUM is not None
    chromium = CHROMIUM
    report = quickstart_out / "report.html"
    check = tmp_path / "check.html"
    check.write_text(report.read_text(encoding="utf-8").replace("</body>", COUNT_IMAGES + "</body>"))
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            check.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = re.search(r'<body data-img-total="(\d+)" data-img-broken="(\d+)"', proc.stdout)
    assert body is not None, "the page's load handler did not run: " + proc.stderr[-500:]
    assert int(body.group(1)) >= 10 and int(body.group(2)) == 0, body.groups()


def test_banditnet_verdicts(tmp_path: Path) -> None:
    assert main(["run", str(ROOT / "examples" / "banditnet.cam"), "--out", str(tmp_path)]) == 0
    checks = {c["property"]: c for c in json.loads((tmp_path / "report.json").read_text())["checks"]}
    for name in ("sr_050", "sr_075", "sr_100", "sr_125", "sr_150", "local", "local_z3"):
        assert checks[name]["status"] == "holds", checks[name]
    violated = checks["sr_200"]
    assert violated["status"] == "violated"
    assert violated["counterexample"], "a violation carries its (replayed) counterexample"

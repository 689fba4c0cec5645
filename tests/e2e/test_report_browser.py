"""Render report.html in headless Chromium: every <img> decodes and the page is not blank.

Skipped (with the reason) when no `chromium` / `chromium-browser` is on PATH. The page itself
has no scripts; for the image check a copy gets a tiny inline script that counts images whose
`naturalWidth` is 0 once the page has loaded and writes the counts onto <body> for --dump-dom.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camlang.report import write_report
from camlang.report.sample import sample_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH")

COUNT_IMAGES = (
    "<script>window.addEventListener('load', function () {"
    " var im = document.images, broken = 0;"
    " for (var i = 0; i < im.length; i++) { if (!im[i].complete || im[i].naturalWidth === 0) broken++; }"
    " document.body.setAttribute('data-img-total', im.length);"
    " document.body.setAttribute('data-img-broken', broken); });</script>"
)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("browser")
    paths = write_report(out, sample_report(), grid_images=4)
    return out, len(paths.images)


def test_every_image_loads(report_dir: tuple[Path, int], tmp_path: Path) -> None:
    out, n_images = report_dir
    html = (out / "report.html").read_text(encoding="utf-8")
    check = tmp_path / "check.html"
    check.write_text(html.replace("</body>", COUNT_IMAGES + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", check.as_uri()).stdout
    body = re.search(r'<body data-img-total="(\d+)" data-img-broken="(\d+)"', dom)
    assert body is not None, "the load handler did not run: " + dom[:300]
    assert int(body.group(1)) == n_images == 7
    assert int(body.group(2)) == 0


def test_screenshot_is_not_blank(report_dir: tuple[Path, int], tmp_path: Path) -> None:
    out, _ = report_dir
    shot = tmp_path / "shot.png"
    _chromium(
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        (out / "report.html").as_uri(),
    )
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2400, 1280)
    # text, tables, orange "best" bars and jet overlays: many distinct colours, far from uniform
    assert img.std() > 20
    assert len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 500
    orange = (np.abs(img - np.array([0xD9, 0x82, 0x2B])).sum(axis=-1) < 30).sum()
    assert orange > 1000, "the highlighted best bar of a metric chart is not visible"


# ---- the quickstart's real report ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
JS_ERROR = re.compile(r"CONSOLE\(\d+\)\].*(Uncaught|Error)|Uncaught \w*Error")


@pytest.fixture(scope="module")
def quickstart_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's report.html: the one .ci/run writes before the tests, or a fresh run."""
    ci_report = ROOT / "camlang-out" / "ci-quickstart" / "report.html"
    if ci_report.is_file():
        return ci_report
    from camlang.cli import main

    out = tmp_path_factory.mktemp("quickstart-browser")
    assert main(["run", str(ROOT / "examples" / "quickstart.cam"), "--out", str(out)]) == 0
    return out / "report.html"


def _logged_js_errors(page: Path, profile: Path) -> list[str]:
    proc = _chromium(
        profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()
    )
    return [line for line in proc.stderr.splitlines() if JS_ERROR.search(line)]


def test_quickstart_report_images_load_and_no_js_errors(quickstart_report: Path, tmp_path: Path) -> None:
    html = quickstart_report.read_text(encoding="utf-8")
    n_img = html.count("<img ")
    check = quickstart_report.parent / "browser-check.html"  # same folder: relative image paths still resolve
    check.write_text(html.replace("</body>", COUNT_IMAGES + "</body>"), encoding="utf-8")
    try:
        dom = _chromium(
            tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", check.as_uri()
        ).stdout
    finally:
        check.unlink()
    body = re.search(r'<body data-img-total="(\d+)" data-img-broken="(\d+)"', dom)
    assert body is not None, "the load handler did not run: " + dom[:300]
    assert int(body.group(1)) == n_img >= 3
    assert int(body.group(2)) == 0, f"{body.group(2)} of {n_img} images did not load"
    assert _logged_js_errors(quickstart_report, tmp_path / "profile2") == []


def test_js_error_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefined_function_x();</script></body></html>", encoding="utf-8")
    errors = _logged_js_errors(page, tmp_path / "profile")
    assert errors and "undefined_function_x" in " ".join(errors)


def test_quickstart_report_screenshot(quickstart_report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "quickstart.png"
    _chromium(
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=1280,3000",
        f"--screenshot={shot}",
        quickstart_report.as_uri(),
    )
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (3000, 1280)
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 500
    assert "cam definitions" in quickstart_report.read_text(encoding="utf-8")

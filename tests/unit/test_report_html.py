"""report.html is self-contained: every PNG embedded as a data URI, nothing fetched from outside."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from camlang.report import CheckResult, write_report
from camlang.report.sample import sample_report

DATA_URI = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    out = tmp_path_factory.mktemp("html")
    paths = write_report(out, sample_report(), grid_images=2)
    return paths.html.read_text(encoding="utf-8"), list(paths.images)


def test_every_png_is_embedded_as_a_data_uri(page: tuple[str, list[Path]]) -> None:
    html, images = page
    embedded = [base64.b64decode(m) for m in DATA_URI.findall(html)]
    assert len(images) == 7
    assert sorted(embedded) == sorted(p.read_bytes() for p in images)
    for png in embedded:
        assert Image.open(io.BytesIO(png)).format == "PNG"
    assert html.count("<img") == len(embedded)


def test_no_external_references(page: tuple[str, list[Path]]) -> None:
    html, _ = page
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.findall(r'src="([^"]*)"', html) and all(
        s.startswith("data:") for s in re.findall(r'src="([^"]*)"', html)
    )


def test_metric_table_marks_best_and_nan(page: tuple[str, list[Path]]) -> None:
    html, _ = page
    assert "NaN (4 of 4)" in html and "#3 (NaN)" in html
    # gradcam is best on pointing_game: its cell is bold (class best)
    assert re.search(r'<td class="num best">1 ± 0<span class="rank">#1', html)
    assert html.count('class="num nan"') == 1


def test_sections_present(page: tuple[str, list[Path]]) -> None:
    html, _ = page
    for text in (
        "evaluate #1",
        "synthesize best_deletion",
        "top 3 candidates",
        "distinct after semantic",
        "30400 (127x more)",
        'id="checks"',
        'class="violated"',
        'class="holds"',
        'class="unknown"',
        "warnings",
        "made up for tests",
        "out/gradcam_module.py",
    ):
        assert text in html, text
    assert "partial (interrupted)" not in html


def test_synthesis_shows_the_time_split(page: tuple[str, list[Path]]) -> None:
    html, _ = page
    assert "<h3>time</h3>" in html and "time = 20 s; holdout comparison 35% of time" in html
    for phase, planned, spent in (
        ("search", "11.00", "2.10"),
        ("tuning", "2.00", "0.30"),
        ("holdout comparison", "7.00", "1.10"),
        ("total", "20.00", "3.50"),
    ):
        assert f"<tr><th>{phase}</th><td class='num'>{planned}</td><td class='num'>{spent}</td></tr>" in html


def test_partial_report_is_marked(tmp_path: Path) -> None:
    paths = write_report(tmp_path, sample_report(partial=True), grid_images=1)
    html = paths.html.read_text(encoding="utf-8")
    assert 'class="banner"' in html and html.count("partial (interrupted)") >= 3


def test_failure_banner_is_renamed_after_the_launcher_learns_the_rank(tmp_path: Path) -> None:
    from camlang.report.html import rename_failure

    report = replace(sample_report(partial=True), failure="a worker failed or was lost (stopped)")
    page = write_report(tmp_path, report, grid_images=0).html.read_text(encoding="utf-8")
    assert "a worker failed or was lost" in page
    renamed = rename_failure(page, "worker rank 1 failed (killed by signal SIGKILL) <&>")
    assert "a worker failed or was lost" not in renamed
    assert "worker rank 1 failed (killed by signal SIGKILL) &lt;&amp;&gt;" in renamed
    assert renamed.replace(
        "worker rank 1 failed (killed by signal SIGKILL) &lt;&amp;&gt;", ""
    ) == page.replace("a worker failed or was lost (stopped)", "")
    # a report written without any failure gets the banner under its title
    plain = write_report(tmp_path / "b", sample_report(partial=True), grid_images=0).html.read_text(
        encoding="utf-8"
    )
    assert "rank 2 failed" in rename_failure(plain, "rank 2 failed")


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    report = sample_report()
    evil = CheckResult("<script>alert(1)</script>", "k", "holds", "z3", 0.1, reason="a & b")
    report = replace(report, checks=[evil], warnings=["<b>raw</b>"])
    html = write_report(tmp_path, report, grid_images=0).html.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html and "a &amp; b" in html


def test_grid_images_zero_writes_no_grids(tmp_path: Path) -> None:
    paths = write_report(tmp_path, sample_report(), grid_images=0)
    assert not any("grid" in p.name for p in paths.images)
    assert len(DATA_URI.findall(paths.html.read_text(encoding="utf-8"))) == len(paths.images) == 5


def test_empty_report_and_empty_evaluation(tmp_path: Path) -> None:
    empty = replace(sample_report(), evaluations=[], syntheses=[], checks=[], exports=[], warnings=[])
    paths = write_report(tmp_path / "a", empty)
    assert paths.images == () and "<img" not in paths.html.read_text(encoding="utf-8")
    ev = replace(sample_report().evaluations[1], cams=[], table={})
    paths = write_report(tmp_path / "b", replace(empty, evaluations=[ev]))
    assert len(paths.images) == 1  # the (empty) chart of its one metric

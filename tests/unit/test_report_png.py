"""PNG grids and charts: written, readable by PIL, with the layout, outlines and NaN tiles promised."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlang.errors import CamlangError
from camlang.report import Visuals, write_report
from camlang.report.charts import comparison_chart, metric_chart
from camlang.report.grid import CAPTION_W, HEADER, OUTLINE, PAD, TILE, mask_outline, render_grid
from camlang.report.model import Interval, MetricInfo
from camlang.report.sample import sample_report


def _visuals(n: int = 2, h: int = 16, w: int = 24) -> Visuals:
    raw = torch.full((n, 3, h, w), 0.5)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[:, 4:12, 6:18] = True
    ramp = torch.linspace(0, 1, w).expand(n, h, w).clone()
    nan = torch.full((n, h, w), math.nan)
    return Visuals(raw, {"ramp": ramp, "nan": nan}, masks, labels=list(range(n)), predictions=[0] * n)


def test_written_pngs_are_readable(tmp_path: Path) -> None:
    paths = write_report(tmp_path, sample_report(), grid_images=2)
    assert len(paths.images) == 7
    for p in paths.images:
        assert p.is_file() and p.parent == tmp_path / "images"
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert not list(tmp_path.rglob("*.tmp"))


def test_grid_layout_rows_and_columns() -> None:
    vis = _visuals(n=3)
    img = render_grid(vis, ["ramp", "nan"], max_images=2)
    th = round(16 * TILE / 24)
    assert img.size == (CAPTION_W + 3 * (TILE + PAD) + PAD, HEADER + 2 * (th + PAD) + 34)


def test_grid_tiles_show_image_overlay_outline_and_nan_hatch() -> None:
    img = np.asarray(render_grid(_visuals(), ["ramp", "nan"], max_images=1))
    th = round(16 * TILE / 24)
    tiles = [img[HEADER : HEADER + th, CAPTION_W + PAD + j * (TILE + PAD) :][:, :TILE] for j in range(3)]
    original, ramp, nan = tiles
    # original tile: grey 0.5 image away from the outline
    assert np.abs(original[2, 2].astype(int) - 128).max() <= 1
    # the mask outline is drawn in magenta on every tile, and only near the mask border
    outline = mask_outline(np.pad(np.ones((8, 12), bool), ((4, 4), (6, 6))), (TILE, th))
    for tile in tiles:
        assert (tile[outline] == OUTLINE).all()
    # ramp overlay: left edge is jet-blue dominated, right edge red dominated
    assert ramp[2, 1, 2] > ramp[2, 1, 0] and ramp[2, -2, 0] > ramp[2, -2, 2]
    # NaN tile: grey (r == g == b) hatch with two grey levels, away from the label and outline
    corner = nan[:12, :12].reshape(-1, 3).astype(int)
    assert (corner[:, 0] == corner[:, 1]).all() and (corner[:, 1] == corner[:, 2]).all()
    assert len(np.unique(corner[:, 0])) == 2


def test_mask_outline_is_the_border_only() -> None:
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    border = mask_outline(mask, (10, 10), thickness=1)
    assert border.sum() == 6 * 4 - 4
    assert not border[4, 4] and border[2, 4] and not border[0, 0]


def test_visuals_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="maps\\['x'\\]"):
        Visuals(torch.zeros(2, 3, 8, 8), {"x": torch.zeros(2, 8, 9)})
    with pytest.raises(ValueError, match="labels"):
        Visuals(torch.zeros(2, 3, 8, 8), {}, labels=["a"])


def test_charts_are_png() -> None:
    report = sample_report()
    ev = report.evaluations[0]
    for metric in ev.metrics:
        png = metric_chart(ev, metric)
        assert Image.open(io.BytesIO(png)).format == "PNG"
    png = comparison_chart(
        MetricInfo("m", "maximize"), {"a": Interval(0.5, 0.4, 0.6), "b": Interval(math.nan, 0, 0)}
    )
    assert Image.open(io.BytesIO(png)).size[0] >= 400


def test_write_errors_are_user_errors(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(CamlangError, match="not a directory"):
        write_report(target, sample_report())
    with pytest.raises(CamlangError, match="grid_images"):
        write_report(tmp_path / "out", sample_report(), grid_images=-1)


def test_long_cam_names_wrap_onto_a_second_header_line() -> None:
    vis = _visuals(n=1)
    long_name = "relu(mean_hw(G)) * A + sum_c(relu(G) * A)"
    vis = Visuals(vis.raw, {long_name: vis.maps["ramp"]}, vis.masks)
    short = render_grid(Visuals(vis.raw, {"x": vis.maps[long_name]}), ["x"], max_images=1)
    wrapped = render_grid(vis, [long_name], max_images=1)
    assert wrapped.size[1] == short.size[1] + 16

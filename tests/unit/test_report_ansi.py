"""ANSI half-block previews and the overlay colormap."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.report.ansi import UPPER_HALF, ansi_preview, detect_truecolor, xterm256
from camlang.report.colormap import jet, overlay_rgb

TRUE_CELL = re.compile(r"\x1b\[38;2;(\d+);(\d+);(\d+)m\x1b\[48;2;(\d+);(\d+);(\d+)m▀")
PAL_CELL = re.compile(r"\x1b\[38;5;(\d+)m\x1b\[48;5;(\d+)m▀")


def _two_band(h: int = 20, w: int = 40) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (255, 0, 0)
    img[h // 2 :] = (0, 0, 255)
    return img


def test_truecolor_lines_cells_and_colours() -> None:
    out = ansi_preview(_two_band(), width=16, truecolor=True)
    lines = out.split("\n")
    assert len(lines) == 4  # 20 px * 16/40 = 8 px = 4 half-block rows
    for line in lines:
        assert line.endswith("\x1b[0m")
        assert len(TRUE_CELL.findall(line)) == 16 and line.count(UPPER_HALF) == 16
    assert TRUE_CELL.findall(lines[0])[0] == ("255", "0", "0", "255", "0", "0")
    assert TRUE_CELL.findall(lines[-1])[0] == ("0", "0", "255", "0", "0", "255")


def test_fg_is_top_pixel_and_bg_is_bottom_pixel() -> None:
    img = np.zeros((2, 1, 3), np.uint8)
    img[0] = (10, 20, 30)
    img[1] = (200, 100, 50)
    out = ansi_preview(img, width=1, truecolor=True)
    assert TRUE_CELL.findall(out) == [("10", "20", "30", "200", "100", "50")]


def test_256_colour_fallback() -> None:
    out = ansi_preview(_two_band(), width=8, truecolor=False)
    assert "38;2;" not in out
    cells = PAL_CELL.findall(out)
    assert len(cells) == 8 * 2
    assert cells[0] == ("196", "196") and cells[-1] == ("21", "21")  # xterm red and blue


def test_xterm256_palette() -> None:
    assert xterm256(np.array([0, 0, 0])) == 16
    assert xterm256(np.array([255, 255, 255])) == 231
    assert xterm256(np.array([128, 128, 128])) == 244  # grey ramp step 12 = 128
    assert xterm256(np.array([[255, 0, 0], [0, 255, 0]])).tolist() == [196, 46]


def test_truecolor_autodetect(monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_truecolor({"COLORTERM": "truecolor"}) and detect_truecolor({"COLORTERM": "24bit"})
    assert not detect_truecolor({}) and not detect_truecolor({"COLORTERM": "yes"})
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert "38;2;" in ansi_preview(_two_band(), width=4)
    monkeypatch.delenv("COLORTERM")
    assert "38;5;" in ansi_preview(_two_band(), width=4)


def test_aspect_ratio_and_minimum_one_line() -> None:
    assert len(ansi_preview(np.zeros((64, 32, 3), np.uint8), width=32, truecolor=True).split("\n")) == 32
    assert len(ansi_preview(np.zeros((1, 100, 3), np.uint8), width=10, truecolor=True).split("\n")) == 1


def test_bad_input_is_a_user_error() -> None:
    with pytest.raises(CamlangError, match="shape"):
        ansi_preview(np.zeros((4, 4), np.uint8))
    with pytest.raises(CamlangError, match="width"):
        ansi_preview(np.zeros((4, 4, 3), np.uint8), width=0)


def test_jet_endpoints() -> None:
    np.testing.assert_allclose(jet(np.array([0.0, 0.5, 1.0])), [[0, 0, 0.5], [0.5, 1, 0.5], [0.5, 0, 0]])


def test_overlay_matches_pytorch_grad_cam_show_cam_on_image() -> None:
    image_mod = pytest.importorskip(
        "pytorch_grad_cam.utils.image", reason="grad-cam (test extra) not installed"
    )
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(3, 20, 24, generator=gen)
    cam = torch.rand(20, 24, generator=gen)
    ours = overlay_rgb(raw, cam).astype(int)
    theirs = image_mod.show_cam_on_image(
        raw.permute(1, 2, 0).numpy().astype(np.float32), cam.numpy(), use_rgb=True, image_weight=0.5
    ).astype(int)
    # theirs quantizes the map to uint8 and truncates; ours rounds: at most a few levels apart
    assert np.abs(ours - theirs).max() <= 3


def test_overlay_nan_pixels_are_grey() -> None:
    cam = torch.rand(8, 8)
    cam[:, :4] = math.nan
    out = overlay_rgb(torch.rand(3, 8, 8), cam)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    left = out[:, :4].reshape(-1, 3)
    assert (left[:, 0] == left[:, 1]).all() and (left[:, 1] == left[:, 2]).all()

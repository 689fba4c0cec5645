"""Image previews for terminals, drawn with upper-half-block characters.

Each character cell shows two pixels: "▀" in the foreground colour of the top pixel on the
background colour of the bottom pixel. Colours are 24-bit escapes (`ESC[38;2;r;g;bm`) when the
terminal supports them and the xterm 256-colour palette (`ESC[38;5;nm`) otherwise. Every line ends
with a reset (`ESC[0m`) so a preview never leaks colour into what is printed after it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from PIL import Image

from camlang.errors import CamlangError
from camlang.report.colormap import overlay_rgb

__all__ = ["UPPER_HALF", "ansi_preview", "detect_truecolor", "overlay_rgb", "xterm256"]

UPPER_HALF = "▀"
RESET = "\x1b[0m"
_CUBE = np.array([0, 95, 135, 175, 215, 255])


def detect_truecolor(environ: Mapping[str, str] | None = None) -> bool:
    """True when `COLORTERM` says the terminal takes 24-bit colour ("truecolor" or "24bit")."""
    env = os.environ if environ is None else environ
    return env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit")


def xterm256(rgb: np.ndarray) -> np.ndarray:
    """Nearest xterm-256 palette index for each uint8 RGB triple (`[..., 3]` -> `[...]`).

    Chooses between the 6x6x6 colour cube (16-231) and the 24-step grey ramp (232-255) by
    squared RGB distance.
    """
    c = np.asarray(rgb, dtype=np.int64)
    # nearest cube level per channel
    lvl = np.abs(c[..., None] - _CUBE).argmin(axis=-1)
    cube_rgb = _CUBE[lvl]
    cube_idx = 16 + 36 * lvl[..., 0] + 6 * lvl[..., 1] + lvl[..., 2]
    cube_err = ((cube_rgb - c) ** 2).sum(axis=-1)
    # grey ramp: 8, 18, ..., 238
    grey_step = np.clip(np.rint((c.mean(axis=-1) - 8) / 10), 0, 23).astype(np.int64)
    grey_val = 8 + 10 * grey_step
    grey_err = ((grey_val[..., None] - c) ** 2).sum(axis=-1)
    return np.where(grey_err < cube_err, 232 + grey_step, cube_idx)


def _resize(rgb: np.ndarray, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    rows = max(1, round(h * width / w / 2))
    img = Image.fromarray(rgb)
    return np.asarray(img.resize((width, 2 * rows), Image.Resampling.BOX))


def ansi_preview(rgb: np.ndarray, width: int = 32, truecolor: bool | None = None) -> str:
    """Render a uint8 `[H, W, 3]` image as `width` columns of half-block characters.

    The image keeps its aspect ratio: `round(H * width / W / 2)` lines (at least one), each
    `width` cells wide and ending in a reset. `truecolor=None` reads `COLORTERM`.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise CamlangError(
            f"ansi_preview needs an RGB image of shape [H, W, 3], got shape {tuple(arr.shape)}",
            hint="convert CAM overlays with overlay_rgb(raw, map) first",
        )
    if width < 1:
        raise CamlangError(f"preview width must be at least 1 column, got {width}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    small = _resize(np.ascontiguousarray(arr), width)
    use_true = detect_truecolor() if truecolor is None else truecolor
    top, bottom = small[0::2], small[1::2]
    lines = []
    if use_true:
        for t_row, b_row in zip(top, bottom):
            cells = [
                f"\x1b[38;2;{t[0]};{t[1]};{t[2]}m\x1b[48;2;{b[0]};{b[1]};{b[2]}m{UPPER_HALF}"
                for t, b in zip(t_row.tolist(), b_row.tolist())
            ]
            lines.append("".join(cells) + RESET)
    else:
        t_idx, b_idx = xterm256(top), xterm256(bottom)
        for t_row, b_row in zip(t_idx.tolist(), b_idx.tolist()):
            cells = [f"\x1b[38;5;{t}m\x1b[48;5;{b}m{UPPER_HALF}" for t, b in zip(t_row, b_row)]
            lines.append("".join(cells) + RESET)
    return "\n".join(lines)

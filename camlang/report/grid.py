"""Heatmap grids: one row per image, the original then one overlay per CAM.

The grid is composed with PIL (fast, no figure machinery) using matplotlib's bundled DejaVu Sans
so text looks the same everywhere. Ground-truth masks are drawn as a magenta outline (a colour jet
never uses) on every tile of the row; a map that is NaN everywhere becomes a grey hatched tile
labelled "NaN"; captions give the image index, label and prediction (red when they differ).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from camlang.report.colormap import image_hwc, jet, overlay_float, to_uint8
from camlang.report.model import Visuals, to_numpy

TILE = 144
PAD = 4
HEADER = 30
CAPTION_W = 120
LEGEND = 34
OUTLINE = (255, 0, 255)
BG = (255, 255, 255)
TEXT = (20, 20, 20)
MISMATCH = (190, 20, 20)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=8)
def font(size: int) -> Font:
    """DejaVu Sans at `size` px (matplotlib ships it); PIL's default font if it cannot be found."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except (OSError, ValueError, ImportError):
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, f: Font, width: int) -> str:
    if draw.textlength(text, font=f) <= width:
        return text
    while text and draw.textlength(text + "…", font=f) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, f: Font, width: int, max_lines: int = 2) -> list[str]:
    """Split `text` greedily into lines that fit `width` (CAM expressions have few spaces, so by
    character); the last allowed line is cut with an ellipsis."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines - 1 and draw.textlength(rest, font=f) > width:
        k = len(rest)
        while k > 1 and draw.textlength(rest[:k], font=f) > width:
            k -= 1
        lines.append(rest[:k])
        rest = rest[k:].lstrip()
    if rest:
        lines.append(_fit_text(draw, rest, f, width))
    return lines


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 `[h, w, 3]` to (width, height): nearest when enlarging (crisp pixels), box otherwise."""
    h, w = img.shape[:2]
    method = Image.Resampling.NEAREST if size[0] >= w else Image.Resampling.BOX
    return np.asarray(Image.fromarray(img).resize(size, method))


def mask_outline(mask: np.ndarray, size: tuple[int, int], thickness: int = 2) -> np.ndarray:
    """Boundary pixels of a bool mask after resizing to (width, height): the mask minus its erosion."""
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 127
    inner = m.copy()
    for _ in range(thickness):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return m & ~inner


def tile_size(h: int, w: int, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of a tile for an `h x w` image: `tile` pixels wide, aspect kept."""
    return tile, max(1, round(h * tile / w))


def _caption(
    i: int, labels: Sequence[str | int] | None, preds: Sequence[str | int] | None
) -> list[tuple[str, tuple]]:
    lines: list[tuple[str, tuple]] = [(f"image {i}", TEXT)]
    if labels is not None:
        lines.append((f"label: {labels[i]}", TEXT))
    if preds is not None:
        wrong = labels is not None and str(preds[i]) != str(labels[i])
        lines.append((f"pred: {preds[i]}", MISMATCH if wrong else TEXT))
    return lines


def _legend(draw: ImageDraw.ImageDraw, x0: int, y0: int, width: int, has_masks: bool) -> None:
    f = font(11)
    bar_w = min(200, width - 200)
    bar = to_uint8(jet(np.linspace(0.0, 1.0, max(bar_w, 2))))
    for k in range(bar_w):
        draw.line([(x0 + 20 + k, y0 + 8), (x0 + 20 + k, y0 + 20)], fill=tuple(int(v) for v in bar[k]))
    draw.text((x0 + 4, y0 + 8), "0", fill=TEXT, font=f)
    draw.text((x0 + 24 + bar_w, y0 + 8), "1", fill=TEXT, font=f)
    x = x0 + 44 + bar_w
    if has_masks:
        draw.rectangle([x, y0 + 8, x + 12, y0 + 20], outline=OUTLINE, width=2)
        draw.text((x + 18, y0 + 8), "ground truth", fill=TEXT, font=f)


def render_grid(visuals: Visuals, cams: Sequence[str], max_images: int = 8, tile: int = TILE) -> Image.Image:
    """Compose the heatmap grid for the first `max_images` images of `visuals` and the given CAMs."""
    raw = to_numpy(visuals.raw)
    n = min(visuals.count, max(1, max_images))
    h, w = raw.shape[2], raw.shape[3]
    tw, th = tile_size(h, w, tile)
    cams = [c for c in cams if c in visuals.maps]
    cols = 1 + len(cams)
    width = CAPTION_W + cols * (tw + PAD) + PAD
    head_font, cap_font, nan_font = font(13), font(12), font(22)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = [_wrap(measure, title, head_font, tw - 4) for title in ["image", *cams]]
    header = HEADER + 16 * (max(len(t) for t in titles) - 1)
    height = header + n * (th + PAD) + LEGEND
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    for j, lines in enumerate(titles):
        x = CAPTION_W + j * (tw + PAD) + PAD
        for k, line in enumerate(lines):
            draw.text((x + 2, 8 + 16 * k), line, fill=TEXT, font=head_font)
    masks = None if visuals.masks is None else to_numpy(visuals.masks).astype(bool)
    maps = {c: to_numpy(visuals.maps[c]).astype(np.float64) for c in cams}
    for i in range(n):
        y = header + i * (th + PAD)
        for k, (line, colour) in enumerate(_caption(i, visuals.labels, visuals.predictions)):
            draw.text(
                (6, y + 4 + 16 * k),
                _fit_text(draw, line, cap_font, CAPTION_W - 10),
                fill=colour,
                font=cap_font,
            )
        outline = None if masks is None else mask_outline(masks[i], (tw, th))
        tiles = [to_uint8(image_hwc(raw[i]))] + [to_uint8(overlay_float(raw[i], maps[c][i])) for c in cams]
        for j, img in enumerate(tiles):
            t = _resize(img, (tw, th)).copy()
            if outline is not None:
                t[outline] = OUTLINE
            x = CAPTION_W + j * (tw + PAD) + PAD
            canvas.paste(Image.fromarray(t), (x, y))
            if j > 0:
                nan_frac = float(np.isnan(maps[cams[j - 1]][i]).mean())
                if nan_frac > 0:
                    label = "NaN" if nan_frac == 1.0 else f"{100 * nan_frac:.0f}% NaN"
                    f = nan_font if nan_frac == 1.0 else cap_font
                    box = draw.textbbox((0, 0), label, font=f)
                    lx = x + (tw - (box[2] - box[0])) // 2 - box[0]
                    ly = y + (th - (box[3] - box[1])) // 2 - box[1]
                    bx0, by0, bx1, by1 = draw.textbbox((lx, ly), label, font=f)
                    draw.rectangle([bx0 - 4, by0 - 3, bx1 + 4, by1 + 3], fill=BG)
                    draw.text((lx, ly), label, fill=TEXT, font=f)
    _legend(draw, CAPTION_W, header + n * (th + PAD), width - CAPTION_W, masks is not None)
    return canvas


def png_bytes(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes (deterministic: no timestamps)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()

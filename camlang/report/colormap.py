"""A jet-like colormap and CAM overlays, in numpy (no OpenCV).

`jet` is the classic piecewise-linear jet (dark blue -> blue -> cyan -> yellow -> red -> dark
red); it agrees with OpenCV's COLORMAP_JET to within 1/255. `overlay_rgb` blends it onto an
image the way pytorch-grad-cam's `show_cam_on_image(img, mask, use_rgb=True, image_weight=0.5)`
does, including its final division by the maximum. NaN map pixels are drawn as a grey hatch so
that a missing value never looks like a low one.
"""

from __future__ import annotations

import numpy as np

from camlang.report.model import ArrayLike, to_numpy

NAN_GREY = 0.62
NAN_HATCH = 0.42
HATCH_PERIOD = 8


def jet(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (clipped) to RGB floats in [0, 1]; output shape is `values.shape + (3,)`."""
    x = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0)
    r = 1.5 - np.abs(4.0 * x - 3.0)
    g = 1.5 - np.abs(4.0 * x - 2.0)
    b = 1.5 - np.abs(4.0 * x - 1.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def hatch_pattern(h: int, w: int, period: int = HATCH_PERIOD) -> np.ndarray:
    """Grey diagonal hatching `[h, w, 3]` float in [0, 1], used for NaN pixels."""
    yy, xx = np.mgrid[0:h, 0:w]
    stripe = ((xx + yy) % period) < max(1, period // 4)
    tile = np.where(stripe, NAN_HATCH, NAN_GREY)
    return np.repeat(tile[..., None], 3, axis=-1)


def image_hwc(raw: ArrayLike) -> np.ndarray:
    """A `[3, H, W]` (or `[1, H, W]`) image in [0, 1] as float `[H, W, 3]`, clipped to [0, 1]."""
    img = to_numpy(raw).astype(np.float64)
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected an image [3, H, W] or [1, H, W], got shape {tuple(img.shape)}")
    if img.shape[0] == 1:
        img = np.repeat(img, 3, axis=0)
    return np.clip(np.nan_to_num(img.transpose(1, 2, 0), nan=0.0), 0.0, 1.0)


def overlay_float(raw: ArrayLike, cam_map: ArrayLike, alpha: float = 0.5) -> np.ndarray:
    """Blend `jet(cam_map)` onto `raw`: float `[H, W, 3]` in [0, 1]; NaN pixels are hatched grey."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = image_hwc(raw)
    m = to_numpy(cam_map).astype(np.float64)
    if m.shape != img.shape[:2]:
        raise ValueError(f"map shape {tuple(m.shape)} does not match image size {img.shape[:2]}")
    out = (1.0 - alpha) * img + alpha * jet(m)
    peak = float(out.max())
    if peak > 0:
        out = out / peak
    nan = np.isnan(m)
    if nan.any():
        out[nan] = hatch_pattern(*m.shape)[nan]
    return out


def overlay_rgb(raw: ArrayLike, cam_map: ArrayLike, alpha: float = 0.5) -> np.ndarray:
    """Overlay a CAM map `[H, W]` (in [0, 1], NaN allowed) on an image `[3, H, W]` in [0, 1].

    Returns uint8 `[H, W, 3]`. Matches pytorch-grad-cam's `show_cam_on_image` with
    `use_rgb=True, image_weight=1 - alpha` up to colormap rounding.
    """
    return to_uint8(overlay_float(raw, cam_map, alpha))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 (rounded)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

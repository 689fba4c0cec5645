"""Image and map transforms used by the metrics: blur, noise, flips, shifts, top-k masking.

Image transforms take `x` [B, C, H, W]; `hflip`, `shift` and `shift_valid_mask` act on the last
two dimensions of any tensor, so the same functions transform saliency maps [..., H, W] (the
"map transforms" the equivariance metrics compare against).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from camlang.errors import CamlangError
from camlang.metrics._common import check_images, check_maps, fill_canvas, pixel_ranks


def gaussian_kernel1d(sigma: float, radius: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian weights of length 2*radius+1; default radius ceil(3*sigma)."""
    if radius is None:
        radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).float()


def blur(x: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of the last two dimensions with reflect padding.

    The kernel has radius `ceil(3*sigma)` unless given, clamped to `min(H, W) - 1` because
    reflect padding cannot reach further than the image. `sigma <= 0` returns a copy.
    """
    if sigma <= 0:
        return x.clone()
    h, w = x.shape[-2:]
    if radius is None:
        radius = max(1, math.ceil(3.0 * sigma))
    radius = min(radius, h - 1, w - 1)
    if radius < 1:
        return x.clone()
    k = gaussian_kernel1d(sigma, radius).to(device=x.device, dtype=x.dtype)
    flat = x.reshape(-1, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` plus i.i.d. Gaussian noise of standard deviation `std` drawn from `generator`."""
    if std < 0:
        raise CamlangError(f"noise std must be >= 0, got {std}")
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + std * eps.to(x.device)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror the last dimension (width). Works for images [B, C, H, W] and maps [..., H, W]."""
    return torch.flip(x, dims=(-1,))


def shift(x: torch.Tensor, dx: int, dy: int, fill: Literal["zero", "edge"] = "zero") -> torch.Tensor:
    """Translate the last two dimensions by whole pixels: `out[..., i, j] = x[..., i - dy, j - dx]`.

    Positive `dx` moves content right, positive `dy` moves it down. Pixels uncovered by the
    translation are 0 (`fill="zero"`) or copy the nearest edge pixel of `x` (`fill="edge"`).
    """
    h, w = x.shape[-2:]
    if fill not in ("zero", "edge"):
        raise CamlangError(f"shift fill must be 'zero' or 'edge', got {fill!r}")
    rows = torch.arange(h, device=x.device) - dy
    cols = torch.arange(w, device=x.device) - dx
    out = x.index_select(-2, rows.clamp(0, h - 1)).index_select(-1, cols.clamp(0, w - 1))
    if fill == "zero":
        valid = shift_valid_mask(h, w, dx, dy).to(x.device)
        out = torch.where(valid, out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out


def shift_valid_mask(h: int, w: int, dx: int, dy: int) -> torch.Tensor:
    """Bool [H, W]: the pixels of `shift(x, dx, dy)` that come from inside `x`."""
    rows = torch.arange(h) - dy
    cols = torch.arange(w) - dx
    return ((rows >= 0) & (rows < h)).view(-1, 1) & ((cols >= 0) & (cols < w)).view(1, -1)


def count_pixels(fraction: float, n: int) -> int:
    """Number of pixels that `fraction` of `n` stands for: round half up, clamped to [0, n]."""
    if not 0.0 <= fraction <= 1.0:
        raise CamlangError(f"fraction must lie in [0, 1], got {fraction}")
    return min(n, max(0, math.floor(fraction * n + 0.5)))


def top_mask(L: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [..., H, W]: the `k` most salient pixels of each map (ties: smaller flat index first)."""
    return pixel_ranks(L) < k


def mask_top(
    x: torch.Tensor, L: torch.Tensor, fraction: float, fill: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Replace the top `fraction` most salient pixels (all channels) by `fill`.

    `x` [B, C, H, W]; `L` [B, H, W] or [M, B, H, W] (result [M, B, C, H, W]); `fill` is a number
    or a tensor shaped like `x` (e.g. `blur(x, 5)`). The pixel count is `count_pixels(fraction, H*W)`.
    """
    check_images(x)
    check_maps(L, x)
    k = count_pixels(fraction, x.shape[-2] * x.shape[-1])
    sel = top_mask(L, k).unsqueeze(-3).to(x.device)
    return torch.where(sel, fill_canvas(x, fill), x)


def keep_top(
    x: torch.Tensor, L: torch.Tensor, fraction: float, fill: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Keep the top `fraction` most salient pixels and replace all others by `fill` (see `mask_top`)."""
    check_images(x)
    check_maps(L, x)
    k = count_pixels(fraction, x.shape[-2] * x.shape[-1])
    sel = top_mask(L, k).unsqueeze(-3).to(x.device)
    return torch.where(sel, x, fill_canvas(x, fill))

"""Transforms against direct numpy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import (
    blur,
    count_pixels,
    hflip,
    keep_top,
    mask_top,
    noise,
    pixel_ranks,
    shift,
    shift_valid_mask,
    top_mask,
)


def ref_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """2-D Gaussian by explicit double loop over kernel offsets, numpy reflect padding."""
    r = max(1, math.ceil(3 * sigma))
    t = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape[-2:]
    pad = np.pad(img, [(0, 0)] * (img.ndim - 2) + [(r, r), (r, r)], mode="reflect")
    out = np.zeros_like(img, dtype=np.float64)
    for u in range(2 * r + 1):
        for v in range(2 * r + 1):
            out += k[u] * k[v] * pad[..., u : u + h, v : v + w]
    return out


def ref_order(L: np.ndarray) -> list[int]:
    flat = L.reshape(-1)
    return sorted(range(flat.size), key=lambda i: (-flat[i], i))


def test_blur_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 17, generator=g)
    for sigma in (0.7, 1.5, 3.0):
        got = blur(x, sigma).numpy()
        assert np.abs(got - ref_blur(x.numpy(), sigma)).max() < 1e-5


def test_blur_keeps_constants_and_zero_sigma_copies() -> None:
    x = torch.full((1, 2, 9, 9), 0.25)
    assert torch.allclose(blur(x, 2.0), x, atol=1e-6)
    y = torch.rand(1, 1, 5, 5)
    assert torch.equal(blur(y, 0.0), y)


def test_noise_is_seeded() -> None:
    x = torch.zeros(2, 1, 4, 4)
    a = noise(x, 0.5, torch.Generator().manual_seed(3))
    b = noise(x, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().sum() > 0
    with pytest.raises(CamlangError):
        noise(x, -1.0)


def test_hflip_and_shift_match_loops() -> None:
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(2, 5, 6)
    f = hflip(x)
    for i in range(5):
        for j in range(6):
            assert f[0, i, j] == x[0, i, 5 - j]
    for dx, dy in [(2, 1), (-1, 3), (0, -2)]:
        z = shift(x, dx, dy, "zero")
        e = shift(x, dx, dy, "edge")
        valid = shift_valid_mask(5, 6, dx, dy)
        for i in range(5):
            for j in range(6):
                si, sj = i - dy, j - dx
                inside = 0 <= si < 5 and 0 <= sj < 6
                assert bool(valid[i, j]) == inside
                assert z[1, i, j] == (x[1, si, sj] if inside else 0)
                assert e[1, i, j] == x[1, min(max(si, 0), 4), min(max(sj, 0), 5)]


def test_ranks_break_ties_by_index() -> None:
    g = torch.Generator().manual_seed(1)
    L = torch.randint(0, 3, (3, 6, 7), generator=g).float()  # many ties
    ranks = pixel_ranks(L)
    for b in range(3):
        order = ref_order(L[b].numpy())
        flat = ranks[b].reshape(-1)
        for pos, idx in enumerate(order):
            assert flat[idx] == pos


def test_mask_and_keep_top() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 8, 8, generator=g)
    L = torch.rand(2, 8, 8, generator=g)
    for frac in (0.0, 0.1, 0.5, 1.0):
        k = count_pixels(frac, 64)
        m = mask_top(x, L, frac, fill=-1.0)
        kt = keep_top(x, L, frac, fill=-1.0)
        for b in range(2):
            top = set(ref_order(L[b].numpy())[:k])
            for idx in range(64):
                i, j = divmod(idx, 8)
                if idx in top:
                    assert torch.all(m[b, :, i, j] == -1) and torch.equal(kt[b, :, i, j], x[b, :, i, j])
                else:
                    assert torch.equal(m[b, :, i, j], x[b, :, i, j]) and torch.all(kt[b, :, i, j] == -1)
    # candidate dimension and tensor fill
    L2 = torch.stack([L, 1 - L])
    out = mask_top(x, L2, 0.25, fill=blur(x, 1.0))
    assert out.shape == (2, 2, 3, 8, 8)
    assert torch.equal(out[1], mask_top(x, 1 - L, 0.25, fill=blur(x, 1.0)))
    assert top_mask(L, 5).flatten(-2).sum(-1).tolist() == [5, 5]


def test_bad_inputs_raise_camlang_errors() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(CamlangError, match="fraction"):
        keep_top(x, torch.rand(2, 8, 8), 1.5)
    with pytest.raises(CamlangError, match=r"\[B, H, W\]"):
        keep_top(x, torch.rand(2, 7, 8), 0.5)
    with pytest.raises(CamlangError, match="shape of x"):
        keep_top(x, torch.rand(2, 8, 8), 0.5, fill=torch.zeros(3))
    with pytest.raises(CamlangError, match="NaN"):
        keep_top(x, torch.full((2, 8, 8), float("nan")), 0.5)
    with pytest.raises(CamlangError):
        shift(x, 1, 1, fill="wrap")  # type: ignore[arg-type]

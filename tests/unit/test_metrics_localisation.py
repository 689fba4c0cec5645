"""Localisation metrics against per-pixel loops."""

from __future__ import annotations

import math

import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import (
    argmax_points,
    boxes_to_masks,
    energy_pointing_game,
    inside,
    iou_at,
    pointing_game,
)


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    L = torch.rand(3, 4, 24, 20, generator=g)
    L[0, 1] = 0.5  # constant map: argmax is pixel (0, 0)
    masks = torch.zeros(4, 24, 20, dtype=torch.bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 15:, 10:] = True
    masks[2] = torch.rand(24, 20, generator=g) > 0.7
    # masks[3] stays empty
    return L, masks


def ref_argmax(m):
    best, pos = -math.inf, None
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] > best:
                best, pos = float(m[i, j]), (i, j)
    return pos


def test_pointing_game_matches_loops(setup) -> None:
    L, masks = setup
    for tol in (0.0, 3.0, 15.0):
        hits = pointing_game(L, masks, tolerance=tol)
        assert hits.shape == (3, 4)
        for m in range(3):
            for b in range(4):
                pi, pj = ref_argmax(L[m, b])
                d = min(
                    (math.hypot(i - pi, j - pj) for i in range(24) for j in range(20) if masks[b, i, j]),
                    default=math.inf,
                )
                assert bool(hits[m, b]) == (d <= tol)
    assert argmax_points(L[0, 1]).tolist() == [0, 0]


def test_energy_and_iou_match_loops(setup) -> None:
    L, masks = setup
    energy = energy_pointing_game(L, masks)
    for thr in (0.3, 0.8):
        iou = iou_at(L, masks, thr)
        for m in range(3):
            for b in range(4):
                num = sum(float(L[m, b, i, j]) for i in range(24) for j in range(20) if masks[b, i, j])
                den = sum(float(v) for v in L[m, b].reshape(-1))
                assert abs(float(energy[m, b]) - num / den) < 1e-5
                pred = L[m, b] >= thr
                inter = sum(bool(pred[i, j] and masks[b, i, j]) for i in range(24) for j in range(20))
                union = sum(bool(pred[i, j] or masks[b, i, j]) for i in range(24) for j in range(20))
                assert abs(float(iou[m, b]) - (inter / union if union else 1.0)) < 1e-6
    assert float(iou_at(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool), 0.5)[0]) == 1.0
    assert float(energy_pointing_game(torch.zeros(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool))[0]) == 0.0


def test_inside_and_boxes(setup) -> None:
    _, masks = setup
    pts = torch.tensor([[3, 4], [16, 11], [-1, 0], [5, 5]])
    got = inside(pts, masks)
    assert got.tolist() == [True, True, False, False]
    boxes = torch.tensor([[3, 2, 9, 8], [10, 15, 20, 24], [0, 0, 1, 1], [5, 5, 5, 9]])
    bm = boxes_to_masks(boxes, 24, 20)
    assert torch.equal(bm[0], masks[0]) and torch.equal(bm[1], masks[1])
    assert int(bm[2].sum()) == 1 and int(bm[3].sum()) == 0


def test_errors(setup) -> None:
    L, masks = setup
    with pytest.raises(CamlangError, match="masks"):
        pointing_game(L, masks[0])
    with pytest.raises(CamlangError, match="match the masks"):
        iou_at(L[..., :10], masks)
    with pytest.raises(CamlangError, match="non-negative"):
        energy_pointing_game(L - 1, masks)
    with pytest.raises(CamlangError, match="tolerance"):
        pointing_game(L, masks, tolerance=-1)

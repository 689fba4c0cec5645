"""DeepCover SFL: measure formulas, spectrum bookkeeping, localisation and minimal explanations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods import MEASURES, deepcover, deepcover_explanation, deepcover_map, sfl_score


class BrightSquareDetector(nn.Module):
    """Class 1 wins when enough pixels are brighter than 0.5; class 0 is a constant threshold.

    A third class is never predicted (used to test explanations that cannot be restored).
    """

    def forward(self, x: Tensor) -> Tensor:
        evidence = F.relu(x.mean(dim=1) - 0.5).flatten(1).sum(dim=1)
        return torch.stack(
            [torch.full_like(evidence, 10.0), evidence, torch.full_like(evidence, -1e3)], dim=1
        )


def scenes(seed: int, batch: int = 3, size: int = 32, side: int = 8) -> tuple[Tensor, Tensor]:
    """Dark noise with one white square per image, and the square's ground-truth mask."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g) * 0.3
    truth = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        i, j = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
        x[b, :, i : i + side, j : j + side] = 1.0
        truth[b, i : i + side, j : j + side] = True
    return x, truth


def top_hit_rate(scores: Tensor, truth: Tensor) -> Tensor:
    """Share of the |truth| top-scored pixels that lie in the truth mask (chance = its area)."""
    k = int(truth[0].sum())
    top = scores.flatten(1).topk(k, dim=1).indices
    return truth.flatten(1).gather(1, top).float().mean(dim=1)


def test_measures_on_hand_computed_counts() -> None:
    ep, ef, np_, nf = (torch.tensor([v], dtype=torch.long) for v in (2, 3, 5, 1))
    assert sfl_score("ochiai", ep, ef, np_, nf).item() == pytest.approx(3 / math.sqrt(4 * 5))
    assert sfl_score("tarantula", ep, ef, np_, nf).item() == pytest.approx((3 / 4) / (3 / 4 + 2 / 7))
    assert sfl_score("zoltar", ep, ef, np_, nf).item() == pytest.approx(3 / (3 + 1 + 2 + 10000 * 1 * 2 / 3))
    assert sfl_score("wong-ii", ep, ef, np_, nf).item() == 1
    assert sfl_score("Wong2", ep, ef, np_, nf).item() == 1


def test_measures_handle_zero_denominators() -> None:
    zero = torch.zeros(1, dtype=torch.long)
    five = torch.full((1,), 5, dtype=torch.long)
    for measure in MEASURES[:3]:
        assert sfl_score(measure, five, zero, five, zero).item() == 0  # never failing: score 0
        assert sfl_score(measure, zero, zero, zero, zero).item() == 0
    # Only failing tests, all with the pixel masked: the most suspicious pixel possible.
    assert sfl_score("ochiai", zero, five, zero, zero).item() == 1
    assert sfl_score("tarantula", zero, five, zero, zero).item() == 1
    assert sfl_score("zoltar", zero, five, zero, zero).item() == 1
    with pytest.raises(CamlangError, match="unknown SFL measure 'dstar'"):
        sfl_score("dstar", zero, zero, zero, zero)


def test_spectrum_bookkeeping() -> None:
    model = BrightSquareDetector()
    x, _ = scenes(0)
    r = deepcover(model, x, min_tests=150, round_size=60, generator=torch.Generator().manual_seed(1))
    tests = int(r.tests[0])
    assert tests == 180  # three rounds of 60 reach min_tests = 150
    assert bool((r.counts.tests == tests).all())  # ep + ef + np + nf = number of tests, every pixel
    assert bool((r.counts.ef + r.counts.nf == r.failing[:, None, None]).all())
    assert bool(((r.counts.ef + r.counts.ep) > 0).all())  # every pixel was masked at least once
    assert r.forward_passes == 3 + 3 * tests
    assert bool((r.failing > 0).all()) and bool((r.failing < tests).all())
    again = deepcover(model, x, min_tests=150, round_size=60, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(r.map, again.map)


def test_max_tests_caps_the_run() -> None:
    r = deepcover(
        BrightSquareDetector(), scenes(0)[0], min_tests=10, max_tests=20, round_size=7, sizes=(0.05, 0.05)
    )
    assert int(r.tests[0]) == 20  # tiny squares cannot cover 32x32 in 20 mutants


@pytest.mark.parametrize("measure", MEASURES)
def test_deepcover_localises_the_bright_square(measure: str) -> None:
    x, truth = scenes(1)
    scores = deepcover_map(
        BrightSquareDetector(), x, measure=measure, min_tests=300, generator=torch.Generator().manual_seed(2)
    )
    assert scores.shape == (3, 32, 32)
    hit = top_hit_rate(scores, truth)
    assert float(hit.min()) > 0.5, hit  # chance is 64 / 1024


def test_explanation_is_minimal_and_restores_the_label() -> None:
    model = BrightSquareDetector()
    x, truth = scenes(2)
    r = deepcover(model, x, min_tests=300, generator=torch.Generator().manual_seed(3))
    e = deepcover_explanation(model, x, None, r.map)
    assert e.mask.shape == truth.shape and e.mask.dtype == torch.bool
    assert bool(e.restored.all())
    assert torch.equal(e.mask.sum((1, 2)), e.pixels)
    kept = torch.where(e.mask[:, None], x, 0.0)
    assert torch.equal(model(kept).argmax(1), torch.ones(3, dtype=torch.long))
    # One pixel fewer (the lowest-ranked kept one) no longer gives the label.
    order = r.map.flatten(1).argsort(dim=1, descending=True, stable=True)
    for b in range(3):
        fewer = torch.zeros(32 * 32, dtype=torch.bool)
        fewer[order[b, : int(e.pixels[b]) - 1]] = True
        image = torch.where(fewer.reshape(1, 1, 32, 32), x[b : b + 1], 0.0)
        assert int(model(image).argmax(1)) == 0
    assert float((e.mask & truth).sum() / e.mask.sum()) > 0.9  # the explanation lies in the square
    assert e.forward_passes < 3 * 60  # a batched search, not one pixel at a time


def test_explanation_that_cannot_be_restored_keeps_everything() -> None:
    x, _ = scenes(3, batch=1)
    e = deepcover_explanation(BrightSquareDetector(), x, torch.tensor([2]), torch.rand(1, 32, 32))
    assert not bool(e.restored[0]) and bool(e.mask.all())


def test_bad_arguments_are_user_errors() -> None:
    x, _ = scenes(0, batch=1)
    with pytest.raises(CamlangError, match="unknown SFL measure"):
        deepcover(BrightSquareDetector(), x, measure="nope")
    with pytest.raises(CamlangError, match="sizes"):
        deepcover(BrightSquareDetector(), x, sizes=(0.5, 0.1))
    with pytest.raises(CamlangError, match="fill"):
        deepcover(BrightSquareDetector(), x, fill=torch.zeros(2))
    with pytest.raises(CamlangError, match="scores of shape"):
        deepcover_explanation(BrightSquareDetector(), x, None, torch.rand(32, 32))

"""DeepCover and extremal perturbation localise the shape on the demo CNN (issue 8).

The pointing game (15 px tolerance at 64 x 64) is lenient: a random point lands within 15 px of
the shape on about 58% of these images, so the bar is 0.8 and the chance level is printed and
checked to lie below it. Settings are the stdlib's fast ones: DeepCover with Tarantula and 100
tests (`deepcover_fast`), extremal perturbation with 80 steps; the area is 5% because a 10% mask
(`extremal_fast`) often settles on background on these shapes (pointing 0.66 on 32 images of
seed 2, against 0.875 for 5%; see the report).
"""

from __future__ import annotations

import pytest
import torch

from camlang.backends.torch_eager import normalize_maps
from camlang.data import synthetic_shapes
from camlang.methods import deepcover, extremal_perturbation
from camlang.metrics import pointing_game
from camlang.models import load_demo_model

IMAGES = 16
TOLERANCE = 15.0


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    model = load_demo_model().module.eval()
    batch = synthetic_shapes(IMAGES, 64, seed=1).get(list(range(IMAGES)))
    assert batch.masks is not None
    with torch.no_grad():
        targets = model(batch.x).argmax(1)
    return model, batch.x, targets, batch.masks


def _pointing(raw: torch.Tensor, masks: torch.Tensor) -> float:
    maps = normalize_maps(raw[:, None].float(), (64, 64))
    return float(pointing_game(maps, masks, TOLERANCE).float().mean())


def _chance(masks: torch.Tensor) -> float:
    """Expected pointing-game hit rate of a uniformly random point."""
    ys = torch.arange(64.0).view(1, 64, 1)
    xs = torch.arange(64.0).view(1, 1, 64)
    rates = []
    for mask in masks:
        pts = mask.nonzero().float()
        d2 = ((ys - pts[:, 0, None, None]) ** 2 + (xs - pts[:, 1, None, None]) ** 2).amin(0)
        rates.append(float((d2 <= TOLERANCE**2).float().mean()))
    return sum(rates) / len(rates)


def test_the_demo_model_classifies_the_images(setup: tuple[torch.nn.Module, ...]) -> None:
    _, _, targets, masks = setup
    chance = _chance(masks)
    print(f"pointing-game chance level: {chance:.3f}")
    assert chance < 0.8, "the bar must be above chance to mean anything"
    labels = synthetic_shapes(IMAGES, 64, seed=1).get(list(range(IMAGES))).labels
    assert labels is not None and float((targets == labels).float().mean()) >= 0.9


def test_deepcover_points_at_the_shape(setup: tuple[torch.nn.Module, ...]) -> None:
    model, x, targets, masks = setup
    result = deepcover(
        model,
        x,
        targets,
        "tarantula",
        min_tests=100,
        max_tests=1000,
        generator=torch.Generator().manual_seed(0),
    )
    assert bool((result.failing > 0).all()) and bool((result.failing < result.tests).all())
    hit = _pointing(result.map, masks)
    print(f"DeepCover (tarantula, 100 tests): pointing game {hit:.3f} on {IMAGES} images")
    assert hit >= 0.8


def test_extremal_perturbation_points_at_the_shape(setup: tuple[torch.nn.Module, ...]) -> None:
    model, x, targets, masks = setup
    result = extremal_perturbation(model, x, targets, areas=(0.05,), steps=80)
    hit = _pointing(result.map, masks)
    print(f"extremal perturbation (area 0.05, 80 steps): pointing game {hit:.3f} on {IMAGES} images")
    assert hit >= 0.8

"""Extremal perturbation: the blur pyramid, the mask generator, area control and localisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods import extremal_map, extremal_perturbation
from camlang.methods.extremal import MaskGenerator, blur_pyramid, perturb


class BrightSquareDetector(nn.Module):
    """Class 1's logit is the amount of brightness above 0.5; class 0 is a constant 10."""

    def forward(self, x: Tensor) -> Tensor:
        evidence = F.relu(x.mean(dim=1) - 0.5).flatten(1).sum(dim=1)
        return torch.stack([torch.full_like(evidence, 10.0), evidence], dim=1)


def scenes(seed: int, batch: int = 3, size: int = 32, side: int = 8) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g) * 0.3
    truth = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        i, j = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
        x[b, :, i : i + side, j : j + side] = 1.0
        truth[b, i : i + side, j : j + side] = True
    return x, truth


def test_pyramid_and_perturbation_endpoints() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    pyramid = blur_pyramid(x, 4, 3.0)
    assert pyramid.shape == (4, 2, 3, 16, 16)
    torch.testing.assert_close(pyramid[0], x)
    assert float(pyramid[-1].std()) < float(x.std())  # blurred
    torch.testing.assert_close(pyramid[-1].mean((2, 3)), x.mean((2, 3)), atol=2e-2, rtol=0)
    image = torch.tensor([1, 0, 1])
    ones, zeros = torch.ones(3, 1, 16, 16), torch.zeros(3, 1, 16, 16)
    torch.testing.assert_close(perturb(pyramid, image, ones), x[image])
    torch.testing.assert_close(perturb(pyramid, image, zeros), pyramid[-1][image])
    half = perturb(pyramid, image, torch.full((3, 1, 16, 16), 1 - 0.5 / 3))  # halfway to level 1
    torch.testing.assert_close(half, 0.5 * (pyramid[0] + pyramid[1])[image])


def test_mask_generator_makes_smooth_blobs() -> None:
    gen = MaskGenerator(32, 32, stride=2, sigma=3.0, smooth=0.0)
    param = torch.zeros(1, 1, *gen.lattice)
    param[0, 0, 8, 8] = 1.0
    mask = gen(param)[0, 0]
    # Bilinear upsampling samples between lattice nodes, so the peak is a little under 1.
    assert mask.shape == (32, 32) and 0.85 < float(mask.max()) <= 1.0
    assert float(mask[0, 0]) < 1e-3  # far from the bump
    assert float(mask[16, 12]) < float(mask[16, 16])  # decays away from the centre
    soft = MaskGenerator(32, 32, stride=2, sigma=3.0, smooth=0.5)(param)[0, 0]
    assert float(soft.max()) < float(mask.max())


def test_fast_mode_masks_have_the_requested_areas_and_find_the_square() -> None:
    x, truth = scenes(0)
    areas = (0.0625, 0.2)
    r = extremal_perturbation(BrightSquareDetector(), x, areas=areas, fast=True)
    assert r.masks.shape == (3, 2, 32, 32) and r.areas == areas
    assert bool((r.masks >= 0).all()) and bool((r.masks <= 1).all())
    torch.testing.assert_close(r.map, r.masks.sum(dim=1))
    covered = (r.masks > 0.5).float().mean(dim=(2, 3))
    assert bool(((covered - torch.tensor(areas)).abs() < 0.03).all()), covered
    assert r.forward_passes == 3 + 81 * 3 * 2
    # Preservation: the kept region holds the class-1 evidence far better than the blurred image.
    blurred = BrightSquareDetector()(blur_pyramid(x, 8, 20 * 32 / 224)[-1])[:, 1]
    assert bool((r.scores[:, 0] > blurred).all())
    # Localisation: the top-64 mask pixels lie mostly in the 8x8 square (chance: 6%).
    top = r.masks[:, 0].flatten(1).topk(64, dim=1).indices
    hit = truth.flatten(1).gather(1, top).float().mean(dim=1)
    assert float(hit.min()) > 0.4, hit


def test_extremal_map_is_the_summary_and_steps_are_configurable() -> None:
    x, _ = scenes(1, batch=1)
    m = extremal_map(BrightSquareDetector(), x, areas=[0.1], steps=5, fast=True)
    assert m.shape == (1, 32, 32)
    r = extremal_perturbation(BrightSquareDetector(), x, areas=[0.1], steps=5, fast=True)
    torch.testing.assert_close(m, r.masks[:, 0])
    assert r.forward_passes == 1 + 6


@pytest.mark.parametrize(("areas", "needle"), [([], "non-empty"), ([1.5], "(0, 1)"), (["a"], "numbers")])
def test_bad_areas_are_user_errors(areas: list[object], needle: str) -> None:
    with pytest.raises(CamlangError) as info:
        extremal_perturbation(BrightSquareDetector(), scenes(0, batch=1)[0], areas=areas, steps=1)  # type: ignore[arg-type]
    assert needle in str(info.value)

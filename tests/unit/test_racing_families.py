"""Halving keeps each evidence family's best through the first rounds: a family that is unlucky
on the first few images (all its members at once) is not halved away before it is measured."""

from __future__ import annotations

import torch

from camlang.frontend.check import check_text
from camlang.synth.race_scorer import evidence_family
from camlang.synth.racing import race

N_IMAGES = 64
# family "b" minus family "a" on the first 4 images: worse on average, but too noisy for the
# confidence rule (mean -0.375, sd 0.98, so the paired upper bound at z = 2.5 is above 0)
UNLUCKY_START = (0.5, -1.5, 0.4, -0.9)
B_LEAD_LATER = 0.3


def _scores() -> torch.Tensor:
    """8 candidates of family "a" (rows 0-7), then 8 of family "b" (rows 8-15); within a family,
    a higher row is a little better, and each (row, image) has its own noise. "b" is better on
    every image after the fourth."""
    own = 0.01 * (torch.arange(16) % 8).float()
    noise = 0.05 * torch.randn(16, N_IMAGES, generator=torch.Generator().manual_seed(0))
    gap = torch.full((N_IMAGES,), B_LEAD_LATER)
    gap[:4] = torch.tensor(UNLUCKY_START)
    fam_b = torch.arange(16) >= 8
    return own[:, None] + noise + fam_b.float()[:, None] * gap[None, :]


def _race(**kw: object) -> list[int]:
    scores = _scores()

    def score(cands: list[int], images: list[int]) -> torch.Tensor:
        return scores[torch.tensor(cands)][:, torch.tensor(images)]

    # z = 1e9 turns the confidence rule off: these tests are about halving
    res = race(16, N_IMAGES, score, first=4, z=1e9, **kw)  # type: ignore[arg-type]
    return res.ranking()


def test_without_families_the_unlucky_family_is_halved_away() -> None:
    assert _race()[0] < 8  # one of "a": every "b" went in the first halving


def test_each_familys_best_survives_halving_until_protect_images() -> None:
    families = ["a"] * 8 + ["b"] * 8
    assert _race(families=families, protect=16)[0] >= 8  # one of "b", better on 60 of 64 images


def test_protection_ends_at_protect_images() -> None:
    families = ["a"] * 8 + ["b"] * 8
    # protect = 4: the first halving (at 4 images) is not shielded, so "b" goes as without families
    assert _race(families=families, protect=4)[0] < 8


def test_evidence_family_is_the_set_of_terminals_read() -> None:
    prog = check_text(
        "cam one = upsample(relu(sum_c(mean_hw(G) * A))) * abs(sum_c(X * GX_smooth))\n"
        'cam two = relu(sum_c(A@"layer2" * mean_hw(G@"layer2")))\n',
        file_checks=False,
    )
    one, two = prog.cams["one"].node, prog.cams["two"].node
    assert one is not None and two is not None
    assert evidence_family(one) == frozenset({"A", "G", "X", "GX_smooth"})
    assert evidence_family(two) == frozenset({"A@layer2", "G@layer2"})

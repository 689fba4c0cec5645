"""Shapes concept attributes (true by construction) and the shortcut variant."""

from __future__ import annotations

import pytest
import torch

from camlang.data import SHAPE_CLASSES, synthetic_shapes
from camlang.data.shapes import COLOUR_FAMILIES, SHAPE_CONCEPTS, SHORTCUT_FAMILY
from camlang.errors import CamlangError


def _family_of_pixels(raw: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Colour family of each target, read back from its painted pixels (hue by max channel)."""
    out = []
    for img, m in zip(raw, masks):
        r, g, b = (float(c) for c in img[:, m][:, 0])
        mx, mn = max(r, g, b), min(r, g, b)
        if mx == r:
            h = ((g - b) / (mx - mn)) % 6
        elif mx == g:
            h = (b - r) / (mx - mn) + 2
        else:
            h = (r - g) / (mx - mn) + 4
        out.append(int(h + 0.5) % 6)
    return torch.tensor(out)


def test_concepts_are_true_by_construction() -> None:
    ds = synthetic_shapes(96, seed=4)
    b = ds.get(range(96))
    assert ds.concept_names == list(SHAPE_CONCEPTS)
    assert b.concepts is not None and b.concepts.shape == (96, len(SHAPE_CONCEPTS))
    c = {name: b.concepts[:, k].bool() for k, name in enumerate(SHAPE_CONCEPTS)}
    # exactly one colour family, one size, one quadrant per image
    assert torch.equal(b.concepts[:, :6].sum(1), torch.ones(96))
    assert torch.equal((c["small"] ^ c["large"]), torch.ones(96, dtype=torch.bool))
    quads = torch.stack([c[q] for q in ("top_left", "top_right", "bottom_left", "bottom_right")], 1)
    assert torch.equal(quads.sum(1), torch.ones(96, dtype=torch.long))
    # the family matches the painted pixels
    assert torch.equal(_family_of_pixels(b.raw, b.masks), b.concepts[:, :6].argmax(1))
    # the quadrant matches the mask's centre of mass
    ys, xs = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    cy = (b.masks * ys).sum((1, 2)) / b.masks.sum((1, 2))
    cx = (b.masks * xs).sum((1, 2)) / b.masks.sum((1, 2))
    near_middle = ((cy - 32).abs() < 2) | ((cx - 32).abs() < 2)
    agree = (c["top_left"] == ((cy < 32) & (cx < 32))) | near_middle
    assert bool(agree.all())
    # large shapes have larger masks than small ones of the same class, on average
    for k in range(len(SHAPE_CLASSES)):
        of_k = b.labels == k
        area = b.masks.sum((1, 2)).float()
        if (of_k & c["small"]).any() and (of_k & c["large"]).any():
            assert area[of_k & c["small"]].mean() < area[of_k & c["large"]].mean()
    # a distractor has exactly one kind, and no distractor has none
    kinds = torch.stack([c["arc_distractor"], c["line_distractor"], c["blob_distractor"]], 1).sum(1)
    assert torch.equal(kinds, c["distractor"].long())
    assert 0 < int(c["distractor"].sum()) < 96 and 0 < int(c["strong_texture"].sum()) < 96


def test_shortcut_ties_colour_to_class_and_keeps_everything_else() -> None:
    plain = synthetic_shapes(400, seed=9).get(range(400))
    tied = synthetic_shapes(400, seed=9, shortcut=0.95).get(range(400))
    assert torch.equal(plain.labels, tied.labels) and torch.equal(plain.masks, tied.masks)
    # only target pixels may change
    assert torch.equal(
        plain.raw.masked_fill(plain.masks[:, None], 0), tied.raw.masked_fill(tied.masks[:, None], 0)
    )
    family = tied.concepts[:, :6].argmax(1)
    wanted = torch.tensor(
        [COLOUR_FAMILIES.index(SHORTCUT_FAMILY[SHAPE_CLASSES[int(y)]]) for y in tied.labels]
    )
    share = float((family == wanted).float().mean())
    assert 0.93 <= share <= 0.99, share
    plain_share = float((plain.concepts[:, :6].argmax(1) == wanted).float().mean())
    assert plain_share < 0.3  # the plain (shifted) data has colour independent of class
    assert torch.equal(tied.concepts[:, 6:], plain.concepts[:, 6:])


def test_shortcut_zero_is_the_plain_dataset() -> None:
    a = synthetic_shapes(12, seed=3).get(range(12))
    b = synthetic_shapes(12, seed=3, shortcut=0.0).get(range(12))
    assert torch.equal(a.raw, b.raw) and torch.equal(a.concepts, b.concepts)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x", True])
def test_shortcut_must_be_a_probability(bad: object) -> None:
    with pytest.raises(CamlangError, match="shortcut must be a probability"):
        synthetic_shapes(4, shortcut=bad)  # type: ignore[arg-type]

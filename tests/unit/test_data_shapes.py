"""Synthetic shapes: determinism, batch independence, masks, class selection."""

from __future__ import annotations

import time

import pytest
import torch

from camlang.data import SHAPE_CLASSES, synthetic_shapes
from camlang.errors import CamlangError


def test_same_seed_gives_identical_tensors() -> None:
    a = synthetic_shapes(16, seed=3).get(range(16))
    b = synthetic_shapes(16, seed=3).get(range(16))
    assert torch.equal(a.x, b.x) and torch.equal(a.raw, b.raw)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    c = synthetic_shapes(16, seed=4).get(range(16))
    assert not torch.equal(a.raw, c.raw)


def test_images_do_not_depend_on_batch_size_or_count() -> None:
    ds = synthetic_shapes(10, seed=7)
    whole = ds.get(range(10))
    for batch_size in (1, 3, 4):
        parts = list(ds.batches(batch_size))
        assert [len(p) for p in parts][0] == batch_size
        assert torch.equal(torch.cat([p.raw for p in parts]), whole.raw)
        assert torch.equal(torch.cat([p.masks for p in parts]), whole.masks)
        assert torch.equal(torch.cat([p.indices for p in parts]), torch.arange(10))
    bigger = synthetic_shapes(50, seed=7).get([9, 2])
    assert torch.equal(bigger.raw, whole.raw[[9, 2]])


def test_batch_layout_and_ranges() -> None:
    b = synthetic_shapes(8, size=48, seed=1).get(range(8))
    assert b.x.shape == (8, 3, 48, 48) and b.raw.shape == (8, 3, 48, 48)
    assert b.masks.shape == (8, 48, 48) and b.masks.dtype == torch.bool
    assert b.labels.dtype == torch.long and set(b.labels.tolist()) <= set(range(len(SHAPE_CLASSES)))
    assert float(b.raw.min()) >= 0.0 and float(b.raw.max()) <= 1.0
    assert torch.equal(b.x, b.raw)  # no normalization by default
    assert b.names[0] == "shapes/000000"


def test_masks_cover_the_target_shape_and_differ_from_background() -> None:
    b = synthetic_shapes(64, seed=2).get(range(64))
    for i in range(64):
        mask = b.masks[i]
        area = int(mask.sum())
        assert area >= 40, f"image {i}: mask has only {area} pixels"
        assert area < mask.numel() // 2
        ys, xs = torch.nonzero(mask, as_tuple=True)
        # the shape lies inside the image, not cut by its border
        assert int(ys.min()) > 0 and int(xs.min()) > 0 and int(ys.max()) < 63 and int(xs.max()) < 63
        pixels = b.raw[i][:, mask]  # [3, area]
        # the target is painted in one flat colour ...
        assert float((pixels - pixels[:, :1]).abs().max()) == 0.0
        # ... that stands out from the pixels right around it
        ring = torch.nn.functional.max_pool2d(mask[None, None].float(), 7, 1, 3)[0, 0].bool() & ~mask
        around = b.raw[i][:, ring].mean(dim=1)
        assert float((pixels[:, 0] - around).abs().sum()) > 0.3, f"image {i}: target blends in"


def test_labels_follow_shape_geometry() -> None:
    # Filled area relative to the bounding circle separates the classes on average.
    b = synthetic_shapes(200, seed=5).get(range(200))
    fill = []
    for i in range(200):
        ys, xs = torch.nonzero(b.masks[i], as_tuple=True)
        cy, cx = ys.float().mean(), xs.float().mean()
        r = torch.sqrt((ys.float() - cy) ** 2 + (xs.float() - cx) ** 2).max()
        fill.append(float(b.masks[i].sum()) / float(torch.pi * r * r))
    fill_t = torch.tensor(fill)
    means = {c: float(fill_t[b.labels == k].mean()) for k, c in enumerate(SHAPE_CLASSES)}
    assert means["circle"] > means["square"] > means["triangle"]
    assert means["circle"] > means["cross"]


def test_distractors_appear_in_about_half_the_images() -> None:
    b = synthetic_shapes(100, seed=0).get(range(100))
    # The background is dim and nearly grey; distractors are bright grey or saturated colours.
    spread = b.raw.max(dim=1).values - b.raw.min(dim=1).values  # colourfulness per pixel
    bright = b.raw.max(dim=1).values
    marks = ((spread > 0.35) | (bright > 0.75)) & ~b.masks
    with_distractor = int((marks.flatten(1).sum(1) >= 4).sum())
    assert 25 <= with_distractor <= 75


def test_class_subset_and_errors() -> None:
    ds = synthetic_shapes(40, seed=0, classes=["square", "cross"])
    labels = ds.get(range(40)).labels
    assert set(labels.tolist()) == {SHAPE_CLASSES.index("square"), SHAPE_CLASSES.index("cross")}
    assert ds.describe()["classes_present"] == ["square", "cross"]
    assert ds.class_names == list(SHAPE_CLASSES)
    with pytest.raises(CamlangError, match="hexagon") as err:
        synthetic_shapes(4, classes=["hexagon"])
    assert "circle" in str(err.value)
    with pytest.raises(CamlangError):
        synthetic_shapes(0)
    with pytest.raises(CamlangError):
        synthetic_shapes(4, size=8)


def test_generation_is_fast() -> None:
    ds = synthetic_shapes(128, size=64, seed=0)
    # CPU time, not wall time: other processes on a shared machine must not fail this test.
    start = time.process_time()
    ds.get(range(128))
    assert time.process_time() - start < 1.0


def test_describe() -> None:
    info = synthetic_shapes(12, seed=9).describe()
    assert info["kind"] == "shapes" and info["count"] == 12 and info["size"] == 64
    assert info["mean"] == [0.0, 0.0, 0.0] and info["std"] == [1.0, 1.0, 1.0]
    assert info["has_labels"] and info["has_masks"] and info["channels"] == 3

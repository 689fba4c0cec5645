"""The embedded default dataset: synthetic coloured shapes with exact ground-truth masks.

Every image holds one target shape (its class is the label, its pixels are the mask) on a
textured, noisy background, and with probability 1/2 a distractor that is not a class shape
(a ring segment, a thin line or a small blob) drawn underneath the target. Image `i` of seed `s`
depends only on `(s, i)`: its random parameters come from `numpy.random.default_rng([s, i])`,
so it is the same whatever the batch size, view or count. Rendering is vectorised over a batch.

Every image also carries concept attributes that are true by construction (`SHAPE_CONCEPTS`):
the target's colour family, its size, its quadrant, the distractor and its kind, and whether
the background texture is strong.

The shortcut variant (`shortcut=p`) ties colour to class: with probability `p` an image's
target takes its class's colour family (`SHORTCUT_FAMILY`). The choice and the new hue come
from a second generator, `default_rng([s, i, 1])`, so shape, position, background and
distractor stay exactly those of the plain image with the same seed and index; `shortcut=0`
is the plain dataset, bit for bit (and the "shifted" split, where colour is independent of
the class).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from camlang.data.base import NORMALIZATION_PRESETS, Batch, Dataset
from camlang.errors import CamlangError
from camlang.frontend.signatures import COLOUR_FAMILIES, SHAPE_CONCEPTS

#: Class names of the shapes dataset, in label order.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

_DISTRACTOR_ARC, _DISTRACTOR_LINE, _DISTRACTOR_BLOB = 0, 1, 2

#: The colour family each class takes in the shortcut variant (circle red, square green, ...).
SHORTCUT_FAMILY: dict[str, str] = {"circle": "red", "square": "green", "triangle": "blue", "cross": "yellow"}
#: Shapes whose radius is below this fraction of the image size are "small", the rest "large".
_SMALL_RADIUS = 0.225
#: Background waves whose two amplitudes add up to more than this are a "strong texture".
_STRONG_TEXTURE = 0.085
#: In the shortcut variant, hues stay within this distance of the family centre (families are
#: 1/6 wide), so that a shortcut colour is never on the border between two families.
_SHORTCUT_HUE_SPREAD = 1.0 / 18.0


@dataclass(frozen=True)
class _Params:
    """Per-image random parameters, one array entry per image (all in pixel units)."""

    label: np.ndarray  # int64 class index into SHAPE_CLASSES
    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    theta: np.ndarray
    colour: np.ndarray  # [B, 3]
    hue: np.ndarray  # in [0, 1): the target colour's hue
    bg_base: np.ndarray  # [B, 3]
    bg_wave: np.ndarray  # [B, 6]: amplitude, fx, fy, phase, amplitude2, phase2
    noise: np.ndarray  # [B, 3, H, W] standard normal, scaled by noise_std
    noise_std: np.ndarray
    has_distractor: np.ndarray  # bool
    d_kind: np.ndarray
    d_cx: np.ndarray
    d_cy: np.ndarray
    d_size: np.ndarray  # arc radius, line half-length or blob radius
    d_width: np.ndarray  # ring / line thickness
    d_angle: np.ndarray
    d_span: np.ndarray  # arc angular span
    d_colour: np.ndarray  # [B, 3]


def _hsv_to_rgb(h: float, s: float, v: float) -> list[float]:
    """Convert one HSV colour (all in [0, 1]) to RGB."""
    k = [(n + h * 6.0) % 6.0 for n in (5.0, 3.0, 1.0)]
    return [v - v * s * max(0.0, min(kk, 4.0 - kk, 1.0)) for kk in k]


def _sample_params(
    seed: int, indices: Sequence[int], size: int, label_pool: Sequence[int], shortcut: float = 0.0
) -> _Params:
    """Draw every random parameter of the images with these indices, one generator per image.

    With `shortcut > 0`, a second generator per image decides whether the target takes its
    class's colour family; every other draw is the same as for the plain dataset.
    """
    cols: dict[str, list] = {f: [] for f in _Params.__dataclass_fields__}
    for i in indices:
        rng = np.random.default_rng([seed, int(i)])
        label = int(label_pool[int(rng.integers(len(label_pool)))])
        radius = rng.uniform(0.15, 0.30) * size
        margin = 1.2 * radius + 1.0
        cols["label"].append(label)
        cols["radius"].append(radius)
        cols["cx"].append(rng.uniform(margin, size - margin))
        cols["cy"].append(rng.uniform(margin, size - margin))
        cols["theta"].append(rng.uniform(0.0, 2.0 * math.pi))
        hue, sat, val = rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0)
        if shortcut > 0.0:
            tie = np.random.default_rng([seed, int(i), 1])
            if tie.random() < shortcut:
                family = COLOUR_FAMILIES.index(SHORTCUT_FAMILY[SHAPE_CLASSES[label]])
                hue = (family / 6.0 + tie.uniform(-_SHORTCUT_HUE_SPREAD, _SHORTCUT_HUE_SPREAD)) % 1.0
        cols["hue"].append(hue)
        cols["colour"].append(_hsv_to_rgb(hue, sat, val))
        grey = rng.uniform(0.2, 0.45)
        cols["bg_base"].append([grey + t for t in rng.uniform(-0.05, 0.05, size=3)])
        cols["bg_wave"].append(
            [
                rng.uniform(0.03, 0.09),
                rng.uniform(0.05, 0.35),
                rng.uniform(0.05, 0.35),
                rng.uniform(0.0, 2.0 * math.pi),
                rng.uniform(0.0, 0.05),
                rng.uniform(0.0, 2.0 * math.pi),
            ]
        )
        cols["noise_std"].append(rng.uniform(0.015, 0.05))
        cols["noise"].append(rng.standard_normal((3, size, size), dtype=np.float32))
        cols["has_distractor"].append(bool(rng.random() < 0.5))
        kind = int(rng.integers(3))
        cols["d_kind"].append(kind)
        cols["d_cx"].append(rng.uniform(0.1, 0.9) * size)
        cols["d_cy"].append(rng.uniform(0.1, 0.9) * size)
        if kind == _DISTRACTOR_ARC:
            d_size = rng.uniform(0.10, 0.25) * size
        elif kind == _DISTRACTOR_LINE:
            d_size = rng.uniform(0.12, 0.25) * size
        else:
            d_size = rng.uniform(0.025, 0.055) * size
        cols["d_size"].append(d_size)
        cols["d_width"].append(rng.uniform(0.02, 0.045) * size)
        cols["d_angle"].append(rng.uniform(0.0, 2.0 * math.pi))
        cols["d_span"].append(rng.uniform(math.pi / 3, math.pi))
        if rng.random() < 0.5:
            cols["d_colour"].append([rng.uniform(0.55, 0.95)] * 3)
        else:
            cols["d_colour"].append(_hsv_to_rgb(rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0)))
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    if len(indices) == 0:
        arrays["noise"] = np.zeros((0, 3, size, size), dtype=np.float32)
        arrays["colour"] = arrays["bg_base"] = arrays["d_colour"] = np.zeros((0, 3))
        arrays["bg_wave"] = np.zeros((0, 6))
    return _Params(**arrays)


def concept_attributes(p: _Params, size: int) -> torch.Tensor:
    """Float `[B, len(SHAPE_CONCEPTS)]` 0/1 matrix of each image's concepts, true by construction."""
    n = len(p.label)
    family = np.floor(np.asarray(p.hue, dtype=np.float64) * 6.0 + 0.5).astype(np.int64) % 6
    colour = np.eye(6, dtype=bool)[family].reshape(n, 6)
    small = np.asarray(p.radius) < _SMALL_RADIUS * size
    top, left = np.asarray(p.cy) < size / 2, np.asarray(p.cx) < size / 2
    has_d = np.asarray(p.has_distractor, dtype=bool)
    kinds = np.stack([has_d & (np.asarray(p.d_kind) == k) for k in range(3)], axis=1).reshape(n, 3)
    texture = np.asarray(p.bg_wave).reshape(n, 6)[:, [0, 4]].sum(axis=1) > _STRONG_TEXTURE
    columns = [
        colour,
        small[:, None],
        ~small[:, None],
        (top & left)[:, None],
        (top & ~left)[:, None],
        (~top & left)[:, None],
        (~top & ~left)[:, None],
        has_d[:, None],
        kinds,
        texture[:, None],
    ]
    return torch.as_tensor(np.concatenate(columns, axis=1), dtype=torch.float32)


def _t(a: np.ndarray) -> torch.Tensor:
    """A float32 tensor broadcastable against `[B, H, W]` grids."""
    return torch.as_tensor(a, dtype=torch.float32).view(-1, 1, 1)


def _target_masks(p: _Params, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bool `[B, H, W]`: the pixels (by centre) of each image's target shape."""
    dx, dy = xs - _t(p.cx), ys - _t(p.cy)
    cos, sin, r = torch.cos(_t(p.theta)), torch.sin(_t(p.theta)), _t(p.radius)
    u = (cos * dx + sin * dy) / r
    v = (-sin * dx + cos * dy) / r
    circle = u * u + v * v <= 1.0
    square = torch.maximum(u.abs(), v.abs()) <= 0.8
    # Equilateral triangle with inradius 0.58: inside all three half-planes.
    triangle = torch.ones_like(circle)
    for k in range(3):
        a = -math.pi / 2 + 2 * math.pi * k / 3
        triangle &= u * math.cos(a) + v * math.sin(a) <= 0.58
    arm = 0.3
    cross = ((u.abs() <= arm) & (v.abs() <= 1.0)) | ((v.abs() <= arm) & (u.abs() <= 1.0))
    by_class = torch.stack([circle, square, triangle, cross], dim=1)  # [B, 4, H, W]
    label = torch.as_tensor(p.label, dtype=torch.long).view(-1, 1, 1, 1)
    return by_class.gather(1, label.expand(-1, 1, *circle.shape[1:])).squeeze(1)


def _distractor_masks(p: _Params, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bool `[B, H, W]`: each image's distractor pixels (all False where it has none)."""
    dx, dy = xs - _t(p.d_cx), ys - _t(p.d_cy)
    size, width, angle = _t(p.d_size), _t(p.d_width), _t(p.d_angle)
    dist = torch.sqrt(dx * dx + dy * dy)
    # Ring segment: within width/2 of the circle of radius `size`, inside an angular window.
    rel = torch.remainder(torch.atan2(dy, dx) - angle, 2 * math.pi)
    arc = ((dist - size).abs() <= width / 2) & (rel <= _t(p.d_span))
    # Thin line segment through the centre along `angle`.
    along = dx * torch.cos(angle) + dy * torch.sin(angle)
    across = -dx * torch.sin(angle) + dy * torch.cos(angle)
    line = (along.abs() <= size) & (across.abs() <= width / 2)
    blob = dist <= size
    by_kind = torch.stack([arc, line, blob], dim=1)
    kind = torch.as_tensor(p.d_kind, dtype=torch.long).view(-1, 1, 1, 1)
    chosen = by_kind.gather(1, kind.expand(-1, 1, *arc.shape[1:])).squeeze(1)
    return chosen & torch.as_tensor(p.has_distractor, dtype=torch.bool).view(-1, 1, 1)


def render_shapes(
    seed: int,
    indices: Sequence[int],
    size: int,
    label_pool: Sequence[int] = (0, 1, 2, 3),
    shortcut: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render images `indices` of the shapes dataset with `seed`.

    Returns `(raw [B,3,H,W] in [0,1], labels [B], masks [B,H,W] bool)`.
    """
    raw, labels, masks, _ = render_shapes_with_concepts(seed, indices, size, label_pool, shortcut)
    return raw, labels, masks


def render_shapes_with_concepts(
    seed: int,
    indices: Sequence[int],
    size: int,
    label_pool: Sequence[int] = (0, 1, 2, 3),
    shortcut: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`render_shapes` plus the concept matrix `[B, len(SHAPE_CONCEPTS)]` (see `concept_attributes`)."""
    p = _sample_params(seed, indices, size, label_pool, shortcut)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = coords.view(1, -1, 1), coords.view(1, 1, -1)
    amp, fx, fy, phase, amp2, phase2 = (_t(p.bg_wave[:, j]) for j in range(6))
    texture = amp * torch.sin(fx * xs + fy * ys + phase) + amp2 * torch.sin(fy * xs - fx * ys + phase2)
    base = torch.as_tensor(p.bg_base, dtype=torch.float32).view(-1, 3, 1, 1)
    noise = torch.from_numpy(p.noise) * _t(p.noise_std).view(-1, 1, 1, 1)
    img = base + texture.unsqueeze(1) + noise
    distractor = _distractor_masks(p, ys, xs).unsqueeze(1)
    d_colour = torch.as_tensor(p.d_colour, dtype=torch.float32).view(-1, 3, 1, 1)
    img = torch.where(distractor, d_colour, img)
    target = _target_masks(p, ys, xs)
    colour = torch.as_tensor(p.colour, dtype=torch.float32).view(-1, 3, 1, 1)
    img = torch.where(target.unsqueeze(1), colour, img).clamp_(0.0, 1.0)
    return img, torch.as_tensor(p.label, dtype=torch.long), target, concept_attributes(p, size)


def distractor_masks(
    seed: int,
    indices: Sequence[int],
    size: int,
    label_pool: Sequence[int] = (0, 1, 2, 3),
    shortcut: float = 0.0,
) -> torch.Tensor:
    """Bool `[B, H, W]`: the visible distractor pixels of these images (the target is drawn on top).

    The concept mask of "distractor" for concept maps (as Network Dissection scores units).
    """
    p = _sample_params(seed, indices, size, label_pool, shortcut)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = coords.view(1, -1, 1), coords.view(1, 1, -1)
    return _distractor_masks(p, ys, xs) & ~_target_masks(p, ys, xs)


class ShapesDataset(Dataset):
    """Deterministic synthetic shapes; see the module docstring. Build with `synthetic_shapes`."""

    kind = "shapes"

    def __init__(
        self, count: int, size: int, seed: int, classes: Sequence[str] | None, shortcut: float = 0.0
    ) -> None:
        super().__init__(count)
        self.size = size
        self.seed = seed
        self.shortcut = shortcut
        self.concept_names = list(SHAPE_CONCEPTS)
        self.channels = 3
        self.normalization = NORMALIZATION_PRESETS["none"]
        self.class_names = list(SHAPE_CLASSES)
        self.classes_present = list(SHAPE_CLASSES) if classes is None else list(classes)
        self._label_pool = [SHAPE_CLASSES.index(c) for c in self.classes_present]
        self.has_labels = True
        self.has_masks = True
        self.name = f"shapes(count={count}, size={size}, seed={seed})"
        if shortcut > 0.0:
            self.name = f"shapes(count={count}, size={size}, seed={seed}, shortcut={shortcut:g})"

    def describe(self) -> dict[str, object]:
        """The common summary plus the seed and which classes are generated."""
        info = super().describe()
        info["seed"] = self.seed
        info["classes_present"] = list(self.classes_present)
        info["concepts"] = list(SHAPE_CONCEPTS)
        if self.shortcut > 0.0:
            info["shortcut"] = self.shortcut
        return info

    def distractor_masks(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Distractor masks `[B, H, W]` of the images at these positions of this view."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        base = [int(i) for i in self._order[idx]]
        return distractor_masks(self.seed, base, self.size, self._label_pool, self.shortcut)

    def _load(self, base_indices: torch.Tensor) -> Batch:
        idx = [int(i) for i in base_indices]
        raw, labels, masks, concepts = render_shapes_with_concepts(
            self.seed, idx, self.size, self._label_pool, self.shortcut
        )
        return Batch(
            x=raw.clone(),
            raw=raw,
            labels=labels,
            masks=masks,
            names=[f"shapes/{i:06d}" for i in idx],
            indices=base_indices.clone(),
            concepts=concepts,
        )


def synthetic_shapes(
    count: int,
    size: int = 64,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    shortcut: float = 0.0,
) -> ShapesDataset:
    """The embedded default dataset: `count` shape images of `size` x `size`, fixed by `seed`.

    `classes` restricts which shapes are generated (by name); labels stay indices into the full
    `SHAPE_CLASSES` list so that a model trained on all shapes scores a subset correctly.
    Images are RGB in [0, 1] and are not normalized; masks are exactly the target's pixels.
    `shortcut` in [0, 1] is the probability that a target takes its class's colour family
    (`SHORTCUT_FAMILY`); 0 (the default) keeps colour independent of the class.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CamlangError(f"shapes count must be a positive integer, got {count!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
        raise CamlangError(f"shapes size must be an integer between 16 and 1024, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CamlangError(f"shapes seed must be a non-negative integer, got {seed!r}")
    if classes is not None:
        if isinstance(classes, str):
            classes = [classes]
        unknown = [c for c in classes if c not in SHAPE_CLASSES]
        if unknown:
            raise CamlangError(
                f"unknown shape class {unknown[0]!r}",
                hint="valid classes are " + ", ".join(SHAPE_CLASSES),
            )
        if not classes:
            raise CamlangError("shapes classes must name at least one class", hint=", ".join(SHAPE_CLASSES))
        classes = list(dict.fromkeys(classes))
    if isinstance(shortcut, bool) or not isinstance(shortcut, int | float) or not 0.0 <= shortcut <= 1.0:
        raise CamlangError(
            f"shapes shortcut must be a probability between 0 and 1, got {shortcut!r}",
            hint="e.g. shortcut = 0.95 ties each class to its colour family in 95% of the images",
        )
    return ShapesDataset(count, size, seed, classes, float(shortcut))

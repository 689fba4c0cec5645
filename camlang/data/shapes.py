"""The embedded default dataset: synthetic coloured shapes with exact ground-truth masks.

Every image holds one target shape (its class is the label, its pixels are the mask) on a
textured, noisy background, and with probability 1/2 a distractor that is not a class shape
(a ring segment, a thin line or a small blob) drawn underneath the target. Image `i` of seed `s`
depends only on `(s, i)`: its random parameters come from `numpy.random.default_rng([s, i])`,
so it is the same whatever the batch size, view or count. Rendering is vectorised over a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from camlang.data.base import NORMALIZATION_PRESETS, Batch, Dataset
from camlang.errors import CamlangError

#: Class names of the shapes dataset, in label order.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")

_DISTRACTOR_ARC, _DISTRACTOR_LINE, _DISTRACTOR_BLOB = 0, 1, 2


@dataclass(frozen=True)
class _Params:
    """Per-image random parameters, one array entry per image (all in pixel units)."""

    label: np.ndarray  # int64 class index into SHAPE_CLASSES
    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    theta: np.ndarray
    colour: np.ndarray  # [B, 3]
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


def _sample_params(seed: int, indices: Sequence[int], size: int, label_pool: Sequence[int]) -> _Params:
    """Draw every random parameter of the images with these indices, one generator per image."""
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
        cols["colour"].append(_hsv_to_rgb(rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.8, 1.0)))
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
    seed: int, indices: Sequence[int], size: int, label_pool: Sequence[int] = (0, 1, 2, 3)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render images `indices` of the shapes dataset with `seed`.

    Returns `(raw [B,3,H,W] in [0,1], labels [B], masks [B,H,W] bool)`.
    """
    p = _sample_params(seed, indices, size, label_pool)
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
    return img, torch.as_tensor(p.label, dtype=torch.long), target


class ShapesDataset(Dataset):
    """Deterministic synthetic shapes; see the module docstring. Build with `synthetic_shapes`."""

    kind = "shapes"

    def __init__(self, count: int, size: int, seed: int, classes: Sequence[str] | None) -> None:
        super().__init__(count)
        self.size = size
        self.seed = seed
        self.channels = 3
        self.normalization = NORMALIZATION_PRESETS["none"]
        self.class_names = list(SHAPE_CLASSES)
        self.classes_present = list(SHAPE_CLASSES) if classes is None else list(classes)
        self._label_pool = [SHAPE_CLASSES.index(c) for c in self.classes_present]
        self.has_labels = True
        self.has_masks = True
        self.name = f"shapes(count={count}, size={size}, seed={seed})"

    def describe(self) -> dict[str, object]:
        """The common summary plus the seed and which classes are generated."""
        info = super().describe()
        info["seed"] = self.seed
        info["classes_present"] = list(self.classes_present)
        return info

    def _load(self, base_indices: torch.Tensor) -> Batch:
        idx = [int(i) for i in base_indices]
        raw, labels, masks = render_shapes(self.seed, idx, self.size, self._label_pool)
        return Batch(
            x=raw.clone(),
            raw=raw,
            labels=labels,
            masks=masks,
            names=[f"shapes/{i:06d}" for i in idx],
            indices=base_indices.clone(),
        )


def synthetic_shapes(
    count: int, size: int = 64, seed: int = 0, classes: Sequence[str] | None = None
) -> ShapesDataset:
    """The embedded default dataset: `count` shape images of `size` x `size`, fixed by `seed`.

    `classes` restricts which shapes are generated (by name); labels stay indices into the full
    `SHAPE_CLASSES` list so that a model trained on all shapes scores a subset correctly.
    Images are RGB in [0, 1] and are not normalized; masks are exactly the target's pixels.
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
    return ShapesDataset(count, size, seed, classes)

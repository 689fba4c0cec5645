"""Torch kernels of the op table's metric rows: `kernel(inputs, operands, attrs) -> tensor`.

The op table's kernel registry (`camlang.frontend.op_table.KERNEL_TABLES`) names `TORCH` here,
so the torch back end runs a metric op like any other op. Each kernel reads the batch through
`MetricInputs` (`camlang.metrics.inputs`): K cams on B images stacked into `K * B` rows, row
`k * B + b` being cam k on image b. Values keep the `[N, c, h, w]` layout; a per-row scalar is
`[K*B, 1, 1, 1]`. Model calls on an image batch that is the same for every cam (it does not
depend on `L`) run on B rows and are tiled, so the model and the CAMs see one image per image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from camlang.core.per_image_rng import per_image_normal, per_image_uniform
from camlang.errors import CamlangError
from camlang.metrics._common import run_model
from camlang.metrics.complexity import entropy, sparsity
from camlang.metrics.curves import deletion_auc, insertion_auc
from camlang.metrics.inputs import MetricInputs, SensitivityDraws
from camlang.metrics.localisation import argmax_points, energy_pointing_game, inside, pointing_game
from camlang.metrics.road import TIE_RULES, road, road_combined
from camlang.metrics.sufficiency import sufficient_fraction
from camlang.metrics.transforms import blur, hflip, keep_top, mask_top, shift

Tensor = torch.Tensor
Attrs = dict[str, Any]
MetricKernel = Callable[[MetricInputs, tuple[Tensor, ...], Attrs], Tensor]

POINTING_TOLERANCE_SHARE = 15 / 224
"""Zhang et al.'s 15-pixel tolerance on 224-pixel images, as a share of the shorter image side."""

SENSITIVITY_NORMS = ("fro", "relative", "mean_abs")


def pointing_tolerance(tolerance: float | None, input_size: tuple[int, int]) -> float:
    """The pointing game tolerance in pixels: as given, or 15/224 of the shorter side when None."""
    if tolerance is None:
        return POINTING_TOLERANCE_SHARE * min(input_size)
    return float(tolerance)


def tile(m: MetricInputs, t: Tensor) -> Tensor:
    """B rows repeated for every cam: `[B, ...] -> [K*B, ...]`."""
    return t.repeat(m.k, *([1] * (t.dim() - 1)))


def is_tiled(m: MetricInputs, t: Tensor) -> bool:
    """Whether every cam's block of rows of `t` is the same (so B rows stand for all)."""
    first = t[: m.b]
    return all(torch.equal(t[i * m.b : (i + 1) * m.b], first) for i in range(1, m.k))


def _per_row(m: MetricInputs, values: Tensor) -> Tensor:
    """`[K*B]` values as the `[K*B, 1, 1, 1]` layout, in the batch's dtype."""
    return values.to(m.dtype)[:, None, None, None]


# ---- model re-evaluation
def _logits(m: MetricInputs, x: Tensor) -> Tensor:
    if is_tiled(m, x):
        return tile(m, run_model(m.model_fn, x[: m.b], m.chunk_size, m.counter))
    return run_model(m.model_fn, x, m.chunk_size, m.counter)


def _p_at(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return torch.softmax(_logits(m, a[0]), 1).gather(1, m.targets[:, None])[:, :, None, None]


def _s_at(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return _logits(m, a[0]).gather(1, m.targets[:, None])[:, :, None, None]


def cams_on(m: MetricInputs, images: Tensor) -> Tensor:
    """Each cam's map on its own rows of `images` `[K*B, C, H, W]`, as `[K*B, 1, H, W]`."""
    if is_tiled(m, images):
        got = m.cams_at(images[: m.b])
        return torch.cat([got[c] for c in m.cams])[:, None]
    rows = [m.cams_at(images[i * m.b : (i + 1) * m.b])[cam] for i, cam in enumerate(m.cams)]
    return torch.cat(rows)[:, None]


def _ref(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return m.clean(tile(m, m.ref_map(k["cam"]).detach())[:, None])


# ---- points and transforms
def _argmax(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return argmax_points(m.clean(a[0])[:, 0]).to(m.dtype)[:, :, None, None]


def _inside(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    point, mask = a
    return _per_row(m, inside(point[:, :, 0, 0].long(), mask[:, 0] > 0.5))


def _noise(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    x = a[0]
    # Keyed per image (run seed, dataset index, `seed`); every cam's row of an image gets the same draw.
    draw = per_image_normal(m.seed, m.indices, "noise", x.shape[1:], k["seed"], dtype=x.dtype)
    return x + (k["std"] * draw.to(x.device)).repeat(x.shape[0] // m.b, *([1] * (x.dim() - 1)))


def _mask_top(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return mask_top(a[0], m.clean(a[1])[:, 0], k["fraction"], k["fill"])


def _keep_top(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return keep_top(a[0], m.clean(a[1])[:, 0], k["fraction"], k["fill"])


# ---- curve and search metrics
def _curve(auc: Callable[..., Any]) -> MetricKernel:
    def run(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
        map = m.clean(a[0])[:, 0]
        x = m.terminal("X")
        r = auc(
            m.model_fn, x, map, m.targets, k["steps"], k["fill"], chunk_size=m.chunk_size, counter=m.counter
        )
        return _per_row(m, r.auc)

    return run


def _sufficient_fraction(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    map = m.clean(a[0])[:, 0]
    x = m.terminal("X")
    r = sufficient_fraction(
        m.model_fn, x, map, m.targets, k["fill"], chunk_size=m.chunk_size, counter=m.counter
    )
    return _per_row(m, r.fraction)


def _road(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    map = m.clean(a[0])[:, 0]
    mode, tie_rule = k["mode"], k.get("tie_rule", "rank")
    if tie_rule not in TIE_RULES:
        raise CamlangError(f'road tie_rule must be "rank" or "threshold", got "{tie_rule}"')
    x, indices = m.terminal("X"), m.indices.repeat(m.k)
    if mode == "combined":
        r = road_combined(
            m.model_fn,
            x,
            map,
            m.targets,
            chunk_size=m.chunk_size,
            counter=m.counter,
            tie_rule=tie_rule,
            seed=m.seed,
            indices=indices,
        )
    elif mode == "morf" or mode == "lerf":
        r = road(
            m.model_fn,
            x,
            map,
            m.targets,
            mode=mode,
            chunk_size=m.chunk_size,
            counter=m.counter,
            tie_rule=tie_rule,
            seed=m.seed,
            indices=indices,
        )
    else:
        raise CamlangError(f'road mode must be "morf", "lerf" or "combined", got "{mode}"')
    return _per_row(m, r.score)


# ---- localisation and complexity
def _pointing(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    map, mask = m.clean(a[0]), a[1]
    px = pointing_tolerance(k.get("tolerance"), (int(map.shape[-2]), int(map.shape[-1])))
    return _per_row(m, pointing_game(map[:, 0], mask[:, 0] > 0.5, px))


def _energy_inside(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    return _per_row(m, energy_pointing_game(m.clean(a[0])[:, 0], a[1][:, 0] > 0.5))


def _iou(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
    x, y = a[0].clamp(0, 1), a[1].clamp(0, 1)
    inter = (x * y).sum((1, 2, 3), keepdim=True)
    union = (x + y - x * y).sum((1, 2, 3), keepdim=True)
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.ones_like(union))


def _map_score(f: Callable[[Tensor], Tensor]) -> MetricKernel:
    """A kernel scoring each row's cleaned map alone (`[K*B, H, W] -> [K*B]`)."""
    return lambda m, a, k: _per_row(m, f(m.clean(a[0])[:, 0]))


# ---- robustness
def sensitivities(m: MetricInputs, radius: float, samples: int, norm: str) -> Tensor:
    """`[samples, K*B]` map changes under uniform L-infinity noise (as `sensitivity_samples`).

    Every sensitivity metric with the same radius and samples shares one set of draws and CAM calls.
    """
    if norm not in SENSITIVITY_NORMS:
        raise CamlangError(f'sensitivity norm must be "fro", "relative" or "mean_abs", got "{norm}"')
    if samples < 1 or radius < 0:
        raise CamlangError(f"sensitivity needs samples >= 1 and radius >= 0, got {samples} and {radius}")
    key = (radius, samples)
    if key not in m.sensitivity_draws:
        m.sensitivity_draws[key] = _sensitivity_draws(m, radius, samples)
    return m.sensitivity_draws[key].by_norm(norm)


def _sensitivity_draws(m: MetricInputs, radius: float, samples: int) -> SensitivityDraws:
    base = m.terminal("L")
    base_norm = base.flatten(1).norm(dim=1)
    x = m.terminal("X")
    fro, relative, mean_abs = [], [], []
    for s in range(samples):
        u = per_image_uniform(m.seed, m.indices, "sensitivity", x.shape[1:], s, dtype=x.dtype)
        moved = cams_on(m, x + tile(m, radius * (2 * u.to(x.device) - 1)))
        diff = (moved - base).flatten(1)
        size = diff.norm(dim=1)
        fro.append(size)
        relative.append(torch.where(size == 0, torch.zeros_like(size), size / base_norm))
        mean_abs.append(diff.abs().mean(1))
    return SensitivityDraws(torch.stack(fro), torch.stack(relative), torch.stack(mean_abs))


def _sensitivity(reduce: Callable[[Tensor], Tensor]) -> MetricKernel:
    def run(m: MetricInputs, a: tuple[Tensor, ...], k: Attrs) -> Tensor:
        return _per_row(m, reduce(sensitivities(m, k["radius"], k["samples"], k.get("norm", "fro"))))

    return run


TORCH: dict[str, MetricKernel] = {
    "P_at": _p_at,
    "S_at": _s_at,
    "L_at": lambda m, a, k: cams_on(m, a[0]),
    "ref": _ref,
    "argmax": _argmax,
    "inside": _inside,
    "blur": lambda m, a, k: blur(a[0], k["sigma"]),
    "noise": _noise,
    "hflip": lambda m, a, k: hflip(a[0]),
    "shift": lambda m, a, k: shift(a[0], k["dx"], k["dy"]),
    "mask_top": _mask_top,
    "keep_top": _keep_top,
    "deletion_auc": _curve(deletion_auc),
    "insertion_auc": _curve(insertion_auc),
    "sufficient_fraction": _sufficient_fraction,
    "road": _road,
    "pointing": _pointing,
    "energy_inside": _energy_inside,
    "iou": _iou,
    "gini": _map_score(sparsity),
    "entropy": _map_score(entropy),
    "max_sensitivity": _sensitivity(lambda s: s.amax(0)),
    "avg_sensitivity": _sensitivity(lambda s: s.mean(0)),
}

"""ROAD: RemOve And Debias (Rong et al. 2022), with pytorch-grad-cam's percentiles and imputer.

For each percentile `p` (default 10, 20, ..., 90), `100 - p` percent of the pixels are removed:

- `tie_rule="rank"` (default): exactly `k = floor((100 - p) * H * W / 100)` pixels go. MoRF (most
  relevant first) removes the top k of `pixel_ranks(L)`, the order deletion and insertion use
  (decreasing saliency, ties: smaller row-major index first); LeRF (least relevant first) the
  top k of `pixel_ranks(-L)` (increasing saliency, same tie-break).
- `tie_rule="threshold"` (pytorch-grad-cam's rule): MoRF removes the pixels with
  `L >= numpy.percentile(L, p)`, LeRF those with `1 - L >= numpy.percentile(1 - L, p)`. Tied
  values at the threshold all go, so a map with many equal values (Grad-CAM's exact zeros)
  loses more than `100 - p` percent, up to the whole image.
- Removed pixels are imputed by the noisy linear imputer: each removed pixel equals the weighted
  mean of its in-image 8-neighbours (weight 1/6 for the 4 direct ones, 1/12 for diagonals,
  renormalised at the border), a sparse linear system over the removed pixels with the kept
  pixels as boundary values, solved per image with all channels as right-hand sides; then
  `noise * N(0, 1)` is added to every imputed value.
- The score is the target's logit (`score="logit"`, pytorch-grad-cam's `ClassifierOutputTarget`)
  or softmax probability (`score="probability"`, `ClassifierOutputSoftmaxTarget`) of the imputed
  image minus that of the original; `road` returns its mean over the percentiles.

MoRF: lower (more negative) is better. LeRF: higher (closer to 0) is better.
`road_combined = (LeRF - MoRF) / 2`, higher is better.

Noise: by default image b's noise for (mode, percentile) comes from its own generator keyed to
(`seed`, `indices[b]`, mode, percentile) (`camlang.core.per_image_rng`), so scores do not depend on
batching; all candidate maps of an image share it. For parity with pytorch-grad-cam pass one `generator`: the
noise is then drawn as one `randn(C, n_removed)` per imputed image in the order candidate,
percentile, image (`road_combined` does LeRF first, then MoRF), the order pytorch-grad-cam draws
`randn_like` from torch's global generator, so `torch.manual_seed(s)` there and a generator
seeded `s` here agree to float rounding (with `tie_rule="threshold"`).

Edge cases pytorch-grad-cam does not handle: nothing removed leaves the image as is (no noise
drawn); everything removed (a constant map) has no boundary values, so the imputed pixels are 0
plus noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from camlang.core.per_image_rng import image_generator
from camlang.errors import CamlangError
from camlang.metrics._common import (
    CallCounter,
    ModelFn,
    check_chunk_size,
    check_class_range,
    check_images,
    check_maps,
    check_targets,
    drop_candidates,
    pixel_ranks,
    run_model,
    run_model_stream,
    with_candidates,
)

# (row offset, column offset, weight) of the neighbours in the imputation average.
NEIGHBOUR_WEIGHTS: tuple[tuple[int, int, float], ...] = (
    (1, 1, 1 / 12),
    (0, 1, 1 / 6),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (0, -1, 1 / 6),
    (-1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (-1, 0, 1 / 6),
)

DEFAULT_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
TIE_RULES = ("rank", "threshold")
TieRule = Literal["rank", "threshold"]


@dataclass(frozen=True)
class RoadResult:
    """`score [..., B]` (mean over percentiles), `per_percentile [..., B, P]`, model images used."""

    score: torch.Tensor
    per_percentile: torch.Tensor
    images: int


def removal_mask(
    cam: torch.Tensor, percentile: float, mode: Literal["morf", "lerf"], tie_rule: TieRule = "rank"
) -> np.ndarray:
    """Bool [H, W] numpy array of the pixels ROAD removes from a float32 map `cam` [H, W]."""
    if tie_rule == "threshold":
        ranked = cam if mode == "morf" else 1 - cam
        threshold = np.percentile(ranked.numpy(), percentile)
        return (~(ranked < threshold)).numpy()
    k = removed_count(cam.numel(), percentile)
    ranks = pixel_ranks(cam if mode == "morf" else -cam)
    return (ranks < k).numpy()


def removed_count(n_pixels: int, percentile: float) -> int:
    """Pixels the rank rule removes at `percentile`: `floor((100 - p) * n / 100)`."""
    return int(math.floor((100 - percentile) * n_pixels / 100 + 1e-9))


def impute(
    img: torch.Tensor, removed: np.ndarray, noise: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Noisy linear imputation of the `removed` pixels (bool [H, W]) of `img` [C, H, W] (CPU)."""
    c, h, w = img.shape
    flat_removed = removed.reshape(-1)
    idx = np.flatnonzero(flat_removed)
    n = idx.shape[0]
    out = img.reshape(c, -1).clone()
    if n == 0:
        return out.reshape(img.shape)
    values = img.reshape(c, -1).numpy()
    if n == h * w:
        solution = torch.zeros(c, n)
    else:
        var_of = np.zeros(h * w, dtype=np.int64)
        var_of[idx] = np.arange(n)
        ys, xs = idx // w, idx % w
        weight_sum = np.ones(n)
        rhs = np.zeros((n, c))
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for dy, dx, wt in NEIGHBOUR_WEIGHTS:
            ny, nx = ys + dy, xs + dx
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            weight_sum[~inside] -= wt
            eq = np.flatnonzero(inside)
            nb = ny[inside] * w + nx[inside]
            known = ~flat_removed[nb]
            rhs[eq[known]] -= wt * values[:, nb[known]].T
            rows.append(eq[~known])
            cols.append(var_of[nb[~known]])
            data.append(np.full(int((~known).sum()), wt))
        rows.append(np.arange(n))
        cols.append(np.arange(n))
        data.append(-weight_sum)
        system = scipy.sparse.csc_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        sol = np.asarray(scipy.sparse.linalg.spsolve(system, rhs)).reshape(n, c)
        solution = torch.tensor(sol, dtype=torch.float).t()
    if noise:
        solution = solution + noise * torch.randn(solution.shape, generator=generator)
    out[:, torch.from_numpy(idx)] = solution.to(out.dtype)
    return out.reshape(img.shape)


def _score(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    check_class_range(logits, targets)
    if score == "probability":
        logits = torch.softmax(logits, dim=-1)
    return logits.gather(1, targets.view(-1, 1).to(logits.device)).squeeze(1).cpu()


def road(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    mode: Literal["morf", "lerf"] = "morf",
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    score: Literal["logit", "probability"] = "logit",
    chunk_size: int = 256,
    counter: CallCounter | None = None,
    *,
    tie_rule: TieRule = "rank",
    seed: int = 0,
    indices: torch.Tensor | Sequence[int] | None = None,
) -> RoadResult:
    """ROAD score change for MoRF or LeRF removal, averaged over `percentiles` (see module doc).

    `x` [B, C, H, W], `L` [B, H, W] or [M, B, H, W], `targets` [B]; `indices` [B] the images'
    dataset indices that key the noise (default: batch positions).
    """
    check_images(x)
    check_maps(L, x)
    check_targets(targets, x.shape[0])
    check_chunk_size(chunk_size)
    if mode not in ("morf", "lerf"):
        raise CamlangError(f"ROAD mode must be 'morf' or 'lerf', got {mode!r}")
    if score not in ("logit", "probability"):
        raise CamlangError(f"ROAD score must be 'logit' or 'probability', got {score!r}")
    pcts = list(percentiles)
    if not pcts or any(not 0 <= p <= 100 for p in pcts):
        raise CamlangError(f"ROAD percentiles must be a non-empty list of numbers in [0, 100], got {pcts}")
    if noise < 0:
        raise CamlangError(f"ROAD noise must be >= 0, got {noise}")
    if tie_rule not in TIE_RULES:
        raise CamlangError(f'ROAD tie_rule must be "rank" or "threshold", got {tie_rule!r}')
    L4, had_m = with_candidates(L)
    m_count, b_count = L4.shape[:2]
    idx = torch.arange(b_count) if indices is None else torch.as_tensor(indices).reshape(-1)
    if idx.shape[0] != b_count:
        raise CamlangError(
            f"ROAD indices must give one dataset index per image ({b_count}), got {idx.shape[0]}"
        )
    x_cpu = x.detach().cpu()
    maps = L4.detach().cpu().float()
    local = CallCounter()

    def noise_source(b: int, p: float) -> torch.Generator:
        if generator is not None:
            return generator
        return image_generator(seed, int(idx[b]), "road", mode, repr(float(p)))

    def imputed() -> Iterator[torch.Tensor]:
        for m in range(m_count):
            for p in pcts:
                for b in range(b_count):
                    removed = removal_mask(maps[m, b], p, mode, tie_rule)
                    img = impute(x_cpu[b], removed, noise, noise_source(b, p))
                    yield img.unsqueeze(0).to(x.device, x.dtype)

    base = _score(run_model(model_fn, x, chunk_size, local), targets, score)
    after = _score(
        run_model_stream(model_fn, imputed(), chunk_size, local), targets.repeat(m_count * len(pcts)), score
    )
    change = (after.view(m_count, len(pcts), b_count) - base.view(1, 1, -1)).permute(0, 2, 1)
    if counter is not None:
        counter.calls += local.calls
        counter.images += local.images
    return RoadResult(
        score=drop_candidates(change.mean(dim=-1), had_m),
        per_percentile=drop_candidates(change, had_m),
        images=local.images,
    )


def road_combined(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    score: Literal["logit", "probability"] = "logit",
    chunk_size: int = 256,
    counter: CallCounter | None = None,
    *,
    tie_rule: TieRule = "rank",
    seed: int = 0,
    indices: torch.Tensor | Sequence[int] | None = None,
) -> RoadResult:
    """`(LeRF - MoRF) / 2` as pytorch-grad-cam's ROADCombined (LeRF noise drawn first). Higher is better."""
    args = (model_fn, x, L, targets, percentiles)
    opts: dict[str, Any] = dict(
        noise=noise,
        generator=generator,
        score=score,
        chunk_size=chunk_size,
        counter=counter,
        tie_rule=tie_rule,
        seed=seed,
        indices=indices,
    )
    lerf = road(*args, mode="lerf", **opts)
    morf = road(*args, mode="morf", **opts)
    return RoadResult(
        score=(lerf.score - morf.score) / 2,
        per_percentile=(lerf.per_percentile - morf.per_percentile) / 2,
        images=lerf.images + morf.images,
    )

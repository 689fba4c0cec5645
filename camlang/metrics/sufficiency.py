"""Sufficient fraction: the smallest set of top-ranked pixels that keeps the predicted class.

`P(k)` holds when the image that keeps the `k` most salient pixels (ties: smaller row-major index
first) and sets every other pixel to `fill` is classified as the target. The answer is the
smallest `k` with `P(k)`, as a fraction of the `N = H*W` pixels.

Search. With `tol` (a fraction of N) the candidate counts are the grid `k_j = min(j*g, N)`,
`g = max(1, floor(tol*N))`, `j = 1..J`; `tol=None` means `g = 1` (pixel-exact). Round 1 evaluates
every power of two `j = 1, 2, 4, ...` and `J` at once; the first true one brackets the answer,
and binary search rounds then narrow the bracket. Every round batches one image per still
open (candidate, image) pair into chunked model calls. A last round evaluates `check_points`
extra counts spread evenly over `(k*, N]` and `check_points` over `[1, k*)`.

Monotonicity assumption: the search is exact when `P` is monotone (keeping more pixels never
loses the class). Real models are not always monotone; the result's `monotone_consistent` is
False when any evaluated count above the answer lost the class (round 1 and the check points)
or a check point below it kept the class (then a smaller sufficient set exists, which a linear
scan would find; the search reports the transition it bracketed). Whatever happens, the
answer satisfies `P(k*)` and, when `k* > g`, not `P(k* - g)`.
When no evaluated count keeps the class (always the case when the full image is not classified
as the target and `P` is monotone), the answer is `N` (fraction 1) with `found = False`.

`sufficient_fraction_linear` is the reference procedure that adds `step` pixels at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from camlang.errors import CamlangError
from camlang.metrics._common import (
    CallCounter,
    MaskJob,
    ModelFn,
    check_chunk_size,
    check_class_range,
    check_images,
    check_maps,
    check_targets,
    drop_candidates,
    evaluate_masked,
    fill_canvas,
    pixel_ranks,
    with_candidates,
)


@dataclass(frozen=True)
class SufficiencyResult:
    """Per map and image ([..., B]): fraction in (0, 1], pixel count, flags; total model images."""

    fraction: torch.Tensor
    pixels: torch.Tensor
    monotone_consistent: torch.Tensor
    found: torch.Tensor
    forward_passes: int


class _Oracle:
    """Evaluates `P(k)` for batches of (candidate, image, k) and remembers every answer."""

    def __init__(
        self,
        model_fn: ModelFn,
        x: torch.Tensor,
        L4: torch.Tensor,
        targets: torch.Tensor,
        fill: float | torch.Tensor,
        chunk_size: int,
        counter: CallCounter,
    ) -> None:
        self.model_fn = model_fn
        self.x = x
        self.canvas = fill_canvas(x, fill)
        self.ranks = pixel_ranks(L4)
        self.targets = targets
        self.chunk_size = chunk_size
        self.counter = counter

    def __call__(self, m: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Bool [n]: does keeping the top `k[n]` pixels of map (m[n], b[n]) keep the target class?"""
        if m.numel() == 0:
            return torch.zeros(0, dtype=torch.bool)
        job = MaskJob(m, b, k)
        logits = evaluate_masked(
            self.model_fn, self.ranks, self.x, self.canvas, job, self.chunk_size, self.counter
        )
        check_class_range(logits, self.targets)
        return (logits.argmax(dim=1) == self.targets[b].to(logits.device)).cpu()


def _prepare(
    x: torch.Tensor, L: torch.Tensor, targets: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, bool, int]:
    check_images(x)
    check_maps(L, x)
    check_targets(targets, x.shape[0])
    check_chunk_size(chunk_size)
    L4, had_m = with_candidates(L)
    return L4, had_m, x.shape[-2] * x.shape[-1]


def _result(
    k: torch.Tensor, n: int, consistent: torch.Tensor, found: torch.Tensor, had_m: bool, images: int
) -> SufficiencyResult:
    return SufficiencyResult(
        fraction=drop_candidates(k.double() / n, had_m).float(),
        pixels=drop_candidates(k, had_m),
        monotone_consistent=drop_candidates(consistent, had_m),
        found=drop_candidates(found, had_m),
        forward_passes=images,
    )


def _bisect(
    oracle: _Oracle,
    mm: torch.Tensor,
    bb: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    count: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Narrow every pair's `(lo, hi]` in place until `hi - lo <= 1`, one model image per open pair."""
    while True:
        open_ = (hi - lo) > 1
        if not open_.any():
            break
        idx = open_.nonzero().squeeze(1)
        mid = (lo[idx] + hi[idx]) // 2
        ok = oracle(mm[idx], bb[idx], count(mid))
        hi[idx] = torch.where(ok, mid, hi[idx])
        lo[idx] = torch.where(ok, lo[idx], mid)


def _non_monotone(
    oracle: _Oracle,
    mm: torch.Tensor,
    bb: torch.Tensor,
    k_star: torch.Tensor,
    any_true: torch.Tensor,
    n: int,
    check_points: int,
) -> torch.Tensor:
    """Pairs whose `P` is seen not to be monotone at `check_points` counts above and below k*.

    Monotone P: every count above k* keeps the class and every count below loses it.
    """
    frac = torch.arange(1, check_points + 1, dtype=torch.float64) / (check_points + 1)
    ks = k_star.view(-1, 1)
    above = torch.clamp(ks + ((n - ks).double() * frac).ceil().long(), max=n)
    below = (ks.double() * frac).floor().long()
    points = torch.cat([above, below], dim=1)
    expect = torch.cat(
        [torch.ones_like(above, dtype=torch.bool), torch.zeros_like(below, dtype=torch.bool)], 1
    )
    useful = torch.cat([above > ks, (below >= 1) & (below < ks)], dim=1) & any_true.view(-1, 1)
    rows, cols = useful.nonzero().unbind(1)
    ok = oracle(mm[rows], bb[rows], points[rows, cols])
    bad = torch.zeros(k_star.shape[0], dtype=torch.bool)
    bad[rows[ok != expect[rows, cols]]] = True
    return bad


def sufficient_fraction(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    fill: float | torch.Tensor = 0.0,
    tol: float | None = 1 / 256,
    check_points: int = 3,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> SufficiencyResult:
    """Smallest fraction of top-ranked pixels that, kept (rest = `fill`), keeps the target class.

    `x` [B, C, H, W], `L` [B, H, W] or [M, B, H, W], `targets` [B] (usually the predicted class).
    `tol` is the resolution as a fraction of the pixels (None: pixel-exact). See the module
    docstring for the search and the monotonicity check. Lower is better.
    """
    L4, had_m, n = _prepare(x, L, targets, chunk_size)
    if tol is not None and not 0.0 < tol <= 1.0:
        raise CamlangError(f"tol must lie in (0, 1] or be None for pixel-exact search, got {tol}")
    g = 1 if tol is None else max(1, math.floor(tol * n))
    j_max = math.ceil(n / g)
    m_count, b_count = L4.shape[:2]
    local = CallCounter()
    oracle = _Oracle(model_fn, x, L4, targets, fill, chunk_size, local)

    def count(j: torch.Tensor) -> torch.Tensor:
        return torch.clamp(j * g, max=n)

    mm, bb = (
        t.reshape(-1) for t in torch.meshgrid(torch.arange(m_count), torch.arange(b_count), indexing="ij")
    )
    pairs = mm.shape[0]

    # Round 1: all powers of two and J, for every pair at once.
    powers = sorted({1 << e for e in range(j_max.bit_length()) if (1 << e) <= j_max} | {j_max})
    pj = torch.tensor(powers)
    n_pow = pj.shape[0]
    sat = oracle(mm.repeat_interleave(n_pow), bb.repeat_interleave(n_pow), count(pj.repeat(pairs))).view(
        pairs, n_pow
    )
    any_true = sat.any(dim=1)
    found = any_true.clone()
    first = torch.where(any_true, sat.int().argmax(dim=1), torch.full((pairs,), n_pow - 1))
    hi = pj[first]
    lo = torch.where(first > 0, pj[(first - 1).clamp(min=0)], torch.zeros(pairs, dtype=torch.long))
    lo = torch.where(any_true, lo, torch.full((pairs,), j_max))
    hi = torch.where(any_true, hi, torch.full((pairs,), j_max))
    above = torch.arange(n_pow).view(1, -1) > first.view(-1, 1)
    consistent = ~(above & ~sat).any(dim=1)

    # Binary search: P(lo) false (or lo = 0), P(hi) true; one image per open pair per round.
    _bisect(oracle, mm, bb, lo, hi, count)
    k_star = count(hi)
    if check_points > 0:
        consistent &= ~_non_monotone(oracle, mm, bb, k_star, any_true, n, check_points)

    k_star = torch.where(any_true, k_star, torch.full_like(k_star, n))
    shape = (m_count, b_count)
    if counter is not None:
        counter.calls += local.calls
        counter.images += local.images
    return _result(k_star.view(shape), n, consistent.view(shape), found.view(shape), had_m, local.images)


def sufficient_fraction_linear(
    model_fn: ModelFn,
    x: torch.Tensor,
    L: torch.Tensor,
    targets: torch.Tensor,
    fill: float | torch.Tensor = 0.0,
    step: int = 1,
    block: int = 1,
    chunk_size: int = 256,
    counter: CallCounter | None = None,
) -> SufficiencyResult:
    """Reference procedure: keep `step`, `2*step`, ... top pixels until the target class is kept.

    Each round evaluates the next `block` counts of every open (candidate, image) pair; with
    `block=1` the number of model images is exactly the number of counts the sequential
    procedure tries. The answer is the first satisfying count by construction, so
    `monotone_consistent` is all True (nothing is assumed).
    """
    L4, had_m, n = _prepare(x, L, targets, chunk_size)
    if not isinstance(step, int) or step < 1 or not isinstance(block, int) or block < 1:
        raise CamlangError(f"step and block must be positive integers, got step={step!r}, block={block!r}")
    m_count, b_count = L4.shape[:2]
    local = CallCounter()
    oracle = _Oracle(model_fn, x, L4, targets, fill, chunk_size, local)
    mm, bb = (
        t.reshape(-1) for t in torch.meshgrid(torch.arange(m_count), torch.arange(b_count), indexing="ij")
    )
    pairs = mm.shape[0]
    j_max = math.ceil(n / step)
    answer = torch.full((pairs,), -1, dtype=torch.long)
    next_j = torch.ones(pairs, dtype=torch.long)
    while True:
        open_ = (answer < 0) & (next_j <= j_max)
        if not open_.any():
            break
        idx = open_.nonzero().squeeze(1)
        js = next_j[idx].view(-1, 1) + torch.arange(block).view(1, -1)
        valid = js <= j_max
        rows, cols = valid.nonzero().unbind(1)
        ks = torch.clamp(js[rows, cols] * step, max=n)
        ok = oracle(mm[idx[rows]], bb[idx[rows]], ks)
        sat = torch.zeros(js.shape, dtype=torch.bool)
        sat[rows, cols] = ok
        hit = sat.any(dim=1)
        first_col = sat.int().argmax(dim=1)
        answer[idx[hit]] = torch.clamp(js[hit, first_col[hit]] * step, max=n)
        next_j[idx] += block
    found = answer >= 0
    answer = torch.where(found, answer, torch.full_like(answer, n))
    shape = (m_count, b_count)
    if counter is not None:
        counter.calls += local.calls
        counter.images += local.images
    return _result(
        answer.view(shape), n, torch.ones(shape, dtype=torch.bool), found.view(shape), had_m, local.images
    )

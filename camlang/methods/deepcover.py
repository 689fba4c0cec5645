"""DeepCover: explanations by statistical fault localization (Sun, Chockler, Huang, Kroening, ECCV 2020).

Random *mutants* of each image are made by filling square patches with a fill value. Each
mutant is a test: it *fails* when the model's top-1 label is no longer the target (by default
the predicted class) and *passes* otherwise. For every pixel the four SFL counters are

    a_ef: failing mutants in which the pixel is masked     a_ep: passing, masked
    a_nf: failing mutants in which it is kept              a_np: passing, kept

so a pixel is "executed" by a test when the mutation touches it. This is the counting of the
authors' tool (`sfl-src/to_rank.py` counts a changed pixel of a label-changing mutant in `ef`):
pixels whose masking goes with label changes score high. (Reading "executed" as "kept" while
keeping "fails = label changed" would rank the pixels that do not matter first.)

Pixels are ranked by an SFL measure (Ochiai, Tarantula, Zoltar, Wong-II) and
`deepcover_explanation` finds the smallest set of top-ranked pixels that, with every other
pixel filled, restores the target label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods._common import (
    Generators,
    Progress,
    batched_logits,
    check_images,
    check_positive_int,
    fill_value,
    per_image_generators,
    resolve_targets,
)

Targets = Tensor | Sequence[int] | None

MEASURES = ("ochiai", "tarantula", "zoltar", "wong-ii")
_ALIASES = {"wong2": "wong-ii", "wong_ii": "wong-ii", "wongii": "wong-ii"}


@dataclass(frozen=True)
class SflCounts:
    """The SFL spectrum per pixel, each `LongTensor [B, H, W]`; `ep + ef + np + nf == tests`."""

    ep: Tensor
    ef: Tensor
    np: Tensor
    nf: Tensor

    @property
    def tests(self) -> Tensor:
        """Number of tests (mutants) behind each pixel's counts, `[B, H, W]`."""
        return self.ep + self.ef + self.np + self.nf


@dataclass(frozen=True)
class DeepCoverResult:
    """SFL scores `map [B, H, W]` (higher = more responsible for the label) and how they were made.

    `tests [B]` mutants per image, `failing [B]` how many changed the label, and
    `forward_passes` the number of images pushed through the model (mutants plus the originals).
    A map is only informative when some mutants pass and some fail; check `failing / tests`.
    """

    map: Tensor
    counts: SflCounts
    tests: Tensor
    failing: Tensor
    forward_passes: int


@dataclass(frozen=True)
class ExplanationResult:
    """A DeepCover explanation: `mask [B, H, W]` of kept pixels, `pixels [B]` their number,
    `restored [B]` whether the kept pixels alone give the target label (False only when not
    even the whole image does), and `forward_passes`."""

    mask: Tensor
    pixels: Tensor
    restored: Tensor
    forward_passes: int


def sfl_score(measure: str, ep: Tensor, ef: Tensor, np: Tensor, nf: Tensor) -> Tensor:
    """An SFL suspiciousness measure on the counters; a zero denominator gives score 0.

    - ochiai:    ef / sqrt((ef + nf) * (ef + ep))
    - tarantula: (ef / (ef + nf)) / (ef / (ef + nf) + ep / (ep + np))
    - zoltar:    ef / (ef + nf + ep + 10000 * nf * ep / ef)
    - wong-ii:   ef - ep
    """
    key = _ALIASES.get(measure.lower(), measure.lower()) if isinstance(measure, str) else measure
    if key not in MEASURES:
        raise CamlangError(
            f"deepcover: unknown SFL measure {measure!r}", hint=f"use one of {', '.join(MEASURES)}"
        )
    ep, ef, np, nf = (c.to(torch.float64) for c in (ep, ef, np, nf))

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)

    if key == "ochiai":
        return ratio(ef, torch.sqrt((ef + nf) * (ef + ep)))
    if key == "tarantula":
        fail_rate, pass_rate = ratio(ef, ef + nf), ratio(ep, ep + np)
        return ratio(fail_rate, fail_rate + pass_rate)
    if key == "zoltar":
        return ratio(ef, ef + nf + ep + 10000.0 * ratio(nf * ep, ef))
    return ef - ep


def _square_masks(
    count: int,
    height: int,
    width: int,
    sizes: tuple[float, float],
    patches: int,
    generator: torch.Generator | None,
) -> Tensor:
    """`count` bool masks `[count, H, W]`, each the union of 1..`patches` random squares.

    Square sides are uniform in `sizes` (fractions of min(H, W)); positions are uniform over
    all placements that overlap the image (squares may hang over the border), so every pixel is
    equally likely to be covered.
    """
    device = torch.device("cpu") if generator is None else generator.device
    side_min = max(1, round(sizes[0] * min(height, width)))
    side_max = max(side_min, round(sizes[1] * min(height, width)))
    u = torch.rand((count, patches, 4), generator=generator, device=device)  # one image's generator
    side = (side_min + u[..., 0] * (side_max - side_min + 1)).floor().clamp(max=side_max)
    top = (u[..., 1] * (height + side - 1)).floor() - side + 1
    left = (u[..., 2] * (width + side - 1)).floor() - side + 1
    used = torch.arange(patches, device=device) < (1 + (u[:, :1, 3] * patches).floor())  # [count, patches]
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= top[..., None]) & (rows < (top + side)[..., None])  # [count, patches, H]
    in_cols = (cols >= left[..., None]) & (cols < (left + side)[..., None])
    squares = in_rows[..., :, None] & in_cols[..., None, :] & used[..., None, None]
    return squares.any(dim=1)


def deepcover(
    module: nn.Module,
    x: Tensor,
    targets: Targets = None,
    measure: str = "ochiai",
    *,
    min_tests: int = 500,
    max_tests: int = 5000,
    sizes: tuple[float, float] = (0.1, 0.5),
    patches: int = 3,
    fill: float | Tensor = 0.0,
    round_size: int = 100,
    chunk_size: int = 64,
    generator: Generators = None,
    progress: Progress | None = None,
) -> DeepCoverResult:
    """DeepCover SFL ranking of each image's pixels, `[B, H, W]` scores (higher = more important).

    Rounds of `round_size` mutants per image are generated (each mutant fills 1..`patches`
    random squares of side `sizes` x min(H, W) with `fill`, in the model's input space) until
    every pixel has been masked at least once, every image has both a failing and a passing
    mutant and at least `min_tests` mutants were run, or `max_tests` is reached (pixels still
    never masked then have ef = ep = 0; an image without failing mutants gets an all-zero map,
    which `.failing` shows). Each image stops on its own criterion, so its map does not depend
    on the other images of the batch; with one generator per image (`camlang.core.per_image_rng`) it does
    not depend on the batch at all. Mutants of all active images are batched, `chunk_size` images
    per model call.
    """
    method = "deepcover"
    x = check_images(x, method).detach()
    min_tests = check_positive_int(min_tests, "min_tests", method)
    max_tests = max(check_positive_int(max_tests, "max_tests", method), min_tests)
    round_size = check_positive_int(round_size, "round_size", method)
    chunk_size = check_positive_int(chunk_size, "chunk_size", method)
    patches = check_positive_int(patches, "patches", method)
    if not (0 < sizes[0] <= sizes[1] <= 1):
        raise CamlangError(f"{method}: `sizes` must satisfy 0 < min <= max <= 1, got {sizes!r}")
    sfl_score(measure, *(torch.zeros(1),) * 4)  # reject an unknown measure before any work
    batch, _, height, width = x.shape
    fill_t = fill_value(fill, x, method)
    t = resolve_targets(targets, batched_logits(module, x, chunk_size, method), method)
    forward_passes = batch
    gens = per_image_generators(generator, batch, method)
    ef = torch.zeros(batch, height, width, dtype=torch.long, device=x.device)
    ep = torch.zeros_like(ef)
    failing = torch.zeros(batch, dtype=torch.long, device=x.device)
    tests = torch.zeros(batch, dtype=torch.long, device=x.device)
    # Active images have all run the same number of rounds, so they share one test count `done`.
    active = torch.ones(batch, dtype=torch.bool, device=x.device)
    done = 0
    while bool(active.any()) and done < max_tests:
        n = min(round_size, max_tests - done)
        imgs = active.nonzero().squeeze(1)
        masks = torch.stack(
            [_square_masks(n, height, width, sizes, patches, gens[int(b)]) for b in imgs.tolist()], dim=1
        ).to(x.device)  # mutant i of active image j is masks[i, j]
        mutants = torch.where(masks[:, :, None], fill_t, x[imgs][None]).reshape(n * len(imgs), *x.shape[1:])
        labels = batched_logits(module, mutants, chunk_size, method).argmax(dim=1).reshape(n, len(imgs))
        forward_passes += n * len(imgs)
        fails = labels != t[imgs][None]  # [n, active]
        ef[imgs] += (masks & fails[..., None, None]).sum(dim=0)
        ep[imgs] += (masks & ~fails[..., None, None]).sum(dim=0)
        failing[imgs] += fails.sum(dim=0)
        done += n
        tests[imgs] = done
        if progress is not None:
            progress(done, max_tests)
        # SFL ranks nothing for an image whose mutants all pass (or all fail): keep going then.
        informative = (failing[imgs] > 0) & (failing[imgs] < done)
        covered = ((ef[imgs] + ep[imgs]) > 0).flatten(1).all(dim=1)
        if done >= min_tests:
            active[imgs] = ~(informative & covered)
    passing = tests - failing
    counts = SflCounts(ep=ep, ef=ef, np=passing[:, None, None] - ep, nf=failing[:, None, None] - ef)
    scores = sfl_score(measure, counts.ep, counts.ef, counts.np, counts.nf).to(x.dtype)
    return DeepCoverResult(scores, counts, tests, failing, forward_passes)


class DeepCoverOptions(TypedDict, total=False):
    """`deepcover`'s keyword options, for `deepcover_map`."""

    min_tests: int
    max_tests: int
    sizes: tuple[float, float]
    patches: int
    fill: float | Tensor
    round_size: int
    chunk_size: int
    progress: Progress | None


def deepcover_map(
    module: nn.Module,
    x: Tensor,
    targets: Targets = None,
    measure: str = "ochiai",
    generator: Generators = None,
    **options: Unpack[DeepCoverOptions],
) -> Tensor:
    """`deepcover(...).map`: the SFL score map `[B, H, W]`; `options` are `deepcover`'s keywords."""
    return deepcover(module, x, targets, measure, generator=generator, **options).map


def deepcover_explanation(
    module: nn.Module,
    x: Tensor,
    targets: Targets,
    scores: Tensor,
    *,
    fill: float | Tensor = 0.0,
    probes: int = 7,
    chunk_size: int = 64,
) -> ExplanationResult:
    """The smallest set of top-ranked pixels that restores the target label, `mask [B, H, W]`.

    Pixels are taken in decreasing score order (ties: lower index first); an image keeps its
    top-k pixels and every other pixel is set to `fill`. The search is batched over images:
    first k = 1, 2, 4, ..., H*W in one round, then rounds of `probes` evenly spaced k inside
    each image's bracket until the bracket closes. It returns the smallest k found to restore
    the label, assuming (as the paper does) that more top pixels do not lose it again.
    """
    method = "deepcover_explanation"
    x = check_images(x, method).detach()
    probes = check_positive_int(probes, "probes", method)
    chunk_size = check_positive_int(chunk_size, "chunk_size", method)
    batch, _, height, width = x.shape
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (batch, height, width):
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise CamlangError(f"{method}: expected scores of shape [{batch}, {height}, {width}], got {got}")
    fill_t = fill_value(fill, x, method)
    pixels = height * width
    t = resolve_targets(targets, batched_logits(module, x, chunk_size, method), method)
    forward_passes = batch
    order = scores.detach().reshape(batch, pixels).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=x.device).expand(batch, pixels))

    def restores(image: Tensor, k: Tensor) -> Tensor:
        nonlocal forward_passes
        keep = (rank[image] < k[:, None]).reshape(-1, 1, height, width)
        candidates = torch.where(keep, x[image], fill_t)
        forward_passes += candidates.shape[0]
        return batched_logits(module, candidates, chunk_size, method).argmax(dim=1) == t[image]

    # Exponential phase: k = 0, 1, 2, 4, ..., pixels for every image at once. (k = 0 is the
    # all-filled image: if that already has the target label, the explanation is empty.)
    ks = sorted({0} | {min(2**i, pixels) for i in range(pixels.bit_length() + 1)})
    grid = torch.tensor(ks, device=x.device)
    image = torch.arange(batch, device=x.device).repeat_interleave(len(ks))
    ok = restores(image, grid.repeat(batch)).reshape(batch, len(ks))
    found = ok.any(dim=1)
    first = torch.where(found, ok.float().argmax(dim=1), len(ks) - 1)
    hi = torch.where(found, grid[first], pixels)  # smallest known success
    lo = torch.where(first > 0, grid[(first - 1).clamp(min=0)], hi - 1)  # largest known failure below hi
    # Bracket phase: `probes` evenly spaced k in (lo, hi) per image, until hi = lo + 1.
    while True:
        open_ = found & (hi - lo > 1)
        if not bool(open_.any()):
            break
        imgs = open_.nonzero().squeeze(1)
        steps = torch.arange(1, probes + 1, device=x.device, dtype=torch.float64) / (probes + 1)
        span = (hi[imgs] - lo[imgs]).to(torch.float64)
        cand = (lo[imgs, None] + (steps[None] * span[:, None]).round().long()).clamp(
            lo[imgs, None] + 1, hi[imgs, None] - 1
        )
        ok = restores(imgs.repeat_interleave(probes), cand.reshape(-1)).reshape(-1, probes)
        big = torch.iinfo(torch.long).max
        new_hi = torch.where(ok, cand, big).amin(dim=1).minimum(hi[imgs])
        below = torch.where(~ok & (cand < new_hi[:, None]), cand, lo[imgs, None]).amax(dim=1)
        hi[imgs], lo[imgs] = new_hi, below.maximum(lo[imgs])
    mask = (rank < hi[:, None]).reshape(batch, height, width)
    return ExplanationResult(mask, hi, found, forward_passes)

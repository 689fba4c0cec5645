"""Metric-guided selection: racing (successive doubling with paired confidence bounds) and the
exhaustive reference.

Scores are oriented so that higher is better. Racing scores every live candidate on a small
batch of images, then eliminates each candidate whose paired difference to the current leader
(same images) is confidently negative: `mean(d) + z * sd(d) / sqrt(n) < 0`. The survivors are
scored on twice as many images, until one is left or every image is used. All candidates of a
round are scored in one call, so the metric's model calls are batched across candidates.
Exhaustive mode scores every candidate on every image.

Anchors (the last `anchors` rows, e.g. the best-known stdlib CAMs) are scored with the
candidates on the same images, so the paired elimination also compares against them, but they
are never eliminated by a candidate, never halved away and never count as survivors: a candidate
confidently worse than a stdlib CAM stops early, and `keep` contenders always stay in the race.
After the first round only the best anchor races on (the paired reference for the rest).

Families (e.g. the candidates that read the same terminals) fail together: on a few images where
the input gradient is noisy, every candidate built on it looks bad at once. So while fewer than
`protect` images are scored, halving keeps each family's best candidate besides the better half;
the confidence rule still removes any candidate that is confidently worse. Seen on ResNet-56's
deletion race: every one of the 80 candidates reading `GX` or `GX_smooth` was halved away after 4
or 8 images, though the best of them was 0.011 AUC better than the winner on 256 images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import torch

ScoreFn = Callable[[list[int], list[int]], torch.Tensor]
"""`score(candidates, images) -> [len(candidates), len(images)]` oriented scores (NaN = invalid)."""


class StopSearch(Exception):
    """Raised by a score function when the budget or the time limit is reached."""


@dataclass
class RaceResult:
    """Scores seen (`[K, N]`, NaN where not evaluated), elimination rounds and the stop reason."""

    scores: torch.Tensor
    alive: list[int]
    eliminated_at: dict[int, int] = field(default_factory=dict)
    stopped: str | None = None

    def means(self) -> torch.Tensor:
        """Mean oriented score of each candidate over the images it was scored on (-inf if none)."""
        seen = ~self.scores.isnan()
        total = torch.where(seen, self.scores, torch.zeros(())).sum(1)
        out = total / seen.sum(1).clamp_min(1)
        return torch.where(seen.sum(1) == 0, torch.full_like(out, -math.inf), out)

    def evaluated(self) -> torch.Tensor:
        """Number of images each candidate was scored on."""
        return (~self.scores.isnan()).sum(1)

    def ranking(self) -> list[int]:
        """Candidates best first: survivors of later rounds first, then by mean score."""
        n = self.evaluated().tolist()
        m = self.means().tolist()
        return sorted(
            range(self.scores.shape[0]), key=lambda i: (-n[i], -m[i] if math.isfinite(m[i]) else math.inf)
        )


def _fill(scores: torch.Tensor, cands: list[int], images: list[int], got: torch.Tensor) -> None:
    got = torch.nan_to_num(got.float(), nan=-1e30)  # an invalid score is the worst possible
    scores[torch.tensor(cands)[:, None], torch.tensor(images)[None, :]] = got


def exhaustive(
    n_cands: int, n_images: int, score: ScoreFn, chunk: int = 64, keep_on_interrupt: bool = True
) -> RaceResult:
    """Score every candidate on every image (the reference racing is tested against).

    Ctrl-C ends the scoring with the scores so far, or, without `keep_on_interrupt` (several
    workers), propagates.
    """
    res = RaceResult(torch.full((n_cands, n_images), math.nan), list(range(n_cands)))
    images = list(range(n_images))
    try:
        for start in range(0, n_cands, chunk):
            cands = list(range(start, min(n_cands, start + chunk)))
            _fill(res.scores, cands, images, score(cands, images))
    except StopSearch as stop:
        res.stopped = str(stop) or "limit"
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            raise
        res.stopped = "interrupted"
    return res


def race(
    n_cands: int,
    n_images: int,
    score: ScoreFn,
    *,
    first: int = 8,
    z: float = 2.5,
    min_images: int = 4,
    chunk: int = 64,
    halve: bool = True,
    anchors: int = 0,
    keep: int = 1,
    keep_on_interrupt: bool = True,
    families: Sequence[Hashable] | None = None,
    protect: int = 0,
) -> RaceResult:
    """Successive doubling with paired elimination (see the module docs).

    With `halve` (successive halving), each round also keeps at most the better half of the
    survivors by mean score, so the work per round stays bounded; the confidence rule can only
    remove more. `families` (one key per contender) and `protect` (images) keep each family's
    best contender through halving until `protect` images are scored. The final winner is still
    compared against the exhaustive reference in tests.
    Every decision reads only `res.scores`, so workers that score shares of the images and share
    the full matrix (`camlang.synth.sharding`) decide alike. Ctrl-C ends the race with the scores
    so far, or, without `keep_on_interrupt` (several workers), propagates.
    """
    res = RaceResult(torch.full((n_cands, n_images), math.nan), list(range(n_cands)))
    contenders = n_cands - anchors
    done = 0
    n = min(n_images, max(1, first))
    try:
        while res.alive:
            new = list(range(done, n))
            for start in range(0, len(res.alive), chunk):
                cands = res.alive[start : start + chunk]
                _fill(res.scores, cands, new, score(cands, new))
            done = n
            before = [c for c in res.alive if c < contenders]
            _eliminate(res, n, z, min_images, contenders)
            _best_anchor_only(res, n, contenders)
            if halve and n < n_images:
                shielded = _family_bests(res, n, families, contenders) if n < protect else set()
                _halve(res, n, contenders, shielded)
            _restore(res, before, n, max(1, keep), contenders)
            if n >= n_images or sum(c < contenders for c in res.alive) <= 1:
                break
            n = min(n_images, 2 * n)
    except StopSearch as stop:
        res.stopped = str(stop) or "limit"
        _drop_unfinished_round(res, done)
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            raise
        res.stopped = "interrupted"
        _drop_unfinished_round(res, done)
    return res


def _drop_unfinished_round(res: RaceResult, done: int) -> None:
    """A round cut short scored only some survivors on its new images; forget those columns so
    the ranking compares the survivors on the images they all have (the score cache keeps the
    values). The first round is kept: without it nothing is known."""
    if done > 0:
        res.scores[:, done:] = math.nan


def _best_anchor_only(res: RaceResult, n: int, contenders: int) -> None:
    """After a round, keep racing against the best anchor only (the paired reference)."""
    anchors = [c for c in res.alive if c >= contenders]
    if len(anchors) <= 1:
        return
    means = res.scores[torch.tensor(anchors), :n].mean(1)
    best = anchors[int(means.argmax())]
    for c in anchors:
        if c != best:
            res.eliminated_at[c] = n
    res.alive = [c for c in res.alive if c < contenders or c == best]


def _restore(res: RaceResult, before: list[int], n: int, keep: int, contenders: int) -> None:
    """Bring back the best contenders eliminated this round until `keep` are alive."""
    alive = [c for c in res.alive if c < contenders]
    if len(alive) >= min(keep, len(before)):
        return
    gone = [c for c in before if c not in alive]
    means = res.scores[torch.tensor(gone), :n].mean(1)
    order = torch.argsort(means, descending=True, stable=True).tolist()
    back = {gone[i] for i in order[: keep - len(alive)]}
    for c in back:
        res.eliminated_at.pop(c, None)
    res.alive = sorted(set(res.alive) | back)


def _family_bests(res: RaceResult, n: int, families: Sequence[Hashable] | None, contenders: int) -> set[int]:
    """The best alive contender of each family by mean on the first `n` images."""
    if families is None:
        return set()
    best: dict[Hashable, tuple[float, int]] = {}
    for c in res.alive:
        if c >= contenders:
            continue
        mean = float(res.scores[c, :n].mean())
        key = families[c]
        if key not in best or mean > best[key][0]:
            best[key] = (mean, c)
    return {c for _, c in best.values()}


def _halve(res: RaceResult, n: int, contenders: int | None = None, shielded: set[int] | None = None) -> None:
    """Keep the better half of the alive contenders by mean, and every one in `shielded`."""
    limit = len(res.alive) if contenders is None else contenders
    racing = [c for c in res.alive if c < limit]
    if len(racing) <= 2:
        return
    keep_n = max(2, math.ceil(len(racing) / 2))
    means = res.scores[torch.tensor(racing), :n].mean(1)
    order = torch.argsort(means, descending=True, stable=True).tolist()
    kept = {racing[i] for i in order[:keep_n]} | (shielded or set())
    for c in racing:
        if c not in kept:
            res.eliminated_at[c] = n
    res.alive = [c for c in res.alive if c in kept or c >= limit]


def paired_upper_bound(d: torch.Tensor, z: float) -> torch.Tensor:
    """`mean(d) + z * sd(d) / sqrt(n)` of paired differences `d` along the last axis (`n` images;
    the standard deviation is 0 for one image). Below zero, `d` is confidently negative: the
    race's elimination rule, also used for the comparison's level references and the final
    checks' incumbent rule."""
    n = d.shape[-1]
    sd = d.std(-1, unbiased=True) if n > 1 else torch.zeros(d.shape[:-1])
    return d.mean(-1) + z * sd / math.sqrt(n)


def _eliminate(res: RaceResult, n: int, z: float, min_images: int, contenders: int | None = None) -> None:
    limit = len(res.scores) if contenders is None else contenders
    if n < min_images or len(res.alive) <= 1:
        return
    alive = torch.tensor(res.alive)
    s = res.scores[alive, :n]
    means = s.mean(1)
    leader = int(means.argmax())
    d = s - s[leader]
    upper = paired_upper_bound(d, z)
    # identical scores on every image (sd = 0, mean 0) are ties, never eliminated
    out = (upper < 0) & ~(d.abs().amax(1) == 0)
    keep = []
    for i, c in enumerate(res.alive):
        if bool(out[i]) and c < limit:
            res.eliminated_at[c] = n
        else:
            keep.append(c)
    res.alive = keep

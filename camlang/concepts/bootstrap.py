"""Bootstrap confidence intervals for AUROC and for the paired AUROC difference of two detectors.

The bootstrap is stratified: positives and negatives are resampled separately, so every resample
keeps both classes and the same class balance as the test set. The paired difference resamples
the *same* images for both detectors, so their shared difficulty cancels and the interval is much
narrower than the two separate intervals suggest. The generator is seeded: a report is
reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from camlang.concepts.roc import auroc


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the full set) and a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int

    def excludes_zero(self) -> bool:
        """True when the whole interval lies above zero (a difference that is not noise)."""
        return self.low > 0.0

    def text(self) -> str:
        """`0.853 [0.840, 0.866]`."""
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _resample_indices(
    positive: torch.Tensor, resamples: int, generator: torch.Generator
) -> list[torch.Tensor]:
    pos = torch.nonzero(positive).flatten()
    neg = torch.nonzero(~positive).flatten()
    out = []
    for _ in range(resamples):
        p = pos[torch.randint(len(pos), (len(pos),), generator=generator)]
        n = neg[torch.randint(len(neg), (len(neg),), generator=generator)]
        out.append(torch.cat([p, n]))
    return out


def _interval(estimate: float, draws: list[float], level: float) -> Interval:
    values = torch.tensor([d for d in draws if d == d], dtype=torch.float64)  # drop NaN draws
    if len(values) == 0:
        return Interval(estimate, float("nan"), float("nan"), level, 0)
    tail = (1.0 - level) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return Interval(estimate, low, high, level, len(values))


def bootstrap_auroc(
    scores: torch.Tensor,
    positive: torch.Tensor,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """AUROC of `scores` with a stratified percentile bootstrap interval."""
    gen = torch.Generator().manual_seed(seed)
    draws = [auroc(scores[i], positive[i]) for i in _resample_indices(positive, resamples, gen)]
    return _interval(auroc(scores, positive), draws, level)


def paired_auroc_difference(
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    positive: torch.Tensor,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """AUROC(a) - AUROC(b) on the same images, with a paired stratified bootstrap interval."""
    gen = torch.Generator().manual_seed(seed)
    draws = [
        auroc(scores_a[i], positive[i]) - auroc(scores_b[i], positive[i])
        for i in _resample_indices(positive, resamples, gen)
    ]
    return _interval(auroc(scores_a, positive) - auroc(scores_b, positive), draws, level)


@dataclass(frozen=True)
class Evidence:
    """The uncertainty of one monitor test: AUROC intervals and the combination's gain over MSP.

    `requested_fpr` is the false-positive rate the thresholds were calibrated for (on the
    calibrate split); the realised rate on the test split is each `DetectorResult.calibrated_fpr`.
    """

    intervals: dict[str, Interval]  # detector -> AUROC interval
    difference: Interval | None  # AUROC(combined) - AUROC(msp), paired
    requested_fpr: float


def monitor_evidence(
    scores: dict[str, torch.Tensor],
    positive: torch.Tensor,
    requested_fpr: float,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Evidence:
    """Bootstrap intervals for every detector's AUROC and for combined minus MSP."""
    if bool(positive.all()) or not bool(positive.any()):
        nan = Interval(float("nan"), float("nan"), float("nan"), 0.95, 0)
        return Evidence({name: nan for name in scores}, None, requested_fpr)
    intervals = {
        name: bootstrap_auroc(s, positive, resamples=resamples, seed=seed) for name, s in scores.items()
    }
    difference = None
    if "combined" in scores and "msp" in scores:
        difference = paired_auroc_difference(
            scores["combined"], scores["msp"], positive, resamples=resamples, seed=seed
        )
    return Evidence(intervals, difference, requested_fpr)

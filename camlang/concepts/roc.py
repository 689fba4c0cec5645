"""Detection metrics for monitors: AUROC, ROC curve, true-positive rate at a false-positive rate.

Scores are "higher means more likely a defect"; positives are the defects (misclassified or
adversarial inputs), negatives the correctly classified clean inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); NaN with one class only."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = _average_ranks(torch.cat([pos, neg]).double())
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties given their average rank."""
    order = torch.argsort(values, stable=True)
    sorted_vals = values[order]
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    uniq, inverse, counts = torch.unique_consecutive(sorted_vals, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(values.dtype)
    mean_rank = ends - (counts.to(values.dtype) - 1) / 2
    ranks[order] = mean_rank[inverse]
    return ranks


def roc_curve(scores: torch.Tensor, positive: torch.Tensor) -> tuple[list[float], list[float]]:
    """(false-positive rates, true-positive rates), from the strictest threshold to the loosest."""
    order = torch.argsort(scores, descending=True, stable=True)
    s, p = scores[order], positive[order].float()
    tps, fps = torch.cumsum(p, 0), torch.cumsum(1 - p, 0)
    # Only the last of a run of tied scores is a threshold.
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    npos, nneg = max(float(p.sum()), 1.0), max(float((1 - p).sum()), 1.0)
    fpr = [0.0, *(fps[last] / nneg).tolist()]
    tpr = [0.0, *(tps[last] / npos).tolist()]
    return fpr, tpr


def tpr_at_fpr(scores: torch.Tensor, positive: torch.Tensor, fpr: float = 0.05) -> float:
    """The best true-positive rate of any threshold whose false-positive rate is at most `fpr`."""
    fprs, tprs = roc_curve(scores, positive)
    return max(t for f, t in zip(fprs, tprs) if f <= fpr + 1e-12)


def threshold_at_fpr(negative_scores: torch.Tensor, fpr: float) -> float:
    """The threshold that flags at most `fpr` of these (calibration) negatives: flag `score > t`."""
    if len(negative_scores) == 0:
        return float("inf")
    s = torch.sort(negative_scores.double(), descending=True).values
    allowed = int(fpr * len(s))  # this many may lie above the threshold
    return float(s[allowed]) if allowed < len(s) else float(s[-1]) - 1.0


@dataclass(frozen=True)
class DetectorResult:
    """One detector on one test set: threshold-free and calibrated-threshold numbers."""

    detector: str
    auroc: float
    tpr_at_5_fpr: float
    threshold: float
    calibrated_tpr: float
    calibrated_fpr: float
    positives: int
    negatives: int
    roc: tuple[list[float], list[float]]


def evaluate_detector(
    name: str, scores: torch.Tensor, positive: torch.Tensor, threshold: float
) -> DetectorResult:
    """AUROC, TPR at 5% FPR, and the rates the calibrated `threshold` actually gets on this set."""
    flagged = scores > threshold
    npos, nneg = int(positive.sum()), int((~positive).sum())
    return DetectorResult(
        name,
        auroc(scores, positive),
        tpr_at_fpr(scores, positive, 0.05),
        threshold,
        float((flagged & positive).sum()) / max(npos, 1),
        float((flagged & ~positive).sum()) / max(nneg, 1),
        npos,
        nneg,
        roc_curve(scores, positive),
    )

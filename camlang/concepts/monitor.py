"""The runtime monitor: flag inputs whose concept comparisons look like the network's failures.

For an input predicted as class c, the monitor scores the log-likelihood ratio of its concept
comparisons under c's *incorrect* heatmap against c's *correct* heatmap (heatmaps grouped by
the predicted class, from a fit split). High scores mean "this looks like a mistake". The flag
threshold is set on a separate validation split so that at most `fpr` of its correctly
classified images are flagged; the test split is never used for calibration.

Baselines in the same run: maximum softmax probability (Hendrycks and Gimpel 2017; score
`1 - max p`) and the energy score (Liu et al. 2020; score `-logsumexp(logits)`). The combined
detector is a logistic regression on the standardised monitor and MSP scores, fitted on the
validation split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from camlang.concepts.features import Features
from camlang.concepts.heatmaps import SemanticHeatmaps, comparisons, semantic_heatmaps
from camlang.concepts.likelihood import loglik, smoothed
from camlang.concepts.roc import threshold_at_fpr
from camlang.concepts.sources import ConceptSource
from camlang.errors import CamlangError

#: The detectors a monitor evaluation compares, in report order.
DETECTORS: tuple[str, ...] = ("monitor", "msp", "energy", "monitor+msp")


def msp_score(logits: torch.Tensor) -> torch.Tensor:
    """`1 - max softmax probability`: high when the network is unsure."""
    return 1.0 - torch.softmax(logits.float(), dim=1).max(dim=1).values


def energy_score(logits: torch.Tensor) -> torch.Tensor:
    """The free energy `-logsumexp(logits)` (temperature 1): high for unfamiliar inputs."""
    return -torch.logsumexp(logits.float(), dim=1)


@dataclass(frozen=True)
class Combination:
    """Logistic weights over standardised (monitor, MSP) scores."""

    mean: torch.Tensor  # [2]
    std: torch.Tensor  # [2]
    weight: torch.Tensor  # [2]
    bias: float

    def __call__(self, monitor: torch.Tensor, msp: torch.Tensor) -> torch.Tensor:
        z = (torch.stack([monitor, msp], dim=1) - self.mean) / self.std
        return z @ self.weight + self.bias


def _fit_combination(monitor: torch.Tensor, msp: torch.Tensor, positive: torch.Tensor) -> Combination:
    x = torch.stack([monitor, msp], dim=1).float()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z, y = (x - mean) / std, positive.float()
    w = torch.zeros(2, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + 1e-3 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return Combination(mean, std, w.detach(), float(b.detach()))


@dataclass(frozen=True)
class ConceptMonitor:
    """A fitted, calibrated monitor over one concept source."""

    source: ConceptSource
    heatmaps: SemanticHeatmaps  # grouped by prediction
    fpr: float
    thresholds: dict[str, float]  # detector -> calibrated threshold
    combination: Combination

    def monitor_scores(self, scores: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """`[N]` log-likelihood ratio incorrect vs correct for concept scores `[N, K]`."""
        comp = comparisons(scores)
        p_inc = smoothed(self.heatmaps.incorrect, self.heatmaps.n_incorrect)[predictions]
        p_cor = smoothed(self.heatmaps.correct, self.heatmaps.n_correct)[predictions]
        return loglik(comp, p_inc) - loglik(comp, p_cor)

    def detector_scores(self, features: Features) -> dict[str, torch.Tensor]:
        """Every detector's `[N]` scores for these features (higher: more likely a defect)."""
        mon = self.monitor_scores(self.source.scores(features), features.predictions)
        msp = msp_score(features.logits)
        return {
            "monitor": mon,
            "msp": msp,
            "energy": energy_score(features.logits),
            "monitor+msp": self.combination(mon, msp),
        }

    def flags(self, features: Features, detector: str = "monitor") -> tuple[torch.Tensor, torch.Tensor]:
        """`(flags [N] bool, scores [N])` of one detector at its calibrated threshold."""
        scores = self.detector_scores(features)[detector]
        return scores > self.thresholds[detector], scores


def fit_monitor(
    source: ConceptSource, fit: Features, validation: Features, classes: Sequence[str], fpr: float = 0.05
) -> ConceptMonitor:
    """Heatmaps from `fit` (grouped by prediction); thresholds and the combination from `validation`."""
    if not 0.0 < fpr < 1.0:
        raise CamlangError(f"monitor false-positive rate must be strictly between 0 and 1, got {fpr}")
    if fit.labels is None or validation.labels is None:
        raise CamlangError(
            "a monitor is fitted and calibrated on labelled images",
            hint="give labelled data for fit and calibrate",
        )
    heat = semantic_heatmaps(
        source.scores(fit), fit.labels, fit.predictions, source.names, classes, "prediction"
    )
    if int(heat.n_incorrect.sum()) == 0:
        raise CamlangError(
            "the network makes no mistakes on the monitor's fit images, so there is nothing to learn",
            hint="fit the monitor on data where the network errs, e.g. a shifted split",
        )
    draft = ConceptMonitor(
        source, heat, fpr, {}, Combination(torch.zeros(2), torch.ones(2), torch.zeros(2), 0.0)
    )
    val_scores = draft.detector_scores(validation)
    wrong = ~validation.correct
    combination = _fit_combination(val_scores["monitor"], val_scores["msp"], wrong)
    draft = ConceptMonitor(source, heat, fpr, {}, combination)
    val_scores = draft.detector_scores(validation)
    thresholds = {name: threshold_at_fpr(val_scores[name][~wrong], fpr) for name in DETECTORS}
    return ConceptMonitor(source, heat, fpr, thresholds, combination)

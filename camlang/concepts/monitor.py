"""The runtime monitor: flag inputs whose concept comparisons look like the network's failures.

For an input predicted as class c, the monitor scores the log-likelihood ratio of its concept
comparisons under c's *incorrect* heatmap against c's *correct* heatmap (heatmaps grouped by
the predicted class, from a fit split). High scores mean "this looks like a mistake". The flag
threshold is set on a separate validation split so that at most `fpr` of its correctly
classified images are flagged; the test split is never used for calibration.

Baselines in the same run: maximum softmax probability (Hendrycks and Gimpel 2017; score
`1 - max p`) and the energy score (Liu et al. 2020; score `-logsumexp(logits)`). The `combined`
detector (`camlang.concepts.combine`) learns a combination of the monitor, further concept
signals, MSP, energy and the logit margin on out-of-fold values of the fit split, and keeps it
only where it beats the best single signal on the calibrate split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from camlang.concepts.combine import Combiner, fit_combiner
from camlang.concepts.features import Features
from camlang.concepts.heatmaps import SemanticHeatmaps
from camlang.concepts.roc import threshold_at_fpr
from camlang.concepts.signals import SignalModel, cross_fitted_signals, fit_signal_model, heatmap_llr
from camlang.concepts.sources import ConceptSource
from camlang.errors import CamlangError

#: The detectors a monitor evaluation compares, in report order.
DETECTORS: tuple[str, ...] = ("monitor", "msp", "energy", "combined")


def msp_score(logits: torch.Tensor) -> torch.Tensor:
    """`1 - max softmax probability`: high when the network is unsure."""
    return 1.0 - torch.softmax(logits.float(), dim=1).max(dim=1).values


def energy_score(logits: torch.Tensor) -> torch.Tensor:
    """The free energy `-logsumexp(logits)` (temperature 1): high for unfamiliar inputs."""
    return -torch.logsumexp(logits.float(), dim=1)


@dataclass(frozen=True)
class ConceptMonitor:
    """A fitted, calibrated monitor over one concept source."""

    source: ConceptSource
    heatmaps: SemanticHeatmaps  # grouped by prediction
    fpr: float
    thresholds: dict[str, float]  # detector -> calibrated threshold
    signal_model: SignalModel
    combination: Combiner

    def monitor_scores(self, scores: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """`[N]` log-likelihood ratio incorrect vs correct for concept scores `[N, K]`."""
        return heatmap_llr(self.heatmaps, scores, predictions)

    def detector_scores(self, features: Features) -> dict[str, torch.Tensor]:
        """Every detector's `[N]` scores for these features (higher: more likely a defect)."""
        signals = self.signal_model.signals(self.source.scores(features), features.logits)
        return {
            "monitor": signals.column("monitor"),
            "msp": signals.column("msp"),
            "energy": signals.column("energy"),
            "combined": self.combination(signals),
        }

    def flags(self, features: Features, detector: str = "monitor") -> tuple[torch.Tensor, torch.Tensor]:
        """`(flags [N] bool, scores [N])` of one detector at its calibrated threshold."""
        scores = self.detector_scores(features)[detector]
        return scores > self.thresholds[detector], scores


def fit_monitor(
    source: ConceptSource, fit: Features, validation: Features, classes: Sequence[str], fpr: float = 0.05
) -> ConceptMonitor:
    """Heatmaps and concept signals from `fit`; the combination learnt on out-of-fold `fit` signals
    and chosen on `validation`; every threshold from `validation`."""
    if not 0.0 < fpr < 1.0:
        raise CamlangError(f"monitor false-positive rate must be strictly between 0 and 1, got {fpr}")
    if fit.labels is None or validation.labels is None:
        raise CamlangError(
            "a monitor is fitted and calibrated on labelled images",
            hint="give labelled data for fit and calibrate",
        )
    if bool(fit.correct.all()):
        raise CamlangError(
            "the network makes no mistakes on the monitor's fit images, so there is nothing to learn",
            hint="fit the monitor on data where the network errs, e.g. a shifted split",
        )
    scores = source.scores(fit)
    model = fit_signal_model(scores, fit.labels, fit.logits, source.names, classes)
    out_of_fold = cross_fitted_signals(scores, fit.labels, fit.logits, source.names, classes)
    val_signals = model.signals(source.scores(validation), validation.logits)
    wrong = ~validation.correct
    combination = fit_combiner(out_of_fold, ~fit.correct, val_signals, wrong)
    draft = ConceptMonitor(source, model.heatmaps, fpr, {}, model, combination)
    val_scores = draft.detector_scores(validation)
    thresholds = {name: threshold_at_fpr(val_scores[name][~wrong], fpr) for name in DETECTORS}
    return ConceptMonitor(source, model.heatmaps, fpr, thresholds, model, combination)

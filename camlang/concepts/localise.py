"""Fault localisation: did the encoder see the wrong concepts, or did the head misread them?

The reference is the semantic heatmap of *correctly* classified images of each true class,
taken from the network while it is believed healthy. For a misclassified image of class y, the
encoder is blamed when the image's concept comparisons are atypical for correct images of y:
their log-likelihood under that heatmap falls below the `quantile` (default 2.5%) of the
log-likelihoods of correct calibration images of y: a healthy encoder is blamed for about that
share of the errors it did not cause. Otherwise the encoder produced the concepts a correct image
of y has, so the head mapped right concepts to the wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from camlang.concepts.heatmaps import SemanticHeatmaps, comparisons
from camlang.concepts.likelihood import loglik, smoothed
from camlang.errors import CamlangError


@dataclass(frozen=True)
class Localiser:
    """Reference heatmaps (grouped by true label) and one typicality threshold per class."""

    reference: SemanticHeatmaps
    thresholds: torch.Tensor  # [C]; -inf where the class had no correct calibration image
    quantile: float

    def typicality(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`[N]` log-likelihood of each image's comparisons under its true class's correct heatmap."""
        prob = smoothed(self.reference.correct, self.reference.n_correct)[labels]
        return loglik(comparisons(scores), prob)


def fit_localiser(
    reference: SemanticHeatmaps,
    scores: torch.Tensor,
    labels: torch.Tensor,
    correct: torch.Tensor,
    quantile: float = 0.025,
) -> Localiser:
    """Per-class thresholds from correctly classified calibration images (`scores`, `labels`)."""
    if reference.group_by != "label":
        raise CamlangError("fault localisation needs heatmaps grouped by the true label")
    probe = Localiser(reference, torch.zeros(len(reference.classes)), quantile)
    typical = probe.typicality(scores[correct], labels[correct])
    thresholds = torch.full((len(reference.classes),), float("-inf"))
    for c in range(len(reference.classes)):
        mine = typical[labels[correct] == c]
        if len(mine):
            thresholds[c] = torch.quantile(mine, quantile)
    return Localiser(reference, thresholds, quantile)


@dataclass(frozen=True)
class Localisation:
    """The verdict for every misclassified image, and per-class counts."""

    classes: tuple[str, ...]
    labels: torch.Tensor  # [E] true class of each error
    predictions: torch.Tensor  # [E]
    encoder: torch.Tensor  # [E] bool: blamed on the encoder (else the head)
    typicality: torch.Tensor  # [E]
    image_index: torch.Tensor  # [E] position of each error in the evaluated images

    @property
    def errors(self) -> int:
        """Number of misclassified images."""
        return int(self.labels.numel())

    def encoder_share(self) -> float:
        """Fraction of errors blamed on the encoder (NaN when there are none)."""
        return float(self.encoder.float().mean()) if self.errors else float("nan")

    def table(self) -> list[dict[str, object]]:
        """One row per true class with errors: counts for encoder and head."""
        rows = []
        for c, name in enumerate(self.classes):
            mine = self.labels == c
            n = int(mine.sum())
            if n == 0:
                continue
            enc = int((self.encoder & mine).sum())
            rows.append(
                {"class": name, "errors": n, "encoder": enc, "head": n - enc, "encoder_share": enc / n}
            )
        return rows


def localise(
    localiser: Localiser, scores: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor
) -> Localisation:
    """Localise every misclassified image among `scores` `[N, K]` to the encoder or the head."""
    wrong = predictions != labels
    idx = torch.nonzero(wrong).flatten()
    typical = localiser.typicality(scores[idx], labels[idx])
    encoder = typical < localiser.thresholds[labels[idx]]
    return Localisation(localiser.reference.classes, labels[idx], predictions[idx], encoder, typical, idx)

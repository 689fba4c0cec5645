"""Per-image signals for the concept monitor's combined detector, and their out-of-fold values.

Every signal is "higher means more likely a defect":

- `monitor`: the log-likelihood ratio of the image's concept comparisons under its predicted
  class's *incorrect* heatmap against its *correct* one (the monitor of Hu et al. 2025);
- `concept_distance`: how far the image's concept scores lie from those of correctly classified
  images of its predicted class (squared, per-concept standardised distance to the class mean);
- `concept_disagreement`: `-log p(predicted class | concepts)` under a softmax regression from
  concept scores to the true label: the concepts point to another class;
- `concept_trust`: the trust score of Jiang et al. (2018) in concept space: the log ratio of the
  distance to the nearest correctly classified fit image of the predicted class to the distance
  to the nearest one of any other class (high: the concepts sit among another class's images);
- `msp` (`1 - max p`), `energy` (`-logsumexp`), `margin` (second logit minus the first): the
  network's own confidence.

The concept signals are fitted on the monitor's `fit` split. Fitted there and scored there, they
would look better than they are, so the combiner learns from *out-of-fold* values
(`cross_fitted_signals`): each fold scored by models fitted on the other folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from camlang.concepts.combine import Signals, signals_from
from camlang.concepts.heatmaps import SemanticHeatmaps, comparisons, semantic_heatmaps
from camlang.concepts.likelihood import loglik, smoothed

#: The monitor's signals, in report order; the combined detector reads all of them.
SIGNALS: tuple[str, ...] = (
    "monitor",
    "concept_distance",
    "concept_disagreement",
    "concept_trust",
    "msp",
    "energy",
    "margin",
)


def heatmap_llr(heat: SemanticHeatmaps, scores: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """`[N]` log-likelihood ratio incorrect vs correct of concept scores `[N, K]` (by prediction)."""
    comp = comparisons(scores)
    p_inc = smoothed(heat.incorrect, heat.n_incorrect)[predictions]
    p_cor = smoothed(heat.correct, heat.n_correct)[predictions]
    return loglik(comp, p_inc) - loglik(comp, p_cor)


def logit_signals(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSP, energy and margin of `[N, C]` logits (higher: less confident)."""
    logits = logits.float()
    top2 = logits.topk(2, dim=1).values
    return {
        "msp": 1.0 - torch.softmax(logits, dim=1).max(dim=1).values,
        "energy": -torch.logsumexp(logits, dim=1),
        "margin": top2[:, 1] - top2[:, 0],
    }


def softmax_regression(
    x: torch.Tensor, labels: torch.Tensor, classes: int, l2: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression `[D] -> classes` (L2, L-BFGS): weight `[D, C]`, bias `[C]`."""
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, labels) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


@dataclass(frozen=True)
class SignalModel:
    """The concept signals' fitted parts: heatmaps, class means, and a concepts-to-class head."""

    heatmaps: SemanticHeatmaps  # grouped by prediction
    class_mean: torch.Tensor  # [C, K] mean concept scores of correct images, by class
    mean: torch.Tensor  # [K]
    scale: torch.Tensor  # [K]
    head_weight: torch.Tensor  # [K, C]
    head_bias: torch.Tensor  # [C]
    reference: torch.Tensor  # [R, K] standardised concept scores of correct fit images
    reference_labels: torch.Tensor  # [R]

    def trust(self, z: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """`[N]` log(distance to the predicted class / distance to the nearest other class)."""
        dist = torch.cdist(z, self.reference)  # [N, R]
        same = self.reference_labels[None, :] == pred[:, None]
        inf = torch.tensor(float("inf"))
        d_pred = torch.where(same, dist, inf).min(dim=1).values
        d_other = torch.where(~same, dist, inf).min(dim=1).values
        # A class with no reference image is infinitely far: capped, so the log stays finite.
        return torch.log(d_pred.clamp(max=1e6) + 1e-3) - torch.log(d_other.clamp(max=1e6) + 1e-3)

    def signals(self, scores: torch.Tensor, logits: torch.Tensor) -> Signals:
        """Every signal in `SIGNALS` for concept scores `[N, K]` and logits `[N, C]`."""
        pred = logits.argmax(dim=1)
        z = (scores.float() - self.mean) / self.scale
        distance = ((z - self.class_mean[pred]) ** 2).sum(dim=1)
        log_p = torch.log_softmax(z @ self.head_weight + self.head_bias, dim=1)
        columns = {
            "monitor": heatmap_llr(self.heatmaps, scores, pred),
            "concept_distance": distance,
            "concept_disagreement": -log_p.gather(1, pred[:, None]).squeeze(1),
            "concept_trust": self.trust(z, pred),
            **logit_signals(logits),
        }
        return signals_from({name: columns[name] for name in SIGNALS})


def fit_signal_model(
    scores: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    concepts: Sequence[str],
    classes: Sequence[str],
) -> SignalModel:
    """Fit the concept signals on labelled images (the monitor's `fit` split)."""
    pred = logits.argmax(dim=1)
    heat = semantic_heatmaps(scores, labels, pred, concepts, classes, "prediction")
    mean, scale = scores.float().mean(0), scores.float().std(0).clamp_min(1e-6)
    z = (scores.float() - mean) / scale
    correct = pred == labels
    class_mean = torch.zeros(len(classes), z.shape[1])
    for c in range(len(classes)):
        mine = z[correct & (pred == c)]
        if len(mine):  # a class never predicted correctly keeps the overall mean (zero)
            class_mean[c] = mine.mean(0)
    w, b = softmax_regression(z, labels, len(classes))
    return SignalModel(heat, class_mean, mean, scale, w, b, z[correct], labels[correct])


def cross_fitted_signals(
    scores: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    concepts: Sequence[str],
    classes: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> Signals:
    """Out-of-fold signals of the fit split: each fold scored by a model fitted on the others."""
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = torch.zeros(n, len(SIGNALS))
    for part in order.chunk(max(2, min(folds, n))):
        rest = torch.ones(n, dtype=torch.bool)
        rest[part] = False
        model = fit_signal_model(scores[rest], labels[rest], logits[rest], concepts, classes)
        out[part] = model.signals(scores[part], logits[part]).values
    return Signals(SIGNALS, out)

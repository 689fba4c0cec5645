"""Concept sources: annotations and linear probes (concept activation vectors).

A concept source turns the `Features` of one forward pass into a score matrix `[N, K]` over
its K named concepts. Every source reads only `Features`, so any number of sources, heatmaps
and monitors share the one pass per image. The CLIP source lives in `camlang.concepts.clip`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from camlang.concepts.features import Features
from camlang.errors import CamlangError


class ConceptSource(Protocol):
    """Anything that scores named concepts from `Features`."""

    @property
    def kind(self) -> str:
        """ "annotations", "probes" or "clip"."""
        ...

    @property
    def names(self) -> tuple[str, ...]:
        """The concept names, in score-column order."""
        ...

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers whose pooled activations `scores` reads."""
        ...

    def scores(self, features: Features) -> torch.Tensor:
        """`[N, K]` concept scores, column k for `names[k]`."""
        ...

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary for the report."""
        ...


def select_concepts(available: Sequence[str], wanted: Sequence[str] | None, where: str) -> list[int]:
    """Column indices of `wanted` among `available` (all of them when `wanted` is None).

    An unknown name is a user error that lists the nearest known names.
    """
    if wanted is None:
        return list(range(len(available)))
    out = []
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=3)
            raise CamlangError(
                f"unknown concept {name!r}: {where} has no concept of that name",
                hint=(f"did you mean {', '.join(map(repr, close))}? " if close else "")
                + "known concepts: "
                + ", ".join(available),
            )
        out.append(list(available).index(name))
    if len(set(out)) != len(out):
        raise CamlangError(f"concept list {list(wanted)} names a concept twice")
    if len(out) < 2:
        raise CamlangError("a concept set needs at least two concepts to compare")
    return out


@dataclass(frozen=True)
class AnnotationSource:
    """Ground-truth concept labels carried by the data: the score of a concept is 0 or 1."""

    names: tuple[str, ...]
    columns: tuple[int, ...]
    kind: str = "annotations"

    @property
    def layers(self) -> tuple[str, ...]:
        return ()

    def scores(self, features: Features) -> torch.Tensor:
        """The annotation columns of this set, `[N, K]` 0/1 floats."""
        if features.annotations is None:
            raise CamlangError(
                "these images carry no concept annotations",
                hint='use synthetic_shapes(...) or images(..., concepts = "attrs.csv")',
            )
        return features.annotations[:, list(self.columns)]

    def describe(self) -> dict[str, object]:
        """Kind and concept names."""
        return {"kind": self.kind, "concepts": list(self.names)}


def annotation_source(available: Sequence[str], wanted: Sequence[str] | None = None) -> AnnotationSource:
    """An annotation source over `wanted` (default: every annotated concept)."""
    if not available:
        raise CamlangError(
            "the data has no concept annotations",
            hint='use synthetic_shapes(...) or images(..., concepts = "attrs.csv")',
        )
    cols = select_concepts(available, wanted, "the data's annotations")
    return AnnotationSource(tuple(available[c] for c in cols), tuple(cols))


@dataclass(frozen=True)
class ProbeResult:
    """Held-out quality of one concept probe."""

    concept: str
    accuracy: float
    balanced_accuracy: float
    chance: float
    positives: int
    heldout: int


@dataclass(frozen=True)
class ProbeSource:
    """Linear probes (CAVs) on one layer's pooled activations; the scores are probe logits.

    `weight[:, k]` is concept k's direction in the layer's (standardised) activation space.
    """

    names: tuple[str, ...]
    layer: str
    mean: torch.Tensor  # [D]
    scale: torch.Tensor  # [D]
    weight: torch.Tensor  # [D, K]
    bias: torch.Tensor  # [K]
    results: tuple[ProbeResult, ...]
    kind: str = "probes"

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def logits(self, activations: torch.Tensor) -> torch.Tensor:
        """Probe logits `[N, K]` for pooled activations `[N, D]` (differentiable)."""
        return ((activations - self.mean) / self.scale) @ self.weight + self.bias

    def scores(self, features: Features) -> torch.Tensor:
        """Probe logits of the pooled activations of the probe layer."""
        return self.logits(features.pooled[self.layer])

    def directions(self) -> torch.Tensor:
        """`[K, D]` concept activation vectors in the layer's raw activation space (unit norm)."""
        raw = (self.weight / self.scale[:, None]).T
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def describe(self) -> dict[str, object]:
        """Kind, layer and each probe's held-out accuracy against chance."""
        return {
            "kind": self.kind,
            "layer": self.layer,
            "concepts": list(self.names),
            "probes": [
                {
                    "concept": r.concept,
                    "accuracy": r.accuracy,
                    "balanced_accuracy": r.balanced_accuracy,
                    "chance": r.chance,
                    "positives": r.positives,
                    "heldout": r.heldout,
                }
                for r in self.results
            ],
        }


def _fit_logistic(
    x: torch.Tensor, y: torch.Tensor, l2: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All K one-vs-rest logistic regressions at once (class-balanced, L2), by L-BFGS."""
    d, k = x.shape[1], y.shape[1]
    w = torch.zeros(d, k, requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    pos = y.mean(0).clamp(1e-3, 1 - 1e-3)
    # Balanced weights: rare concepts (a blob distractor) count as much as common ones.
    weights = torch.where(y > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, weight=weights)
        loss = loss + l2 * (w * w).sum() / k
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def chance_margin(positives: int, negatives: int) -> float:
    """Balanced accuracy a probe must exceed to count as better than chance.

    0.5 plus two standard errors of a coin-flip balanced accuracy on this held-out set, and at
    least 0.05: a probe inside that band is indistinguishable from guessing.
    """
    if positives == 0 or negatives == 0:
        return 1.0
    se = 0.5 * math.sqrt(0.25 / positives + 0.25 / negatives)
    return 0.5 + max(0.05, 2.0 * se)


def fit_probes(
    train: Features,
    heldout: Features,
    layer: str,
    names: Sequence[str],
    columns: Sequence[int],
    *,
    l2: float = 1e-3,
    steps: int = 200,
) -> ProbeSource:
    """Fit one linear probe per concept on `train`, score them on `heldout`, refuse chance probes.

    `columns` index the annotation columns of the concepts `names`. A probe whose held-out
    balanced accuracy does not clear `chance_margin` is a user error naming the concept.
    """
    for part, what in ((train, "training"), (heldout, "held-out")):
        if part.annotations is None:
            raise CamlangError(
                f"the {what} images carry no concept annotations, so probes cannot be fitted",
                hint='use synthetic_shapes(...) or images(..., concepts = "attrs.csv")',
            )
    assert train.annotations is not None and heldout.annotations is not None
    xs = train.pooled[layer]
    mean, scale = xs.mean(0), xs.std(0).clamp_min(1e-6)
    y = train.annotations[:, list(columns)]
    for k, name in enumerate(names):
        if y[:, k].min() == y[:, k].max():
            raise CamlangError(
                f"concept {name!r} is {'always' if y[0, k] else 'never'} present in the training images, "
                "so no probe can be fitted",
                hint="use more or more varied training images",
            )
    w, b = _fit_logistic((xs - mean) / scale, y, l2, steps)
    probe = ProbeSource(tuple(names), layer, mean, scale, w, b, ())
    yh = heldout.annotations[:, list(columns)] > 0.5
    pred = probe.scores(heldout) > 0
    results, weak = [], []
    for k, name in enumerate(names):
        p, n = int(yh[:, k].sum()), int((~yh[:, k]).sum())
        if p == 0 or n == 0:
            raise CamlangError(
                f"concept {name!r} is {'always' if n == 0 else 'never'} present in the held-out images, "
                "so its probe cannot be scored",
                hint="use more or more varied held-out images",
            )
        tpr = float((pred[:, k] & yh[:, k]).sum()) / max(p, 1)
        tnr = float((~pred[:, k] & ~yh[:, k]).sum()) / max(n, 1)
        acc = float((pred[:, k] == yh[:, k]).float().mean())
        bal = 0.5 * (tpr + tnr)
        results.append(ProbeResult(name, acc, bal, max(p, n) / max(p + n, 1), p, p + n))
        if bal <= chance_margin(p, n):
            weak.append(f"{name!r} (balanced accuracy {bal:.2f}, needs > {chance_margin(p, n):.2f})")
    if weak:
        raise CamlangError(
            f"the probe(s) for {', '.join(weak)} on layer {layer!r} are no better than chance on held-out "
            f"images",
            hint="probe another layer, use more training images, or drop the concept from the set",
        )
    return ProbeSource(tuple(names), layer, mean, scale, w, b, tuple(results))

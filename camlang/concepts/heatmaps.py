"""Semantic and differential heatmaps (Hu et al. 2025, arXiv 2503.17416).

For one class, cell (i, j) of the semantic heatmap is the fraction of the class's images on
which score(c_i) > score(c_j). It is computed separately for correctly and incorrectly
classified images; the differential heatmap is correct minus incorrect. Everything is a
batched tensor computation over the `[N, K]` score matrix: one comparison tensor and one
matrix product per heatmap set, whatever the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

GroupBy = Literal["label", "prediction"]


def comparisons(scores: torch.Tensor) -> torch.Tensor:
    """`[N, K, K]` bool: `out[n, i, j]` is `scores[n, i] > scores[n, j]`."""
    return scores[:, :, None] > scores[:, None, :]


@dataclass(frozen=True)
class SemanticHeatmaps:
    """Per-class comparison frequencies over one concept set.

    - `correct[c, i, j]`: fraction of correctly classified images of class c with c_i > c_j
      (NaN where the class has no such image); `incorrect` likewise.
    - `n_correct[c]`, `n_incorrect[c]`: how many images each heatmap summarises.
    - `group_by`: whether "class c" means the true label or the predicted class.
    """

    concepts: tuple[str, ...]
    classes: tuple[str, ...]
    correct: torch.Tensor
    incorrect: torch.Tensor
    n_correct: torch.Tensor
    n_incorrect: torch.Tensor
    group_by: GroupBy

    @property
    def differential(self) -> torch.Tensor:
        """`[C, K, K]` correct minus incorrect (NaN where either side is empty)."""
        return self.correct - self.incorrect


def semantic_heatmaps(
    scores: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    concepts: Sequence[str],
    classes: Sequence[str],
    group_by: GroupBy = "label",
) -> SemanticHeatmaps:
    """Correct and incorrect semantic heatmaps of every class from `[N, K]` concept scores."""
    num_classes = len(classes)
    k = scores.shape[1]
    comp = comparisons(scores).reshape(len(scores), k * k).float()
    group = labels if group_by == "label" else predictions
    onehot = torch.nn.functional.one_hot(group.long(), num_classes).float()  # [N, C]
    right = (labels == predictions).float()[:, None]
    n_correct = (onehot * right).sum(0)
    n_incorrect = (onehot * (1 - right)).sum(0)
    counts_correct = (onehot * right).T @ comp  # [C, K*K]
    counts_incorrect = (onehot * (1 - right)).T @ comp
    nan = torch.tensor(float("nan"))
    correct = torch.where(n_correct[:, None] > 0, counts_correct / n_correct[:, None].clamp_min(1), nan)
    incorrect = torch.where(
        n_incorrect[:, None] > 0, counts_incorrect / n_incorrect[:, None].clamp_min(1), nan
    )
    return SemanticHeatmaps(
        tuple(concepts),
        tuple(classes),
        correct.view(num_classes, k, k),
        incorrect.view(num_classes, k, k),
        n_correct.long(),
        n_incorrect.long(),
        group_by,
    )


@dataclass(frozen=True)
class DifferentialCell:
    """One large cell of a differential heatmap: how often c_i > c_j held, correct vs incorrect."""

    cls: str
    first: str
    second: str
    when_correct: float
    when_incorrect: float

    @property
    def difference(self) -> float:
        """Correct minus incorrect frequency."""
        return self.when_correct - self.when_incorrect

    def sentence(self) -> str:
        """The cell in words, as the report lists it."""
        return (
            f"on misclassified {self.cls} images, {self.first} > {self.second} held "
            f"{self.when_incorrect:.0%} of the time, against {self.when_correct:.0%} when correct"
        )


def top_cells(heatmaps: SemanticHeatmaps, cls: int, count: int = 3) -> list[DifferentialCell]:
    """The `count` cells of class `cls`'s differential heatmap with the largest absolute value.

    Of the mirror pair (i, j) and (j, i) only the one with the larger incorrect frequency is
    kept, so the sentence names what the network sees *more* often when it fails.
    """
    diff = heatmaps.differential[cls]
    if bool(torch.isnan(diff).all()):
        return []
    k = diff.shape[0]
    # Keep (i, j) where the misclassified images show c_i > c_j more often than the correct ones.
    eligible = (diff < 0) | ((diff == 0) & torch.ones(k, k, dtype=torch.bool).triu(1))
    eligible &= ~torch.eye(k, dtype=torch.bool) & ~torch.isnan(diff)
    magnitude = torch.where(eligible, diff.abs(), torch.tensor(-1.0)).flatten()
    order = torch.argsort(magnitude, descending=True, stable=True)[:count]
    cells = []
    for flat in order.tolist():
        if magnitude[flat] < 0:
            break
        i, j = divmod(flat, k)
        cells.append(
            DifferentialCell(
                heatmaps.classes[cls],
                heatmaps.concepts[i],
                heatmaps.concepts[j],
                float(heatmaps.correct[cls, i, j]),
                float(heatmaps.incorrect[cls, i, j]),
            )
        )
    return cells


def mass_share(heatmaps: SemanticHeatmaps, cls: int, involved: Sequence[str]) -> float:
    """Share of class `cls`'s total |differential| that lies on cells comparing a concept of `involved`.

    When the differential is spread evenly this is about the share of such cells (see
    `cell_share`); a cause that the concepts name pulls it far above. NaN without errors.
    """
    diff = torch.nan_to_num(heatmaps.differential[cls].abs(), nan=0.0)
    total = float(diff.sum())
    if total == 0.0 or int(heatmaps.n_incorrect[cls]) == 0 or int(heatmaps.n_correct[cls]) == 0:
        return float("nan")
    return float(diff[_involving(heatmaps.concepts, involved)].sum()) / total


def cell_share(concepts: Sequence[str], involved: Sequence[str]) -> float:
    """The share of off-diagonal cells that compare a concept of `involved` (the even-spread baseline)."""
    cells = _involving(tuple(concepts), involved)
    k = len(concepts)
    return float(cells.sum()) / (k * (k - 1))


def _involving(concepts: tuple[str, ...], involved: Sequence[str]) -> torch.Tensor:
    member = torch.tensor([c in involved for c in concepts])
    k = len(concepts)
    return (member[:, None] | member[None, :]) & ~torch.eye(k, dtype=torch.bool)

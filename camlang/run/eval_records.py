"""The typed records of an evaluate (`camlang.run.evaluate`): its plan, the rows of its images,
the grid images it draws and what each worker sends to rank 0."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from camlang.data import Dataset
from camlang.frontend import syntax as s
from camlang.frontend.ir import Node
from camlang.frontend.program import MetricDef
from camlang.runtime.declaration_loading import LiveModel

__all__ = ["BatchScores", "EvalPart", "EvalPlan", "ImageRow", "Shown", "class_name"]


@dataclass(frozen=True)
class ImageRow:
    """One image's results: `values[cam][metric]`, and which cams gave a NaN map."""

    values: dict[str, dict[str, float]]
    nan: dict[str, bool]


@dataclass(frozen=True)
class Shown:
    """What the report's heatmap grid shows of one image."""

    raw: torch.Tensor
    maps: dict[str, torch.Tensor]
    mask: torch.Tensor | None
    label: str | int | None
    prediction: str | int


@dataclass(frozen=True)
class EvalPart:
    """What one worker finished of an evaluate: its images' rows, its grid images, and how many
    images its model calls ran on."""

    rows: Mapping[int, ImageRow]
    shown: Mapping[int, Shown]
    forward_images: int
    #: image files that could not be read when their batch was drawn (path -> why)
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def merge(parts: Iterable[EvalPart]) -> EvalPart:
        """Every worker's part as one (rank 0, after the gather)."""
        rows: dict[int, ImageRow] = {}
        shown: dict[int, Shown] = {}
        unreadable: dict[str, str] = {}
        forward = 0
        for part in parts:
            rows.update(part.rows)
            shown.update(part.shown)
            unreadable.update(part.unreadable)
            forward += part.forward_images
        return EvalPart(rows, shown, forward, unreadable)


@dataclass(frozen=True)
class EvalPlan:
    """One evaluate, resolved and validated: everything its batches and its summary read."""

    act: s.Evaluate
    cams: tuple[str, ...]
    metrics: Mapping[str, MetricDef]
    #: The IR of every cam the engine computes: the evaluated ones and those metrics reference.
    nodes: Mapping[str, Node]
    live: LiveModel
    data: Dataset
    describe: Mapping[str, object]
    #: The probe column every cam explains (`evaluate ... for concept SET.NAME`), else None.
    concept_index: torch.Tensor | None
    #: Everything the per-image values depend on: names the evaluate's section of the run's cache.
    cache_key: Mapping[str, Any]
    #: How many of the first images the report's grid shows.
    grid_images: int

    @property
    def model_name(self) -> str:
        return self.act.model.name

    @property
    def data_name(self) -> str:
        return self.act.data.name

    @property
    def class_names(self) -> Sequence[str] | None:
        names = self.describe.get("class_names") or self.live.loaded.class_names
        return list(names) if isinstance(names, list | tuple) and names else None

    @property
    def concept_title(self) -> str:
        """` for concept SET.NAME` when the cams explain a concept, else nothing."""
        target = self.act.concept
        return "" if target is None else f" for concept {target.concepts.name}.{target.concept.name}"

    def targets(self, x: torch.Tensor) -> torch.Tensor | None:
        """The cams' targets: the predicted class (None), or the concept's column for every image."""
        if self.concept_index is None:
            return None
        return self.concept_index.expand(x.shape[0]).to(x.device)

    def prediction(self, target: int) -> str | int:
        """What the grid shows as the explained output: the predicted class, or the concept."""
        if self.act.concept is not None:
            return f"{self.act.concept.concepts.name}.{self.act.concept.concept.name}"
        return class_name(target, self.class_names)


@dataclass(frozen=True)
class BatchScores:
    """One batch of this worker's share: its images' rows, the grid images it drew, and whether it
    came from the cache (then nothing was computed)."""

    rows: Mapping[int, ImageRow]
    shown: Mapping[int, Shown]
    size: int
    cached: bool


def class_name(index: int, class_names: Sequence[str] | None) -> str | int:
    """The class's name when the data or the model names its classes, else its index."""
    if class_names and 0 <= index < len(class_names):
        return class_names[index]
    return index

"""The data a run report is made from.

The run driver (`camlang/run/program.py`) fills these frozen dataclasses; the writers in this
package (`write_report`, `print_summary`) only read them. Nothing here computes CAMs or metrics.

Conventions (see docs/report_schema.md for the JSON they become):

- A `Stat` summarises one metric for one CAM over `n` images. `nan_count` of those images gave
  NaN; `mean`/`std` are over the finite ones and are NaN when no finite value is left (or when
  the driver chose to propagate NaN). The report shows such a mean as "NaN (k of n)".
- `Visuals` holds display tensors: `raw` `[N, 3, H, W]` in `[0, 1]`, one `[N, H, W]` map per CAM
  in `[0, 1]` (NaN allowed: a NaN pixel is drawn hatched grey), optional bool ground-truth
  masks `[N, H, W]` and optional per-image labels and predictions. torch tensors and numpy
  arrays are both accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

Direction = Literal["minimize", "maximize"]
Status = Literal["holds", "violated", "unknown"]
ArrayLike = torch.Tensor | np.ndarray

DIRECTIONS: tuple[str, ...] = ("minimize", "maximize")
STATUSES: tuple[str, ...] = ("holds", "violated", "unknown")


def to_numpy(value: ArrayLike) -> np.ndarray:
    """Return `value` as a numpy array (detached, on the CPU) without copying when possible."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").numpy()
    return np.asarray(value)


@dataclass(frozen=True, slots=True)
class Stat:
    """One metric for one CAM: mean and std over the finite values of `n` images.

    `ci_low`/`ci_high` bound a 95% percentile-bootstrap confidence interval of the mean (NaN
    when unknown). Resampled means stay within the values' range, so a bounded metric's interval
    never leaves its bounds, unlike mean ± std.
    """

    mean: float
    std: float
    n: int
    nan_count: int = 0
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def is_nan(self) -> bool:
        """True when the mean is not a finite number (it then ranks last)."""
        return not math.isfinite(self.mean)


BOOTSTRAP_RESAMPLES = 2000


def stat_of(values: ArrayLike, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Stat:
    """The `Stat` of per-image values: mean, std and a 95% bootstrap CI over the finite ones."""
    v = to_numpy(values).astype(np.float64).reshape(-1)
    finite = v[np.isfinite(v)]
    n, nan_count = int(v.size), int(v.size - finite.size)
    if finite.size == 0:
        return Stat(math.nan, math.nan, n, nan_count)
    mean = float(finite.mean())
    std = float(finite.std()) if finite.size > 1 else 0.0
    if finite.size == 1:
        return Stat(mean, std, n, nan_count, mean, mean)
    rng = np.random.default_rng(seed)
    # Resample in row blocks of at most ~8M indices, so 50,000 images do not need 800 MB at once.
    block = max(1, min(resamples, 8_000_000 // finite.size))
    means = np.concatenate(
        [
            finite[rng.integers(0, finite.size, size=(min(block, resamples - start), finite.size))].mean(
                axis=1
            )
            for start in range(0, resamples, block)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return Stat(mean, std, n, nan_count, float(low), float(high))


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric column: its name, whether lower or higher is better, and a one-line description.

    `settings` are values the metric resolved from the data, e.g. the pointing game tolerance.
    """

    name: str
    direction: Direction
    description: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"metric {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}"
            )


@dataclass(frozen=True, eq=False)
class Visuals:
    """Display tensors for a heatmap grid: images, one map per CAM, optional masks and captions."""

    raw: ArrayLike
    maps: Mapping[str, ArrayLike]
    masks: ArrayLike | None = None
    labels: Sequence[str | int] | None = None
    predictions: Sequence[str | int] | None = None

    def __post_init__(self) -> None:
        raw = to_numpy(self.raw)
        if raw.ndim != 4 or raw.shape[1] not in (1, 3):
            raise ValueError(
                f"Visuals.raw must be [N, 3, H, W] (or [N, 1, H, W]), got shape {tuple(raw.shape)}"
            )
        n, _, h, w = raw.shape
        for cam, m in self.maps.items():
            shape = tuple(to_numpy(m).shape)
            if shape != (n, h, w):
                raise ValueError(f"Visuals.maps[{cam!r}] must have shape {(n, h, w)}, got {shape}")
        if self.masks is not None and tuple(to_numpy(self.masks).shape) != (n, h, w):
            raise ValueError(
                f"Visuals.masks must have shape {(n, h, w)}, got {tuple(to_numpy(self.masks).shape)}"
            )
        for what, seq in (("labels", self.labels), ("predictions", self.predictions)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"Visuals.{what} must have {n} entries, got {len(seq)}")

    @property
    def count(self) -> int:
        """Number of images."""
        return int(to_numpy(self.raw).shape[0])


@dataclass(frozen=True)
class EvalResult:
    """One `evaluate` statement: CAMs x metrics on one model and data set.

    `model` keys: name, source, layer, layer_chosen_by_default (bool), input_size,
    preprocessing ({"mean": [...], "std": [...]}). `data` keys: name, kind, count, preprocessing.
    Extra keys are kept and shown. `table[cam][metric]` may miss entries (shown as "-").
    `definitions[cam]` is what the cam computes: its expression, or its method and parameters.
    """

    name: str
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    cams: Sequence[str]
    metrics: Sequence[MetricInfo]
    table: Mapping[str, Mapping[str, Stat]]
    visuals: Visuals | None = None
    definitions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One synthesized expression with its train score and holdout mean and confidence interval."""

    expression: str
    size: int
    train_score: float
    holdout_mean: float
    ci_low: float
    ci_high: float
    equivalence_note: str | None = None


@dataclass(frozen=True)
class SynthCounts:
    """How much work a synthesis did.

    `distinct_after` maps a pruning kind (e.g. "syntactic", "semantic", "observational") to
    the number of candidates still distinct after it, in the order the pruning ran.
    `exhaustive_forward_passes` is what evaluating every enumerated candidate would have cost.
    """

    enumerated: int
    distinct_after: Mapping[str, int]
    fully_evaluated: int
    forward_passes: int
    seconds: float
    exhaustive_forward_passes: int | None = None


@dataclass(frozen=True, slots=True)
class PhaseSeconds:
    """Seconds per phase of a synthesis: the search (captures, enumeration, race, final checks),
    tuning the winner's constants, and the holdout comparison (its capture and scoring)."""

    search: float
    tuning: float
    comparison: float

    @property
    def total(self) -> float:
        """All three phases together."""
        return self.search + self.tuning + self.comparison


@dataclass(frozen=True, slots=True)
class SynthTiming:
    """How a synthesis shared its `time` out and what each phase used.

    `planned` is the split by the stated `rule` (None without a time limit, `limit`); `spent` is
    measured, and its total is the synthesis's `SynthCounts.seconds`.
    """

    limit: float | None
    rule: str
    planned: PhaseSeconds | None
    spent: PhaseSeconds

    def describe(self) -> str:
        """One line: the seconds each phase used, against its planned share."""

        def phase(name: str, spent: float, planned: float | None) -> str:
            return f"{name} {spent:.1f} s" + ("" if planned is None else f" of {planned:.1f} s")

        p = self.planned
        parts = [
            phase("search", self.spent.search, None if p is None else p.search),
            phase("tuning", self.spent.tuning, None if p is None else p.tuning),
            phase("holdout comparison", self.spent.comparison, None if p is None else p.comparison),
        ]
        head = "no time limit" if self.limit is None else f"time {self.limit:g} s"
        return f"{head}: " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with a confidence interval (used for the holdout comparison)."""

    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class SynthResult:
    """One `synthesize` statement: the top-k candidates, counts and a holdout comparison.

    `comparison` maps a CAM name (the winner's display name and each stdlib CAM) to its holdout
    mean and CI. `visuals.maps` holds the winner's maps next to the stdlib CAMs' maps. `timing`
    is the planned split of `time` and the seconds each phase used (None when not measured).
    """

    name: str
    grammar: str
    objective: MetricInfo
    candidates: Sequence[Candidate]
    counts: SynthCounts
    partial: bool = False
    comparison: Mapping[str, Interval] = field(default_factory=dict)
    visuals: Visuals | None = None
    verdict: str | None = None  # one sentence: better / equal / worse than the best stdlib CAM
    timing: SynthTiming | None = None


@dataclass(frozen=True)
class CheckResult:
    """One `check` statement: an SMT/bounds verdict for a property.

    `counterexample` is the input found when `status == "violated"` (a flat or nested list of
    floats); `replay` records re-running it through the torch model (e.g.
    {"confirmed": True, "logits": [...]}).
    """

    property: str
    kind: str
    status: Status
    backend: str
    seconds: float
    reason: str = ""
    decided_by_bounds: bool = False
    counterexample: list[Any] | None = None
    replay: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"check {self.property!r}: status must be one of {STATUSES}, got {self.status!r}"
            )


@dataclass(frozen=True, slots=True)
class Export:
    """A CAM exported as a standalone module (`export` statement)."""

    cam: str
    path: str


@dataclass(frozen=True)
class ConceptSection:
    """One `heatmaps` or `monitor ... on` action (camlang.concepts), as the main report shows it.

    `data` is JSON data (docs/report_schema.md, "Concepts"): for `kind == "heatmaps"` the per-class
    matrices (`classes[i].png`), their top differential cells as sentences and the localisation
    rows; for `kind == "monitor"` one entry per test set (`tests[name].roc_png`, `detectors`).
    PNG paths in `data` are relative to the output folder; `images` maps each to its PNG bytes.
    """

    kind: Literal["heatmaps", "monitor"]
    title: str
    data: Mapping[str, Any]
    images: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """Everything one `camlang run` produced. `partial` is True when the run was interrupted."""

    camlang_version: str
    source_file: str
    created: str
    seed: int | None
    device: str
    partial: bool = False
    warnings: Sequence[str] = ()
    evaluations: Sequence[EvalResult] = ()
    syntheses: Sequence[SynthResult] = ()
    checks: Sequence[CheckResult] = ()
    exports: Sequence[Export] = ()
    #: Processes the run used (`camlang run --workers N`, torchrun); results do not depend on it.
    world_size: int = 1
    #: Why a partial run stopped when a worker failed or was lost (which rank, what error).
    failure: str | None = None
    #: Concept heatmaps and monitors (`heatmaps`, `monitor ... on`), in run order.
    concepts: Sequence[ConceptSection] = ()

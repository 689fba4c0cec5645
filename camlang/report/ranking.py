"""Direction-aware ranking of CAMs per metric, and the one place numbers are formatted.

Ranks use competition ranking ("1224"): tied means share a rank. CAMs whose mean is NaN (or
missing from the table) rank after every finite one and share the last rank. A CAM is "best" when
its rank is 1 and its mean is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from camlang.report.model import EvalResult, MetricInfo, Stat


@dataclass(frozen=True, slots=True)
class Rank:
    """The position of one CAM on one metric."""

    rank: int
    best: bool
    is_nan: bool


def rank_values(values: dict[str, float | None], direction: str) -> dict[str, Rank]:
    """Rank `values` (name -> mean; None or NaN ranks last) for a "minimize" or "maximize" metric."""
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    sign = 1.0 if direction == "minimize" else -1.0
    keys = sorted(finite.values(), key=lambda v: sign * v)
    ranks: dict[str, Rank] = {}
    for name, v in finite.items():
        # competition rank: 1 + number of strictly better values
        rank = 1 + sum(1 for other in keys if sign * other < sign * v)
        ranks[name] = Rank(rank=rank, best=rank == 1, is_nan=False)
    last = len(finite) + 1
    for name in values:
        if name not in ranks:
            ranks[name] = Rank(rank=last, best=False, is_nan=True)
    return ranks


def rank_metric(result: EvalResult, metric: MetricInfo) -> dict[str, Rank]:
    """Rank every CAM of `result` on `metric`; CAMs without an entry rank last as NaN."""
    values: dict[str, float | None] = {}
    for cam in result.cams:
        stat = result.table.get(cam, {}).get(metric.name)
        values[cam] = None if stat is None else stat.mean
    return rank_values(values, metric.direction)


def rank_table(result: EvalResult) -> dict[str, dict[str, Rank]]:
    """`{metric: {cam: Rank}}` for every metric of `result`."""
    return {m.name: rank_metric(result, m) for m in result.metrics}


def fmt_number(x: float | None, digits: int = 4) -> str:
    """Format a float compactly: 4 significant digits, "NaN" for NaN/None, "inf"/"-inf" kept."""
    if x is None or math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def fmt_stat(stat: Stat | None) -> str:
    """Format a table cell: "0.512 ± 0.03", "NaN (k of n)", or "0.5 ± 0.1 (2 NaN of 10)"."""
    if stat is None:
        return "-"
    if stat.is_nan:
        return f"NaN ({stat.nan_count} of {stat.n})"
    text = fmt_number(stat.mean)
    if math.isfinite(stat.std):
        text += f" ± {fmt_number(stat.std, 2)}"
    if stat.nan_count:
        text += f" ({stat.nan_count} NaN of {stat.n})"
    return text


def direction_arrow(direction: str) -> str:
    """ "↓" for minimize, "↑" for maximize."""
    return "↓" if direction == "minimize" else "↑"

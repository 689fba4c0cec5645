"""Bar charts with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` with an explicit `FigureCanvasAgg`, so nothing
touches pyplot's global figure registry or the process-wide backend setting.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from camlang.report.model import EvalResult, Interval, MetricInfo
from camlang.report.ranking import rank_metric, rank_values

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BAR = "#7a9cc6"
BEST = "#d9822b"
NAN_FACE = "#d0d0d0"


def _figure(n_bars: int) -> tuple[Figure, object]:
    # imported here so that `import camlang.report` (e.g. for ansi previews in the REPL) stays fast
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.9 * n_bars + 1.6), 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _bars(
    ax: object,
    names: Sequence[str],
    means: Sequence[float],
    err_low: Sequence[float],
    err_high: Sequence[float],
    best: Sequence[bool],
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    finite = [m for m in means if math.isfinite(m)]
    heights = [m if math.isfinite(m) else 0.0 for m in means]
    colours = [BEST if b else (BAR if math.isfinite(m) else NAN_FACE) for m, b in zip(means, best)]
    xs = list(range(len(names)))
    bars = ax.bar(xs, heights, color=colours, edgecolor="#333333", linewidth=0.6)
    lo = [max(0.0, e) if math.isfinite(e) else 0.0 for e in err_low]
    hi = [max(0.0, e) if math.isfinite(e) else 0.0 for e in err_high]
    if any(lo) or any(hi):
        ax.errorbar(xs, heights, yerr=[lo, hi], fmt="none", ecolor="#333333", capsize=3, linewidth=0.8)
    span = (max(finite) - min(0.0, min(finite))) if finite else 1.0
    for x, m, bar in zip(xs, means, bars):
        if not math.isfinite(m):
            bar.set_hatch("//")
            ax.text(x, 0.02 * (span or 1.0), "NaN", ha="center", va="bottom", fontsize=9, color="#333333")
    ax.set_xticks(xs)
    labels = [n if len(n) <= 28 else n[:27] + "…" for n in names]
    # about 10 characters fit under a bar; rotate rather than let labels overlap
    tilt = len(names) > 4 or max((len(n) for n in labels), default=0) > 10
    ax.set_xticklabels(labels, rotation=25 if tilt else 0, ha="right" if tilt else "center")
    ax.axhline(0.0, color="#333333", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def metric_chart(result: EvalResult, metric: MetricInfo) -> bytes:
    """PNG bytes of every CAM's mean on `metric` with its 95% bootstrap CI, the best bar highlighted."""
    ranks = rank_metric(result, metric)
    stats = [result.table.get(c, {}).get(metric.name) for c in result.cams]
    means = [s.mean if s is not None else math.nan for s in stats]
    low = [s.mean - s.ci_low if s is not None and math.isfinite(s.mean) else math.nan for s in stats]
    high = [s.ci_high - s.mean if s is not None and math.isfinite(s.mean) else math.nan for s in stats]
    fig, ax = _figure(len(result.cams))
    _bars(ax, list(result.cams), means, low, high, [ranks[c].best for c in result.cams])
    better = "lower" if metric.direction == "minimize" else "higher"
    arrow = "↓" if metric.direction == "minimize" else "↑"
    fig.suptitle(
        f"{metric.name}  ({arrow} {better} is better; bars: 95% bootstrap CI of the mean)", fontsize=10
    )
    return _save(fig)


def comparison_chart(objective: MetricInfo, comparison: dict[str, Interval]) -> bytes:
    """PNG bytes of holdout means with confidence-interval error bars (synthesis vs stdlib CAMs)."""
    names = list(comparison)
    means = [comparison[n].mean for n in names]
    low = [comparison[n].mean - comparison[n].ci_low for n in names]
    high = [comparison[n].ci_high - comparison[n].mean for n in names]
    ranks = rank_values({n: comparison[n].mean for n in names}, objective.direction)
    fig, ax = _figure(len(names))
    _bars(ax, names, means, low, high, [ranks[n].best for n in names])
    better = "lower" if objective.direction == "minimize" else "higher"
    fig.suptitle(f"holdout {objective.name} with CI  ({better} is better)", fontsize=11)
    return _save(fig)

"""Direction-aware ranking of CAMs per metric, NaN handling and number formatting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camlang.report.model import EvalResult, MetricInfo, Stat
from camlang.report.ranking import fmt_number, fmt_stat, rank_metric, rank_values


def _eval(values: dict[str, float], direction: str) -> EvalResult:
    metric = MetricInfo("m", direction)  # type: ignore[arg-type]
    table = {cam: {"m": Stat(v, 0.1, 5, 5 if math.isnan(v) else 0)} for cam, v in values.items()}
    return EvalResult("evaluate #1", {}, {}, list(values), [metric], table)


def test_maximize_ranks_highest_first() -> None:
    ranks = rank_values({"a": 0.2, "b": 0.9, "c": 0.5}, "maximize")
    assert [ranks[k].rank for k in "abc"] == [3, 1, 2]
    assert [ranks[k].best for k in "abc"] == [False, True, False]


def test_minimize_ranks_lowest_first() -> None:
    ranks = rank_values({"a": 0.2, "b": 0.9, "c": 0.5}, "minimize")
    assert [ranks[k].rank for k in "abc"] == [1, 3, 2]
    assert ranks["a"].best and not ranks["b"].best


def test_ties_share_a_rank_and_both_are_best() -> None:
    ranks = rank_values({"a": 0.3, "b": 0.3, "c": 0.7}, "minimize")
    assert (ranks["a"].rank, ranks["b"].rank, ranks["c"].rank) == (1, 1, 3)
    assert ranks["a"].best and ranks["b"].best


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_nan_ranks_last_in_both_directions(direction: str) -> None:
    ev = _eval({"nan_cam": math.nan, "a": 0.1, "b": 0.8, "inf_cam": math.inf}, direction)
    ranks = rank_metric(ev, ev.metrics[0])
    assert ranks["nan_cam"].rank == 3 and ranks["nan_cam"].is_nan and not ranks["nan_cam"].best
    assert ranks["inf_cam"].rank == 3 and ranks["inf_cam"].is_nan
    best = "a" if direction == "minimize" else "b"
    assert ranks[best].rank == 1 and ranks[best].best


def test_missing_entry_ranks_last_as_nan() -> None:
    ev = EvalResult(
        "e",
        {},
        {},
        ["a", "b"],
        [MetricInfo("m", "maximize")],
        {"a": {"m": Stat(0.5, 0.0, 3)}},
    )
    ranks = rank_metric(ev, ev.metrics[0])
    assert ranks["a"].rank == 1 and ranks["b"].rank == 2 and ranks["b"].is_nan


def test_all_nan_means_no_best() -> None:
    ranks = rank_values({"a": math.nan, "b": None}, "maximize")
    assert all(r.rank == 1 and r.is_nan and not r.best for r in ranks.values())


def test_bad_direction_is_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        rank_values({"a": 1.0}, "biggest")
    with pytest.raises(ValueError, match="direction"):
        MetricInfo("m", "up")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.one_of(st.floats(-10, 10), st.just(math.nan)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["minimize", "maximize"]),
)
def test_rank_is_one_plus_number_strictly_better(values: dict[str, float], direction: str) -> None:
    ranks = rank_values(dict(values), direction)
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    for name, v in values.items():
        if math.isnan(v):
            assert ranks[name].rank == len(finite) + 1
            continue
        better = [o for o in finite.values() if (o < v if direction == "minimize" else o > v)]
        assert ranks[name].rank == 1 + len(better)
        assert ranks[name].best == (not better)


def test_formatting() -> None:
    assert fmt_stat(Stat(math.nan, math.nan, 10, 10)) == "NaN (10 of 10)"
    assert fmt_stat(Stat(math.nan, math.nan, 10, 3)) == "NaN (3 of 10)"
    assert fmt_stat(Stat(0.51234, 0.0321, 10)) == "0.5123 ± 0.032"
    assert fmt_stat(Stat(0.5, 0.1, 10, 2)) == "0.5 ± 0.1 (2 NaN of 10)"
    assert fmt_stat(Stat(0.5, math.nan, 1)) == "0.5"
    assert fmt_stat(None) == "-"
    assert fmt_number(None) == "NaN" and fmt_number(-math.inf) == "-inf"

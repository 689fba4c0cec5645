"""report.json: strictly valid JSON, the documented keys, NaN as null plus nan_count."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.report import SCHEMA_VERSION, validate_report_dict, write_report
from camlang.report.model import Stat
from camlang.report.sample import sample_report
from camlang.report.schema import dumps_report, jsonable, report_to_dict


def _strict_load(text: str) -> Any:
    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token} in report.json")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    paths = write_report(out, sample_report(), grid_images=3)
    return out, _strict_load(paths.json.read_text(encoding="utf-8"))


def test_round_trip_is_strict_json_and_validates(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    validate_report_dict(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    for key in ("camlang_version", "source_file", "created", "seed", "device", "partial", "warnings"):
        assert key in doc
    assert doc["partial"] is False
    assert doc["summary"]["checks"] == {"holds": 1, "violated": 1, "unknown": 1}


def test_nan_mean_is_null_with_nan_count(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    cell = doc["evaluations"][0]["table"]["eigencam"]["pointing_game"]
    assert cell["mean"] is None and cell["std"] is None
    assert cell["nan_count"] == cell["n"] == 4
    assert cell["rank"] == 3 and cell["best"] is False
    partial_nan = doc["evaluations"][0]["table"]["eigencam"]["deletion_auc"]
    assert partial_nan["mean"] == pytest.approx(0.35) and partial_nan["nan_count"] == 1


def test_ranks_and_ranking_order_follow_direction(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    ev = doc["evaluations"][0]
    assert ev["ranking"]["pointing_game"] == ["gradcam", "gradcam++", "eigencam"]
    assert ev["ranking"]["deletion_auc"][-1] == "eigencam"  # minimize: 0.35 is worst
    assert ev["table"]["gradcam"]["deletion_auc"]["best"] and ev["table"]["gradcam++"]["deletion_auc"]["best"]
    assert {m["name"]: m["direction"] for m in ev["metrics"]}["deletion_auc"] == "minimize"


def test_image_paths_are_relative_and_exist(written: tuple[Path, dict[str, Any]]) -> None:
    out, doc = written
    ev = doc["evaluations"][0]
    rels = [ev["images"]["grid"], *ev["images"]["charts"].values()]
    rels += [doc["syntheses"][0]["images"]["grid"], doc["syntheses"][0]["images"]["chart"]]
    assert doc["evaluations"][1]["images"]["grid"] is None  # no visuals given
    for rel in rels:
        assert not Path(rel).is_absolute()
        assert (out / rel).is_file()


def test_synthesis_and_checks_sections(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    sy = doc["syntheses"][0]
    assert [c["rank"] for c in sy["candidates"]] == [1, 2, 3]
    assert sy["candidates"][2]["holdout"] == {"mean": None, "ci_low": None, "ci_high": None}
    assert sy["counts"]["distinct_after"] == {"syntactic": 812, "semantic": 301, "observational": 96}
    assert sy["comparison"]["relu(mean_hw(G)) * A"]["best"] is True
    violated = [c for c in doc["checks"] if c["status"] == "violated"][0]
    assert violated["counterexample"] == [[0.1, 0.25, -0.3], [0.4, 0.5, 0.6]]
    assert violated["replay"]["confirmed"] is True


def test_synthesis_time_split_planned_and_spent(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    sy = doc["syntheses"][0]
    t = sy["time"]
    assert t["limit"] == 20.0 and "35%" in t["rule"]
    assert t["planned"] == {"search": 11.0, "tuning": 2.0, "comparison": 7.0}
    assert t["spent"] == {"search": 2.1, "tuning": 0.3, "comparison": 1.1}
    assert sum(t["spent"].values()) == pytest.approx(sy["counts"]["seconds"])
    bad = json.loads(json.dumps(doc))
    del bad["syntheses"][0]["time"]["spent"]
    with pytest.raises(CamlangError, match=r"syntheses\[0\]\.time: missing key 'spent'"):
        validate_report_dict(bad)
    bad["syntheses"][0]["time"] = None  # a synthesis whose time was not measured
    validate_report_dict(bad)
    del bad["syntheses"][0]["time"]  # reports written before the key existed stay readable
    validate_report_dict(bad)


def test_a_synthesis_without_time_limit_has_no_plan(tmp_path: Path) -> None:
    from dataclasses import replace

    from camlang.report import SynthTiming

    report = sample_report()
    sy = report.syntheses[0]
    assert sy.timing is not None
    unlimited = SynthTiming(None, sy.timing.rule, None, sy.timing.spent)
    report = replace(report, syntheses=[replace(sy, timing=unlimited)])
    paths = write_report(tmp_path, report, grid_images=0)
    t = json.loads(paths.json.read_text())["syntheses"][0]["time"]
    assert t["limit"] is None and t["planned"] is None and t["spent"]["search"] == 2.1
    html = paths.html.read_text()
    assert (
        "no time limit" in html
        and "<tr><th>search</th><td class='num'>-</td><td class='num'>2.10</td>" in html
    )
    assert unlimited.describe() == "no time limit: search 2.1 s, tuning 0.3 s, holdout comparison 1.1 s"


def test_partial_flag_is_written(tmp_path: Path) -> None:
    doc = report_to_dict(sample_report(partial=True))
    assert doc["partial"] is True and doc["syntheses"][0]["partial"] is True


def test_jsonable_converts_tensors_arrays_and_non_finite() -> None:
    value = {
        "t": torch.tensor([1.0, math.nan]),
        "a": np.array([[1, 2]]),
        "f": np.float32(math.inf),
        "p": Path("x/y"),
        "tup": (1, 2.5),
        1: True,
    }
    doc = jsonable(value)
    assert doc == {"t": [1.0, None], "a": [[1, 2]], "f": None, "p": "x/y", "tup": [1, 2.5], "1": True}
    assert "NaN" not in dumps_report(doc)


def test_dumps_rejects_raw_nan() -> None:
    with pytest.raises(ValueError):
        dumps_report({"x": math.nan})


def test_validator_reports_missing_keys_and_bad_version(written: tuple[Path, dict[str, Any]]) -> None:
    _, doc = written
    broken = json.loads(json.dumps(doc))
    del broken["evaluations"][0]["table"]["gradcam"]["deletion_auc"]["nan_count"]
    broken["checks"][0]["status"] = "maybe"
    with pytest.raises(CamlangError) as err:
        validate_report_dict(broken, "old.json")
    assert (
        "nan_count" in err.value.message and "maybe" in err.value.message and "old.json" in err.value.message
    )
    with pytest.raises(CamlangError, match="schema_version"):
        validate_report_dict({**doc, "schema_version": 999})
    with pytest.raises(CamlangError, match="not a camlang report"):
        validate_report_dict([1, 2])


def test_stat_nan_property() -> None:
    assert Stat(math.nan, 0.0, 3, 3).is_nan and Stat(math.inf, 0.0, 3).is_nan and not Stat(0.0, 0.0, 3).is_nan

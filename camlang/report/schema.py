"""report.json: the stable, documented form of a `RunReport` (docs/report_schema.md).

`report_to_dict` builds plain JSON data; `dumps_report` serialises it with `allow_nan=False`, so the
file is strictly valid JSON. Every non-finite float becomes `null`; metric cells keep `n` and
`nan_count` next to it so a reader can tell "all NaN" from "missing". `validate_report_dict`
checks a loaded document against the schema (used by tests and by tools reading old reports).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np
import torch

from camlang.errors import CamlangError
from camlang.report.model import (
    CheckResult,
    ConceptSection,
    EvalResult,
    MetricInfo,
    PhaseSeconds,
    RunReport,
    SynthResult,
    SynthTiming,
)
from camlang.report.ranking import rank_table, rank_values

SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
    """Convert `value` to JSON data: NaN/inf -> None, tensors/arrays -> lists, tuples -> lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, torch.Tensor):
        return jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _metric(m: MetricInfo) -> dict[str, Any]:
    out = {"name": m.name, "direction": m.direction, "description": m.description}
    return out | ({"settings": dict(m.settings)} if m.settings else {})


def _evaluation(ev: EvalResult, images: Mapping[str, Any]) -> dict[str, Any]:
    ranks = rank_table(ev)
    table: dict[str, dict[str, Any]] = {}
    for cam in ev.cams:
        row: dict[str, Any] = {}
        for m in ev.metrics:
            stat = ev.table.get(cam, {}).get(m.name)
            if stat is None:
                continue
            r = ranks[m.name][cam]
            row[m.name] = {
                "mean": jsonable(stat.mean),
                "std": jsonable(stat.std),
                "ci_low": jsonable(stat.ci_low),
                "ci_high": jsonable(stat.ci_high),
                "n": int(stat.n),
                "nan_count": int(stat.nan_count),
                "rank": r.rank,
                "best": r.best,
            }
        table[cam] = row
    # sorted() is stable, so tied CAMs keep their declaration order
    ranking = {name: sorted(ev.cams, key=lambda c: ranks[name][c].rank) for name in ranks}  # noqa: B023
    return {
        "name": ev.name,
        "model": jsonable(ev.model),
        "data": jsonable(ev.data),
        "cams": list(ev.cams),
        "definitions": {cam: ev.definitions[cam] for cam in ev.cams if cam in ev.definitions},
        "metrics": [_metric(m) for m in ev.metrics],
        "table": table,
        "ranking": ranking,
        "images": jsonable(images),
    }


def _synthesis(sy: SynthResult, images: Mapping[str, Any]) -> dict[str, Any]:
    comp_ranks = rank_values({k: v.mean for k, v in sy.comparison.items()}, sy.objective.direction)
    c = sy.counts
    return {
        "name": sy.name,
        "grammar": sy.grammar,
        "objective": {"name": sy.objective.name, "direction": sy.objective.direction},
        "partial": bool(sy.partial),
        "candidates": [
            {
                "rank": i + 1,
                "expression": cand.expression,
                "size": int(cand.size),
                "train_score": jsonable(cand.train_score),
                "holdout": {
                    "mean": jsonable(cand.holdout_mean),
                    "ci_low": jsonable(cand.ci_low),
                    "ci_high": jsonable(cand.ci_high),
                },
                "equivalence_note": cand.equivalence_note,
            }
            for i, cand in enumerate(sy.candidates)
        ],
        "counts": {
            "enumerated": int(c.enumerated),
            "distinct_after": {str(k): int(v) for k, v in c.distinct_after.items()},
            "fully_evaluated": int(c.fully_evaluated),
            "forward_passes": int(c.forward_passes),
            "seconds": jsonable(c.seconds),
            "exhaustive_forward_passes": None
            if c.exhaustive_forward_passes is None
            else int(c.exhaustive_forward_passes),
        },
        "comparison": {
            name: {
                "mean": jsonable(iv.mean),
                "ci_low": jsonable(iv.ci_low),
                "ci_high": jsonable(iv.ci_high),
                "rank": comp_ranks[name].rank,
                "best": comp_ranks[name].best,
            }
            for name, iv in sy.comparison.items()
        },
        "verdict": sy.verdict,
        "time": None if sy.timing is None else _timing(sy.timing),
        "images": jsonable(images),
    }


def _phases(p: PhaseSeconds) -> dict[str, Any]:
    return {"search": jsonable(p.search), "tuning": jsonable(p.tuning), "comparison": jsonable(p.comparison)}


def _timing(t: SynthTiming) -> dict[str, Any]:
    return {
        "limit": jsonable(t.limit),
        "rule": t.rule,
        "planned": None if t.planned is None else _phases(t.planned),
        "spent": _phases(t.spent),
    }


def _check(ch: CheckResult) -> dict[str, Any]:
    return {
        "property": ch.property,
        "kind": ch.kind,
        "status": ch.status,
        "backend": ch.backend,
        "seconds": jsonable(ch.seconds),
        "reason": ch.reason,
        "decided_by_bounds": bool(ch.decided_by_bounds),
        "counterexample": jsonable(ch.counterexample),
        "replay": jsonable(ch.replay),
    }


def _concept(sec: ConceptSection) -> dict[str, Any]:
    return {**jsonable(sec.data), "kind": sec.kind, "title": sec.title}


def report_to_dict(
    report: RunReport,
    eval_images: Sequence[Mapping[str, Any]] | None = None,
    synth_images: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report.json document for `report`; `*_images` give, per section, relative PNG paths."""
    ev_imgs = list(eval_images) if eval_images is not None else [{} for _ in report.evaluations]
    sy_imgs = list(synth_images) if synth_images is not None else [{} for _ in report.syntheses]
    statuses = {s: sum(1 for ch in report.checks if ch.status == s) for s in ("holds", "violated", "unknown")}
    return {
        "schema_version": SCHEMA_VERSION,
        "camlang_version": report.camlang_version,
        "source_file": report.source_file,
        "created": report.created,
        "seed": None if report.seed is None else int(report.seed),
        "device": report.device,
        "partial": bool(report.partial),
        "world_size": int(report.world_size),
        "failure": report.failure,
        "warnings": [str(w) for w in report.warnings],
        "evaluations": [_evaluation(ev, img) for ev, img in zip(report.evaluations, ev_imgs, strict=True)],
        "syntheses": [_synthesis(sy, img) for sy, img in zip(report.syntheses, sy_imgs, strict=True)],
        "checks": [_check(ch) for ch in report.checks],
        "exports": [{"cam": e.cam, "path": e.path} for e in report.exports],
        "concepts": [_concept(sec) for sec in report.concepts],
        "summary": {
            "evaluations": len(report.evaluations),
            "syntheses": len(report.syntheses),
            "checks": statuses,
            "warnings": len(report.warnings),
        },
    }


def dumps_report(doc: Mapping[str, Any]) -> str:
    """Serialise a report document as strictly valid JSON (NaN/inf are rejected, not written)."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# required keys per object, checked by validate_report_dict
_TOP = (
    "schema_version",
    "camlang_version",
    "source_file",
    "created",
    "seed",
    "device",
    "partial",
    "warnings",
    "evaluations",
    "syntheses",
    "checks",
    "exports",
)
_EVAL = ("name", "model", "data", "cams", "metrics", "table", "ranking", "images")
_CELL = ("mean", "std", "n", "nan_count", "rank", "best")
_SYNTH = ("name", "grammar", "objective", "partial", "candidates", "counts", "comparison", "images")
_CAND = ("rank", "expression", "size", "train_score", "holdout", "equivalence_note")
_COUNTS = (
    "enumerated",
    "distinct_after",
    "fully_evaluated",
    "forward_passes",
    "seconds",
    "exhaustive_forward_passes",
)
_CONCEPT = {"heatmaps": ("kind", "title", "classes"), "monitor": ("kind", "title", "tests")}
_CONCEPT_CLASS = ("class", "correct", "incorrect", "png", "top_cells")
_DETECTOR = ("detector", "auroc", "tpr_at_5_fpr")
_CHECK = (
    "property",
    "kind",
    "status",
    "backend",
    "seconds",
    "reason",
    "decided_by_bounds",
    "counterexample",
    "replay",
)


def _missing(obj: object, keys: Sequence[str], where: str, problems: list[str]) -> None:
    if not isinstance(obj, Mapping):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return
    problems.extend(f"{where}: missing key {k!r}" for k in keys if k not in obj)


def validate_report_dict(doc: object, source: str = "report.json") -> None:
    """Raise `CamlangError` listing every schema problem in a loaded report document."""
    problems: list[str] = []
    _missing(doc, _TOP, "report", problems)
    if problems or not isinstance(doc, Mapping):  # `_missing` reported anything but an object
        raise CamlangError(f"{source} is not a camlang report: " + "; ".join(problems))
    if doc["schema_version"] != SCHEMA_VERSION:
        raise CamlangError(
            f"{source} has schema_version {doc['schema_version']!r}; "
            f"this camlang reads version {SCHEMA_VERSION}",
            hint="re-run `camlang run` to regenerate the report",
        )
    for i, ev in enumerate(doc["evaluations"]):
        _missing(ev, _EVAL, f"evaluations[{i}]", problems)
        for cam, row in (ev.get("table") or {}).items():
            for metric, cell in row.items():
                _missing(cell, _CELL, f"evaluations[{i}].table[{cam!r}][{metric!r}]", problems)
        for j, m in enumerate(ev.get("metrics") or []):
            if not isinstance(m, Mapping) or m.get("direction") not in ("minimize", "maximize"):
                problems.append(f"evaluations[{i}].metrics[{j}]: direction must be 'minimize' or 'maximize'")
    for i, sy in enumerate(doc["syntheses"]):
        _missing(sy, _SYNTH, f"syntheses[{i}]", problems)
        for j, cand in enumerate(sy.get("candidates") or []):
            _missing(cand, _CAND, f"syntheses[{i}].candidates[{j}]", problems)
        _missing(sy.get("counts"), _COUNTS, f"syntheses[{i}].counts", problems)
        if isinstance(sy, Mapping) and sy.get("time") is not None:  # optional: older reports lack it
            _missing(sy["time"], ("limit", "rule", "planned", "spent"), f"syntheses[{i}].time", problems)
    for i, ch in enumerate(doc["checks"]):
        _missing(ch, _CHECK, f"checks[{i}]", problems)
        if isinstance(ch, Mapping) and ch.get("status") not in ("holds", "violated", "unknown"):
            problems.append(
                f"checks[{i}]: status must be holds, violated or unknown, got {ch.get('status')!r}"
            )
    for i, sec in enumerate(doc.get("concepts", [])):  # optional: reports before concepts have none
        _concept_problems(sec, f"concepts[{i}]", problems)
    if problems:
        raise CamlangError(f"{source} does not match report schema {SCHEMA_VERSION}: " + "; ".join(problems))


def _concept_problems(sec: object, where: str, problems: list[str]) -> None:
    kind = sec.get("kind") if isinstance(sec, Mapping) else None
    if kind not in _CONCEPT or not isinstance(sec, Mapping):
        problems.append(f"{where}: kind must be 'heatmaps' or 'monitor', got {kind!r}")
        return
    _missing(sec, _CONCEPT[kind], where, problems)
    for j, cls in enumerate(sec.get("classes") or []):
        _missing(cls, _CONCEPT_CLASS, f"{where}.classes[{j}]", problems)
    for name, test in (sec.get("tests") or {}).items():
        _missing(test, ("roc_png", "detectors"), f"{where}.tests[{name!r}]", problems)
        for j, det in enumerate(test.get("detectors") or [] if isinstance(test, Mapping) else []):
            _missing(det, _DETECTOR, f"{where}.tests[{name!r}].detectors[{j}]", problems)

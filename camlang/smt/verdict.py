"""The result of a property check, and the replay record a counterexample carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Required, TypedDict

__all__ = ["Verdict", "Status", "ReplayRecord"]

Status = Literal["holds", "violated", "unknown"]


class ReplayRecord(TypedDict, total=False):
    """What replaying a candidate in torch float64 showed (`camlang.smt.setup.replay`), with what
    the stages that found or moved it added. A plain dict at run time: reports print its keys."""

    logits: Required[list[float]]
    argmax: Required[int]
    label: Required[int | None]
    in_box: Required[bool]
    unsafe: Required[bool]
    grad_diff: float  # saliency properties: |VG(x') - VG(x)|_inf ...
    delta: float  # ... and the delta it must stay within
    repaired_margin: float  # the pattern LP's margin, when the point was repaired
    found_at_step: int  # the PGD step that found it
    margin_before: float  # `camlang.smt.witness.strengthen_witness`: margins before and after
    margin_f64: float
    margin_f32: float
    boundary_only: bool
    ok: bool  # a real counterexample (set after the checks above: the report keeps this key order)


@dataclass(frozen=True)
class Verdict:
    """What a check found.

    ``status`` is "holds" (proved), "violated" (a counterexample that was replayed in torch float64;
    see ``counterexample`` and ``replay``) or "unknown" (``reason`` says why: a timeout, an
    interruption, a boundary counterexample that could not be repaired). ``backend`` names the
    engine that answered; ``decided_by_bounds`` is True when bound propagation alone settled it.
    ``stats`` is free-form diagnostics (`camlang.smt.stats` names every key).
    """

    property: str
    status: Status
    backend: str
    seconds: float
    reason: str
    decided_by_bounds: bool
    counterexample: list[float] | None
    replay: ReplayRecord | None
    stats: dict[str, Any] = field(default_factory=dict)

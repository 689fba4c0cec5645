"""The result of a property check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Verdict", "Status"]

Status = Literal["holds", "violated", "unknown"]


@dataclass(frozen=True)
class Verdict:
    """What a check found.

    ``status`` is "holds" (proved), "violated" (a counterexample that was replayed in torch float64;
    see ``counterexample`` and ``replay``) or "unknown" (``reason`` says why: a timeout, an
    interruption, a boundary counterexample that could not be repaired). ``backend`` names the
    engine that answered; ``decided_by_bounds`` is True when bound propagation alone settled it.
    """

    property: str
    status: Status
    backend: str
    seconds: float
    reason: str
    decided_by_bounds: bool
    counterexample: list[float] | None
    replay: dict[str, Any] | None
    stats: dict[str, Any] = field(default_factory=dict)

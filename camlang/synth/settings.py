"""The settings of one `synthesize` block as a typed record, with defaults from one table.

`signatures.SYNTH_SETTINGS` is the only place a setting's kinds and default are written; the
checker binds the block against it and `SynthSettings.from_def` fills what the block left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camlang.errors import CamlangError
from camlang.frontend.program import Ref, SynthDef
from camlang.frontend.signatures import REQUIRED, SYNTH_SETTINGS


def _default(key: str) -> Any:
    default = SYNTH_SETTINGS[key].default
    return None if default is REQUIRED else default


@dataclass(frozen=True, slots=True)
class SynthSettings:
    """What a synthesis reads from its block. `time` is in seconds (the checker parsed it)."""

    objective: str
    max_size: int
    top: int
    seed: int
    strategy: str
    probe: int
    race_first: int
    finalists: int
    budget: int | None
    time: float | None

    @classmethod
    def from_def(cls, sdef: SynthDef, run_seed: int) -> SynthSettings:
        """Bind `sdef.settings` over the table's defaults; the block's `seed` wins over the run's."""
        given = sdef.settings

        def get(key: str) -> Any:
            return given[key] if key in given else _default(key)

        objective = given.get("objective")
        if objective is None:
            raise CamlangError(
                f"synthesize `{sdef.name}` is missing the required setting `objective`", span=sdef.span
            )
        budget, seconds = get("budget"), get("time")
        settings = cls(
            objective=objective.name if isinstance(objective, Ref) else str(objective),
            max_size=int(get("max_size")),
            top=int(get("top")),
            seed=int(given["seed"]) if "seed" in given else int(run_seed),
            strategy=str(get("strategy")),
            probe=int(get("probe")),
            race_first=int(get("race_first")),
            finalists=int(get("finalists")),
            budget=None if budget is None else int(budget),
            time=None if seconds is None else float(seconds),
        )
        for key in ("race_first", "finalists", "probe", "top"):
            if getattr(settings, key) < 1:
                raise CamlangError(
                    f"synthesize `{sdef.name}`: `{key}` must be at least 1, got {getattr(settings, key)}",
                    span=sdef.span,
                )
        return settings

"""The actions of a run, by statement: `evaluate` (`camlang.run.evaluate`), `check`
(`camlang.run.check`) and `synthesize` (a step of its own, `RunState.synthesize`, planned by
`camlang.run.plan`). The run driver and the REPL look them up here when they run one."""

from __future__ import annotations

from camlang.run.check import run_check, run_checks
from camlang.run.evaluate import run_evaluate
from camlang.run.plan import syntheses_needed

__all__ = ["run_check", "run_checks", "run_evaluate", "syntheses_needed"]

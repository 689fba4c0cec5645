"""What every phase of one synthesis shares: the resolved declarations, settings, limits,
progress and workers (`SynthJob`), and why the search stopped (`Stop`).

Phase 0 of `synthesize` is `prepare_job`: it resolves the grammar and the objective, adds the
cams the objective reads to the reference cams, and starts the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.frontend.program import GrammarDef, MetricDef, Program, SynthDef
from camlang.metrics._common import CallCounter
from camlang.progress import ProgressDisplay
from camlang.report.model import Direction
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import referenced_cams
from camlang.synth.limits import Limits, PairClock, ProgressLog
from camlang.synth.scoring import Scorer
from camlang.synth.settings import SynthSettings
from camlang.synth.sharding import SynthGroup

T = TypeVar("T")


@dataclass(frozen=True)
class SynthJob:
    """Everything the phases share: resolved declarations, settings, limits and progress."""

    program: Program
    sdef: SynthDef
    settings: SynthSettings
    grammar: GrammarDef
    objective: MetricDef
    sign: float
    refs: dict[str, Node]
    live: LiveModel
    batch_size: int
    counter: CallCounter
    limits: Limits
    clock: PairClock
    log: ProgressLog
    cache_dir: Path | None
    resume: bool
    stdlib: frozenset[str]  # the reference CAMs (the objective's refs may add others)
    group: SynthGroup

    @property
    def name(self) -> str:
        """The synthesis's name (the cam it defines)."""
        return self.sdef.name

    @property
    def direction(self) -> Direction:
        """The objective's direction, as the report spells it (the sign says the same)."""
        return "maximize" if self.sign > 0 else "minimize"

    @property
    def objective_refs(self) -> list[Node]:
        """The cams the objective reads (`ref(gradcam)`), as nodes."""
        return [self.refs[r] for r in referenced_cams([self.objective.node]) if r in self.refs]

    @property
    def timed(self) -> bool:
        """Does a clock decide anything (a `time` limit)? Then rank 0 decides for every rank."""
        return self.limits.seconds is not None

    def score(self, scorer: Scorer, nodes: list[Node], images: list[int]) -> torch.Tensor:
        """`scorer(nodes, images)`, split over the workers' images (the full matrix on every rank)."""
        return self.group.score(scorer, nodes, images, self.counter)

    def agree_timed(self, decision: T) -> T:
        """A decision read off the clock: rank 0's, on every rank (as it is without a time limit)."""
        return self.group.agree(decision) if self.timed else decision

    def interrupted(self, stop: Stop) -> None:
        """Ctrl-C: keep the best so far in one process; end the synthesis on every rank otherwise.

        Each worker gets its own interrupt at its own point of the code, so no common result can
        be made from them: the run's partial report and the score cache keep what finished.
        """
        if self.group.distributed:
            raise KeyboardInterrupt
        stop.set("interrupted")


@dataclass
class Stop:
    """Why the search stopped early (time, budget) and whether the run is partial (interrupted).

    A search cut short by `time` or `budget` still gets its final checks and holdout comparison
    (time reserved them); only an interruption leaves a partial result. Phases set it as they
    go, so it is the one mutable record the driver passes around.
    """

    partial: bool = False
    reason: str | None = None

    def set(self, reason: str) -> None:
        """Record `reason` (the first one wins); an interruption makes the result partial."""
        if self.reason is None:
            self.reason = reason
        if reason == "interrupted":
            self.partial = True


class NoTime(Exception):
    """The time limit leaves no room for a phase's optional work."""


def default_reference_cams(program: Program) -> dict[str, Node]:
    """The cams that came from the stdlib's cams.cam, by name."""
    return {
        n: c.node for n, c in program.cams.items() if c.node is not None and c.origin.endswith("cams.cam")
    }


def prepare_job(
    program: Program,
    sdef: SynthDef,
    live: LiveModel,
    *,
    batch_size: int,
    seed: int,
    cache_dir: Path | None,
    resume: bool,
    progress: ProgressDisplay | None,
    reference_cams: dict[str, Node] | None,
    echo: Callable[[str], None] | None,
    group: SynthGroup,
) -> SynthJob:
    """Resolve `sdef`'s grammar, objective and settings; the clock starts here."""
    settings = SynthSettings.from_def(sdef, seed)
    grammar = program.grammars.get(sdef.grammar)
    if grammar is None:
        raise CamlangError(f"synthesize `{sdef.name}`: unknown grammar `{sdef.grammar}`", span=sdef.span)
    objective = program.metrics.get(settings.objective)
    if objective is None:
        raise CamlangError(
            f"synthesize `{sdef.name}`: unknown objective metric `{settings.objective}`", span=sdef.span
        )
    refs = default_reference_cams(program) if reference_cams is None else dict(reference_cams)
    stdlib = frozenset(refs)
    for r in referenced_cams([objective.node]):
        node = program.cams[r].node if r in program.cams else None
        if r not in refs and node is not None:
            refs[r] = node
    counter = CallCounter()
    return SynthJob(
        program=program,
        sdef=sdef,
        settings=settings,
        grammar=grammar,
        objective=objective,
        sign=1.0 if objective.direction == "maximize" else -1.0,
        refs=refs,
        live=live,
        batch_size=batch_size,
        counter=counter,
        limits=Limits(counter, settings.budget, settings.time),
        clock=PairClock(),
        log=ProgressLog(sdef.name, progress, echo, settings.max_size),
        cache_dir=cache_dir,
        resume=resume,
        stdlib=stdlib,
        group=group,
    )

"""The state of one run: what is loaded and what has been produced, behind a small interface.

Three drivers share it: `camlang run` (`camlang.run.program`), the REPL (`camlang.repl.session`) and
the Python API (`camlang.api.LoadedProgram`).

- `Workspace` loads a program's models and data sets on first use and keeps them. It is the one
  place that turns declarations into live objects for a run (the API uses it alone).
- `RunState` adds what a run produces: synthesized cams, the report built so far, warnings, and
  the run's place in a distributed job (`camlang.distributed.Dist`) and its result cache
  (`camlang.run.cache.RunCache`).

A synthesis is its own step (`RunState.synthesize`), run before the first action that needs its
cam (`camlang.run.plan`); the winners live here, in `RunState.synthesized`, and the checked
`Program` is never written to. Actions (`camlang.run.actions`) read and extend a `RunState` only
through its methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from camlang.concepts.build import ConceptRuntime
from camlang.concepts.report import ConceptReport
from camlang.data import Dataset
from camlang.distributed import Dist
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.frontend.program import Program, Ref
from camlang.progress import make_progress
from camlang.report import CheckResult, EvalResult, RunReport
from camlang.run.cache import RunCache
from camlang.runtime.declaration_loading import LiveModel, load_data, load_model
from camlang.runtime.metric_evaluation import referenced_cams
from camlang.synth import SynthOutcome, default_reference_cams, synthesize

__all__ = ["RunOptions", "RunState", "Unfinished", "Workspace"]

#: The finished part of an action the run stopped in: an evaluate's section, or a check's rows.
Unfinished = EvalResult | list[CheckResult]


@dataclass(frozen=True)
class RunOptions:
    """Settings of one run (from the command line, the REPL or the API)."""

    out_dir: Path
    device: str = "cpu"
    batch_size: int = 32
    seed: int = 0
    resume: bool = False
    grid_images: int = 8


class Workspace:
    """A program's models and data sets, each loaded the first time it is asked for."""

    def __init__(self, program: Program, device: str = "cpu") -> None:
        self.program = program
        self.device = device
        self._models: dict[str, LiveModel] = {}
        self._datasets: dict[str, Dataset] = {}
        #: Notes for the report (a default layer chosen, data set warnings), in order.
        self.warnings: list[str] = []

    @property
    def models(self) -> Mapping[str, LiveModel]:
        """The models loaded so far, by name."""
        return self._models

    @property
    def datasets(self) -> Mapping[str, Dataset]:
        """The data sets loaded so far, by name."""
        return self._datasets

    def data(self, name: str) -> Dataset:
        """The data set `name` (a lazy `camlang.data.Dataset`)."""
        if name not in self._datasets:
            if name not in self.program.datas:
                raise CamlangError(
                    f"unknown data `{name}`", hint=f"declared: {', '.join(self.program.datas) or 'none'}"
                )
            ds = load_data(self.program.datas[name])
            self._datasets[name] = ds
            self.warnings.extend(f"data `{name}`: {w}" for w in ds.warnings)
        return self._datasets[name]

    def model(self, name: str, data_name: str | None = None) -> LiveModel:
        """The live model `name`; `data_name` gives an example image to find a default layer."""
        if name not in self._models:
            if name not in self.program.models:
                raise CamlangError(
                    f"unknown model `{name}`", hint=f"declared: {', '.join(self.program.models) or 'none'}"
                )
            example = self.data(data_name).get([0]).x if data_name is not None else None
            live = load_model(self.program.models[name], self.device, example)
            self._models[name] = live
            if live.layer_chosen_by_default:
                self.warnings.append(
                    f"model `{name}`: no layer named, using the last spatial layer `{live.layer_path}`"
                )
        return self._models[name]


@dataclass
class RunState:
    """What a run has loaded and produced so far (see the module docs)."""

    program: Program
    options: RunOptions
    console: Console
    #: This process's place in the run.
    dist: Dist
    #: The run's per-batch result cache.
    cache: RunCache
    report: RunReport | None = None
    workspace: Workspace | None = None
    #: The winners of the syntheses run so far, by name (the checked program stays as it was).
    synthesized: dict[str, SynthOutcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The finished part of the action that was running when the run stopped (for the report).
    unfinished: Unfinished | None = None
    #: camlang.concepts: the fitted concept sources and monitors and their report, made on first use.
    concepts: tuple[ConceptRuntime, ConceptReport] | None = None
    #: How many check statements this run has started (names their keys in the distributed store).
    check_statements: int = 0
    #: The REPL's convenience: a cam whose synthesis has not run yet runs it when first looked up.
    #: `camlang run` plans every synthesis before the action that needs it (`camlang.run.plan`).
    synthesize_on_demand: bool = False

    def __post_init__(self) -> None:
        if self.workspace is None:
            self.workspace = Workspace(self.program, self.options.device)

    @classmethod
    def one_process(cls, program: Program, options: RunOptions, console: Console, **more: Any) -> RunState:
        """The state of a run on this process alone, with a cache that keeps nothing (the REPL)."""
        dist = Dist.single(options.device)
        return cls(program, options, console, dist, RunCache(None, dist, resume=False), **more)

    # ---- loading
    @property
    def models(self) -> Mapping[str, LiveModel]:
        assert self.workspace is not None
        return self.workspace.models

    @property
    def datasets(self) -> Mapping[str, Dataset]:
        assert self.workspace is not None
        return self.workspace.datasets

    def data(self, name: str) -> Dataset:
        """The data set `name`, loaded on first use."""
        assert self.workspace is not None
        return self.workspace.data(name)

    def model(self, name: str, data_name: str | None = None) -> LiveModel:
        """The model `name`, loaded on first use (on this worker's device)."""
        assert self.workspace is not None
        return self.workspace.model(name, data_name)

    @property
    def is_main(self) -> bool:
        """Does this process print progress and write the report (rank 0)?"""
        return bool(self.dist.is_main)

    # ---- results
    @property
    def warnings(self) -> list[str]:
        """Every warning so far: loading notes first, then the run's own, without repeats."""
        assert self.workspace is not None
        return list(dict.fromkeys(self.workspace.warnings + self.notes))

    def warn(self, text: str) -> None:
        """Add a warning to the report."""
        self.notes.append(text)

    def add(self, **sections: Any) -> None:
        """Append report sections: `add(evaluations=(r,))`, `add(checks=rows)`, ..."""
        assert self.report is not None
        changes: dict[str, Any] = {k: tuple(getattr(self.report, k)) + tuple(v) for k, v in sections.items()}
        self.report = dataclasses.replace(self.report, **changes)

    def update_report(self, **changes: Any) -> None:
        """Replace report fields (`partial`, `warnings`, ...)."""
        assert self.report is not None
        self.report = dataclasses.replace(self.report, **changes)

    # ---- cams
    def cam_node(self, name: str) -> tuple[Node, str]:
        """The IR and source text of a declared or synthesized cam.

        A synthesis must have run first (`synthesize`), except in the REPL
        (`synthesize_on_demand`), where the first look-up runs it.
        """
        cdef = self.program.cams.get(name)
        if cdef is not None and cdef.node is not None:
            return cdef.node, cdef.source_text
        if name in self.synthesized:
            outcome = self.synthesized[name]
            return outcome.node, outcome.source_text
        if name in self.program.synths:
            if not self.synthesize_on_demand:
                raise CamlangError(
                    f"internal error, please report: cam `{name}` is used before its synthesis ran"
                )
            outcome = self.synthesize(name)
            return outcome.node, outcome.source_text
        raise CamlangError(f"unknown cam `{name}`")

    def synthesize(self, name: str) -> SynthOutcome:
        """Run synthesis `name` once (a step of its own); returns its outcome (winner node, text,
        partial flag, ...), which later cam look-ups use.

        With several workers, every rank runs it: candidate scoring is split over the images and
        every decision is taken together, so each rank ends with the same winner, built in its own
        program builder (`camlang.synth.sharding`, docs/scaling.md). Only rank 0 prints its
        progress and adds the synthesis section to the report.
        """
        if name in self.synthesized:
            return self.synthesized[name]
        outcome = self._synthesize(name)
        self.synthesized[name] = outcome
        if outcome.partial:
            self.warn(f"synthesis `{name}` was interrupted: its result is the best found so far")
        return outcome

    def _reference_cams(self, name: str) -> dict[str, Node] | None:
        """The objective's references to cams synthesized earlier (the synthesis reads the
        program's own cams itself); None when it names none."""
        given = self.program.synths[name].settings.get("objective")
        objective = self.program.metrics.get(given.name if isinstance(given, Ref) else str(given))
        if objective is None:
            return None
        refs = {
            r: self.synthesized[r].node for r in referenced_cams([objective.node]) if r in self.synthesized
        }
        return default_reference_cams(self.program) | refs if refs else None

    def _synthesize(self, name: str) -> SynthOutcome:
        sdef = self.program.synths[name]
        settings = sdef.settings
        live = self.model(settings["model"].name, settings["data"].name)
        train = self.data(settings["data"].name)
        holdout = self.data(settings["holdout"].name) if settings.get("holdout") is not None else None
        with make_progress(self.console, enabled=self.is_main) as progress:
            outcome = synthesize(
                self.program,
                sdef,
                live,
                train,
                holdout,
                batch_size=self.options.batch_size,
                seed=self.options.seed,
                cache_dir=self.options.out_dir / "cache",
                resume=self.options.resume,
                progress=progress if self.is_main else None,
                reference_cams=self._reference_cams(name),
                dist=self.dist,
            )
        if self.is_main:
            self.add(syntheses=(outcome.result,))
            damaged = outcome.stats.damaged_terminal_files if outcome.stats is not None else ()
            if damaged:
                self.warn(
                    f"synthesis `{name}`: {len(damaged)} stored terminal file(s) in cache/terminals could "
                    f"not be read ({', '.join(damaged[:3])}{', ...' if len(damaged) > 3 else ''}); "
                    "those images were captured again"
                )
        return outcome

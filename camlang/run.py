"""`camlang run FILE`: execute a program's actions in order and write the report.

Synthesis jobs run when an action first needs their result (and any unused ones at the end).
The report (report.json, report.html, PNGs) is rewritten after every action, so Ctrl-C keeps
everything that finished; the interrupted run is marked partial. Relative export paths are
written inside the output folder.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from camlang import __version__
from camlang import syntax as s
from camlang.check import check_file
from camlang.diagnostics import CompileError
from camlang.errors import CamlangError
from camlang.ir import Node
from camlang.program import CamDef, Program
from camlang.report import CheckResult, Export, RunReport, print_summary, write_report
from camlang.runtime import LiveModel, load_data, load_model


@dataclass
class RunOptions:
    """Settings of one run (from the command line)."""

    out_dir: Path
    device: str = "cpu"
    batch_size: int = 32
    seed: int = 0
    resume: bool = False
    grid_images: int = 8


@dataclass
class RunState:
    """What a run has loaded and produced so far."""

    program: Program
    options: RunOptions
    console: Console
    models: dict[str, LiveModel] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    synthesized: dict[str, Any] = field(default_factory=dict)
    report: RunReport | None = None
    warnings: list[str] = field(default_factory=list)
    concepts: Any = None  # camlang.concepts.build.ConceptRuntime and its report, made on first use

    def data(self, name: str) -> Any:
        if name not in self.datasets:
            ds = load_data(self.program.datas[name])
            self.datasets[name] = ds
            self.warnings.extend(f"data `{name}`: {w}" for w in getattr(ds, "warnings", []))
        return self.datasets[name]

    def model(self, name: str, data_name: str | None = None) -> LiveModel:
        if name not in self.models:
            example = None
            if data_name is not None:
                example = self.data(data_name).get([0]).x
            live = load_model(self.program.models[name], self.options.device, example)
            self.models[name] = live
            if live.layer_chosen_by_default:
                self.warnings.append(f"model `{name}`: no layer named, using the last spatial layer "
                                     f"`{live.layer_path}`")  # fmt: skip
        return self.models[name]

    def cam_node(self, name: str) -> tuple[Node, str]:
        """The IR and source text of a cam, running its synthesis first if needed."""
        cdef = self.program.cams.get(name)
        if cdef is not None and cdef.node is not None:
            return cdef.node, cdef.source_text
        if name in self.program.synths:
            outcome = self.run_synthesis(name)
            return outcome.node, outcome.source_text
        raise CamlangError(f"unknown cam `{name}`")

    def run_synthesis(self, name: str) -> Any:
        if name in self.synthesized:
            return self.synthesized[name]
        from camlang.synth import synthesize

        sdef = self.program.synths[name]
        settings = sdef.settings
        live = self.model(settings["model"].name, settings["data"].name)
        train = self.data(settings["data"].name)
        holdout = self.data(settings["holdout"].name) if settings.get("holdout") is not None else None
        from camlang.progress import make_progress

        with make_progress(self.console) as progress:
            outcome = synthesize(self.program, sdef, live, train, holdout, batch_size=self.options.batch_size,
                                 seed=self.options.seed, cache_dir=self.options.out_dir / "cache",
                                 resume=self.options.resume, progress=progress)  # fmt: skip
        self.synthesized[name] = outcome
        self.program.cams[name] = CamDef(name, outcome.node, outcome.source_text, "synthesized", sdef.span, name)
        assert self.report is not None
        self.report = _replace(self.report, syntheses=tuple(self.report.syntheses) + (outcome.result,))
        if outcome.partial:
            self.warnings.append(f"synthesis `{name}` was interrupted: its result is the best found so far")
        return outcome


def _replace(report: RunReport, **changes: Any) -> RunReport:
    import dataclasses

    return dataclasses.replace(report, **changes)


def run_program(program: Program, options: RunOptions, console: Console | None = None) -> tuple[RunReport, int]:
    """Run every action; returns the final report and the exit code (0, or 130 when interrupted)."""
    console = console or Console(stderr=False)
    torch.manual_seed(options.seed)
    state = RunState(program, options, console)
    state.report = RunReport(__version__, program.main.name, _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                             options.seed, options.device)  # fmt: skip
    status = 0
    try:
        for action in program.actions:
            _run_action(state, action)
            _write(state)
        for name in program.synths:
            state.run_synthesis(name)
    except KeyboardInterrupt:
        state.report = _replace(state.report, partial=True)
        state.warnings.append("interrupted by the user (Ctrl-C): the report holds what finished")
        status = 130
    _write(state)
    assert state.report is not None
    return state.report, status


def _write(state: RunState) -> None:
    assert state.report is not None
    state.report = _replace(state.report, warnings=tuple(dict.fromkeys(state.warnings)))
    write_report(state.options.out_dir, state.report, state.options.grid_images)


def _run_action(state: RunState, action: s.Action) -> None:
    try:
        _dispatch(state, action)
    except CamlangError as err:
        if err.span is None:  # point at the action that failed
            err.span = action.span
        raise


def _dispatch(state: RunState, action: s.Action) -> None:
    from camlang.actions import run_check, run_evaluate

    assert state.report is not None
    match action:
        case s.Evaluate():
            result = run_evaluate(state, action)
            state.report = _replace(state.report, evaluations=tuple(state.report.evaluations) + (result,))
        case s.Check():
            results: list[CheckResult] = [run_check(state, p.name) for p in action.properties]
            state.report = _replace(state.report, checks=tuple(state.report.checks) + tuple(results))
        case s.Heatmaps() | s.Watch():
            from camlang.concepts.run_hook import run_concept_action

            run_concept_action(state, action)
        case s.Export():
            from camlang.export import write_module

            node, text = state.cam_node(action.cam.name)
            target = Path(action.path.value)
            if not target.is_absolute():
                target = state.options.out_dir / target
            path = write_module(action.cam.name, node, text, target)
            state.console.print(f"exported [bold]{action.cam.name}[/] to {path}")
            state.report = _replace(state.report, exports=tuple(state.report.exports) + (Export(action.cam.name, str(path)),))


def run_file(file: str | Path, *, out_dir: str | Path | None = None, device: str = "cpu", batch_size: int = 32,
             seed: int = 0, resume: bool = False) -> int:  # fmt: skip
    """The `camlang run` command: check, run, write the report, print the summary."""
    program = check_file(file)
    if program.has_errors:
        raise CompileError(program.diagnostics)
    for d in program.diagnostics:
        from camlang.diagnostics import render

        print(render(d), file=sys.stderr)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CamlangError(f"device {device} is not available on this machine", hint="use --device cpu")
    if batch_size <= 0:
        raise CamlangError(f"--batch-size must be positive, got {batch_size}")
    out = Path(out_dir) if out_dir is not None else Path("camlang-out") / Path(file).stem
    options = RunOptions(out, device, batch_size, seed, resume)
    console = Console()
    started = time.perf_counter()
    report, status = run_program(program, options, console)
    print_summary(report, console)
    console.print(f"report: {out / 'report.html'} ({time.perf_counter() - started:.1f} s)")
    return status

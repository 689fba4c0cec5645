"""The steps of a run, in program order: each synthesis as a step of its own, before the first
action that needs its cam, then the program's actions; syntheses no action uses run at the end.

An action never starts a synthesis itself, so its progress, its cache section and the part of it
a Ctrl-C keeps are its own (`camlang.run.program` runs the steps, the REPL runs
`syntheses_needed` before an action typed at the prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from camlang.frontend import syntax as s
from camlang.frontend.program import Program, Ref
from camlang.runtime.metric_evaluation import referenced_cams

__all__ = ["Synthesize", "Step", "plan_steps", "syntheses_needed"]


@dataclass(frozen=True)
class Synthesize:
    """Run synthesis `name` (its winner is then a cam of the run)."""

    name: str


Step = Synthesize | s.Action


def plan_steps(program: Program) -> Iterator[Step]:
    """Every step of a run of `program`, in the order they run (see the module docs)."""
    done: set[str] = set()
    for action in program.actions:
        for name in syntheses_needed(program, action):
            if name not in done:
                done.add(name)
                yield Synthesize(name)
        yield action
    for name in program.synths:
        if name not in done:
            yield Synthesize(name)


def syntheses_needed(program: Program, action: s.Action) -> list[str]:
    """The syntheses whose cams `action` reads, in the order the action first names them."""
    names: list[str] = []
    match action:
        case s.Evaluate():
            names = [c.name for c in action.cams]
            metrics = [program.metrics[m.name].node for m in action.metrics if m.name in program.metrics]
            names += sorted(referenced_cams(metrics))
        case s.Check():
            for prop in action.properties:
                pdef = program.properties.get(prop.name)
                if pdef is not None:
                    names += [v.name for v in pdef.args.values() if isinstance(v, Ref)]
        case s.Export():
            names = [action.cam.name]
    return [n for n in dict.fromkeys(names) if n in program.synths and not _declared_cam(program, n)]


def _declared_cam(program: Program, name: str) -> bool:
    cdef = program.cams.get(name)
    return cdef is not None and cdef.node is not None

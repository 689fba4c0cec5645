"""The layer order of `camlang/`, enforced.

Every import is counted: module level, inside functions and under `TYPE_CHECKING`. A package may
import itself and the packages on lower floors, never a package on its own floor or above; and
no set of modules may import each other in a cycle. `docs/ARCHITECTURE.md` draws these floors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "camlang"

# Bottom to top. The root package `camlang` (the lazy facade) sits above everything.
FLOORS: list[set[str]] = [
    {"core", "errors", "paths", "progress"},
    {"frontend"},
    {"passes"},
    {"lsp"},  # the language server: the front end only, never the runtime (no torch)
    {"backends"},
    {"data", "methods", "metrics", "report"},
    {"distributed", "models", "notebook"},
    {"smt"},
    {"concepts"},
    {"runtime"},
    {"compat", "synth"},
    {"run"},
    {"api"},
    {"repl"},
    {"cli"},
    {"__main__"},
]


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imported(name: str, path: Path, mods: dict[str, Path]) -> Iterator[str]:
    """The camlang modules that `name` imports, resolved to the modules that exist."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[: len(package) - node.level + 1]
                base = ".".join(stem + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target.startswith("camlang") and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: set(_imported(name, path, mods)) for name, path in mods.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _floor(package: str) -> int:
    if package == "":
        return len(FLOORS)
    for i, floor in enumerate(FLOORS):
        if package in floor:
            return i
    raise AssertionError(f"package camlang.{package} has no floor in FLOORS: add it")


def test_every_package_has_a_floor() -> None:
    for module in _graph():
        _floor(_package(module))


def test_packages_import_only_downward() -> None:
    wrong = []
    for module, targets in _graph().items():
        here = _package(module)
        for target in targets:
            there = _package(target)
            if there != here and _floor(there) >= _floor(here):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that do not go down a floor:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

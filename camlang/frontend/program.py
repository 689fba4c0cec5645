"""The checked program: resolved declarations, lowered expressions and actions.

`camlang.frontend.check` builds a `Program` from parsed modules; drivers (run, synth, repl, cli) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.ir import Builder, Node
from camlang.frontend.layer_layout import LayerLayout
from camlang.frontend.source import NO_SPAN, SourceFile, Span


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another declaration inside literal arguments (e.g. `bandit`)."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class IndexRef:
    """`test[3]`: one image of a data declaration."""

    name: str
    index: int
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class ModelDef:
    """`model NAME = SOURCE(args) at "layer"`."""

    name: str
    kind: str
    args: dict[str, Any]
    layer: str | None
    base_dir: Path
    span: Span = field(default=NO_SPAN, compare=False)
    more_layers: tuple[str, ...] = ()  # further target layers; their CAMs are fused with `fuse`
    layout: LayerLayout | None = None  # from `tokens(...)`, `channels_last()`, `channels_first()`
    fuse: str = "mean"


@dataclass(frozen=True, slots=True)
class DataDef:
    """`data NAME = SOURCE(args)`."""

    name: str
    kind: str
    args: dict[str, Any]
    base_dir: Path
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class CamDef:
    """A CAM: an IR expression over the layer terminals, or a synthesized one (node set later)."""

    name: str
    node: Node | None
    source_text: str
    origin: str
    span: Span = field(default=NO_SPAN, compare=False)
    synthesized_by: str | None = None


@dataclass(frozen=True, slots=True)
class MetricDef:
    """`metric NAME = minimize|maximize EXPR`: a per-image scalar averaged over the data."""

    name: str
    direction: str
    node: Node
    source_text: str
    origin: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class GrammarDef:
    """A search space: nonterminal -> alternatives (AST expressions; the first lhs is the start)."""

    name: str
    start: str
    productions: dict[str, tuple[s.Expr, ...]]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class SynthDef:
    """`synthesize NAME from GRAMMAR { settings }` with settings resolved to literals/refs."""

    name: str
    grammar: str
    settings: dict[str, Any]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class PropertyDef:
    """`property NAME = claim(args)`."""

    name: str
    kind: str
    args: dict[str, Any]
    base_dir: Path
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class ConceptSetDef:
    """`concepts NAME = source(args)`."""

    name: str
    kind: str
    args: dict[str, Any]
    base_dir: Path
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class MonitorDef:
    """`monitor NAME = concept_monitor(args)`."""

    name: str
    kind: str
    args: dict[str, Any]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass
class Program:
    """Everything a driver needs, after names are resolved and types inferred."""

    main: SourceFile
    builder: Builder = field(default_factory=Builder)
    models: dict[str, ModelDef] = field(default_factory=dict)
    datas: dict[str, DataDef] = field(default_factory=dict)
    cams: dict[str, CamDef] = field(default_factory=dict)
    metrics: dict[str, MetricDef] = field(default_factory=dict)
    grammars: dict[str, GrammarDef] = field(default_factory=dict)
    synths: dict[str, SynthDef] = field(default_factory=dict)
    properties: dict[str, PropertyDef] = field(default_factory=dict)
    concept_sets: dict[str, ConceptSetDef] = field(default_factory=dict)
    monitors: dict[str, MonitorDef] = field(default_factory=dict)
    actions: list[s.Action] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def kind_of(self, name: str) -> str | None:
        """Which kind of declaration `name` is ("model", "cam", ...), or None."""
        for kind, table in self.tables().items():
            if name in table:
                return kind
        return None

    def tables(self) -> dict[str, dict[str, Any]]:
        return {
            "model": self.models,
            "data": self.datas,
            "cam": self.cams,
            "metric": self.metrics,
            "grammar": self.grammars,
            "synthesize": self.synths,
            "property": self.properties,
            "concepts": self.concept_sets,
            "monitor": self.monitors,
        }

    def summary(self) -> dict[str, list[str]]:
        """Declared names per kind, for `camlang check` and the REPL."""
        return {kind: sorted(table) for kind, table in self.tables().items() if table}

"""Bottom-up enumeration of a grammar's terms, by size, in the interning IR builder.

**Size** is the number of grammar productions a derivation uses: every expansion of a
nonterminal counts 1, whatever the length of the alternative's text. A production is a
building block (Grad-CAM++'s channel weight is one block of `gradient_weights`), so `max_size`
bounds how many blocks are combined, not how long the expression prints.

Each alternative is compiled once into a template: its hole-free subterms (terminals,
constants, whole blocks) are built once, and a new term is `template(children)`, built with
`Builder.make` (so the op table's type rules run as terms are made and shared subterms are one
node). Terms of size `k` only combine children of smaller sizes, so a size level depends only
on earlier levels. Pruning is delegated to an `admit(nonterminal, node)` callback: an observer
that keeps a term only when it is new (see `camlang.synth.observe`).

**Layers.** `e @ "layer2"` in an alternative compiles `e` with its untagged layer terminals read
at that layer; a nonterminal under a tag becomes a *specialized* nonterminal (`m@"layer2"`),
compiled once from `m`'s alternatives with the tag pushed down, so the banks hold only IR nodes
and every hole-free part (`Fixed`) already names the layer it reads. A layer hole
(`l -> "layer2" | "layer3"`, used as `m@l`) expands its alternative once per layer name; each
choice costs one production, like a numeric-constant hole. The chosen layer shows in the
winner's text (`A@"layer2"`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from camlang.errors import CamlangError
from camlang.frontend import syntax as s
from camlang.frontend.check.binding import BAD, STATIC_WORDS, bind_call, static_value
from camlang.frontend.ir import Builder, Node, retag
from camlang.frontend.layer_holes import expand_layer_holes, layer_nonterminals
from camlang.frontend.op_table import BINARY_SYMBOLS, COMMUTATIVE, FUNCTIONS, TERMINALS
from camlang.frontend.pretty import pretty_expr
from camlang.frontend.program import GrammarDef, Program
from camlang.frontend.value_types import AxisError


@dataclass(frozen=True, slots=True)
class Hole:
    """The `index`-th nonterminal occurrence of an alternative."""

    index: int
    nonterminal: str


@dataclass(frozen=True, slots=True)
class Fixed:
    """A hole-free subterm, built once."""

    node: Node


@dataclass(frozen=True, slots=True)
class Apply:
    """An op applied to sub-templates (at least one of which has a hole)."""

    op: str
    args: tuple[Template, ...]
    attrs: tuple[tuple[str, Any], ...]


Template = Hole | Fixed | Apply


@dataclass(frozen=True)
class Alternative:
    """One compiled right-hand side: its template and the nonterminals of its holes, in order."""

    nonterminal: str
    text: str
    template: Template
    holes: tuple[str, ...]
    #: productions spent besides this one and its holes' (one per layer hole it chose)
    extra: int = 0

    @property
    def symmetric(self) -> bool:
        """`t * t`-like: a commutative op of two holes of one nonterminal (one order suffices)."""
        t = self.template
        return (
            isinstance(t, Apply)
            and t.op in COMMUTATIVE
            and len(t.args) == 2
            and all(isinstance(a, Hole) for a in t.args)
            and len(self.holes) == 2
            and self.holes[0] == self.holes[1]
        )


def instantiate(b: Builder, t: Template, children: tuple[Node, ...]) -> Node:
    """Build the node for a template with its holes filled (AxisError when ill-typed)."""
    if isinstance(t, Fixed):
        return t.node
    if isinstance(t, Hole):
        return children[t.index]
    return b.make(t.op, tuple(instantiate(b, a, children) for a in t.args), dict(t.attrs))


class _Compiler:
    """Lowers a grammar alternative (AST) to a template."""

    def __init__(
        self, program: Program, grammar: GrammarDef, tag: str = "", plain: frozenset[str] = frozenset()
    ) -> None:
        self.b = program.builder
        self.program = program
        self.grammar = grammar
        self.holes: list[str] = []
        self.tag = tag  # the layer untagged terminals are read at ("" = the target layer)
        self.plain = plain  # nonterminals a tag does not change (numeric constants)
        self.requests: set[tuple[str, str]] = set()  # specialized nonterminals this one needs

    def compile(self, expr: s.Expr) -> Template:
        t = self._go(expr)
        return t

    def _fixed_or_apply(
        self, op: str, args: tuple[Template, ...], attrs: dict[str, Any], expr: s.Expr
    ) -> Template:
        if all(isinstance(a, Fixed) for a in args):
            nodes = tuple(a.node for a in args if isinstance(a, Fixed))
            try:
                return Fixed(self.b.make(op, nodes, attrs))
            except AxisError as err:
                raise self._error(f"{op} {err.message}", expr) from None
        return Apply(op, args, tuple(sorted(attrs.items())))

    def _error(self, message: str, expr: s.Expr) -> CamlangError:
        return CamlangError(
            f"grammar `{self.grammar.name}`: {message} in `{pretty_expr(expr)}`",
            hint="fix this alternative of the grammar",
            code="E401",
            span=getattr(expr, "span", None),
        )

    def _go(self, expr: s.Expr) -> Template:
        match expr:
            case s.Number(value=v):
                return Fixed(self.b.const(v))
            case s.Neg(operand=s.Number(value=v)):
                return Fixed(self.b.const(-v))
            case s.Neg(operand=operand):
                return self._fixed_or_apply("neg", (self._go(operand),), {}, expr)
            case s.BinOp(op=op, left=left, right=right):
                return self._fixed_or_apply(BINARY_SYMBOLS[op], (self._go(left), self._go(right)), {}, expr)
            case s.AtLayer(expr=inner, layer=s.String(value=layer)):
                outer, self.tag = self.tag, layer  # an inner tag wins over an outer one
                try:
                    return self._go(inner)
                finally:
                    self.tag = outer
            case s.Name(id=name):
                if name in self.grammar.productions:
                    if self.tag and name not in self.plain:
                        self.requests.add((name, self.tag))
                        name = specialized(name, self.tag)
                    self.holes.append(name)
                    return Hole(len(self.holes) - 1, name)
                if name in TERMINALS and "cam" in TERMINALS[name].contexts:
                    return Fixed(self._tagged(self.b.make(name), expr))
                cam = self.program.cams.get(name)
                if cam is not None and cam.node is not None:
                    return Fixed(self._tagged(cam.node, expr))
                raise self._error(f"`{name}` is neither a nonterminal, a cam terminal nor a cam", expr)
            case s.Call():
                return self._call(expr)
            case _:
                raise self._error("only names, numbers, ops and arithmetic may appear", expr)

    def _tagged(self, node: Node, expr: s.Expr) -> Node:
        if not self.tag:
            return node
        try:
            return retag(self.b, node, self.tag)
        except AxisError as err:
            raise self._error(err.message, expr) from None

    def _call(self, expr: s.Call) -> Template:
        name = expr.func.name
        spec = FUNCTIONS.get(name)
        if spec is None or "cam" not in spec.contexts:
            raise self._error(f"`{name}` is not an op of cam expressions", expr)
        binding = bind_call(expr, spec.params)
        problem = binding.first("too_many", "unknown", "twice", "missing")
        if problem is not None:
            raise self._error(
                _BIND_WORDS[problem.kind].format(sig=spec.signature(), n=len(spec.params), name=problem.name),
                expr,
            )
        operands: list[Template] = []
        attrs: dict[str, Any] = {}
        for p in spec.params:
            a = binding.values.get(p.name)
            if a is None:
                continue
            if p.kind == "tensor":
                operands.append(self._go(a))
            elif p.kind == "cam" and isinstance(a, s.Name):
                attrs[p.name] = a.id
            elif (value := static_value(a, p.kind)) is not BAD:
                attrs[p.name] = value
            else:
                raise self._error(
                    f"`{p.name}` of {name} must be {STATIC_WORDS.get(p.kind, 'a literal')}", expr
                )
        return self._fixed_or_apply(name, tuple(operands), attrs, expr)


_BIND_WORDS = {
    "too_many": "{sig} takes {n} arguments",
    "unknown": "{sig} has no argument `{name}`",
    "twice": "argument `{name}` given twice",
    "missing": "{sig} is missing `{name}`",
}


def specialized(nonterminal: str, layer: str) -> str:
    """The name of `nonterminal` compiled with its untagged terminals read at `layer`."""
    return f'{nonterminal}@"{layer}"'


def compile_grammar(program: Program, grammar: GrammarDef) -> dict[str, tuple[Alternative, ...]]:
    """Every nonterminal's alternatives as templates (CamlangError for an alternative that can't be).

    Layer holes are expanded away; nonterminals used under a layer tag get specialized copies.
    """
    holes = layer_nonterminals(grammar.productions)
    plain = frozenset(
        nt
        for nt, alts in grammar.productions.items()
        if all(
            isinstance(a, s.Number) or isinstance(a, s.Neg) and isinstance(a.operand, s.Number) for a in alts
        )
    )
    out: dict[str, tuple[Alternative, ...]] = {}
    todo = [(nt, "") for nt in grammar.productions if nt not in holes]
    while todo:
        nt, tag = todo.pop(0)
        name = specialized(nt, tag) if tag else nt
        if name in out:
            continue
        compiled = []
        for expr in grammar.productions[nt]:
            for exp in expand_layer_holes(expr, holes):
                c = _Compiler(program, grammar, tag, plain)
                t = c.compile(exp.expr)
                text = pretty_expr(s.AtLayer(exp.expr, s.String(tag)) if tag else exp.expr)
                compiled.append(Alternative(name, text, t, tuple(c.holes), exp.holes))
                todo.extend(sorted(c.requests))
        out[name] = tuple(compiled)
    return out


def constant_nonterminals(alts: dict[str, tuple[Alternative, ...]]) -> frozenset[str]:
    """Nonterminals whose alternatives are all numbers: numeric-constant holes with a grid.

    `t -> 0.5 | 1 | 2` makes `t` a constant hole; selection on the training split picks its
    value like any other choice, and the synthesis reports what it picked.
    """
    return frozenset(
        nt
        for nt, options in alts.items()
        if options and all(isinstance(a.template, Fixed) and a.template.node.op == "const" for a in options)
    )


def min_sizes(alts: dict[str, tuple[Alternative, ...]]) -> dict[str, float]:
    """The smallest derivation size of each nonterminal (inf when it derives nothing finite)."""
    inf = float("inf")
    best = {nt: inf for nt in alts}
    changed = True
    while changed:
        changed = False
        for nt, options in alts.items():
            for alt in options:
                size = 1 + alt.extra + sum(best[h] for h in alt.holes)
                if size < best[nt]:
                    best[nt] = size
                    changed = True
    return best


def context_costs(alts: dict[str, tuple[Alternative, ...]], start: str) -> dict[str, float]:
    """Productions needed *around* a nonterminal to complete a start term (inf if unreachable)."""
    inf = float("inf")
    msize = min_sizes(alts)
    cost = {nt: inf for nt in alts}
    cost[start] = 0.0
    changed = True
    while changed:
        changed = False
        for nt, options in alts.items():
            if cost[nt] == inf:
                continue
            for alt in options:
                total = sum(msize[h] for h in alt.holes)
                for h in alt.holes:
                    c = cost[nt] + 1 + alt.extra + total - msize[h]
                    if c < cost[h]:
                        cost[h] = c
                        changed = True
    return cost


@dataclass
class EnumStats:
    """Counts per nonterminal: terms built, ill-typed combinations, duplicates by kind, kept."""

    built: dict[str, int] = field(default_factory=dict)
    ill_typed: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    levels_done: int = 0

    def bump(self, table: dict[str, int], key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n


Admit = Callable[[str, Node, int], str]
"""`admit(nonterminal, node, size) -> "kept"` or the name of the pruning that dropped it."""


class Enumerator:
    """Enumerate `grammar` bottom-up by size up to `max_size`, keeping what `admit` accepts."""

    def __init__(self, program: Program, grammar: GrammarDef, max_size: int, admit: Admit) -> None:
        if max_size < 1:
            raise CamlangError(f"max_size must be at least 1, got {max_size}")
        self.b = program.builder
        self.start = grammar.start
        self.alts = compile_grammar(program, grammar)
        self.max_size = max_size
        self.admit = admit
        msize = min_sizes(self.alts)
        ctx = context_costs(self.alts, grammar.start)
        self.limit = {nt: max_size - ctx[nt] for nt in self.alts}
        self.min_size = msize
        if msize[grammar.start] == float("inf"):
            raise CamlangError(
                f"grammar `{grammar.name}` derives no finite term from `{grammar.start}`",
                hint="give every nonterminal an alternative without recursion",
                code="E401",
            )
        self.bank: dict[str, dict[int, list[Node]]] = {nt: {} for nt in self.alts}
        self.seen: dict[str, set[int]] = {nt: set() for nt in self.alts}
        self.sizes: dict[int, int] = {}  # derivation size of every start term built (first seen)
        self.stats = EnumStats()
        self.constant_holes = constant_nonterminals(self.alts)
        # (nonterminal, node id) -> the constant-hole values its kept derivation chose, in order
        self.constants: dict[tuple[str, int], tuple[tuple[str, float], ...]] = {}

    def terms(self, nonterminal: str) -> Iterator[tuple[int, Node]]:
        """Kept terms of a nonterminal, with their sizes, smallest first."""
        for size in sorted(self.bank[nonterminal]):
            for node in self.bank[nonterminal][size]:
                yield size, node

    def levels(self) -> Iterator[int]:
        """Enumerate one size level per step (yields the level just finished)."""
        for k in range(1, self.max_size + 1):
            for nt, options in self.alts.items():
                if k > self.limit[nt]:
                    continue
                for alt in options:
                    for children in self._children(alt, k - 1 - alt.extra):
                        self._consider(alt, children, k)
            self.stats.levels_done = k
            yield k

    def run(self) -> None:
        """Enumerate every level."""
        for _ in self.levels():
            pass

    def _children(self, alt: Alternative, total: int) -> Iterator[tuple[Node, ...]]:
        holes = alt.holes
        if not holes:
            if total == 0:
                yield ()
            return
        for sizes in _compositions(total, [self.min_size[h] for h in holes]):
            pools = [self.bank[h].get(sz, []) for h, sz in zip(holes, sizes)]
            if any(not p for p in pools):
                continue
            if alt.symmetric:
                if sizes[0] > sizes[1]:
                    continue
                for i, a in enumerate(pools[0]):
                    start = i if sizes[0] == sizes[1] else 0
                    for c in pools[1][start:]:
                        yield (a, c)
                continue
            yield from product(*pools)

    def _consider(self, alt: Alternative, children: tuple[Node, ...], size: int) -> None:
        nt = alt.nonterminal
        self.stats.bump(self.stats.built, nt)
        try:
            node = instantiate(self.b, alt.template, children)
        except AxisError:
            self.stats.ill_typed += 1
            return
        if node.nid in self.seen[nt]:
            self.stats.bump(self.stats.dropped.setdefault(nt, {}), "syntactic")
            return
        self.seen[nt].add(node.nid)
        if nt == self.start:
            self.sizes.setdefault(node.nid, size)
        verdict = self.admit(nt, node, size)
        if verdict != "kept":
            self.stats.bump(self.stats.dropped.setdefault(nt, {}), verdict)
            return
        self.stats.bump(self.stats.kept, nt)
        self.bank[nt].setdefault(size, []).append(node)
        chosen: tuple[tuple[str, float], ...] = ()
        for hole, child in zip(alt.holes, children):
            chosen += self.constants.get((hole, child.nid), ())
        if nt in self.constant_holes:
            chosen += ((nt, float(node.attr("value"))),)
        if chosen:
            self.constants[(nt, node.nid)] = chosen

    def constants_of(self, node: Node) -> tuple[tuple[str, float], ...]:
        """The numeric-constant holes a kept start term chose, as (nonterminal, value) pairs."""
        return self.constants.get((self.start, node.nid), ())


def _compositions(total: int, minimums: list[float]) -> Iterator[tuple[int, ...]]:
    """Ways to write `total` as ordered parts, part i at least `minimums[i]`."""
    if len(minimums) == 1:
        if total >= minimums[0]:
            yield (total,)
        return
    rest_min = sum(minimums[1:])
    first = int(minimums[0])
    for part in range(first, int(total - rest_min) + 1):
        for tail in _compositions(total - part, minimums[1:]):
            yield (part,) + tail

"""The IR: a hash-consed DAG of op-table nodes.

Nodes are built only through a `Builder`, which interns `(op, args, attrs)`: building the same
expression twice yields the same node object, so common subexpressions are shared by
construction (thousands of synthesized candidates share subterms). Nodes compare by identity.
The builder also records the source spans each node came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from camlang.frontend.op_table import OPS, REQUIRED
from camlang.frontend.source import Span
from camlang.frontend.value_types import AxisError, Ty


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One IR node. Equality is identity; use a `Builder` to create nodes."""

    nid: int
    op: str
    args: tuple[Node, ...]
    attrs: tuple[tuple[str, Any], ...]
    ty: Ty
    size: int = field(default=1)

    def attr(self, name: str) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        raise KeyError(name)

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    def __repr__(self) -> str:
        return f"Node#{self.nid}({self.op})"


class IRError(Exception):
    """An IR invariant was broken: always an internal error."""


class Builder:
    """Interning constructor of IR nodes, one per program (no global caches)."""

    def __init__(self) -> None:
        self._table: dict[tuple[Any, ...], Node] = {}
        self._nodes: list[Node] = []
        self.origins: dict[int, list[Span]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def make(
        self,
        op: str,
        args: Iterable[Node] = (),
        attrs: dict[str, Any] | None = None,
        span: Span | None = None,
    ) -> Node:
        """Build (or find) the node `op(args; attrs)`; type-checks via the op table.

        Raises `AxisError` when the type rule rejects the operands.
        """
        spec = OPS[op]
        args = tuple(args)
        full_attrs = {}
        for p in spec.static_params:
            if attrs is not None and p.name in attrs:
                full_attrs[p.name] = attrs[p.name]
            elif p.default is not REQUIRED:
                full_attrs[p.name] = p.default
            else:
                raise AxisError(f"{op} needs `{p.name}`")
        frozen_attrs = tuple(sorted(full_attrs.items()))
        key = (op, tuple(a.nid for a in args), _hashable(frozen_attrs))
        node = self._table.get(key)
        if node is None:
            t = spec.type_rule(tuple(a.ty for a in args), full_attrs)
            size = 1 + sum(a.size for a in args)
            node = Node(len(self._nodes), op, args, frozen_attrs, t, size)
            self._table[key] = node
            self._nodes.append(node)
        if span is not None:
            self.origins.setdefault(node.nid, []).append(span)
        return node

    def const(self, value: float, span: Span | None = None) -> Node:
        """A numeric constant (ints and floats with equal value are one node)."""
        return self.make("const", (), {"value": float(value)}, span)

    def spans(self, node: Node) -> list[Span]:
        """The source spans this node was built from."""
        return self.origins.get(node.nid, [])

    def owns(self, node: Node) -> bool:
        return node.nid < len(self._nodes) and self._nodes[node.nid] is node


def _hashable(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def postorder(roots: Iterable[Node]) -> Iterator[Node]:
    """Every node reachable from `roots`, each once, operands before users."""
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if node.nid in seen:
            continue
        if expanded:
            seen.add(node.nid)
            yield node
            continue
        stack.append((node, True))
        for a in reversed(node.args):
            if a.nid not in seen:
                stack.append((a, False))


def verify(builder: Builder, roots: Iterable[Node]) -> None:
    """Check IR invariants: known ops, arity, attrs, interning, acyclicity and types.

    Raises `IRError` (an internal error) when one fails. Every pass must keep these true.
    """
    seen_keys: dict[tuple[Any, ...], int] = {}
    for node in postorder(roots):
        if node.op not in OPS:
            raise IRError(f"unknown op {node.op!r} in {node!r}")
        spec = OPS[node.op]
        if len(node.args) != len(spec.tensor_params):
            raise IRError(
                f"{node!r}: {node.op} takes {len(spec.tensor_params)} operands, has {len(node.args)}"
            )
        names = {k for k, _ in node.attrs}
        if names != {p.name for p in spec.static_params}:
            raise IRError(f"{node!r}: attrs {sorted(names)} do not match {node.op}")
        if not builder.owns(node):
            raise IRError(f"{node!r} was not built by this builder")
        for a in node.args:
            if a.nid >= node.nid:
                raise IRError(f"{node!r} uses a later node {a!r}: not a DAG in build order")
        key = (node.op, tuple(a.nid for a in node.args), _hashable(node.attrs))
        if key in seen_keys and seen_keys[key] != node.nid:
            raise IRError(f"{node!r} duplicates node #{seen_keys[key]}: interning broken")
        seen_keys[key] = node.nid
        try:
            expected = spec.type_rule(tuple(a.ty for a in node.args), node.attr_dict)
        except AxisError as err:
            raise IRError(f"{node!r} is ill-typed: {err.message}") from err
        if expected != node.ty:
            raise IRError(f"{node!r} has type {node.ty}, its rule gives {expected}")
        if node.size != 1 + sum(a.size for a in node.args):
            raise IRError(f"{node!r} has a wrong size")


def terminal_key(node: Node) -> str:
    """The name a terminal's value goes by in captures and contexts: `A`, or `A@layer2` when tagged.

    Untagged layer terminals (the target layer's) keep the plain names, so programs that read one
    layer capture and cache exactly what they did before layer tags existed.
    """
    layer = dict(node.attrs).get("layer", "")
    return f"{node.op}@{layer}" if layer else node.op


def split_key(key: str) -> tuple[str, str]:
    """`"A@layer2"` -> `("A", "layer2")`; `"A"` -> `("A", "")`."""
    name, _, layer = key.partition("@")
    return name, layer


def retag(builder: Builder, node: Node, layer: str, memo: dict[int, Node] | None = None) -> Node:
    """`node` with every *untagged* layer terminal read at `layer` (tagged ones keep theirs).

    This is the meaning of `e @ "layer"`; hash-consing shares the retagged terms, so `A@"layer2"`
    built by a thousand candidates is one node.
    """
    memo = {} if memo is None else memo
    for n in postorder([node]):
        if n.nid in memo:
            continue
        if OPS[n.op].category == "terminal" and dict(n.attrs).get("layer") == "":
            memo[n.nid] = builder.make(n.op, (), {"layer": layer})
        elif n.args and any(memo[a.nid] is not a for a in n.args):
            memo[n.nid] = builder.make(n.op, tuple(memo[a.nid] for a in n.args), dict(n.attrs))
        else:
            memo[n.nid] = n
    return memo[node.nid]


def layers_read(roots: Iterable[Node]) -> frozenset[str]:
    """The tagged layers that `roots` read (the target layer, `""`, is not listed)."""
    found = (dict(n.attrs).get("layer", "") for n in postorder(roots) if OPS[n.op].category == "terminal")
    return frozenset(layer for layer in found if layer)


def to_text(node: Node) -> str:
    """The expression as camlang source (infix where the op has a symbol)."""
    from camlang.frontend.op_table import SYMBOL_OF

    def go(n: Node, parent_prec: int) -> str:
        if n.op == "const":
            v = n.attr("value")
            return repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
        if OPS[n.op].category == "terminal":
            layer = dict(n.attrs).get("layer", "")
            return f'{n.op}@"{layer}"' if layer else n.op
        if n.op in SYMBOL_OF:
            prec = OPS[n.op].precedence or 1
            left = go(n.args[0], prec)
            right = go(n.args[1], prec + 1)
            text = f"{left} {SYMBOL_OF[n.op]} {right}"
            return f"({text})" if prec < parent_prec else text
        if n.op == "neg":
            return f"-{go(n.args[0], OPS['neg'].precedence or 4)}"
        parts = [go(a, 0) for a in n.args]
        for p in OPS[n.op].static_params:
            v = n.attr(p.name)
            if p.default is not REQUIRED and v == p.default:
                continue
            shown = f'"{v}"' if isinstance(v, str) and p.kind != "cam" else str(v)
            parts.append(f"{p.name} = {shown}" if p.default is not REQUIRED else shown)
        return f"{n.op}({', '.join(parts)})"

    return go(node, 0)

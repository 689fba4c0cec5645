"""Layer holes in grammars: `cam -> upsample(m@l)` with `l -> "layer2" | "layer3"`.

A nonterminal whose alternatives are all strings is a *layer hole*: it may only follow `@`, and
the enumerator expands every alternative that uses it once per layer name (so the term banks
hold only IR nodes). The checker and the enumerator both read the holes from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product

from camlang.frontend import syntax as s


def layer_nonterminals(productions: Mapping[str, tuple[s.Expr, ...]]) -> dict[str, tuple[str, ...]]:
    """Every layer hole with its layer names, in the grammar's order."""
    return {
        nt: tuple(a.value for a in alts if isinstance(a, s.String))
        for nt, alts in productions.items()
        if alts and all(isinstance(a, s.String) for a in alts)
    }


@dataclass(frozen=True, slots=True)
class Expansion:
    """One alternative with its layer holes filled: the expression and how many holes it filled."""

    expr: s.Expr
    holes: int


def expand_layer_holes(expr: s.Expr, holes: Mapping[str, tuple[str, ...]]) -> list[Expansion]:
    """`expr` once per choice of layer for each of its `@ hole` sites (each site chooses alone)."""
    sites: list[tuple[str, ...]] = []
    _collect(expr, holes, sites)
    if not sites:
        return [Expansion(expr, 0)]
    return [Expansion(_fill(expr, holes, list(choice)), len(sites)) for choice in product(*sites)]


def _collect(expr: s.Expr, holes: Mapping[str, tuple[str, ...]], sites: list[tuple[str, ...]]) -> None:
    match expr:
        case s.AtLayer(expr=inner, layer=s.Name(id=name)) if name in holes:
            _collect(inner, holes, sites)
            sites.append(holes[name])
        case s.AtLayer(expr=inner) | s.Neg(operand=inner):
            _collect(inner, holes, sites)
        case s.BinOp(left=left, right=right):
            _collect(left, holes, sites)
            _collect(right, holes, sites)
        case s.Call(args=args, kwargs=kwargs):
            for a in args:
                _collect(a, holes, sites)
            for k in kwargs:
                _collect(k.value, holes, sites)
        case _:
            pass


def _fill(expr: s.Expr, holes: Mapping[str, tuple[str, ...]], choice: list[str]) -> s.Expr:
    """`expr` with its hole sites replaced by `choice`, consumed in `_collect`'s order."""
    match expr:
        case s.AtLayer(expr=inner, layer=s.Name(id=name) as hole) if name in holes:
            filled = _fill(inner, holes, choice)
            return s.AtLayer(filled, s.String(choice.pop(0), hole.span), expr.span)
        case s.AtLayer(expr=inner, layer=layer):
            return s.AtLayer(_fill(inner, holes, choice), layer, expr.span)
        case s.Neg(operand=inner):
            return s.Neg(_fill(inner, holes, choice), expr.span)
        case s.BinOp(op=op, left=left, right=right):
            return s.BinOp(op, _fill(left, holes, choice), _fill(right, holes, choice), expr.span)
        case s.Call(func=func, args=args, kwargs=kwargs):
            new_args = tuple(_fill(a, holes, choice) for a in args)
            new_kwargs = tuple(s.KwArg(k.name, _fill(k.value, holes, choice), k.span) for k in kwargs)
            return s.Call(func, new_args, new_kwargs, expr.span)
        case _:
            return expr

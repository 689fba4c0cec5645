"""Continuous tuning of a candidate's numeric-constant holes, after the grid has picked them.

A grammar hole such as `k -> 0.25 | 0.5 | 1 | 2` lets the race choose among a few values; the
best value usually lies between them. Given the race's winner, this module finds where its
constant holes sit in the term (`constant_sites`: the winner is parsed back against the
grammar's templates, so a literal `2` written in an alternative is never mistaken for a hole
that chose 2) and tunes them with a derivative-free optimiser from `scipy.optimize`: bounded
Brent for one constant, bounded Powell for several, inside the box spanned by each hole's grid.
A hole whose grid is positive and spans a factor of 4 or more is searched on a log scale
(exponents and temperatures are multiplicative).

The tuner never sees data: it calls `loss(node)`, which the driver builds over the selection
split alone, so the holdout cannot leak into the constants. It stops at `seconds`, or after
`max_evaluations` calls of `loss`, and returns the best point seen (never worse than the grid's
choice). Every point it evaluates has 4 significant digits; the best is then rounded to 3 and
re-scored when the time allows.

Wiring, after the race (`en` the `Enumerator`, `raw` the winner as enumerated, before any
simplification, `scorer` the selection split's `Scorer`, `sign` +1 to minimize, -1 to maximize):

    sites = constant_sites(en.alts, en.start, raw, en.constants_of(raw))
    loss = lambda node: sign * float(scorer([node], selection_rows).nanmean())
    tuned = tune_constants(program.builder, raw, sites, loss, seconds=budget, start_loss=...)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize

from camlang.frontend.ir import Builder, Node
from camlang.frontend.op_table import OPS, REQUIRED
from camlang.synth.enumeration import Alternative, Apply, Fixed, Hole, Template, constant_nonterminals

#: The mean loss of a candidate over the selection images; lower is better.
Loss = Callable[[Node], float]
Path = tuple[int, ...]
StopReason = Literal["converged", "time", "evaluations", "no constants"]

_MAX_DERIVATIONS = 16  # per (nonterminal, node): enough to find the race's own derivation
_LOG_SPAN = 4.0


@dataclass(frozen=True)
class ConstantSite:
    """A numeric-constant hole in a term: the argument path to its `const` leaf, and its grid."""

    path: Path
    nonterminal: str
    value: float
    grid: tuple[float, ...]

    @property
    def log_scale(self) -> bool:
        """Searched on a log scale: a positive grid spanning a factor of `_LOG_SPAN` or more."""
        low, high = min(self.grid), max(self.grid)
        return low > 0 and high / low >= _LOG_SPAN


@dataclass(frozen=True)
class TunedConstant:
    """One hole's value: the grid's choice, the tuned value and the box it was searched in."""

    nonterminal: str
    grid_value: float
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Tuning:
    """The tuned term and how it was found (losses on the selection split, lower is better)."""

    node: Node
    constants: tuple[TunedConstant, ...]
    start_loss: float
    loss: float
    evaluations: int
    seconds: float
    stop: StopReason

    @property
    def improved(self) -> bool:
        """The tuned term is strictly better than the grid's choice."""
        return self.loss < self.start_loss


def constant_sites(
    alts: dict[str, tuple[Alternative, ...]],
    start: str,
    node: Node,
    chosen: Sequence[tuple[str, float]] = (),
) -> tuple[ConstantSite, ...]:
    """The constant holes of `node` as derived from `start`, left to right.

    `alts` is `compile_grammar`'s output; `chosen` is the enumerator's `constants_of(node)`, used
    to pick the race's own derivation when the term has several. A term the grammar does not
    derive (a simplified form) has no sites.
    """
    parser = _Parser(alts)
    derivations = parser.derive(start, node)
    want = tuple((nt, float(v)) for nt, v in chosen)
    for d in derivations:
        if tuple((s.nonterminal, s.value) for s in d) == want:
            return d
    return derivations[0] if derivations else ()


def with_constants(b: Builder, node: Node, values: dict[Path, float]) -> Node:
    """`node` with the `const` leaves at `values`' paths replaced (other subterms shared)."""
    if not values:
        return node
    if () in values:
        return b.const(values[()])
    args = []
    for i, a in enumerate(node.args):
        inner = {p[1:]: v for p, v in values.items() if p[0] == i}
        args.append(with_constants(b, a, inner))
    return b.make(node.op, args, node.attr_dict)


def tune_constants(
    b: Builder,
    node: Node,
    sites: Sequence[ConstantSite],
    loss: Loss,
    seconds: float,
    max_evaluations: int = 60,
    start_loss: float | None = None,
) -> Tuning:
    """Tune the constants at `sites` of `node` to lower `loss`, within `seconds` of wall time.

    `start_loss` is the race's loss of `node`, when known (it saves one evaluation).
    """
    t0 = time.monotonic()
    box = _Box(tuple(sites))
    run = _Run(b, node, box, loss, t0 + seconds, max_evaluations)
    first = run.start(start_loss)
    if not sites:
        return run.result(first, first, "no constants")
    stop: StopReason = "converged"
    try:
        run.search()
    except _OutOfTime:
        stop = "time"
    except _OutOfEvaluations:
        stop = "evaluations"
    best = run.best_values()
    rounded = tuple(_round3(v) for v in best)
    try:
        run.loss_at(rounded, extra=1)  # readable values, if the time allows one more evaluation
    except (_OutOfTime, _OutOfEvaluations):
        rounded = best
    final = min((rounded, best), key=run.known_loss)
    return run.result(first, final, stop)


# ---- parsing a term back against the grammar --------------------------------------------------
Derivation = tuple[ConstantSite, ...]


class _Parser:
    """Derivations of a term from a nonterminal, as the constant sites they fill (memoized)."""

    def __init__(self, alts: dict[str, tuple[Alternative, ...]]) -> None:
        self.alts = alts
        self.grids = {
            nt: tuple(float(a.template.node.attr("value")) for a in alts[nt] if isinstance(a.template, Fixed))
            for nt in constant_nonterminals(alts)
        }
        self.memo: dict[tuple[str, int], list[Derivation]] = {}
        self.active: set[tuple[str, int]] = set()

    def derive(self, nt: str, node: Node) -> list[Derivation]:
        key = (nt, node.nid)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:  # a unit cycle (a -> b -> a) on one node adds no derivation
            return []
        if nt in self.grids:
            found: list[Derivation] = [(ConstantSite((), nt, float(node.attr("value")), self.grids[nt]),)]
            ok = node.op == "const" and any(_is(a.template, node) for a in self.alts[nt])
            self.memo[key] = found if ok else []
            return self.memo[key]
        self.active.add(key)
        out: list[Derivation] = []
        for alt in self.alts.get(nt, ()):
            for d in self._match(alt.template, node):
                out.append(d)
                if len(out) >= _MAX_DERIVATIONS:
                    break
        self.active.discard(key)
        self.memo[key] = out
        return out

    def _match(self, t: Template, node: Node) -> Iterator[Derivation]:
        if isinstance(t, Fixed):
            if t.node is node:
                yield ()
        elif isinstance(t, Hole):
            yield from self.derive(t.nonterminal, node)
        elif t.op == node.op and len(t.args) == len(node.args) and _attrs_match(t, node):
            yield from self._match_args(t.args, node.args, 0)

    def _match_args(self, ts: tuple[Template, ...], nodes: tuple[Node, ...], i: int) -> Iterator[Derivation]:
        if i == len(ts):
            yield ()
            return
        for head in self._match(ts[i], nodes[i]):
            moved = tuple(ConstantSite((i, *s.path), s.nonterminal, s.value, s.grid) for s in head)
            for tail in self._match_args(ts, nodes, i + 1):
                yield moved + tail


def _is(t: Template, node: Node) -> bool:
    return isinstance(t, Fixed) and t.node is node


def _attrs_match(t: Apply, node: Node) -> bool:
    given = dict(t.attrs)
    for p in OPS[t.op].static_params:
        want = given.get(p.name, p.default)
        if want is REQUIRED or node.attr(p.name) != want:
            return False
    return True


# ---- the search ---------------------------------------------------------------------------------
class _OutOfTime(Exception):
    pass


class _OutOfEvaluations(Exception):
    pass


@dataclass(frozen=True)
class _Box:
    """The search box: each site's grid hull, on a log scale where the site asks for one."""

    sites: tuple[ConstantSite, ...]

    def to_unit(self, values: Sequence[float]) -> np.ndarray:
        """Values -> coordinates in [0, 1]^n (what the optimiser moves in)."""
        return np.array([self._to(s, v) for s, v in zip(self.sites, values)], dtype=float)

    def from_unit(self, u: Sequence[float]) -> tuple[float, ...]:
        """Coordinates in [0, 1]^n -> values, clipped into the box and rounded to 4 significant
        digits (every evaluated term reads well, even when time stops the tuning before the
        3-digit re-score)."""
        return tuple(
            float(f"{self._from(s, min(1.0, max(0.0, float(x)))):.4g}") for s, x in zip(self.sites, u)
        )

    @staticmethod
    def _to(s: ConstantSite, v: float) -> float:
        lo, hi = min(s.grid), max(s.grid)
        if hi == lo:
            return 0.5
        if s.log_scale:
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)

    @staticmethod
    def _from(s: ConstantSite, x: float) -> float:
        lo, hi = min(s.grid), max(s.grid)
        if s.log_scale:
            return math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))
        return lo + x * (hi - lo)


class _Run:
    """One tuning: a memo of evaluated points, the budget, and the scipy calls."""

    def __init__(self, b: Builder, node: Node, box: _Box, loss: Loss, deadline: float, cap: int) -> None:
        self.b, self.node, self.box, self.loss = b, node, box, loss
        self.deadline, self.cap = deadline, cap
        self.seen: dict[tuple[float, ...], float] = {}
        self.nodes: dict[tuple[float, ...], Node] = {}
        self.evaluations = 0
        self.t0 = time.monotonic()
        self.grid_values = tuple(s.value for s in box.sites)

    def start(self, start_loss: float | None) -> tuple[float, ...]:
        key = self.grid_values
        self.nodes[key] = self.node
        if start_loss is not None:
            self.seen[key] = float(start_loss)
        else:
            self.seen[key] = self._call(self.node)
        return key

    def loss_at(self, values: tuple[float, ...], extra: int = 0) -> float:
        """The loss of the term with these constants (memoized; `extra` evaluations over the cap)."""
        if values in self.seen:
            return self.seen[values]
        if time.monotonic() >= self.deadline:
            raise _OutOfTime
        if self.evaluations >= self.cap + extra:
            raise _OutOfEvaluations
        node = with_constants(self.b, self.node, {s.path: v for s, v in zip(self.box.sites, values)})
        self.nodes[values] = node
        self.seen[values] = self._call(node)
        return self.seen[values]

    def _call(self, node: Node) -> float:
        self.evaluations += 1
        value = float(self.loss(node))
        return value if math.isfinite(value) else math.inf

    def known_loss(self, values: tuple[float, ...]) -> float:
        return self.seen.get(values, math.inf)

    def best_values(self) -> tuple[float, ...]:
        return min(self.seen, key=lambda v: self.seen[v])

    def search(self) -> None:
        x0 = self.box.to_unit(self.grid_values)

        def f(u: np.ndarray) -> float:
            return self.loss_at(self.box.from_unit(np.atleast_1d(u).tolist()))

        if len(x0) == 1:
            optimize.minimize_scalar(
                lambda x: f(np.array([x])),
                bounds=(0.0, 1.0),
                method="bounded",
                options={"xatol": 1e-3, "maxiter": 10 * self.cap},  # our own count (new points) stops it
            )
        else:
            optimize.minimize(
                f,
                x0,
                method="Powell",
                bounds=[(0.0, 1.0)] * len(x0),
                options={"xtol": 1e-3, "ftol": 1e-6, "maxfev": 10 * self.cap},
            )

    def result(self, first: tuple[float, ...], final: tuple[float, ...], stop: StopReason) -> Tuning:
        if self.seen[final] >= self.seen[first]:
            final = first  # never worse than the grid's choice, and no change on a tie
        constants = tuple(
            TunedConstant(s.nonterminal, s.value, v, min(s.grid), max(s.grid))
            for s, v in zip(self.box.sites, final)
        )
        return Tuning(
            self.nodes[final],
            constants,
            self.seen[first],
            self.seen[final],
            self.evaluations,
            time.monotonic() - self.t0,
            stop,
        )


def _round3(v: float) -> float:
    return float(f"{v:.3g}")

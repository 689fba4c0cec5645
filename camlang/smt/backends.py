"""The complete search back ends: each encodes "some input of the box reaches unsafe disjunct j
(and keeps the gradient)" over the bounds, exactly, so that infeasible means safe.

What a back end can do beyond one disjunct at a time is declared on the `Backend` protocol
(``supports_joint_milp``, ``supports_pattern_lps``); the driver reads those flags, never the class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import z3

from camlang.smt.bounds import NetBounds
from camlang.smt.milp import MilpProblem, build_milp, solve_milp
from camlang.smt.setup import Setup
from camlang.smt.split import Phase
from camlang.smt.z3_encode import EncodingTimeout, Z3Problem, encode_reference, solve_z3

__all__ = [
    "Backend",
    "DisjunctSearch",
    "Outcome",
    "SearchTimeout",
    "GatedGradient",
    "MilpBackend",
    "Z3Backend",
    "BACKENDS",
]

#: Bounds on the first layer's gated gradient implied by the gradient constraint (gradfix.py).
GatedGradient = tuple[np.ndarray, np.ndarray]


class SearchTimeout(Exception):
    """The query's time limit ran out inside a search (the message says where)."""


@dataclass(frozen=True)
class Outcome:
    """One back-end solve of one disjunct: "infeasible", "feasible" (a candidate point and, when the
    back end knows it, its activation pattern) or "timeout" (``message`` says why)."""

    status: Literal["infeasible", "feasible", "timeout"]
    x: np.ndarray | None = None
    pattern: list[np.ndarray] | None = None
    message: str = ""
    disjunct: int | None = None  # which disjunct a candidate reaches, when several were encoded


class DisjunctSearch(Protocol):
    """A back end's encoding of one unsafe disjunct, solved repeatedly with patterns cut off."""

    #: binaries in the encoding (reported in the stats), or None where the back end has none
    binaries: int | None

    def solve(self, deadline: float) -> Outcome:
        """The next candidate that avoids every excluded pattern."""
        ...

    def exclude(self, pattern: list[np.ndarray]) -> None:
        """Cut ``pattern`` off (a no-good cut): it only reaches the unsafe set on its boundary."""
        ...


class Backend(Protocol):
    """A complete search back end (module docstring) and what it can do."""

    name: str
    #: several disjuncts in one encoding (a selector each), and ReLU phases fixed exactly (the
    #: branches of a split search): the driver then decides saliency queries by one joint search
    supports_joint_milp: bool
    #: the driver may decide a saliency query by activation-pattern LPs before this back end runs
    #: (a HiGHS shortcut; the z3 reference answers every query with its own encoding)
    supports_pattern_lps: bool
    #: ``search(..., fixed=...)`` fixes ReLU phases exactly on single disjuncts too: the driver may
    #: then decide a query by branch-and-bound with this back end at the leaves (bab.py)
    supports_fixed_phases: bool

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: GatedGradient | None,
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        """Encode disjunct ``disjunct`` (several only with ``supports_joint_milp``), in the branch
        where the ReLUs of ``fixed`` have those phases (likewise); raises `SearchTimeout` when
        encoding runs past ``deadline``."""
        ...


class _MilpSearch:
    def __init__(self, problem: MilpProblem, bounds: NetBounds) -> None:
        self.problem, self.bounds = problem, bounds
        self.binaries: int | None = problem.n_binaries
        self.excluded: list[list[np.ndarray]] = []

    def solve(self, deadline: float) -> Outcome:
        out = solve_milp(self.problem, self.bounds, deadline, self.excluded)
        return Outcome(out.status, out.x, out.pattern, out.message, out.disjunct)

    def exclude(self, pattern: list[np.ndarray]) -> None:
        self.excluded.append(pattern)


class MilpBackend:
    """HiGHS through scipy.optimize.milp: big-M ReLUs, McCormick-exact gradient gates (milp.py).
    Several disjuncts can be encoded in one MILP, with a selector binary each."""

    name = "milp"
    supports_joint_milp = True
    supports_pattern_lps = True
    supports_fixed_phases = True

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: GatedGradient | None,
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        """The MILP of ``disjunct`` (see `Backend.search`)."""
        problem = build_milp(setup.net, bounds, setup.query, disjunct, gz0, fixed=fixed)
        return _MilpSearch(problem, bounds)


class _Z3Search:
    def __init__(self, problem: Z3Problem) -> None:
        self.problem = problem
        self.binaries: int | None = None

    def solve(self, deadline: float) -> Outcome:
        status, x, pattern, why = solve_z3(self.problem, deadline - time.monotonic())
        if status == "unsat":
            return Outcome("infeasible")
        if status == "unknown":
            return Outcome("timeout", message=f"z3: {why}")
        return Outcome("feasible", x, pattern)

    def exclude(self, pattern: list[np.ndarray]) -> None:
        self.problem.block_pattern(pattern)


class Z3Backend:
    """The reference: the same bounded encoding in z3 real arithmetic (z3_encode.py)."""

    name = "z3"
    supports_joint_milp = False
    supports_pattern_lps = False
    supports_fixed_phases = False

    def search(
        self,
        setup: Setup,
        bounds: NetBounds,
        disjunct: int | tuple[int, ...],
        deadline: float,
        gz0: GatedGradient | None,
        fixed: Sequence[Phase] = (),
    ) -> DisjunctSearch:
        """The z3 encoding of one disjunct (see `Backend.search`)."""
        if not isinstance(disjunct, int) or fixed:
            raise TypeError("the z3 back end encodes one disjunct at a time, without fixed phases")
        try:
            return _Z3Search(
                encode_reference(setup.net, bounds, setup.query, disjunct, z3.Context(), deadline)
            )
        except EncodingTimeout as exc:
            raise SearchTimeout(f"while encoding: {exc}") from exc


BACKENDS: dict[str, Backend] = {"milp": MilpBackend(), "z3": Z3Backend()}

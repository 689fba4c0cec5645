"""z3 encodings of a `Query`, built from the rows of `camlang.backends.z3_lower.Z3_OPS`.

* `encode_reference` — the canonical ReLU network with the bounds: stable ReLUs are fixed, every
  remaining pre-activation gets its interval, and one disjunct is asked at a time.
* `encode_naive` — the deliberately naive peer for benchmarks: the op-by-op layer list (max-pools
  included), every ReLU an ``If``, no bounds, the whole disjunction in one query.

Gates are ``z > 0`` exactly, which is torch's gradient convention, so a z3 model is a
counterexample in exact arithmetic; it is still replayed in float64 before being reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import z3

from camlang.backends.z3_lower import Z3_OPS, real
from camlang.smt.bounds import NetBounds
from camlang.smt.network import Affine, LayerList, MaxPool, Relu, ReluNet
from camlang.smt.query import Query

__all__ = ["EncodingTimeout", "Z3Problem", "encode_reference", "encode_naive", "solve_z3"]


@dataclass
class Z3Problem:
    """A z3 solver holding the encoding, and the input variables to read a model from."""

    solver: z3.Solver
    xs: list[z3.ArithRef]
    ctx: z3.Context
    gates: list[list[Any]] | None = None  # reference encoding: per layer, True / False / z > 0

    def block_pattern(self, pattern: list[np.ndarray]) -> None:
        """Exclude one activation pattern (of the undecided gates) from further models."""
        assert self.gates is not None
        diff = [
            z3.Not(g) if on else g
            for layer, pat in zip(self.gates, pattern)
            for g, on in zip(layer, pat)
            if not isinstance(g, bool)
        ]
        self.solver.add(z3.Or(diff) if diff else z3.BoolVal(False, self.ctx))

    def pattern(self, m: z3.ModelRef) -> list[np.ndarray]:
        """The activation pattern of a model."""
        assert self.gates is not None
        return [
            np.array(
                [g if isinstance(g, bool) else z3.is_true(m.eval(g, model_completion=True)) for g in layer]
            )
            for layer in self.gates
        ]


class EncodingTimeout(Exception):
    """The time limit ran out while the encoding was being built."""


def _fresh(solver: z3.Solver, name: str, terms: Sequence[Any], ctx: z3.Context, deadline: float) -> list[Any]:
    """Name intermediate terms so the solver sees small atoms instead of deep sums."""
    if time.monotonic() > deadline:
        raise EncodingTimeout(name)
    out = []
    for i, t in enumerate(terms):
        if isinstance(t, z3.RatNumRef) or z3.is_const(t):
            out.append(t)
            continue
        v = z3.Real(f"{name}_{i}", ctx)
        solver.add(v == t)
        out.append(v)
    return out


def _affine(W: np.ndarray, b: np.ndarray, xs: Sequence[Any], ctx: z3.Context, deadline: float) -> list[Any]:
    """The "affine" row, a few output rows at a time so that a time limit can stop big layers."""
    out: list[Any] = []
    for r in range(0, W.shape[0], 16):
        if time.monotonic() > deadline:
            raise EncodingTimeout("affine")
        out += Z3_OPS["affine"](W[r : r + 16], b[r : r + 16], xs, ctx)
    return out


def _affine_t(W: np.ndarray, gs: Sequence[Any], ctx: z3.Context, deadline: float) -> list[Any]:
    """The "affine_transpose" row, in column chunks (see `_affine`)."""
    out: list[Any] = []
    for c in range(0, W.shape[1], 16):
        if time.monotonic() > deadline:
            raise EncodingTimeout("affine_transpose")
        out += Z3_OPS["affine_transpose"](W[:, c : c + 16], gs, ctx)
    return out


def encode_reference(
    net: ReluNet,
    bounds: NetBounds,
    query: Query,
    disjunct: int,
    ctx: z3.Context,
    deadline: float = float("inf"),
) -> Z3Problem:
    """Bounded encoding of one disjunct of ``query`` on the canonical network."""
    ops = Z3_OPS
    s = z3.Solver(ctx=ctx)
    xs = [z3.Real(f"x_{i}", ctx) for i in range(net.n_inputs)]
    s.add(ops["box"](xs, query.lo, query.hi, ctx))
    h: list[Any] = list(xs)
    gates: list[list[Any]] = []
    for k in range(net.n_hidden):
        z = _fresh(s, f"z{k}", _affine(net.Ws[k], net.bs[k], h, ctx, deadline), ctx, deadline)
        layer_gates, hk = [], []
        for i, zi in enumerate(z):
            lo, up = float(bounds.lower[k][i]), float(bounds.upper[k][i])
            hi_, gate = ops["relu"](zi, ctx, lo, up)
            if gate is not True and gate is not False:
                s.add(zi >= real(lo, ctx), zi <= real(up, ctx))
            layer_gates.append(gate)
            hk.append(hi_)
        gates.append(layer_gates)
        h = _fresh(s, f"h{k}", hk, ctx, deadline)
    ys = ops["affine"](net.Ws[-1], net.bs[-1], h, ctx)
    A, c = query.disjuncts[disjunct]
    s.add(ops["linear_le"](np.atleast_2d(A), np.asarray(c), ys, ctx))
    if query.gradient is not None:
        g: list[Any] = [real(v, ctx) for v in net.Ws[-1].T @ query.gradient.c]
        for k in range(net.n_hidden - 1, -1, -1):
            gz = [ops["relu_grad_gate"](gt, gi, ctx) for gt, gi in zip(gates[k], g)]
            g = _fresh(s, f"g{k}", _affine_t(net.Ws[k], gz, ctx, deadline), ctx, deadline)
        s.add(ops["gradient_close"](g, query.gradient.g0, query.gradient.encoded_delta, ctx))
    return Z3Problem(s, xs, ctx, gates)


def encode_naive(
    layers: LayerList, query: Query, ctx: z3.Context, deadline: float = float("inf")
) -> Z3Problem:
    """Unbounded encoding of the whole query on the op-by-op layer list."""
    ops = Z3_OPS
    s = z3.Solver(ctx=ctx)
    xs = [z3.Real(f"x_{i}", ctx) for i in range(layers.n_inputs)]
    s.add(ops["box"](xs, query.lo, query.hi, ctx))
    v: list[Any] = list(xs)
    tape: list[tuple[Any, Any]] = []  # what the backward pass needs per layer
    for n, layer in enumerate(layers.layers):
        if isinstance(layer, Affine):
            v = _fresh(s, f"a{n}", _affine(layer.W, layer.b, v, ctx, deadline), ctx, deadline)
            tape.append((layer, None))
        elif isinstance(layer, Relu):
            pairs = [ops["relu"](t, ctx) for t in v]
            tape.append((layer, [gt for _, gt in pairs]))
            v = _fresh(s, f"r{n}", [t for t, _ in pairs], ctx, deadline)
        elif isinstance(layer, MaxPool):
            outs, sels = ops["maxpool"](v, layer.groups, ctx)
            tape.append((layer, sels))
            v = _fresh(s, f"m{n}", outs, ctx, deadline)
    disj = [ops["linear_le"](np.atleast_2d(A), np.asarray(c), v, ctx) for A, c in query.disjuncts]
    s.add(z3.Or(disj) if len(disj) > 1 else disj[0])
    if query.gradient is not None:
        g: list[Any] = [real(float(ci), ctx) for ci in query.gradient.c]
        for n, (layer, aux) in reversed(list(enumerate(tape))):
            if isinstance(layer, Affine):
                g = _fresh(s, f"ga{n}", _affine_t(layer.W, g, ctx, deadline), ctx, deadline)
            elif isinstance(layer, Relu):
                g = [ops["relu_grad_gate"](gt, gi, ctx) for gt, gi in zip(aux, g)]
            else:
                assert isinstance(layer, MaxPool)
                g = _fresh(
                    s, f"gm{n}", ops["maxpool_grad"](aux, layer.groups, g, layer.in_size, ctx), ctx, deadline
                )
        s.add(ops["gradient_close"](g, query.gradient.g0, query.gradient.encoded_delta, ctx))
    return Z3Problem(s, xs, ctx)


def _value(m: z3.ModelRef, v: z3.ArithRef) -> float:
    val = m.eval(v, model_completion=True)
    if isinstance(val, z3.RatNumRef):
        return float(val.as_fraction())
    if isinstance(val, z3.AlgebraicNumRef):
        return float(val.approx(20).as_fraction())
    return float(str(val))


def solve_z3(
    problem: Z3Problem, timeout_s: float
) -> tuple[str, np.ndarray | None, list[np.ndarray] | None, str]:
    """Run the solver: ("unsat" | "sat" | "unknown", model inputs, model pattern, z3's reason)."""
    problem.solver.set("timeout", max(1, int(timeout_s * 1000)))
    r = problem.solver.check()
    if r == z3.unsat:
        return "unsat", None, None, ""
    if r == z3.sat:
        m = problem.solver.model()
        pattern = problem.pattern(m) if problem.gates is not None else None
        return "sat", np.array([_value(m, x) for x in problem.xs]), pattern, ""
    return "unknown", None, None, problem.solver.reason_unknown()

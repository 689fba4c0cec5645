"""The proof oracle: are two CAMs the same map, is a CAM nonnegative or bounded, for all inputs?

`prove_equivalent` decides whether two CAM expressions give the same *normalized* map for every
`A`, `G` (and score terminals). In order:

1. identical simplified normal form (`camlang.passes.simplify` then interning): equivalent for
   every input and every layer size;
2. numeric refutation: both are evaluated with the reference backend on random inputs; a
   difference in normalized maps is a counterexample, re-checked before it is reported;
3. a symbolic proof on a bounded instance (`C=2, H=2, W=2` by default, stated in the verdict):
   the raw maps `a` and `r * b` (r > 0 estimated numerically, then made an exact rational) are
   compared with a sympy normal form (`cancel(a - r*b) == 0`) when both are rational
   expressions, else with z3 (`a != r*b` unsatisfiable). A positive multiple gives the same
   normalized map up to min-max's 1e-7 epsilon.

Nothing is claimed equivalent unless one of these proves it; time-outs give "unknown".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from camlang.backends import reference, sympy_kernels
from camlang.backends.normalize import minmax
from camlang.backends.z3_lower import Bound, NoSMTEncoding, cam_terminals, lower_one, symbolic_terminals
from camlang.frontend.ir import Builder, Node, layers_read, postorder, terminal_key, to_text
from camlang.frontend.op_table import OPS, TERMINALS
from camlang.passes.simplify import nonnegative, simplify

Status = Literal["equivalent", "not_equivalent", "unknown", "holds", "violated"]

#: Tolerance on normalized maps (in [0, 1]) for a numeric counterexample to count.
MAP_TOL = 1e-3


@dataclass(frozen=True)
class EquivalenceVerdict:
    """The oracle's answer. `status` is "equivalent"/"not_equivalent"/"unknown" for equivalence and
    "holds"/"violated"/"unknown" for nonnegative/bounded; `check_status` maps both to
    holds/violated/unknown. `counterexample` maps terminal names to nested lists ([c][h][w])."""

    status: Status
    method: str
    detail: str
    counterexample: dict[str, Any] | None = None

    @property
    def check_status(self) -> str:
        """ "holds", "violated" or "unknown", whatever the kind of question."""
        return {"equivalent": "holds", "not_equivalent": "violated"}.get(self.status, self.status)


def _layer_bound(bound: Bound, index: int) -> Bound:
    """The probe size of the `index`-th tagged layer: its own channel count and grid, so that a
    shape-mixing bug shows up as an error rather than an accidental equality."""
    return Bound(
        bound.channels + 1 + index,
        bound.height + 1 + index,
        bound.width + 2 + index,
        bound.input_channels,
        bound.input_height,
        bound.input_width,
    )


def _instance(
    bound: Bound, rng: np.random.Generator, kind: str, layers: frozenset[str] = frozenset()
) -> dict[str, np.ndarray]:
    """Random terminals in the reference layout `[1, c, h, w]` (tagged ones for each of `layers`)."""
    b = bound

    def draw(*shape: int) -> np.ndarray:
        x = rng.standard_normal((1,) + shape)
        if kind == "positive":
            x = np.abs(x) + 0.1
        elif kind == "integers":
            x = rng.integers(-3, 4, size=(1,) + shape).astype(float)
        return x

    t = {name: draw(*b.shape(TERMINALS[name].ty)) for name in cam_terminals()}
    t["P"] = np.abs(t["P"]) % 1.0  # a probability
    for i, layer in enumerate(sorted(layers)):
        lb = _layer_bound(b, i)
        for name in cam_terminals():
            if TERMINALS[name].reads_layer:
                t[f"{name}@{layer}"] = draw(*lb.shape(TERMINALS[name].ty))
    if kind == "mixed":
        for key in [k for k in t if k.partition("@")[0] == "A"]:
            t[key] = np.abs(t[key])  # activations after a ReLU
    return t


def _on_one_grid(ra: np.ndarray, rb: np.ndarray, bound: Bound) -> tuple[np.ndarray, np.ndarray]:
    """Two raw maps on one grid: maps of two layers' grids meet on the input grid, as shown."""
    if ra.shape == rb.shape:
        return ra, rb
    size = (bound.input_height, bound.input_width)
    return reference.bilinear_resize(ra, size), reference.bilinear_resize(rb, size)


def _raw(node: Node, terms: dict[str, np.ndarray], bound: Bound) -> np.ndarray:
    ctx = reference.ReferenceContext(terms, (bound.input_height, bound.input_width))
    with np.errstate(all="ignore"):
        v = reference.evaluate_one(node, ctx)
    return np.broadcast_to(v, (1, 1) + v.shape[-2:]).astype(np.float64)


def _normalized(raw: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return minmax(raw)


def _maps_differ(a: np.ndarray, b: np.ndarray) -> bool:
    na, nb = _normalized(a), _normalized(b)
    if np.isnan(na).any() or np.isnan(nb).any():
        return bool((np.isnan(na) != np.isnan(nb)).any())
    return bool(np.abs(na - nb).max() > MAP_TOL)


def _as_counterexample(terms: dict[str, np.ndarray], used: set[str]) -> dict[str, Any]:
    return {k: v[0].tolist() for k, v in terms.items() if k in used}


def _terminals(*nodes: Node) -> set[str]:
    return {terminal_key(n) for n in postorder(nodes) if not n.args and n.op != "const"}


def prove_equivalent(
    builder: Builder, a: Node, b: Node, timeout_s: float = 30.0, bound: Bound | None = None, seed: int = 0
) -> EquivalenceVerdict:
    """Do the CAMs `a` and `b` give the same normalized map for all inputs? (see module docs)."""
    deadline = time.monotonic() + timeout_s
    sa, sb = simplify(builder, a), simplify(builder, b)
    if sa is sb:
        return EquivalenceVerdict(
            "equivalent", "normal form", "identical simplified expressions (any input, any size)"
        )
    bound = bound or Bound()
    used = _terminals(a, b)
    layers = layers_read([a, b])
    # cams on different layers' grids (or reading different layers) are compared on the probe
    # only: no symbolic instance relates two layers' grids
    one_grid = layers_read([a]) == layers_read([b]) and a.ty.layer == b.ty.layer
    rng = np.random.default_rng(seed)
    ratios: list[float] = []
    for trial in range(24):
        kind = ("normal", "mixed", "positive", "integers")[trial % 4]
        inst = bound if trial % 2 == 0 else Bound(3, 2, 3, 1, 4, 6)
        terms = _instance(inst, rng, kind, layers)
        ra, rb = _on_one_grid(_raw(a, terms, inst), _raw(b, terms, inst), inst)
        if _maps_differ(ra, rb):
            return EquivalenceVerdict(
                "not_equivalent",
                "counterexample",
                "normalized maps differ on these inputs (checked with the reference "
                f"evaluator; max difference {_max_diff(ra, rb):.3g})",
                _as_counterexample(terms, used),
            )
        if trial % 2 == 0 and one_grid:
            ratios.extend(_ratios(ra, rb))
    if not one_grid:
        return EquivalenceVerdict(
            "unknown", "probe", "equal on random inputs, but the cams read different layers: no proof"
        )
    ratio = _rational_ratio(ratios)
    if ratio is None:
        return EquivalenceVerdict(
            "unknown", "probe", "equal on random inputs, but not a constant multiple: no proof"
        )
    return _symbolic_equal(sa, sb, ratio, bound, used, deadline)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(_normalized(a) - _normalized(b))
    return float(np.nanmax(d)) if np.isfinite(d).any() else float("nan")


def _ratios(ra: np.ndarray, rb: np.ndarray) -> list[float]:
    ok = np.isfinite(ra) & np.isfinite(rb) & (np.abs(rb) > 1e-9)
    return list((ra[ok] / rb[ok]).reshape(-1)) if ok.any() else []


def _rational_ratio(ratios: list[float]) -> Fraction | None:
    """The constant r > 0 with a = r * b everywhere tried, as an exact small fraction, or None."""
    if not ratios:
        return Fraction(1)
    r = float(np.median(ratios))
    if not (r > 0 and np.allclose(ratios, r, rtol=1e-6, atol=0)):
        return None
    return Fraction(r).limit_denominator(10_000)


def _symbolic_equal(
    a: Node, b: Node, ratio: Fraction, bound: Bound, used: set[str], deadline: float
) -> EquivalenceVerdict:
    scale = "raw maps equal" if ratio == 1 else f"raw maps differ by the positive factor {ratio}"
    where = f"on a symbolic instance {bound.describe()}"
    ops = {n.op for n in postorder([a, b])}
    if all(OPS[op].rational for op in ops):
        try:
            if _sympy_equal(a, b, ratio, bound):
                return EquivalenceVerdict("equivalent", "sympy normal form", f"{scale} {where}")
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return EquivalenceVerdict("unknown", "timeout", "equal on random inputs; the proof ran out of time")
    return _z3_equal(a, b, ratio, bound, used, remaining, scale, where)


def _sympy_equal(a: Node, b: Node, ratio: Fraction, bound: Bound) -> bool:
    import sympy

    syms = _sympy_terminals(bound, layers_read([a, b]))
    va, vb = sympy_kernels.lower(a, syms), sympy_kernels.lower(b, syms)
    va, vb = np.broadcast_arrays(va, vb)
    r = sympy.Rational(ratio.numerator, ratio.denominator)
    return all(sympy.cancel(sympy.together(x - r * y)) == 0 for x, y in zip(va.reshape(-1), vb.reshape(-1)))


def _sympy_terminals(bound: Bound, layers: frozenset[str]) -> dict[str, np.ndarray]:
    import sympy

    return symbolic_terminals(bound, symbol=lambda name: sympy.Symbol(name, real=True), layers=layers)


def _z3_equal(
    a: Node, b: Node, ratio: Fraction, bound: Bound, used: set[str], timeout_s: float, scale: str, where: str
) -> EquivalenceVerdict:
    import z3

    ctx = z3.Context()
    terms = symbolic_terminals(bound, ctx=ctx, layers=layers_read([a, b]))
    try:
        za, zb = lower_one(a, terms, ctx), lower_one(b, terms, ctx)
    except NoSMTEncoding as err:
        return EquivalenceVerdict("unknown", "z3", f"equal on random inputs; no proof: {err}")
    za, zb = np.broadcast_arrays(za, zb)
    r = z3.RealVal(f"{ratio.numerator}/{ratio.denominator}", ctx)
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", max(1, int(timeout_s * 1000)))
    solver.add(z3.Or([x != r * y for x, y in zip(za.reshape(-1), zb.reshape(-1))]))
    res = solver.check()
    if res == z3.unsat:
        return EquivalenceVerdict("equivalent", "z3", f"{scale} {where} (z3: no input makes them differ)")
    if res == z3.sat:
        cex = _z3_model_terms(solver.model(), terms)
        ra, rb = _raw(a, cex, bound), _raw(b, cex, bound)
        if _maps_differ(ra, rb):
            return EquivalenceVerdict(
                "not_equivalent",
                "z3 counterexample",
                "normalized maps differ on this z3 model (re-checked numerically)",
                _as_counterexample(cex, used),
            )
        return EquivalenceVerdict(
            "unknown",
            "z3",
            "equal on random inputs; z3's difference did not replay "
            "numerically (division by zero or rounding)",
        )
    return EquivalenceVerdict(
        "unknown", "z3", f"equal on random inputs; z3 gave up ({solver.reason_unknown()})"
    )


def _z3_model_terms(model: Any, terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import z3

    out: dict[str, np.ndarray] = {}
    for name, arr in terms.items():
        vals = np.zeros((1,) + arr.shape)
        for idx in np.ndindex(arr.shape):
            v = model.eval(arr[idx], model_completion=True)
            vals[(0,) + idx] = (
                float(v.as_fraction()) if z3.is_rational_value(v) else float(v.approx(12).as_fraction())
            )
        out[name] = vals
    return out


def prove_nonnegative(
    builder: Builder, node: Node, timeout_s: float = 30.0, bound: Bound | None = None, seed: int = 0
) -> EquivalenceVerdict:
    """Is the raw map `node` >= 0 for all inputs? ("holds" / "violated" / "unknown")."""
    if nonnegative(simplify(builder, node)):
        return EquivalenceVerdict(
            "holds", "syntactic", f"`{to_text(node)}` is nonnegative by construction (any input, any size)"
        )
    return _range_check(node, 0.0, None, timeout_s, bound or Bound(), seed)


def prove_bounded(
    builder: Builder,
    node: Node,
    lo: float,
    hi: float,
    timeout_s: float = 30.0,
    bound: Bound | None = None,
    seed: int = 0,
) -> EquivalenceVerdict:
    """Is the raw map `node` within [lo, hi] for all inputs? ("holds" / "violated" / "unknown")."""
    return _range_check(node, lo, hi, timeout_s, bound or Bound(), seed)


def _range_check(
    node: Node, lo: float | None, hi: float | None, timeout_s: float, bound: Bound, seed: int
) -> EquivalenceVerdict:
    import z3

    deadline = time.monotonic() + timeout_s
    used = _terminals(node)
    layers = layers_read([node])
    rng = np.random.default_rng(seed)
    want = f">= {lo}" if hi is None else f"within [{lo}, {hi}]"

    def outside(v: np.ndarray) -> bool:
        with np.errstate(invalid="ignore"):
            below = lo is not None and bool((v < lo).any())
            return below or (hi is not None and bool((v > hi).any()))

    for trial in range(32):
        terms = _instance(bound, rng, ("normal", "mixed", "positive", "integers")[trial % 4], layers)
        for k in terms:
            terms[k] = terms[k] * (10.0 ** (trial % 3))
        if outside(_raw(node, terms, bound)):
            return EquivalenceVerdict(
                "violated",
                "counterexample",
                f"the raw map is not {want} on these inputs (reference evaluator)",
                _as_counterexample(terms, used),
            )
    ctx = z3.Context()
    sym = symbolic_terminals(bound, ctx=ctx, layers=layers)
    try:
        zv = lower_one(node, sym, ctx)
    except NoSMTEncoding as err:
        return EquivalenceVerdict("unknown", "z3", f"{want} on random inputs; no proof: {err}")
    conds = []
    for e in zv.reshape(-1):
        if lo is not None:
            conds.append(e < lo)
        if hi is not None:
            conds.append(e > hi)
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", max(1, int((deadline - time.monotonic()) * 1000)))
    solver.add(z3.Or(conds))
    res = solver.check()
    where = f"on a symbolic instance {bound.describe()}"
    if res == z3.unsat:
        return EquivalenceVerdict("holds", "z3", f"the raw map is {want} {where} (z3: no input violates it)")
    if res == z3.sat:
        cex = _z3_model_terms(solver.model(), sym)
        if outside(_raw(node, cex, bound)):
            return EquivalenceVerdict(
                "violated",
                "z3 counterexample",
                f"the raw map is not {want} on this z3 model (re-checked numerically)",
                _as_counterexample(cex, used),
            )
        return EquivalenceVerdict("unknown", "z3", "z3's violation did not replay numerically")
    return EquivalenceVerdict(
        "unknown", "z3", f"{want} on random inputs; z3 gave up ({solver.reason_unknown()})"
    )

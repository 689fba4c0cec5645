"""Every backend agrees with the reference evaluator on random well-typed CAM expressions:
eager torch (float64) to 1e-9, and the z3 lowering, evaluated on the same concrete values."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from camlang.axes import AxisError
from camlang.backends import reference, torch_eager, z3_lower
from camlang.ir import Builder, Node

LEAVES = ("A", "G", "S", "P", "S_masked")
UNARY = ("relu", "abs", "neg", "sum_c", "mean_c", "max_c", "sum_hw", "mean_hw", "max_hw", "sign")
BINARY = ("add", "sub", "mul", "max", "min", "gt")

C, H, W, N = 2, 2, 3, 2


def _build(b: Builder, spec: object) -> Node | None:
    try:
        if isinstance(spec, str):
            return b.make(spec)
        if isinstance(spec, float):
            return b.const(spec)
        op, *args = spec  # type: ignore[misc]
        nodes = [_build(b, a) for a in args]
        if any(n is None for n in nodes):
            return None
        return b.make(op, nodes)  # type: ignore[arg-type]
    except AxisError:
        return None


def _to_map(b: Builder, node: Node) -> Node:
    t = node.ty
    if t.has_channels and t.has_grid:
        return b.make("sum_c", (node,))
    if t.has_channels:
        return b.make("sum_c", (b.make("mul", (node, b.make("A"))),))
    if not t.has_grid:
        return b.make("mul", (node, b.make("sum_c", (b.make("A"),))))
    if t.axes != frozenset({"H", "W"}):
        return b.make("mul", (node, b.make("sum_c", (b.make("A"),))))
    return node


specs = st.recursive(
    st.sampled_from(LEAVES) | st.sampled_from([0.5, 2.0, -1.0]),
    lambda inner: st.tuples(st.sampled_from(UNARY), inner) | st.tuples(st.sampled_from(BINARY), inner, inner),
    max_leaves=8,
)


def _terminals(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "A": rng.normal(size=(N, C, H, W)),
        "G": rng.normal(size=(N, C, H, W)),
        "S": rng.normal(size=(N, 1, 1, 1)),
        "P": rng.uniform(size=(N, 1, 1, 1)),
        "S_masked": rng.normal(size=(N, C, 1, 1)),
    }


@settings(max_examples=150)
@given(specs, st.integers(0, 2**16))
def test_torch_eager_matches_reference(spec: object, seed: int) -> None:
    b = Builder()
    node = _build(b, spec)
    if node is None:
        return
    root = _to_map(b, node)
    terms = _terminals(np.random.default_rng(seed))
    want = reference.evaluate_one(root, reference.ReferenceContext(terms, (4, 6)))
    ctx = torch_eager.TorchContext({k: torch.from_numpy(v) for k, v in terms.items()}, (4, 6), torch.float64)
    got = torch_eager.evaluate([root], ctx)[root.nid].numpy()
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-9, atol=1e-9)


@settings(max_examples=60)
@given(specs, st.integers(0, 2**16))
def test_z3_lowering_matches_reference(spec: object, seed: int) -> None:
    import z3

    b = Builder()
    node = _build(b, spec)
    if node is None:
        return
    root = _to_map(b, node)
    bound = z3_lower.Bound(channels=C, height=H, width=W)
    symbols = z3_lower.symbolic_terminals(bound)
    symbolic = z3_lower.lower_one(root, symbols)
    rng = np.random.default_rng(seed)
    terms = {k: np.round(v, 3) for k, v in _terminals(rng).items()}
    want = reference.evaluate_one(root, reference.ReferenceContext({k: v[:1] for k, v in terms.items()}))[0]
    substitution = []
    for name, values in terms.items():
        arr = symbols[name]
        for idx in np.ndindex(arr.shape):
            substitution.append((arr[idx], z3.RealVal(repr(float(values[(0, *idx)])))))
    got = np.empty(symbolic.shape)
    for idx in np.ndindex(symbolic.shape):
        value = z3.simplify(z3.substitute(symbolic[idx], *substitution))
        got[idx] = float(value.as_fraction())
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-9, atol=1e-9)

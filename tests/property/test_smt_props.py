"""Property tests for the SMT engine on random small ReLU networks."""

from __future__ import annotations

import time

import numpy as np
import torch
import z3
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from camlang.backends.z3_lower import Z3_OPS, real
from camlang.smt import check_robust, check_saliency_robust
from camlang.smt.bounds import ACTIVE, INACTIVE, compute_bounds, gradient_bounds, spec_bounds
from camlang.smt.gradfix import fix_phases_by_gradient
from camlang.smt.network import extract_layers, to_relu_net
from camlang.smt.query import GradientConstraint

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def nets(draw: st.DrawFn) -> tuple[nn.Module, int]:
    n_in = draw(st.integers(2, 4))
    widths = draw(st.lists(st.integers(2, 5), min_size=1, max_size=2))
    n_out = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 10_000))
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = n_in
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers).double().eval(), n_in


def points(n: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=n, max_size=n)


def _torch(m: nn.Module, x: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
    xt = torch.tensor(x).reshape(1, -1).requires_grad_(True)
    out = m(xt).reshape(-1)
    (g,) = torch.autograd.grad(out[label], xt)
    return out.detach().numpy(), g.reshape(-1).numpy()


def _num(t: object) -> float:
    v = z3.simplify(t) if not isinstance(t, float) else t
    return float(v.as_fraction()) if isinstance(v, z3.RatNumRef) else float(v)


@SETTINGS
@given(data=st.data())
def test_z3_rows_compute_torch_values(data: st.DataObject) -> None:
    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    ctx = z3.Context()
    ops = Z3_OPS
    h = [real(v, ctx) for v in x]
    gates = []
    for k in range(net.n_hidden):
        z = [z3.simplify(t) for t in ops["affine"](net.Ws[k], net.bs[k], h, ctx)]
        pairs = [ops["relu"](t, ctx) for t in z]
        gates.append([z3.simplify(g) for _, g in pairs])
        h = [z3.simplify(t) for t, _ in pairs]
    y = [_num(t) for t in ops["affine"](net.Ws[-1], net.bs[-1], h, ctx)]
    label = int(np.argmax(y))
    g = [real(v, ctx) for v in net.Ws[-1][label]]
    for k in range(net.n_hidden - 1, -1, -1):
        gz = [ops["relu_grad_gate"](gt, gi, ctx) for gt, gi in zip(gates[k], g)]
        g = [z3.simplify(t) for t in ops["affine_transpose"](net.Ws[k], gz, ctx)]
    logits, grad = _torch(m, x, label)
    np.testing.assert_allclose(y, logits, atol=1e-9)
    np.testing.assert_allclose([_num(t) for t in g], grad, atol=1e-9)


@SETTINGS
@given(data=st.data(), eps=st.floats(0.0, 0.5))
def test_bounds_contain_sampled_values(data: st.DataObject, eps: float) -> None:
    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    lo, hi = x - eps, x + eps
    net = to_relu_net(extract_layers(m, (1, n_in)))
    b = compute_bounds(net, lo, hi)
    C = np.eye(net.n_outputs)
    s_lo, s_hi = spec_bounds(net, b, lo, hi, C)
    _, (g_lo, g_hi) = gradient_bounds(net, b.phase, C[0])
    rng = np.random.default_rng(0)
    samples = np.vstack([lo, hi, rng.uniform(lo, hi, size=(50, n_in))])
    for xs in samples:
        y, pre = net.forward(xs)
        for k, z in enumerate(pre):
            assert np.all(z >= b.lower[k] - 1e-9) and np.all(z <= b.upper[k] + 1e-9)
            assert np.all(z[b.phase[k] == ACTIVE] > 0) and np.all(z[b.phase[k] == INACTIVE] <= 1e-12)
        assert np.all(y >= s_lo - 1e-9) and np.all(y <= s_hi + 1e-9)
        g = net.gradient(xs, C[0])
        assert np.all(g >= g_lo - 1e-9) and np.all(g <= g_hi + 1e-9)


@SETTINGS
@given(data=st.data(), eps=st.floats(0.2, 1.0), delta=st.floats(0.0, 2.0))
def test_backends_agree_and_every_sat_answer_replays(data: st.DataObject, eps: float, delta: float) -> None:
    m, n_in = data.draw(nets())
    x = data.draw(points(n_in))
    verdicts = [check_saliency_robust(m, x, eps, delta, backend=b, timeout_s=30) for b in ("milp", "z3")]
    verdicts += [check_robust(m, x, eps, box=(0.0, 1.0), backend=b, timeout_s=30) for b in ("milp", "z3")]
    for v in verdicts:
        if v.status == "violated":
            assert v.replay is not None and v.replay["ok"]
            cex = np.array(v.counterexample)
            assert np.all(np.abs(cex - np.array(x)) <= eps + 1e-12) and np.all((cex >= 0) & (cex <= 1))
            label = int(v.property.split("label=")[1].rstrip(")"))
            logits, grad = _torch(m, cex, label)
            assert int(np.argmax(logits)) != label
            if "delta" in v.property:
                _, g0 = _torch(m, np.array(x), label)
                assert np.max(np.abs(grad - g0)) <= delta
    decided = [v.status for v in verdicts[:2] if v.status != "unknown"]
    assert len(set(decided)) <= 1, verdicts[:2]
    decided = [v.status for v in verdicts[2:] if v.status != "unknown"]
    assert len(set(decided)) <= 1, verdicts[2:]


def _pgd(m: nn.Module, x: np.ndarray, eps: float, label: int, steps: int = 200) -> list[np.ndarray]:
    """Points visited by a 200-step PGD attack on (max other logit - label logit) in the region."""
    lo = torch.tensor(np.clip(x - eps, 0, 1))
    hi = torch.tensor(np.clip(x + eps, 0, 1))
    gen = torch.Generator().manual_seed(0)
    z = lo + (hi - lo) * torch.rand(len(x), generator=gen, dtype=torch.float64)
    visited = []
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        out = m(z.reshape(1, -1)).reshape(-1)
        others = torch.cat([out[:label], out[label + 1 :]])
        (g,) = torch.autograd.grad(others.max() - out[label], z)
        z = torch.minimum(torch.maximum(z + (eps / 20 + 1e-3) * g.sign(), lo), hi)
        visited.append(z.detach().numpy().copy())
    return visited


@SETTINGS
@given(data=st.data(), eps=st.floats(0.1, 0.8), delta=st.floats(0.0, 1.0))
def test_proved_properties_survive_pgd(data: st.DataObject, eps: float, delta: float) -> None:
    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    rob = check_robust(m, x, eps, box=(0.0, 1.0), timeout_s=30)
    sal = check_saliency_robust(m, x, eps, delta, timeout_s=30)
    label = int(np.argmax(_torch(m, x, 0)[0]))
    _, g0 = _torch(m, x, label)
    # evaluate every visited point in one batch (rows are independent, so the batch gradient of
    # the summed label logits is the per-point gradient)
    pts = torch.tensor(np.array(_pgd(m, x, eps, label))).requires_grad_(True)
    out = m(pts)
    (grads,) = torch.autograd.grad(out[:, label].sum(), pts)
    flipped = out.argmax(1).numpy() != label
    close = np.abs(grads.numpy() - g0).max(axis=1) <= delta
    if flipped.any():
        assert rob.status != "holds"
    if (flipped & close).any():
        assert sal.status != "holds"


@SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 0.5), delta=st.floats(0.0, 0.5))
def test_gradient_fixing_keeps_every_feasible_pattern(data: st.DataObject, eps: float, delta: float) -> None:
    """Phases fixed from the gradient constraint agree with every sampled input that keeps it."""
    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    lo, hi = x - eps, x + eps
    b = compute_bounds(net, lo, hi)
    c = np.eye(net.n_outputs)[0]
    g0 = net.gradient(x, c)
    fix = fix_phases_by_gradient(net, b, GradientConstraint(c, g0, delta))
    assert not fix.infeasible  # x itself keeps its gradient
    rng = np.random.default_rng(1)
    for xs in np.vstack([x, rng.uniform(lo, hi, size=(200, n_in))]):
        if np.max(np.abs(net.gradient(xs, c) - g0)) > delta:
            continue
        _, pre = net.forward(xs)
        for k, z in enumerate(pre):
            assert np.all(z[fix.bounds.phase[k] == ACTIVE] > 0)
            assert np.all(z[fix.bounds.phase[k] == INACTIVE] <= 0)


@SETTINGS
@given(data=st.data(), eps=st.floats(0.1, 1.0))
def test_monotone_relaxation_keeps_every_robustness_answer(data: st.DataObject, eps: float) -> None:
    """Dropping the binaries of last-layer ReLUs every unsafe row wants small changes no answer,
    and a relaxed solution's x is itself a violation of its disjunct."""
    from camlang.smt.milp import build_milp, solve_milp
    from camlang.smt.query import Query

    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    label = int(np.argmax(net.forward(x)[0]))
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    disjuncts = tuple(
        (np.eye(net.n_outputs)[label] - np.eye(net.n_outputs)[j], np.zeros(1))
        for j in range(net.n_outputs)
        if j != label
    )
    q = Query(lo, hi, disjuncts, None)
    b = compute_bounds(net, lo, hi)
    for j in range(len(disjuncts)):
        relaxed = build_milp(net, b, q, j, relax_monotone=True)
        exact = build_milp(net, b, q, j, relax_monotone=False)
        assert relaxed.n_binaries <= exact.n_binaries
        r = solve_milp(relaxed, b, time.monotonic() + 30)
        e = solve_milp(exact, b, time.monotonic() + 30)
        assert r.status == e.status
        if r.status == "feasible":
            assert r.x is not None
            y, _ = net.forward(r.x)
            A, c = disjuncts[j]
            assert float((np.atleast_2d(A) @ y)[0]) <= float(c[0]) + 1e-6


@SETTINGS
@given(data=st.data(), eps=st.floats(0.2, 1.0), delta=st.floats(0.0, 1.0))
def test_joint_milp_is_feasible_exactly_when_some_disjunct_is(
    data: st.DataObject, eps: float, delta: float
) -> None:
    """The saliency MILP over several disjuncts (selector binaries, big-M from CROWN) has a
    solution exactly when one of the single-disjunct MILPs has, and its solution reaches the
    disjunct its selector names."""
    from camlang.smt.milp import build_milp, solve_milp
    from camlang.smt.query import Query

    m, n_in = data.draw(nets())
    x = np.array(data.draw(points(n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    label = int(np.argmax(net.forward(x)[0]))
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    others = [j for j in range(net.n_outputs) if j != label]
    disjuncts = tuple((np.eye(net.n_outputs)[label] - np.eye(net.n_outputs)[j], np.zeros(1)) for j in others)
    c = np.eye(net.n_outputs)[label]
    grad = GradientConstraint(c, net.gradient(x, c), delta)
    q = Query(lo, hi, disjuncts, grad)
    b = compute_bounds(net, lo, hi)
    single = [
        solve_milp(build_milp(net, b, q, j), b, time.monotonic() + 30).status for j in range(len(others))
    ]
    joint = solve_milp(build_milp(net, b, q, tuple(range(len(others)))), b, time.monotonic() + 30)
    assert "timeout" not in single and joint.status != "timeout"
    assert (joint.status == "feasible") == ("feasible" in single)
    if joint.status == "feasible":
        assert joint.disjunct is not None and single[joint.disjunct] == "feasible"
        assert joint.x is not None
        y, _ = net.forward(joint.x)
        A, _ = disjuncts[joint.disjunct]
        assert float(A @ y) <= 1e-6


class _Board:
    """The ranks' shared announcements of one query (what the c10d store holds in a real run)."""

    def __init__(self) -> None:
        self.found: list[int] = []


class _FakeShare:
    """A `PieceShare` for one rank of ``world_size``, the ranks run one after the other."""

    def __init__(self, board: _Board, rank: int, world_size: int) -> None:
        self.board, self.rank, self.world_size = board, rank, world_size

    def lowest_found(self) -> int | None:
        return min(self.board.found) if self.board.found else None

    def announce(self, piece: int) -> None:
        self.board.found.append(piece)


@st.composite
def tied_nets(draw: st.DrawFn) -> tuple[nn.Module, list[float]]:
    """A 3-8-8-4 ReLU net (weights x3) whose logits at the point are within 0.3 of each other, so
    that several output disjuncts stay alive and the joint saliency MILP has work to do."""
    seed = draw(st.integers(0, 10_000))
    x = draw(points(3))
    gaps = draw(st.lists(st.floats(0.0, 0.3), min_size=3, max_size=3))
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)).double().eval()
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(3)
        y = m(torch.tensor([x], dtype=torch.float64))[0]
        m[-1].bias.sub_(y - torch.tensor([0.3, *gaps], dtype=torch.float64))
    return m, x


@SETTINGS
@given(data=st.data(), eps=st.floats(0.02, 0.15), delta=st.floats(0.02, 1.0))
def test_split_joint_milp_gives_the_one_piece_verdict(data: st.DataObject, eps: float, delta: float) -> None:
    """The joint saliency MILP split into 2 and 4 branches (ranks simulated in one process, in
    both orders, so that higher branches are sometimes decided first) gives the verdict of the one
    MILP, and every counterexample replays. The pattern shortcut is switched off so that these
    small nets reach the joint MILP."""
    from unittest import mock

    from camlang.smt import patterns
    from camlang.smt.pieces import combine

    m, x = data.draw(tied_nets())
    with mock.patch.object(patterns, "ENUM_MAX_RELUS", -1):
        one = check_saliency_robust(m, x, eps, delta, timeout_s=30)
        assert one.status != "unknown", one.reason
        for world in (2, 4):
            for order in (range(world), range(world - 1, -1, -1)):
                board = _Board()
                parts = {
                    r: check_saliency_robust(
                        m, x, eps, delta, timeout_s=30, share=_FakeShare(board, r, world)
                    )
                    for r in order
                }
                got = combine([parts[r] for r in range(world)])
                assert got.status == one.status, (world, list(order), got.reason, one.reason)
                event(f"{one.status}, joint MILP: {'joint_disjuncts' in one.stats}")
                if "joint_disjuncts" not in one.stats:
                    continue
                split = got.stats.get("joint_split")
                assert split is not None and split["branches"] == 2 ** len(split["relus"])
                assert len(split["relus"]) == min(
                    world.bit_length() - 1, got.stats["undecided_after_gradient"]
                )
                if got.status == "holds":  # every branch proved infeasible, on its own rank
                    outcomes = got.stats["pieces"]["outcomes"]
                    assert sorted(outcomes) == list(range(split["branches"]))
                    assert all(
                        o["outcome"] == "infeasible" and o["rank"] == n % world for n, o in outcomes.items()
                    )
                if got.status == "violated":
                    assert got.replay is not None and got.replay["ok"]
                    cex = np.array(got.counterexample)
                    assert np.all(np.abs(cex - np.array(x)) <= eps + 1e-12)
                    label = int(got.property.split("label=")[1].rstrip(")"))
                    logits, grad = _torch(m, cex, label)
                    _, g0 = _torch(m, np.array(x), label)
                    assert int(np.argmax(logits)) != label
                    assert float(np.max(np.abs(grad - g0))) <= delta

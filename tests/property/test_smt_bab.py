"""Branch-and-bound with alpha-beta-CROWN bounds (camlang/smt/bab.py, crown.py) on random small
deep networks: every bound holds for every parameter value on sampled points of its branch, and
every verdict agrees with the exhaustive pattern oracle (smt/exhaustive.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from camlang.smt import Robust, SaliencyRobust, build_setup, check
from camlang.smt.bab import BabSettings, branch_and_bound, wants_bab
from camlang.smt.backends import BACKENDS, SearchTimeout
from camlang.smt.bounds import compute_bounds
from camlang.smt.crown import Relaxation, TorchNet, backward_bound, branch_bounds, root_bounds
from camlang.smt.exhaustive import exhaustive_flip
from camlang.smt.network import extract_layers, to_relu_net
from camlang.smt.search import Context
from camlang.smt.stages import Carry, Decided, bounds, gradient_fixing
from camlang.smt.stats import StatsLog

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# whole verifier runs against the exhaustive oracle: fewer draws keep the suite within its CI budget
ORACLE_SETTINGS = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def deep_nets(draw: st.DrawFn, min_layers: int = 3) -> tuple[nn.Module, int]:
    """``min_layers`` (default 3) to 4 hidden layers of 2-4 ReLUs (at most 16 in all, for the oracle)."""
    n_in = draw(st.integers(2, 4))
    widths = draw(st.lists(st.integers(2, 4), min_size=min_layers, max_size=4))
    n_out = draw(st.integers(2, 3))
    torch.manual_seed(draw(st.integers(0, 10_000)))
    layers: list[nn.Module] = []
    prev = n_in
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers).double().eval(), n_in


def _label_and_grad(m: nn.Module, x: np.ndarray) -> tuple[int, np.ndarray]:
    xt = torch.tensor(x).reshape(1, -1).requires_grad_(True)
    out = m(xt).reshape(-1)
    label = int(torch.argmax(out))
    (g,) = torch.autograd.grad(out[label], xt)
    return label, g.reshape(-1).numpy()


@SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 1.0))
def test_branch_bounds_hold_for_any_slopes_and_multipliers(data: st.DataObject, eps: float) -> None:
    m, n_in = data.draw(deep_nets())
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    tn = TorchNet.of(net, lo, hi)
    nb, lowers, uppers = root_bounds(tn, compute_bounds(net, lo, hi), steps=5)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    # one random branch: split a few undecided ReLUs, random slopes and multipliers
    split = [torch.zeros(lo_k.shape[1], dtype=torch.float64) for lo_k in lowers]
    lower = [lo_k[0].clone() for lo_k in lowers]
    upper = [up_k[0].clone() for up_k in uppers]
    for k in range(net.n_hidden):
        for i in range(len(split[k])):
            if lower[k][i] < 0 < upper[k][i] and rng.random() < 0.4:
                active = bool(rng.random() < 0.5)
                split[k][i] = 1.0 if active else -1.0
                lower[k][i], upper[k][i] = (0.0, upper[k][i]) if active else (lower[k][i], 0.0)
    R = net.n_outputs
    C = torch.as_tensor(rng.normal(size=(1, R, R)))
    rel = Relaxation(
        tuple(lk[None] for lk in lower),
        tuple(uk[None] for uk in upper),
        tuple(torch.as_tensor(rng.random((1, R, len(s)))) for s in split),
        tuple(torch.as_tensor(rng.random((1, R, len(s))) * 3) for s in split),
        tuple(s[None] for s in split),
    )
    lb = backward_bound(tn, net.n_hidden, C, rel).lb[0].numpy()
    for xs in rng.uniform(lo, hi, size=(300, n_in)):
        y, pre = net.forward(xs)
        in_branch = all(np.all((s.numpy() * z) >= -1e-12) for s, z in zip(split, pre))
        if in_branch:
            assert np.all(C[0].numpy() @ y >= lb - 1e-9)
        for k, z in enumerate(pre):  # the root bounds hold on the whole box
            assert np.all(z >= nb.lower[k] - 1e-9) and np.all(z <= nb.upper[k] + 1e-9)


@SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 1.0))
def test_branch_intermediate_bounds_hold_on_the_branch(data: st.DataObject, eps: float) -> None:
    """`branch_bounds` over random branches (a few ReLUs split in random layers): every sampled
    point of a branch lies within the recomputed bounds, which are never looser than the clamped
    root's, and layers at or below the first split are unchanged."""
    m, n_in = data.draw(deep_nets())
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    tn = TorchNet.of(net, lo, hi)
    _, lowers, uppers = root_bounds(tn, compute_bounds(net, lo, hi), steps=3)
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    B = 4
    lower = [lk.repeat(B, 1) for lk in lowers]
    upper = [uk.repeat(B, 1) for uk in uppers]
    split = [torch.zeros_like(lk) for lk in lower]
    first = torch.full((B,), net.n_hidden)
    for b in range(B):
        for k in range(net.n_hidden):
            for i in range(lower[k].shape[1]):
                if lower[k][b, i] < 0 < upper[k][b, i] and rng.random() < 0.3:
                    active = bool(rng.random() < 0.5)
                    split[k][b, i] = 1.0 if active else -1.0
                    (lower if active else upper)[k][b, i] = 0.0
                    first[b] = min(int(first[b]), k)
    new_lo, new_up = branch_bounds(tn, tuple(lower), tuple(upper), first)
    for k in range(net.n_hidden):
        assert torch.all(new_lo[k] >= lower[k]) and torch.all(new_up[k] <= upper[k])
        for b in range(B):
            if k <= int(first[b]):
                assert torch.equal(new_lo[k][b], lower[k][b]) and torch.equal(new_up[k][b], upper[k][b])
    for xs in rng.uniform(lo, hi, size=(300, n_in)):
        _, pre = net.forward(xs)
        for b in range(B):
            if all(np.all((s[b].numpy() * z) >= 0) for s, z in zip(split, pre)):
                for k, z in enumerate(pre):
                    assert np.all(z >= new_lo[k][b].numpy() - 1e-9) and np.all(
                        z <= new_up[k][b].numpy() + 1e-9
                    )


@ORACLE_SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 0.6))
def test_bab_robustness_agrees_with_the_oracle(data: st.DataObject, eps: float) -> None:
    # two hidden layers too: plain robustness runs branch-and-bound there by default (wants_bab)
    m, n_in = data.draw(deep_nets(min_layers=2))
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    label, g0 = _label_and_grad(m, x)
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    oracle = exhaustive_flip(net, lo, hi, label, g0)
    assume(not oracle.ambiguous)  # a region touching the unsafe set only on its boundary
    v = check(m, Robust(x.tolist(), eps, box=(0.0, 1.0)), timeout_s=60, bab=True)
    assert v.status == oracle.verdict(1e300), (v, oracle)
    if v.status == "violated":
        assert v.replay is not None and v.replay["ok"]


@ORACLE_SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 0.6), delta=st.floats(0.0, 1.0))
def test_bab_saliency_agrees_with_the_oracle(data: st.DataObject, eps: float, delta: float) -> None:
    m, n_in = data.draw(deep_nets())
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    net = to_relu_net(extract_layers(m, (1, n_in)))
    label, g0 = _label_and_grad(m, x)
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    oracle = exhaustive_flip(net, lo, hi, label, g0)
    near = [oracle.flip, *oracle.ambiguous]
    assume(all(abs(delta - d) > 1e-6 for d in near if np.isfinite(d)))
    assume(all(d > delta for d in oracle.ambiguous))
    v = check(m, SaliencyRobust(x.tolist(), eps, delta, box=(0.0, 1.0)), timeout_s=60, bab=True)
    assert v.status == oracle.verdict(delta), (v, oracle)
    if v.status == "violated":
        assert v.replay is not None and v.replay["ok"]


@ORACLE_SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 0.6))
def test_branching_to_the_bottom_agrees_with_the_oracle(data: st.DataObject, eps: float) -> None:
    """With no MILP until every ReLU of a branch is fixed (and two branches a batch), the tree is
    split all the way down, every branch's intermediate bounds recomputed: the verdict must still
    be the oracle's."""
    m, n_in = data.draw(deep_nets(min_layers=2))
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    setup = build_setup(m, Robust(x.tolist(), eps, box=(0.0, 1.0)), None)
    label, g0 = _label_and_grad(m, x)
    oracle = exhaustive_flip(setup.net, setup.query.lo, setup.query.hi, label, g0)
    assume(not oracle.ambiguous)
    t0 = time.monotonic()
    ctx = Context(setup, BACKENDS["milp"], "milp", t0, t0 + 60, 60, StatsLog())
    carry = bounds(ctx, Carry())
    if isinstance(carry, Decided):  # the CROWN bounds alone
        assert carry.status == oracle.verdict(1e300) == "holds"
        return
    decision = branch_and_bound(
        ctx, carry.net_bounds, carry.alive, None, BabSettings(batch=2, leaf_relus=0, refine_rows=16)
    )
    assume(decision.cut == 0)
    assert ("violated" if decision.found else "holds") == oracle.verdict(1e300)
    if decision.found is not None:
        assert decision.found.replay["ok"]


@ORACLE_SETTINGS
@given(data=st.data(), eps=st.floats(0.05, 0.6), delta=st.floats(0.0, 1.0))
def test_saliency_branching_to_the_bottom_agrees_with_the_oracle(
    data: st.DataObject, eps: float, delta: float
) -> None:
    """Saliency split all the way down: every branch first meets the gradient test (open gates on
    the ``z >= 0`` side, the first layer's pinned gradient), and only fully fixed branches reach the
    MILP; the verdict must still be the oracle's."""
    m, n_in = data.draw(deep_nets(min_layers=2))
    x = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n_in, max_size=n_in)))
    setup = build_setup(m, SaliencyRobust(x.tolist(), eps, delta, box=(0.0, 1.0)), None)
    label, g0 = _label_and_grad(m, x)
    oracle = exhaustive_flip(setup.net, setup.query.lo, setup.query.hi, label, g0)
    near = [oracle.flip, *oracle.ambiguous]
    assume(all(abs(delta - d) > 1e-6 for d in near if np.isfinite(d)))
    assume(all(d > delta for d in oracle.ambiguous))
    t0 = time.monotonic()
    ctx = Context(setup, BACKENDS["milp"], "milp", t0, t0 + 60, 60, StatsLog())
    carry = bounds(ctx, Carry())
    if not isinstance(carry, Decided):
        carry = gradient_fixing(ctx, carry)
    if isinstance(carry, Decided):  # the bounds, or the gradient fixing, alone
        assert carry.status == oracle.verdict(delta) == "holds"
        return
    decision = branch_and_bound(
        ctx, carry.net_bounds, carry.alive, carry.gz0, BabSettings(batch=2, leaf_relus=0, refine_rows=16)
    )
    assume(decision.cut == 0)
    assert ("violated" if decision.found else "holds") == oracle.verdict(delta)
    if decision.found is not None:
        assert decision.found.replay["ok"]


def test_auto_runs_bab_on_deep_nets_and_on_wide_two_layer_robustness() -> None:
    """`wants_bab` by default: three or more hidden layers; two hidden layers with at least
    ``shallow_robust_relus`` ReLUs for plain robustness only (saliency keeps the MILP there)."""

    def setup(widths: list[int], delta: float | None):  # noqa: ANN202
        layers: list[nn.Module] = []
        prev = 3
        for w in widths:
            layers += [nn.Linear(prev, w), nn.ReLU()]
            prev = w
        m = nn.Sequential(*layers, nn.Linear(prev, 2)).double().eval()
        q = Robust([0.5] * 3, 0.1) if delta is None else SaliencyRobust([0.5] * 3, 0.1, delta)
        return build_setup(m, q, None)

    assert wants_bab(setup([4, 4, 4], None), None) and wants_bab(setup([4, 4, 4], 0.1), None)
    assert wants_bab(setup([40, 40], None), None)
    assert not wants_bab(setup([40, 40], 0.1), None) and not wants_bab(setup([4, 4], None), None)
    assert not wants_bab(setup([40], None), None)
    assert not wants_bab(setup([40, 40], None), False) and wants_bab(setup([4, 4], 0.1), True)


def test_shallow_nets_hand_over_to_the_milp_when_bab_runs_out_of_its_share(monkeypatch) -> None:  # noqa: ANN001
    """Two hidden layers: branch-and-bound gets half the limit, then the MILP stages decide the
    query; deeper nets keep the timeout ("unknown")."""
    import camlang.smt.stages as stages_module

    calls: list[float] = []

    def out_of_time(ctx, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append((ctx.deadline - ctx.t0) / ctx.timeout_s)
        raise SearchTimeout("branch-and-bound: out of time")

    monkeypatch.setattr(stages_module, "branch_and_bound", out_of_time)
    x = [0.5, 0.5, 0.5]
    for seed in range(20):
        torch.manual_seed(seed)
        widths = [3, 40, 40] if seed < 10 else [3, 8, 8, 8]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        m = nn.Sequential(*layers, nn.Linear(widths[-1], 2)).double().eval()
        before = len(calls)
        v = check(m, Robust(x, 0.5, box=(0.0, 1.0)), timeout_s=60, bab=True, attack=False)
        if len(calls) == before:  # decided before the stage (bounds, the point)
            continue
        if len(widths) == 3:
            assert calls[-1] == pytest.approx(0.5, abs=1e-3)
            assert v.status in ("holds", "violated"), v.reason  # the MILP stages decided it
        else:
            assert calls[-1] == pytest.approx(1.0, abs=1e-3) and v.status == "unknown"
    assert any(c < 0.9 for c in calls) and any(c > 0.9 for c in calls)

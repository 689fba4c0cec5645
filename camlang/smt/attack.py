"""A cheap falsifier: projected gradient ascent (PGD) with restarts, restricted to the constraints.

Leading verifiers look for counterexamples first and prove second; a violation found by an attack
costs milliseconds where a proof search may take minutes. `pgd_attack` maximises the violation
margin (witness.py) over the box with signed-gradient steps and random restarts. For saliency
properties every step must keep ``|VG(x') - VG(x)|_inf <= delta``: a step that breaks it is halved
(up to ten times) and otherwise not taken, so the walk never leaves the constrained set. The
input gradient of a ReLU network is constant on each activation region, so a walk that starts at
the point itself stays inside the regions whose gradient is close enough.

Every point the attack returns has been replayed in torch float64 (`camlang.smt.setup.replay`): the attack can
only ever produce "violated" with a real witness. The benchmarks also run it with 200 steps against
every "holds" as a soundness cross-check.
"""

from __future__ import annotations

import numpy as np
import torch

from camlang.smt.setup import Found, Setup, replay
from camlang.smt.witness import violation_margin

__all__ = ["pgd_attack"]

# a step that leaves the gradient constraint is halved up to this many times (2^-10 of the step:
# enough to stay inside the point's own activation region for small deltas)
_HALVINGS = 10


def _batch_margin(setup: Setup, logits: torch.Tensor) -> torch.Tensor:
    return torch.stack([violation_margin(y, setup.label, setup.query.disjuncts) for y in logits])


def _input_gradients(setup: Setup, x: torch.Tensor, label: int) -> torch.Tensor:
    xt = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = setup.module64(xt.reshape(-1, *setup.input_shape[1:])).reshape(x.shape[0], -1)
        (g,) = torch.autograd.grad(out[:, label].sum(), xt)
    return g


def pgd_attack(
    setup: Setup,
    deadline: float,
    steps: int = 40,
    restarts: int = 8,
    seed: int = 0,
    step_size: float | None = None,
) -> Found | None:
    """A replayed counterexample found by PGD, or None (which proves nothing)."""
    import time

    q = setup.query
    lo = torch.as_tensor(q.lo, dtype=torch.float64)
    hi = torch.as_tensor(q.hi, dtype=torch.float64)
    width = float((hi - lo).max()) if lo.numel() else 0.0
    if width <= 0:
        return None
    gen = torch.Generator().manual_seed(seed)
    grad_c = q.gradient
    g_label = int(np.argmax(grad_c.c)) if grad_c is not None else 0
    g0 = torch.as_tensor(grad_c.g0, dtype=torch.float64) if grad_c is not None else None
    start = (
        torch.as_tensor(setup.at, dtype=torch.float64)
        if setup.at is not None and np.all(setup.at >= q.lo) and np.all(setup.at <= q.hi)
        else (lo + hi) / 2
    )
    x = start.repeat(restarts, 1)
    if grad_c is None:  # random starts anywhere in the box (restart 0 keeps the point)
        x[1:] = lo + (hi - lo) * torch.rand(restarts - 1, lo.numel(), generator=gen, dtype=torch.float64)
    alpha = step_size if step_size is not None else 2.5 * width / 2 / max(steps, 1) * 4

    def within(xb: torch.Tensor) -> torch.Tensor:
        if g0 is None or grad_c is None:
            return torch.ones(xb.shape[0], dtype=torch.bool)
        vg = _input_gradients(setup, xb, g_label)
        return (vg - g0).abs().amax(dim=1) <= grad_c.delta

    for step in range(steps):
        if time.monotonic() >= deadline:
            return None
        xt = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = setup.module64(xt.reshape(-1, *setup.input_shape[1:])).reshape(restarts, -1)
            margin = _batch_margin(setup, logits)
            (g,) = torch.autograd.grad(margin.sum(), xt)
        for i in torch.nonzero(margin > 0).flatten().tolist():
            rec = replay(setup, x[i].numpy())
            if rec["ok"]:
                rec["found_at_step"] = step
                return Found(x[i].numpy().copy(), rec)
        direction = torch.sign(g)
        if grad_c is not None and step == 0:  # spread the restarts: a random first direction
            direction[1:] = torch.sign(torch.rand(restarts - 1, lo.numel(), generator=gen) - 0.5).double()
        a = torch.full((restarts, 1), alpha, dtype=torch.float64)
        moved = torch.zeros(restarts, dtype=torch.bool)
        for _ in range(_HALVINGS + 1):
            cand = torch.minimum(torch.maximum(x + a * direction, lo), hi)
            ok = within(cand) & ~moved
            x = torch.where(ok[:, None], cand, x)
            moved |= ok
            if bool(moved.all()):
                break
            a = torch.where(moved[:, None], a, a / 2)
        if step > 0 and not bool(moved.any()):
            break  # nothing moved: every later step would repeat this one exactly
    with torch.no_grad():
        logits = setup.module64(x.reshape(-1, *setup.input_shape[1:])).reshape(restarts, -1)
        margin = _batch_margin(setup, logits)
    for i in torch.nonzero(margin > 0).flatten().tolist():
        rec = replay(setup, x[i].numpy())
        if rec["ok"]:
            rec["found_at_step"] = steps
            return Found(x[i].numpy().copy(), rec)
    return None

"""Counterexamples with a margin: push a replayed witness into the strict interior of the unsafe set.

A solver's counterexample usually sits on the boundary of what it violates: the other class beats
the label by 1e-15, which is correct under the property's ``>=`` but does not survive float32, so a
user who replays it in their own pipeline may see no violation. `strengthen_witness` takes a
few short projected steps that increase the violation margin, staying inside the box and, for
saliency properties, keeping the input gradient within delta (every step is replayed in torch
float64 and rejected otherwise). It reports the margin in float64 and in float32; a witness whose
float32 margin is not positive is reported as boundary-only.

The margin is ``max_{j != label} y_j - y_label`` for label properties, and for VNN-LIB the largest
slack ``min(c - A y)`` over the unsafe disjuncts: positive means strictly inside the unsafe set.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from camlang.smt.setup import Setup, replay
from camlang.smt.verdict import ReplayRecord

__all__ = ["strengthen_witness", "violation_margin"]

# step sizes tried, relative to the box's widest side
_STEPS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5, 1e-6)
_ROUNDS = 4
# relative margin above which a witness counts as interior already (float32 resolves ~1e-7)
_ENOUGH = 1e-5


def violation_margin(
    logits: torch.Tensor, label: int | None, disjuncts: Sequence[tuple[np.ndarray, np.ndarray]]
) -> torch.Tensor:
    """How far the logits lie inside the unsafe set (positive: strictly inside)."""
    if label is not None:
        others = torch.cat([logits[:label], logits[label + 1 :]])
        return others.max() - logits[label]
    slacks = []
    for A, c in disjuncts:
        At = torch.as_tensor(np.atleast_2d(A), dtype=logits.dtype)
        ct = torch.as_tensor(np.asarray(c), dtype=logits.dtype)
        slacks.append((ct - At @ logits).min())
    return torch.stack(slacks).max()


def _margin_and_grad(setup: Setup, x: np.ndarray) -> tuple[float, np.ndarray]:
    xt = torch.tensor(x, dtype=torch.float64).reshape(setup.input_shape).requires_grad_(True)
    with torch.enable_grad():
        m = violation_margin(setup.module64(xt).reshape(-1), setup.label, setup.query.disjuncts)
        (g,) = torch.autograd.grad(m, xt)
    return float(m.detach()), g.reshape(-1).numpy()


def _float32_margin(setup: Setup, x: np.ndarray) -> float:
    module32 = copy.deepcopy(setup.module64).float()
    with torch.no_grad():
        y = module32(torch.tensor(x, dtype=torch.float32).reshape(setup.input_shape)).reshape(-1)
        return float(violation_margin(y, setup.label, setup.query.disjuncts))


def strengthen_witness(setup: Setup, x: np.ndarray, rec: ReplayRecord) -> tuple[np.ndarray, ReplayRecord]:
    """Push the replayed counterexample ``x`` deeper into the unsafe set (module docstring).

    Returns the (possibly moved) point and its replay record, with ``margin_f64``,
    ``margin_f32``, ``margin_before`` and ``boundary_only`` added. The result always replays.
    """
    q = setup.query
    scale = float(np.max(q.hi - q.lo)) if q.hi.size else 0.0
    best_x, best_rec = np.asarray(x, dtype=np.float64), rec
    best_m, grad = _margin_and_grad(setup, best_x)
    before = best_m
    scale_y = 1.0 + float(np.max(np.abs(rec.get("logits", [0.0]))))
    # a witness that already keeps a float32-visible margin is in the interior: leave it
    rounds = 0 if best_m >= _ENOUGH * scale_y and _float32_margin(setup, best_x) > 0 else _ROUNDS
    for _ in range(rounds):
        if scale <= 0 or not np.any(grad):
            break
        moved = False
        for s in _STEPS:
            cand = np.clip(best_x + s * scale * np.sign(grad), q.lo, q.hi)
            cand_rec = replay(setup, cand)
            if not cand_rec["ok"]:
                continue
            m, g = _margin_and_grad(setup, cand)
            if m > best_m:
                best_x, best_rec, best_m, grad = cand, cand_rec, m, g
                moved = True
                break
        if not moved:
            break
    out = best_rec.copy()
    out["margin_before"] = before
    out["margin_f64"] = best_m
    out["margin_f32"] = _float32_margin(setup, best_x)
    out["boundary_only"] = bool(best_m <= 0 or out["margin_f32"] <= 0)
    return best_x, out

"""Time limits, Ctrl-C and progress callbacks give "unknown" verdicts instead of exceptions."""

from __future__ import annotations

import torch
from torch import nn

from camlang.smt import Robust, Verdict, check, check_robust, check_saliency_robust


def _net() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def test_progress_is_called_and_verdict_is_complete() -> None:
    calls: list[tuple[int, int, str]] = []
    v = check_robust(_net(), [0.5] * 6, 0.5, progress=lambda d, t, m: calls.append((d, t, m)))
    assert isinstance(v, Verdict) and v.status in ("holds", "violated")
    assert v.backend == "milp" and v.seconds >= 0 and v.reason
    if not v.decided_by_bounds:
        assert calls and calls[-1][0] == calls[-1][1]


def test_interrupt_gives_unknown() -> None:
    def boom(done: int, total: int, msg: str) -> None:
        raise KeyboardInterrupt

    for backend in ("milp", "z3"):
        v = check_saliency_robust(_net(), [0.5] * 6, 2.0, 10.0, box=None, backend=backend, progress=boom)
        assert v.status == "unknown" and v.reason == "interrupted"
    assert check(_net(), Robust([0.5] * 6, 2.0), backend="z3-naive", progress=boom).reason == "interrupted"


def test_tiny_timeout_gives_unknown_with_reason() -> None:
    v = check_saliency_robust(_net(), [0.5] * 6, 2.0, 10.0, box=None, backend="z3", timeout_s=1e-4)
    assert v.status == "unknown" and "timeout" in v.reason
    w = check(_net(), Robust([0.5] * 6, 2.0), backend="z3-naive", timeout_s=1e-4)
    assert w.status == "unknown" and "timeout" in w.reason

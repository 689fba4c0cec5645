"""The final checks' incumbent rule (camlang/synth/finalise.py): a synthesized leader replaces the
best contained stdlib CAM only when it is confidently better on the final checks' images."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from camlang.synth.finalise import INCUMBENT_Z, _unless_confidently_better


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


def _decide(
    leader_values: torch.Tensor, incumbent_values: torch.Tensor, sign: float
) -> tuple[str, list[str]]:
    leader, incumbent = SimpleNamespace(nid=1), SimpleNamespace(nid=2)
    got = SimpleNamespace(values={1: leader_values, 2: incumbent_values})
    job: Any = SimpleNamespace(sign=sign, log=_Log())
    chosen = _unless_confidently_better(job, leader, incumbent, got, {"scorecam": incumbent})  # type: ignore[arg-type]
    return ("leader" if chosen is leader else "incumbent"), job.log.lines


def test_a_noisy_lead_keeps_the_stdlib_cam() -> None:
    """A higher mean whose paired difference is within the noise: the stdlib CAM stays."""
    gen = torch.Generator().manual_seed(0)
    incumbent = torch.rand(64, generator=gen)
    leader = incumbent + 0.01 + 0.2 * torch.randn(64, generator=gen)
    assert float(leader.mean()) > float(incumbent.mean())
    chosen, lines = _decide(leader, incumbent, sign=1.0)
    assert chosen == "incumbent"
    assert len(lines) == 1 and "scorecam stays the winner" in lines[0] and "64 images" in lines[0]


def test_a_confident_lead_wins() -> None:
    gen = torch.Generator().manual_seed(1)
    incumbent = torch.rand(64, generator=gen)
    leader = incumbent + 0.05 + 0.01 * torch.randn(64, generator=gen)
    assert _decide(leader, incumbent, sign=1.0) == ("leader", [])


def test_the_rule_follows_the_objective_direction() -> None:
    """For a minimized objective (sign -1), a lower leader is the better one."""
    gen = torch.Generator().manual_seed(2)
    incumbent = torch.rand(64, generator=gen)
    lower = incumbent - 0.05 + 0.01 * torch.randn(64, generator=gen)
    assert _decide(lower, incumbent, sign=-1.0)[0] == "leader"
    assert _decide(lower, incumbent, sign=1.0)[0] == "incumbent"


def test_the_bound_is_at_incumbent_z_standard_errors() -> None:
    """The lower bound is mean - Z * sd / sqrt(n): a mean just above Z standard errors wins, one
    just below does not."""
    n = 16
    base = torch.zeros(n)
    spread = torch.tensor([1.0, -1.0] * (n // 2))
    sd = float(spread.std(unbiased=True))
    just_above = INCUMBENT_Z * sd / n**0.5 * 1.01
    just_below = INCUMBENT_Z * sd / n**0.5 * 0.99
    assert _decide(base + just_above + spread, base, sign=1.0)[0] == "leader"
    assert _decide(base + just_below + spread, base, sign=1.0)[0] == "incumbent"


def test_nan_images_are_left_out_and_too_few_pairs_keep_the_incumbent() -> None:
    nan = float("nan")
    leader = torch.tensor([1.0, nan, 1.1, 1.2, 1.05, 1.15])
    incumbent = torch.tensor([0.0, 0.0, nan, 0.1, 0.05, 0.1])
    chosen, lines = _decide(leader, incumbent, sign=1.0)
    assert chosen == "leader"  # four finite pairs, all about +1
    chosen, lines = _decide(torch.tensor([1.0, nan]), torch.tensor([0.0, 0.0]), sign=1.0)
    assert chosen == "incumbent" and "on 1 image " in lines[0]

"""The `RISE` terminal (random-mask saliency on the insertion canvas): masks, values, capture,
export, typing and the proof oracle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from camlang.core.call_counter import CallCounter
from camlang.frontend.check import check_text
from camlang.frontend.program import Program
from camlang.metrics.transforms import blur
from camlang.runtime.capture import capture
from camlang.runtime.rise import (
    RISE_BLUR_SIGMA,
    RISE_KEEP,
    RISE_MASKS,
    probability_rows,
    rise_maps,
    rise_masks,
)
from tests.conftest import (
    assert_export_matches_engine,
    assert_proofs_treat_terminal_as_unknown,
    demo_live_model,
)

CAMS = """
cam rise = RISE
cam rise_gradcam = minmax(upsample(relu(sum_c(mean_hw(G) * A)))) + 0.5 * minmax(RISE)
cam rise_times = upsample(relu(sum_c(mean_hw(G) * A))) * RISE
cam rise_twice = RISE * 1 + 0
cam plain = max_c(abs(GX))
"""


@pytest.fixture(scope="module")
def program() -> Program:
    prog = check_text(CAMS, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    return prog


def _by_hand(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """RISE written out image by image and mask by mask, from the documented masks and canvas."""
    masks = rise_masks(x.shape[-2], x.shape[-1])
    out = torch.zeros(x.shape[0], 1, x.shape[-2], x.shape[-1])
    with torch.no_grad():
        for b in range(x.shape[0]):
            canvas = blur(x[b : b + 1], RISE_BLUR_SIGMA)
            for i in range(RISE_MASKS):
                pasted = x[b : b + 1] * masks[i] + canvas * (1 - masks[i])
                p = torch.softmax(model(pasted), dim=1)[0, targets[b]]
                out[b, 0] += p * masks[i]
    return out / (RISE_MASKS * RISE_KEEP)


def test_masks_are_smooth_shifted_grids_with_the_documented_keep_rate() -> None:
    masks = rise_masks(32, 32)
    assert masks.shape == (RISE_MASKS, 32, 32)
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1
    assert abs(float(masks.mean()) - RISE_KEEP) < 0.08
    # smooth: bilinear blends, not only 0 and 1; and no two masks alike
    assert float(((masks > 0.01) & (masks < 0.99)).float().mean()) > 0.2
    assert len({tuple(m.flatten()[::37].tolist()) for m in masks}) == RISE_MASKS
    # the same on every call, and for non-square images too
    torch.testing.assert_close(rise_masks(32, 32), masks, atol=0, rtol=0)
    assert rise_masks(20, 36).shape == (RISE_MASKS, 20, 36)


def test_capture_is_the_probability_weighted_mean_mask() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    model.append(nn.Linear(16, 3))
    model.eval()
    x = torch.rand(2, 3, 16, 16)
    counter = CallCounter()
    got = capture(model, None, x, {"RISE"}, counter=counter)
    torch.testing.assert_close(got.terminals["RISE"], _by_hand(model, x, got.targets), atol=1e-5, rtol=1e-4)
    assert got.terminals["RISE"].shape == (2, 1, 16, 16)
    assert counter.images == 2 + 2 * RISE_MASKS


def test_rise_finds_the_only_region_the_class_depends_on() -> None:
    class TopLeft(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            evidence = 20 * x[:, :, :8, :8].mean(dim=(1, 2, 3))
            return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)

    x = torch.zeros(1, 3, 32, 32)
    x[:, :, :8, :8] = 1.0
    rise = capture(TopLeft(), None, x, {"RISE"}).terminals["RISE"][0, 0]
    assert float(rise[:8, :8].mean()) > float(rise[16:, 16:].mean()) + 0.05


def test_a_batch_captured_in_two_parts_or_chunked_differently_gives_the_same_values() -> None:
    live = demo_live_model()
    x = torch.rand(4, 3, 64, 64)
    whole = capture(live.module, live.layer, x, {"RISE"}).terminals["RISE"]
    parts = [capture(live.module, live.layer, x[i : i + 2], {"RISE"}).terminals["RISE"] for i in (0, 2)]
    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-6, rtol=1e-5)
    targets = live.module(x).argmax(1)
    small = rise_maps(live.module, x, probability_rows(targets), chunk_size=3)
    torch.testing.assert_close(small, whole, atol=1e-6, rtol=1e-5)


def test_a_custom_objective_weights_the_masks_by_its_score() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).eval()
    x = torch.rand(2, 3, 8, 8)

    def second_logit(out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return out[:, 1]

    got = capture(model, None, x, {"RISE"}, scorer=second_logit).terminals["RISE"]
    want = rise_maps(model, x, second_logit)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["rise", "rise_gradcam", "rise_times"])
def test_exported_module_equals_in_process(program: Program, name: str, tmp_path: Path) -> None:
    assert_export_matches_engine(name, program.cams[name], "_rise_map", tmp_path)


def test_the_proof_oracle_treats_rise_as_its_own_unknown(program: Program) -> None:
    assert_proofs_treat_terminal_as_unknown(program, "rise", "rise_twice", "plain", "RISE")

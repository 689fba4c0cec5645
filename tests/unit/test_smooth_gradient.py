"""The `GX_smooth` terminal (SmoothGrad's mean input gradient): values, capture, export, typing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from camlang.core.call_counter import CallCounter
from camlang.frontend.check import check_text
from camlang.frontend.program import Program
from camlang.runtime.capture import capture
from camlang.runtime.smooth_gradient import SMOOTH_NOISE, SMOOTH_SAMPLES, image_seed, smooth_noise
from tests.conftest import (
    assert_export_matches_engine,
    assert_proofs_treat_terminal_as_unknown,
    demo_live_model,
)

CAMS = """
cam smooth = max_c(abs(GX_smooth))
cam smooth_x_input = abs(sum_c(GX_smooth * X))
cam guided_smooth = upsample(relu(sum_c(mean_hw(G) * A))) * max_c(abs(GX_smooth))
cam fine_smooth = upsample(relu(sum_c(mean_hw(G@"features.2") * A@"features.2"))) * max_c(abs(GX_smooth))
cam smooth_twice = max_c(abs(GX_smooth)) * 1 + 0
cam plain = max_c(abs(GX))
"""


@pytest.fixture(scope="module")
def program() -> Program:
    prog = check_text(CAMS, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    return prog


def _by_hand(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SmoothGrad written out image by image and copy by copy, from the documented noise."""
    out = torch.zeros_like(x)
    noise = smooth_noise(x)
    for b in range(x.shape[0]):
        for i in range(SMOOTH_SAMPLES):
            copy = (x[b : b + 1] + noise[b, i]).requires_grad_(True)
            (g,) = torch.autograd.grad(model(copy)[0, targets[b]], copy)
            out[b] += g[0] / SMOOTH_SAMPLES
    return out


def test_capture_is_the_mean_gradient_over_the_documented_noisy_copies() -> None:
    live = demo_live_model()
    x = torch.rand(3, 3, 64, 64)
    counter = CallCounter()
    got = capture(live.module, live.layer, x, {"GX_smooth", "GX"}, counter=counter)
    want = _by_hand(live.module, x, got.targets)
    torch.testing.assert_close(got.terminals["GX_smooth"], want, atol=1e-6, rtol=1e-4)
    assert counter.calls >= 1 + 3 * SMOOTH_SAMPLES // 64
    assert not torch.allclose(got.terminals["GX_smooth"], got.terminals["GX"], atol=1e-4)


def test_noise_is_the_documented_level_and_depends_only_on_the_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 5 - 1
    noise = smooth_noise(x)
    assert noise.shape == (4, SMOOTH_SAMPLES, 3, 16, 16)
    for b in range(4):
        span = float(x[b].max() - x[b].min())
        assert abs(float(noise[b].std()) / (SMOOTH_NOISE * span) - 1) < 0.05
    # alone, or in another batch at another position: the same noise
    torch.testing.assert_close(smooth_noise(x[2:3])[0], noise[2], atol=0, rtol=0)
    torch.testing.assert_close(smooth_noise(torch.stack([x[3], x[1]]))[1], noise[1], atol=0, rtol=0)
    # different images draw different noise
    assert image_seed(x[0]) != image_seed(x[1])
    assert image_seed(x[0]) == image_seed(x[0].clone().double())


def test_a_linear_model_has_the_same_smooth_and_plain_gradient() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
    x = torch.rand(2, 3, 8, 8)
    got = capture(model, None, x, {"GX_smooth", "GX"})
    torch.testing.assert_close(got.terminals["GX_smooth"], got.terminals["GX"], atol=1e-6, rtol=1e-5)


def test_a_batch_captured_in_two_parts_gives_the_same_values() -> None:
    live = demo_live_model()
    x = torch.rand(4, 3, 64, 64)
    whole = capture(live.module, live.layer, x, {"GX_smooth"}).terminals["GX_smooth"]
    parts = [capture(live.module, live.layer, x[i : i + 2], {"GX_smooth"}) for i in (0, 2)]
    torch.testing.assert_close(
        torch.cat([p.terminals["GX_smooth"] for p in parts]), whole, atol=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("name", ["smooth", "smooth_x_input", "guided_smooth", "fine_smooth"])
def test_exported_module_equals_in_process(program: Program, name: str, tmp_path: Path) -> None:
    assert_export_matches_engine(name, program.cams[name], "_smooth_input_gradients", tmp_path)


def test_the_proof_oracle_treats_gx_smooth_as_its_own_unknown(program: Program) -> None:
    assert_proofs_treat_terminal_as_unknown(program, "smooth", "smooth_twice", "plain", "GX_smooth")

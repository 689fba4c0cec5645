"""CPU model calls are cut to about `CPU_CALL_VALUES` input values (camlang/metrics/_common.py)."""

from __future__ import annotations

import torch

from camlang.metrics._common import CPU_CALL_VALUES, MIN_CPU_CALL, images_per_call, run_model


def test_cpu_calls_shrink_with_the_image_size() -> None:
    # the largest power of two within the budget: 10.7 fit at 64x64, 42.7 at 32x32
    assert CPU_CALL_VALUES // (3 * 64 * 64) == 10 and CPU_CALL_VALUES // (3 * 32 * 32) == 42
    assert images_per_call(torch.zeros(512, 3, 64, 64), 256) == 8
    assert images_per_call(torch.zeros(512, 3, 32, 32), 256) == 32
    assert images_per_call(torch.zeros(512, 1, 4, 4), 4096) == 4096
    # a 224x224 image alone is larger than the budget: still two per call
    assert images_per_call(torch.zeros(8, 3, 224, 224), 256) == MIN_CPU_CALL
    # the caller's cap wins, down to one image
    assert images_per_call(torch.zeros(8, 1, 4, 4), 3) == 3
    assert images_per_call(torch.zeros(8, 3, 224, 224), 1) == 1
    # an empty batch keeps the rule of its shape
    assert images_per_call(torch.zeros(0, 3, 64, 64), 256) == 8


def test_other_devices_keep_the_cap() -> None:
    assert images_per_call(torch.zeros(512, 3, 64, 64, device="meta"), 256) == 256


def test_run_model_cuts_cpu_calls_and_keeps_the_values() -> None:
    sizes: list[int] = []
    weight = torch.randn(3 * 64 * 64, 5, generator=torch.Generator().manual_seed(0))

    def model(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return x.flatten(1) @ weight

    x = torch.rand(25, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = run_model(model, x, 256, None)
    assert sizes == [8, 8, 8, 1]
    assert torch.allclose(out, x.flatten(1) @ weight, atol=1e-4)

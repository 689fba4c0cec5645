"""Shared test configuration: hypothesis profiles, the optional shared data folder, and the demo
CNN as a synthesis target (`demo_live_model`, used by the synthesis tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# "ci" is reproducible (derandomized) and never flaky on a loaded machine (no deadline); "dev"
# keeps hypothesis' defaults apart from the deadline, which a busy 2-core machine trips.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def shared_data() -> Path:
    """`../shared/data` beside the checkout, or `$CAMLANG_SHARED_DATA` when set (optional real
    models and images, as in the benchmarks), or skip the test."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("CAMLANG_SHARED_DATA", default))
    if not path.is_dir():
        pytest.skip(f"optional shared data folder {path} is absent")
    return path


def demo_live_model() -> Any:
    """The demo CNN at `features.6` as a `LiveModel` named "m" (the trained checkpoint when
    present, else seeded random weights)."""
    import torch

    from camlang.models import DEMO_CHECKPOINT, LoadedModel, ShapesCNN, load_demo_model
    from camlang.runtime.declaration_loading import LiveModel

    if DEMO_CHECKPOINT.is_file():
        loaded = load_demo_model()
    else:
        torch.manual_seed(0)
        loaded = LoadedModel(ShapesCNN().eval(), "shapes_cnn", "random weights (seed 0)")
    module = loaded.module.eval()
    return LiveModel("m", loaded, module.features[6], "features.6", False, torch.device("cpu"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one intra-op thread (timings and racing budgets stay comparable)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

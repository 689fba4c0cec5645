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


def assert_export_matches_engine(name: str, cam: Any, helper: str, tmp_path: Path) -> None:
    """`cam`'s generated module (which must define `helper`) gives the in-process engine's maps
    on two random images of the demo CNN."""
    import torch

    from camlang.backends.torch_source import generate, load_generated
    from camlang.runtime.cam_engine import CamEngine

    assert cam.node is not None
    source = generate(name, cam.node, cam.source_text)
    assert f"def {helper}(" in source
    module = load_generated(source, str(tmp_path / f"{name}.py"))
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__)
    live = demo_live_model()
    x = torch.rand(2, 3, 64, 64)
    ours = CamEngine(live.module, live.layer, {name: cam.node})(x).maps[name]
    theirs = cls(live.module, live.layer)(x)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def assert_proofs_treat_terminal_as_unknown(
    program: Any, cam: str, twice: str, plain: str, terminal: str
) -> None:
    """The proof oracle shows `cam` equivalent to `twice` (the same map written another way) and
    refutes it against `plain` with a counterexample that gives `terminal` its own value."""
    from camlang.synth import prove_equivalent

    def node(name: str) -> Any:
        n = program.cams[name].node
        assert n is not None
        return n

    b = program.builder
    assert prove_equivalent(b, node(cam), node(twice), timeout_s=10).status == "equivalent"
    other = prove_equivalent(b, node(cam), node(plain), timeout_s=10)
    assert other.status == "not_equivalent"
    assert other.counterexample is not None and terminal in other.counterexample


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one intra-op thread (timings and racing budgets stay comparable)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

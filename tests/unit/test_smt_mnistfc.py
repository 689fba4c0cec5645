"""Two mnistfc 256x2 regions (VNN-COMP 2021) with small time limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from camlang.smt import check_vnnlib, load_vnnlib

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnistfc"
pytestmark = pytest.mark.skipif(
    not (DATA / "mnist-net_256x2.onnx").is_file(), reason=f"mnistfc data not found at {DATA}"
)


@pytest.fixture(scope="module")
def net():
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    onnx2torch = pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    return onnx2torch.convert(onnx.load(str(DATA / "mnist-net_256x2.onnx"))).eval()


def test_robust_region_is_proved_by_bounds(net) -> None:
    prop = load_vnnlib(DATA / "prop_0_0.03.vnnlib", 784)
    assert prop.label == 4 and len(prop.disjuncts) == 9
    v = check_vnnlib(net, prop, timeout_s=20)
    assert v.status == "holds" and v.decided_by_bounds
    s = check_vnnlib(net, prop, delta=1e-4, timeout_s=20)
    assert s.status == "holds"


def test_misclassified_centre_is_a_replayed_counterexample(net) -> None:
    prop = load_vnnlib(DATA / "prop_12_0.05.vnnlib", 784)
    v = check_vnnlib(net, prop, delta=1e-4, timeout_s=20)
    assert v.status == "violated"
    assert v.replay is not None and v.replay["ok"] and v.replay["grad_diff"] <= 1e-4
    assert v.replay["argmax"] != prop.label

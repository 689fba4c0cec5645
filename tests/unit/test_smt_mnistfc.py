"""mnistfc 256x2 regions (VNN-COMP 2021) with small time limits: verdicts, PGD against every
`holds`, and the VNN-LIB point (the un-clipped box) against the MNIST test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from camlang.smt import VnnlibQuestion, check, check_vnnlib, falsify, load_vnnlib

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnistfc"
MNIST = DATA.parent / "mnist"
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


def test_box_with_a_misclassified_centre_is_violated_with_a_margin(net) -> None:
    # prop_12's image (test image 6112) is classified 9, but the centre of its clipped box is not
    prop = load_vnnlib(DATA / "prop_12_0.05.vnnlib", 784)
    v = check_vnnlib(net, prop, timeout_s=20)
    assert v.status == "violated"
    assert v.replay is not None and v.replay["ok"] and v.replay["argmax"] != prop.label
    assert v.replay["margin_f64"] > 0 and v.replay["margin_f32"] > 0 and not v.replay["boundary_only"]


@pytest.mark.skipif(
    not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"MNIST test set not found at {MNIST}"
)
def test_vnnlib_point_is_the_mnist_test_image() -> None:
    from camlang.data.idx import read_idx

    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz").reshape(10000, -1) / 255.0
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    found = {}
    files = sorted(DATA.glob("prop_*.vnnlib"))
    assert len(files) == 30
    for f in files:
        prop = load_vnnlib(f, 784)
        dist = np.abs(images - prop.point()[None, :]).max(axis=1)
        i = int(dist.argmin())
        # exact up to the float32 rounding of the file's numbers; the pixel step is 1/255
        assert dist[i] < 1e-7, (f.name, dist[i])
        # and the point lies inside its own box, so the shortcuts that start from it apply
        assert np.all(prop.point() >= prop.lo) and np.all(prop.point() <= prop.hi), f.name
        assert np.sort(dist)[1] > 1e-3  # and no other test image is close
        assert int(labels[i]) == prop.label
        found[f.stem] = i
    assert found["prop_2_0.03"] == found["prop_2_0.05"] == 49
    assert found["prop_0_0.03"] == 762 and found["prop_3_0.03"] == 8595


@pytest.mark.parametrize("name", ["prop_0_0.03", "prop_3_0.03"])
@pytest.mark.parametrize("delta", [1e-4, None])
def test_pgd_cannot_break_holds(net, name: str, delta: float | None) -> None:
    question = VnnlibQuestion(load_vnnlib(DATA / f"{name}.vnnlib", 784), delta)
    v = check(net, question, timeout_s=20)
    assert v.status == "holds", v.reason
    # 200-step PGD, restricted to the gradient constraint for delta: a witness would be a soundness bug
    assert falsify(net, question, steps=200, restarts=1, timeout_s=120) is None

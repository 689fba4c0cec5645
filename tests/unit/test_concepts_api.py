"""`prog.monitor("m")(images)`: per-image flags and scores in front of a deployed model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import camlang
from camlang.data import synthetic_shapes
from camlang.errors import CamlangError

ROOT = Path(__file__).resolve().parents[2]


def test_monitor_api_flags_images(tmp_path: Path) -> None:
    cam = tmp_path / "m.cam"
    cam.write_text(f"""
model net = checkpoint("{ROOT / "models" / "shortcut_cnn.pt"}", arch = "shapes_cnn")
data tr = synthetic_shapes(count = 200, seed = 30)
data ho = synthetic_shapes(count = 100, seed = 31)
data fit = synthetic_shapes(count = 200, seed = 40)
data val = synthetic_shapes(count = 200, seed = 41)
concepts seen = probes(net, tr, ho, concepts = ["red", "yellow", "green", "blue", "small", "large"])
monitor guard = concept_monitor(seen, net, fit = fit, calibrate = val, fpr = 0.1)
""")
    prog = camlang.load(cam)
    guard = prog.monitor("guard")
    images = synthetic_shapes(64, seed=60).get(range(64))
    out = guard(images.x)
    assert out.flags.shape == (64,) and out.flags.dtype == torch.bool
    assert out.scores.shape == (64,) and bool(torch.isfinite(out.scores).all())
    assert torch.equal(out.flags, out.scores > guard.threshold)
    assert torch.equal(out.predictions, prog.model("net").module(images.x).argmax(1))
    # calibrated on val: about 10% of val's correct images are flagged
    val = synthetic_shapes(200, seed=41).get(range(200))
    again = guard(val.x)
    correct = again.predictions == val.labels
    assert float(again.flags[correct].float().mean()) <= 0.1 + 1e-6
    with pytest.raises(CamlangError, match="unknown monitor"):
        prog.monitor("nope")
    with pytest.raises(CamlangError, match="unknown detector"):
        prog.monitor("guard", detector="vibes")

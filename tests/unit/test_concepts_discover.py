"""Discovered concepts (NMF of a layer's activations): deterministic for a seed, and usable like
any concept set (heatmaps, monitor) from a `.cam` program, with their top patches in the report."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from camlang.cli import main
from camlang.concepts.discover import discover_concepts, nmf
from camlang.concepts.features import extract_features
from camlang.data import synthetic_shapes
from camlang.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
LAYER = "features.6"


def _model() -> torch.nn.Module:
    return load_checkpoint(str(ROOT / "models" / "shapes_cnn.pt"), "shapes_cnn").module.eval()


def test_nmf_is_non_negative_ordered_and_seeded() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(200, 3, generator=gen) @ torch.rand(3, 12, generator=gen)
    u, v = nmf(a, 3, seed=1)
    assert bool((u >= 0).all()) and bool((v >= 0).all())
    assert float((a - u @ v).norm() / a.norm()) < 0.05
    assert torch.allclose(v.norm(dim=1), torch.ones(3))
    mass = u.sum(0)
    assert bool((mass[:-1] >= mass[1:]).all())
    u2, v2 = nmf(a, 3, seed=1)
    assert torch.equal(u, u2) and torch.equal(v, v2)


def test_discovered_concepts_are_deterministic_for_a_seed() -> None:
    model, data = _model(), synthetic_shapes(60, seed=60)
    a = discover_concepts(model, data, LAYER, count=4, seed=3, images=40, steps=60)
    b = discover_concepts(model, data, LAYER, count=4, seed=3, images=40, steps=60)
    other = discover_concepts(model, data, LAYER, count=4, seed=4, images=40, steps=60)
    assert torch.equal(a.basis, b.basis) and torch.equal(a.projection, b.projection)
    assert torch.equal(a.patches.pixels, b.patches.pixels)
    assert torch.equal(a.patches.image_index, b.patches.image_index)
    assert not torch.equal(a.basis, other.basis)
    assert a.names == ("nmf0", "nmf1", "nmf2", "nmf3") and 0.0 < a.relative_error < 1.0
    assert a.patches.pixels.shape[:3] == (4, 8, 3)
    scores = a.scores(extract_features(model, data, [LAYER]))
    assert scores.shape == (60, 4) and bool(torch.isfinite(scores).all())


def test_discovered_concepts_feed_heatmaps_and_a_monitor(tmp_path: Path) -> None:
    cam = tmp_path / "discover.cam"
    cam.write_text(
        f'model shortcut = checkpoint("{ROOT}/models/shortcut_cnn.pt", arch = "shapes_cnn") at "{LAYER}"\n'
        "data shifted = synthetic_shapes(count = 120, seed = 32)\n"
        "data fit = synthetic_shapes(count = 120, seed = 34)\n"
        "data cal = synthetic_shapes(count = 80, seed = 35)\n"
        f'concepts found = discovered(shortcut, shifted, layer = "{LAYER}", count = 4, seed = 1, images = 60)\n'
        "monitor guard = concept_monitor(found, shortcut, fit = shifted, calibrate = cal)\n"
        "heatmaps found on shortcut, fit\n"
        "monitor guard on fit\n"
    )
    assert main(["run", str(cam), "--out", str(tmp_path / "out")]) == 0
    folder = tmp_path / "out" / "concepts"
    sections = json.loads((folder / "concepts.json").read_text())["sections"]
    heat = next(s for s in sections if s["kind"] == "heatmaps")
    assert heat["source"]["kind"] == "discovered" and heat["source"]["concepts"][0] == "nmf0"
    assert (folder / heat["patches_png"]).stat().st_size > 1000
    assert "top patches" not in heat and "discovered concepts" in (folder / "concepts.md").read_text()
    monitor = next(s for s in sections if s["kind"] == "monitor")
    (test,) = monitor["tests"].values()
    assert [d["detector"] for d in test["detectors"]] == ["monitor", "msp", "energy", "combined"]
    assert all("auroc_low" in d and d["requested_fpr"] == 0.05 for d in test["detectors"])

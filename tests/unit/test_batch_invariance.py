"""Every random draw is keyed to (run seed, dataset index, op): results do not depend on batching.

The images are scored the way `camlang run` scores them (`camlang/run/evaluate.py`): a `CamEngine` and
an `Evaluator` per batch of `Dataset.batches(batch_size)`, with `Batch.indices` passed to both.
Each stochastic op and metric (noise, stability, max/avg sensitivity, ROAD, direction accuracy)
and each random method (SmoothGrad, DeepCover, extremal perturbation) must give every image the
same value at batch sizes 1, 7 and 64 and at another chunk size, to 1e-6. Engineer "scale"
shards images across processes relying on exactly this.
"""

from __future__ import annotations

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.data.base import Dataset
from camlang.frontend.check import check_text
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator

SOURCE = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
cam sg = smoothgrad(3, 0.15)
cam dc = deepcover("ochiai", 20)
cam ex = extremal(0.1, 3)
metric noisy_drop = minimize P - P_at(noise(X, 0.2, 3))
metric noisy_map = minimize mean(abs(noise(L, 0.1) - L))
metric direction = maximize direction_accuracy(L, 0.01, 8)
metric road_threshold = minimize road(L, "morf", "threshold")
metric sens_max = minimize max_sensitivity(0.05, 2)
metric sens_avg = minimize avg_sensitivity(0.05, 2)
metric sens_relative = minimize max_sensitivity(0.05, 2, "relative")
"""
SEED = 3
BATCH_SIZES = (1, 7, 64)

# (cams, metrics, images, image size). The cheap random metrics run on 66 images, so batch size 64
# leaves a batch of 2; the costly ones (DeepCover's mutants, extremal's optimisation, ROAD's sparse
# solves, the stdlib's 10 sensitivity draws) on 9 images, which batch size 64 holds in one batch.
GROUPS = {
    "noise": (
        ["gradcam"],
        ["stability", "noisy_drop", "noisy_map", "sens_max", "sens_avg", "sens_relative"],
        66,
        64,
    ),
    "methods": (["sg", "dc", "ex"], ["deletion", "pointing_game", "stability"], 9, 64),
    "road": (["gradcam"], ["road_combined", "road_threshold"], 9, 32),
    "sensitivity": (
        ["gradcam"],
        ["max_sensitivity", "avg_sensitivity", "direction", "sufficient_fraction"],
        9,
        64,
    ),
}


@pytest.fixture(scope="module")
def world() -> dict:
    program = check_text(SOURCE, "<test>")
    assert not program.has_errors, program.diagnostics
    loaded = load_demo_model()
    layer = resolve_layer(loaded.module, DEMO_TARGET_LAYER)
    live = LiveModel("shapes", loaded, layer, DEMO_TARGET_LAYER, False, torch.device("cpu"))
    return {"program": program, "live": live}


def _score(
    world: dict,
    data: Dataset,
    cams: list[str],
    metrics: list[str],
    batch_size: int,
    engine_chunk: int = 64,
    metric_chunk: int = 256,
) -> dict[str, torch.Tensor]:
    """Per-image values `[K, N]` by metric, in dataset order, scored batch by batch as `camlang run` does."""
    program, live = world["program"], world["live"]
    nodes = {c: program.cams[c].node for c in cams}
    engine = CamEngine(live.module, live.layer, nodes, chunk_size=engine_chunk, seed=SEED)
    evaluator = Evaluator(live, engine, chunk_size=metric_chunk, seed=SEED)
    mdefs = {m: program.metrics[m] for m in metrics}
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in metrics}
    maps: list[torch.Tensor] = []
    for batch in data.batches(batch_size):
        cam_batch = engine(batch.x, None, indices=batch.indices)
        maps.append(torch.stack([cam_batch.maps[c].detach() for c in cams], 1))
        values = evaluator.score(cams, cam_batch, batch.x, batch.masks, mdefs, indices=batch.indices)
        for m in metrics:
            parts[m].append(values.values[m])
    out = {m: torch.cat(v, dim=1) for m, v in parts.items()}
    out["maps"] = torch.cat(maps)
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    for name in a:
        gap = (a[name] - b[name]).abs().nan_to_num(0.0).max()
        assert torch.equal(a[name].isnan(), b[name].isnan()), f"{name}: NaN pattern differs ({what})"
        # float32 convolutions round differently for different batch sizes (about 1e-7 relative):
        # values are compared to 1e-6 relative to their size (the Frobenius sensitivities are ~4), and
        # maps to 1e-5, since min-max normalisation of extremal's nearly flat masks scales rounding up.
        tol = 1e-5 if name == "maps" else 1e-6 * max(1.0, float(a[name].abs().nan_to_num(0.0).max()))
        assert float(gap) <= tol, f"{name}: max gap {float(gap):.3g} ({what})"


@pytest.mark.parametrize("group", list(GROUPS))
def test_values_do_not_depend_on_batch_or_chunk_size(world: dict, group: str) -> None:
    cams, metrics, count, size = GROUPS[group]
    data = synthetic_shapes(count=count, size=size, seed=5)
    runs = {bs: _score(world, data, cams, metrics, bs) for bs in BATCH_SIZES}
    for bs in BATCH_SIZES[1:]:
        _assert_same(runs[BATCH_SIZES[0]], runs[bs], f"batch size 1 vs {bs}")
    _assert_same(
        runs[7], _score(world, data, cams, metrics, 7, engine_chunk=3, metric_chunk=5), "chunk sizes"
    )
    for name in metrics:
        assert runs[7][name].isfinite().all(), name


def test_values_follow_the_image_not_its_position(world: dict) -> None:
    """A shuffled view gives each image the values it had in dataset order; another seed moves them."""
    cams, metrics = ["gradcam", "sg"], ["stability", "noisy_drop", "sens_max"]
    data = synthetic_shapes(count=10, size=64, seed=5)
    ordered = _score(world, data, cams, metrics, 4)
    view = data.shuffle(7)
    shuffled = _score(world, view, cams, metrics, 3)
    order = torch.cat([b.indices for b in view.batches(100)])
    _assert_same(
        {k: v[..., order] if k != "maps" else v[order] for k, v in ordered.items()}, shuffled, "shuffled"
    )
    program, live = world["program"], world["live"]
    nodes = {c: program.cams[c].node for c in cams}
    engine = CamEngine(live.module, live.layer, nodes, seed=SEED + 1)
    batch = data.get(list(range(10)))
    cam_batch = engine(batch.x, None, indices=batch.indices)
    other = Evaluator(live, engine, seed=SEED + 1).score(
        cams, cam_batch, batch.x, None, {"stability": program.metrics["stability"]}, indices=batch.indices
    )
    assert not torch.allclose(other.values["stability"], ordered["stability"], atol=1e-6)
    assert not torch.allclose(cam_batch.maps["sg"], ordered["maps"][:, 1], atol=1e-6)

"""Metric cost against the most direct peer computation, measured in the same run.

1. Average Drop and Increase in Confidence for the ten stdlib CAMs on 64 demo images:
   camlang (one CamEngine + one Evaluator.score over all ten cams, as `camlang run` does) vs a
   per-CAM loop of pytorch-grad-cam's CAM classes and its DropInConfidence /
   IncreaseInConfidence metric classes. Target: >= 5x.
2. Sufficient fraction on 8 images: the batched search (`sufficient_fraction`, pixel-exact)
   vs the one-pixel-at-a-time procedure (`sufficient_fraction_linear`, step 1): forward
   passes (target >= 50x fewer) and times.
3. Every metric camlang and Quantus 0.6.0 both define, on the same maps, model and images:
   per-image agreement, time ratio and definition differences (`bench_quantus.py`; needs the
   `bench` extra).

Run: python benchmarks/bench_metrics.py  (only part 3: python benchmarks/bench_quantus.py)
"""

from __future__ import annotations

import os
import time

import torch
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

from camlang import metrics as M
from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator

PEERS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "gradcam_elementwise": GradCAMElementWise,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


def bench_confidence(n: int = 64) -> None:
    program = check_text('import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n', "<bench>")
    loaded = load_demo_model()
    model = loaded.module.eval()
    layer = resolve_layer(model, DEMO_TARGET_LAYER)
    live = LiveModel("shapes", loaded, layer, DEMO_TARGET_LAYER, False, torch.device("cpu"))
    x = synthetic_shapes(count=n, size=64, seed=1).get(list(range(n))).x
    cams = list(PEERS)
    metrics = {m: program.metrics[m] for m in ("average_drop", "increase_in_confidence")}

    start = time.perf_counter()
    engine = CamEngine(model, layer, {c: program.cams[c].node for c in cams})  # type: ignore[misc]
    batch = engine(x)
    ours = Evaluator(live, engine, chunk_size=256).score(cams, batch, x, None, metrics).values
    t_ours = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    theirs: dict[str, float] = {}
    for name, cls in PEERS.items():
        method = cls(model=model, target_layers=[layer])
        maps = method(x, targets=[ClassifierOutputTarget(t) for t in predicted])
        soft = [ClassifierOutputSoftmaxTarget(t) for t in predicted]
        drop = DropInConfidence()(x, maps, soft, model)
        IncreaseInConfidence()(x, maps, soft, model)
        with torch.no_grad():
            p = torch.softmax(model(x), 1)[torch.arange(n), predicted].numpy()
        theirs[name] = float((100 * drop / p).mean())
    t_peer = time.perf_counter() - start

    print(f"(1) average drop + increase in confidence, 10 CAMs x {n} images (demo CNN)")
    print(f"    camlang (one evaluate)          {t_ours:8.2f} s")
    print(f"    pytorch-grad-cam per-CAM loop   {t_peer:8.2f} s")
    print(f"    speed-up                        {t_peer / t_ours:8.1f}x  (target >= 5x)")
    gaps = {c: abs(float(ours["average_drop"][k].mean()) - theirs[c]) for k, c in enumerate(cams)}
    print("    |mean average drop| difference per CAM: " + ", ".join(f"{c} {g:.3g}" for c, g in gaps.items()))
    worst = max(gaps.values())
    print(f"    largest |mean average drop| difference across CAMs: {worst:.3g} points")


def bench_sufficiency(n: int = 8) -> None:
    loaded = load_demo_model()
    model = loaded.module.eval()
    layer = resolve_layer(model, DEMO_TARGET_LAYER)
    program = check_text('import "stdlib/cams.cam"\n', "<bench>")
    x = synthetic_shapes(count=n, size=64, seed=1).get(list(range(n))).x
    batch = CamEngine(model, layer, {"gradcam": program.cams["gradcam"].node})(x)  # type: ignore[arg-type]
    L, targets = batch.maps["gradcam"].detach(), batch.targets

    def model_fn(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(t)

    start = time.perf_counter()
    fast = M.sufficient_fraction(model_fn, x, L, targets, tol=None)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = M.sufficient_fraction_linear(model_fn, x, L, targets, step=1)
    t_slow = time.perf_counter() - start
    agree = int((fast.pixels == slow.pixels).sum())
    print(f"(2) sufficient fraction, pixel-exact, {n} images of 64x64 (demo CNN, Grad-CAM)")
    print(f"    batched search      {fast.forward_passes:7d} forward passes  {t_fast:7.2f} s")
    print(f"    one pixel at a time {slow.forward_passes:7d} forward passes  {t_slow:7.2f} s")
    print(
        f"    ratio               {slow.forward_passes / fast.forward_passes:7.1f}x fewer passes (target >= 50x), "
        f"{t_slow / t_fast:.1f}x faster; same answer on {agree}/{n} images"
    )
    start = time.perf_counter()
    shipped = M.sufficient_fraction(model_fn, x, L, targets)  # the stdlib metric's resolution: 1/256
    t_shipped = time.perf_counter() - start
    within = int(((shipped.fraction - slow.fraction).abs() <= 1 / 256 + 1e-9).sum())
    print(
        f"    stdlib setting (tol 1/256): {shipped.forward_passes} forward passes, {t_shipped:.2f} s, "
        f"{slow.forward_passes / shipped.forward_passes:.1f}x fewer passes; within 1/256 of the "
        f"pixel-exact scan on {within}/{n} images"
    )


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")  # ScoreCAM / AblationCAM progress bars
    torch.set_num_threads(2)
    bench_confidence()
    bench_sufficiency()
    from bench_quantus import main as bench_quantus  # benchmarks/ is on sys.path when run as a script

    bench_quantus()

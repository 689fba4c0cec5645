"""camlang vs pytorch-grad-cam, same process, same inputs: prints time ratios (theirs / ours).

    python benchmarks/bench_vs_gradcam.py [--repeats 3] [--size 224] [--score-size 112]

(a) one Grad-CAM on ResNet-50, batch 8, 224x224, CPU           target >= 2x
(b) six gradient CAMs at once vs six pytorch-grad-cam calls     target >= 8x
(c) Score-CAM on ResNet-18 at equal batch size                  target >= 1x
(d) the drop-in (camlang.compat.grad_cam.GradCAM), same call      target >= 1x
(e) the drop-in, two layers with aug_smooth                      target >= 1x
Models use weights=None (no downloads); timings are the median of --repeats runs after a warm-up.
Both libraries also have their maps compared, so a fast wrong answer cannot pass unnoticed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from pytorch_grad_cam import (
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from camlang.frontend.check import check_file
from camlang.paths import stdlib_dir
from camlang.runtime.cam_engine import CamEngine

GRADIENT_CAMS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "gradcam_elementwise": GradCAMElementWise,
}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--score-size", type=int, default=112)
    parser.add_argument("--score-batch", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    cams = {n: c.node for n, c in check_file(stdlib_dir() / "cams.cam").cams.items()}
    rows = []

    # (a) one Grad-CAM on ResNet-50
    r50 = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    ours_engine = CamEngine(r50, r50.layer4, {"gradcam": cams["gradcam"]})
    t_ours, ours = timed(lambda: ours_engine(x).maps["gradcam"], args.repeats)
    targets = [ClassifierOutputTarget(int(t)) for t in ours_engine(x).targets]
    peer = GradCAM(r50, target_layers=[r50.layer4])
    t_theirs, theirs = timed(lambda: peer(x, targets=targets), args.repeats)
    diff = float(np.abs(ours.numpy() - theirs).max())  # type: ignore[union-attr]
    rows.append(
        ("(a) Grad-CAM, ResNet-50, batch %d, %dpx" % (args.batch, args.size), t_theirs, t_ours, 2.0, diff)
    )

    # (b) six gradient CAMs at once
    six = CamEngine(r50, r50.layer4, {n: cams[n] for n in GRADIENT_CAMS})
    t_ours, ours6 = timed(lambda: six(x).maps, args.repeats)
    peers = {n: cls(r50, target_layers=[r50.layer4]) for n, cls in GRADIENT_CAMS.items()}
    t_theirs, theirs6 = timed(lambda: {n: p(x, targets=targets) for n, p in peers.items()}, args.repeats)
    diff = max(float(np.abs(ours6[n].numpy() - theirs6[n]).max()) for n in GRADIENT_CAMS)  # type: ignore[index]
    rows.append(("(b) six gradient CAMs, ResNet-50", t_theirs, t_ours, 8.0, diff))

    # (c) Score-CAM on ResNet-18 at equal batch size
    r18 = torchvision.models.resnet18(weights=None).eval()
    xs = torch.randn(args.score_batch, 3, args.score_size, args.score_size)
    score = CamEngine(r18, r18.layer4, {"scorecam": cams["scorecam"]}, chunk_size=16)
    t_ours, ours_s = timed(lambda: score(xs).maps["scorecam"], max(1, args.repeats - 2))
    st = [ClassifierOutputTarget(int(t)) for t in score(xs).targets]
    peer_s = ScoreCAM(r18, target_layers=[r18.layer4])
    peer_s.batch_size = 16
    t_theirs, theirs_s = timed(lambda: peer_s(xs, targets=st), max(1, args.repeats - 2))
    diff = float(np.abs(ours_s.numpy() - theirs_s).max())  # type: ignore[union-attr]
    rows.append(
        (
            f"(c) Score-CAM, ResNet-18, batch {args.score_batch}, {args.score_size}px, 16 per call",
            t_theirs,
            t_ours,
            1.0,
            diff,
        )
    )

    # (d), (e) the drop-in: the same pytorch-grad-cam call with only the import changed
    from camlang.compat import grad_cam as compat

    drop = compat.GradCAM(r50, target_layers=[r50.layer4])
    t_ours, ours_d = timed(lambda: drop(x, targets=targets), args.repeats)
    t_theirs, theirs_d = timed(lambda: peer(x, targets=targets), args.repeats)
    rows.append(
        ("(d) drop-in GradCAM, ResNet-50", t_theirs, t_ours, 1.0, float(np.abs(ours_d - theirs_d).max()))
    )
    two = [r50.layer3, r50.layer4]
    drop2, peer2 = compat.GradCAM(r50, target_layers=two), GradCAM(r50, target_layers=two)
    t_ours, ours_e = timed(lambda: drop2(x, targets=targets, aug_smooth=True), max(1, args.repeats - 1))
    t_theirs, theirs_e = timed(lambda: peer2(x, targets=targets, aug_smooth=True), max(1, args.repeats - 1))
    rows.append(
        (
            "(e) drop-in GradCAM, 2 layers, aug_smooth",
            t_theirs,
            t_ours,
            1.0,
            float(np.abs(ours_e - theirs_e).max()),
        )
    )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':58} {'grad-cam s':>10} {'camlang s':>10} {'ratio':>7} {'target':>7} {'max |diff|':>11}")
    for name, theirs_t, ours_t, target, d in rows:
        ratio = theirs_t / ours_t
        flag = "ok" if ratio >= target else "BELOW"
        print(f"{name:58} {theirs_t:10.3f} {ours_t:10.3f} {ratio:6.2f}x {target:5.1f}x {d:11.2e} {flag}")


if __name__ == "__main__":
    main()

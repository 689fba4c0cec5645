"""Convolution benchmark: the small MNIST CNN (models/mnist_cnn.pt) under the complete verifier.

The network is `camlang.models.mnist_cnn` (Conv 1->8 4x4/2, ReLU, Conv 8->16 4x4/2, ReLU,
Linear 400->100, ReLU, Linear 100->10; 1852 ReLUs), trained by scripts/train_mnist_cnn.py on
MNIST test images 1000-9999. The queries are about the first N test images (default 10), which
it never saw: robustness, then saliency robustness for each delta (default 1e-4, 1e-3, 1e-2, as
in bench_sr.py's mnistfc part), at each eps (default 0.02) in the pixel box [0, 1], with a time
limit per query. Each query runs single-threaded.

Every violation must carry a replay that succeeded in torch float64 (its float64/float32
margins are printed); every "holds" is attacked by a 200-step PGD restricted to the gradient
constraint, and a PGD witness there is reported as a SOUNDNESS BUG (exit status 1). A timeout
is "unknown". Target (issue 27): robustness and saliency robustness decided on at least 8 of
10 images at eps 0.02.

The images come from ../shared/data/mnist ($CAMLANG_SHARED_DATA/mnist when set); without them
the benchmark says so and stops. `--onnx` checks models/mnist_cnn.onnx (through onnx2torch)
instead of the checkpoint.

Usage: python benchmarks/bench_cnn.py [--images 10] [--eps 0.02] [--deltas 1e-4,1e-3,1e-2]
       [--timeout 120] [--pgd-steps 200] [--onnx]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camlang.data.idx import mnist  # noqa: E402
from camlang.models import load_checkpoint, load_onnx  # noqa: E402
from camlang.models.mnist_cnn import MNIST_CNN_CHECKPOINT  # noqa: E402
from camlang.smt import Question, Robust, SaliencyRobust, Verdict, check, falsify  # noqa: E402

DATA = Path(os.environ.get("CAMLANG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mnist"


@dataclass(frozen=True)
class Row:
    """One query's outcome: the verdict, and a PGD witness against a "holds" (a soundness bug)."""

    image: int
    label: int  # the image's true label; the property is about the class the net predicts
    verdict: Verdict
    bug: str | None


def _how(v: Verdict) -> str:
    """What decided the query, and a violation's replay margins."""
    if v.status == "unknown":
        return v.reason or ""
    if v.decided_by_bounds:
        return "bounds"
    if v.status == "violated" and v.replay is not None:
        r = v.replay
        tag = " boundary-only" if r.get("boundary_only") else ""
        return (
            f"{v.stats.get('found_by', '')} margin f64 {r['margin_f64']:.3g} f32 {r['margin_f32']:.3g}{tag}"
        )
    return (v.reason or "").split(" (")[0]


def _one(
    net: nn.Module, image: int, labels: tuple[int, int], question: Question, timeout: float, steps: int
) -> Row:
    v = check(net, question, timeout_s=timeout)
    if v.status == "violated":
        assert v.replay is not None and v.replay["ok"], f"violated without a successful replay: {v}"
    bug = None
    if v.status == "holds":
        w = falsify(net, question, steps=steps, restarts=4, timeout_s=max(timeout, 60))
        if w is not None:
            bug = f"PGD broke `holds` on image {image}: logits {w[1]['logits']}"
    label, predicted = labels
    seen = f"label {label}" + ("" if predicted == label else f", predicted {predicted}")
    print(f"  image {image} ({seen}): {v.status:<8} {v.seconds:7.2f} s  {_how(v)}", flush=True)
    return Row(image, label, v, bug)


def _summary(title: str, rows: list[Row]) -> int:
    """Print decided / median / max for one part; return how many it decided."""
    decided = [r for r in rows if r.verdict.status != "unknown"]
    seconds = [r.verdict.seconds for r in decided]
    median = statistics.median(seconds) if seconds else float("nan")
    counts = {s: sum(r.verdict.status == s for r in rows) for s in ("holds", "violated", "unknown")}
    print(
        f"{title:<40} decided {len(decided):>2}/{len(rows)}  holds {counts['holds']:>2}  "
        f"violated {counts['violated']:>2}  unknown {counts['unknown']:>2}  "
        f"median over decided {median:6.2f} s  max {max(r.verdict.seconds for r in rows):6.2f} s"
    )
    return len(decided)


def _network(use_onnx: bool) -> nn.Module:
    if use_onnx:
        return load_onnx(MNIST_CNN_CHECKPOINT.with_suffix(".onnx")).module
    return load_checkpoint(MNIST_CNN_CHECKPOINT, "mnist_cnn").module


def main() -> int:
    """Run every part; exit status 1 on a soundness bug."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--eps", default="0.02", help="comma-separated eps values")
    parser.add_argument("--deltas", default="1e-4,1e-3,1e-2", help="comma-separated saliency deltas")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per query")
    parser.add_argument("--pgd-steps", type=int, default=200)
    parser.add_argument("--onnx", action="store_true", help="check models/mnist_cnn.onnx instead")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"MNIST images not found in {DATA}: set CAMLANG_SHARED_DATA; nothing to do")
        return 0
    torch.set_num_threads(1)
    net = _network(args.onnx)
    batch = mnist(DATA).get(list(range(args.images)))
    assert batch.labels is not None
    x, labels = batch.x.double(), [int(v) for v in batch.labels]
    with torch.no_grad():
        predicted = net(x.float()).argmax(1).tolist()
    print(f"mnist_cnn ({'onnx' if args.onnx else 'checkpoint'}), test images 0-{args.images - 1}, ", end="")
    print(f"{sum(p == y for p, y in zip(predicted, labels))}/{args.images} classified correctly")
    print(f"load average before: {os.getloadavg()}")
    summaries: list[tuple[str, list[Row]]] = []
    for eps in [float(e) for e in args.eps.split(",")]:
        parts: list[tuple[str, float | None]] = [(f"robustness, eps {eps:g}", None)]
        deltas = [float(d) for d in args.deltas.split(",")]
        parts += [(f"saliency, eps {eps:g}, delta {d:g}", d) for d in deltas]
        for title, delta in parts:
            print(f"== {title}, {args.timeout:g} s per query ==")
            rows = []
            for i in range(args.images):
                point = x[i : i + 1]
                q: Question = (
                    Robust(point, eps, None, (0.0, 1.0))
                    if delta is None
                    else SaliencyRobust(point, eps, delta, None, (0.0, 1.0))
                )
                rows.append(_one(net, i, (labels[i], predicted[i]), q, args.timeout, args.pgd_steps))
            summaries.append((title, rows))
    print(f"load average after: {os.getloadavg()}")
    print("== summary ==")
    for title, rows in summaries:
        _summary(title, rows)
    bugs = [r.bug for _, rows in summaries for r in rows if r.bug is not None]
    for bug in bugs:
        print(f"SOUNDNESS BUG: {bug}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())

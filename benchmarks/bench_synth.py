"""Benchmark: racing against exhaustive selection, and enumeration throughput.

On the demo model (trained checkpoint when present, else seeded random weights) with the
objective `deletion` and `max_size = 9` over `gradient_weights`: racing should return the
exhaustive winner, or one whose training score lies within the exhaustive winner's confidence
interval, with at least 5x fewer forward passes. Prints both numbers and the ratio.

    .venv/bin/python benchmarks/bench_synth.py [--train 32] [--max-size 9] [--objective deletion]
"""

from __future__ import annotations

import argparse
import time

import torch

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.models import DEMO_CHECKPOINT, LoadedModel, ShapesCNN, load_demo_model
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import synthesize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=32)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--max-size", type=int, default=9)
    ap.add_argument("--objective", default="deletion")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if DEMO_CHECKPOINT.is_file():
        loaded = load_demo_model()
    else:
        torch.manual_seed(0)
        loaded = LoadedModel(ShapesCNN().eval(), "shapes_cnn", "random weights (no checkpoint yet)")
    print("model:", loaded.source)
    live = LiveModel("m", loaded, loaded.module.features[6], "features.6", False, torch.device("cpu"))
    outcomes = {}
    for strategy in ("racing", "exhaustive"):
        src = f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = {args.train}, size = 64, seed = 0)
synthesize best from gradient_weights {{ model = m data = tr objective = {args.objective}
  max_size = {args.max_size} strategy = "{strategy}" }}
"""
        prog = check_text(src, file_checks=False)
        t0 = time.perf_counter()
        out = synthesize(
            prog,
            prog.synths["best"],
            live,
            synthetic_shapes(args.train, 64, 0),
            synthetic_shapes(args.holdout, 64, 1),
        )
        dt = time.perf_counter() - t0
        outcomes[strategy] = (out, dt)
        c = out.result.counts
        print(
            f"{strategy:>10}: winner {out.source_text}  train {out.result.candidates[0].train_score:.5f}  "
            f"search passes {out.search_forward_passes}  total passes {out.forward_passes}  {dt:.1f} s  "
            f"(enumerated {c.enumerated}, distinct {dict(c.distinct_after)})"
        )
    raced, full = outcomes["racing"][0], outcomes["exhaustive"][0]
    ratio = full.search_forward_passes / max(1, raced.search_forward_passes)
    same = raced.source_text == full.source_text
    ci = full.stats.train_ci_winner if full.stats is not None else None
    score = raced.result.candidates[0].train_score
    within = ci is not None and ci[0] - 1e-9 <= score <= ci[1] + 1e-9
    print(
        f"exhaustive winner's 95% bootstrap CI on train: {ci}; racing winner's train score {score:.5f} "
        f"within it: {within}"
    )
    print(f"same winner: {same}; forward-pass ratio exhaustive/racing = {ratio:.1f}x (target >= 5x)")
    print(f"racing's own estimate of exhaustive passes: {raced.result.counts.exhaustive_forward_passes}")


if __name__ == "__main__":
    main()

"""Benchmark: SyCAM on real networks against the best stdlib CAM on held-out images.

For the pretrained CIFAR-10 ResNet-20 and ResNet-56 (at `layer3`), two split seeds each, and
each objective (average drop, deletion, insertion): synthesize from a grammar on the training
split, then compare the winner with every stdlib CAM on a disjoint holdout split. Prints, per
objective, the synthesized winner (with the constants it chose), its holdout score, the best
stdlib CAM on the holdout, the paired difference (winner minus best stdlib, oriented so that
positive is better) with a bootstrap CI, and the verdict. The target: on at least two of the
three objectives, on both networks, the winner is better with the paired CI excluding zero.
The last lines say whether it holds, per network and seed.

Needs `../shared/data` (or `--data`); without it the benchmark says so and exits 0.

    python benchmarks/bench_synth_real.py [--device cuda] [--train 200] [--holdout 300] [--time 60s]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from camlang.frontend.check import check_text
from camlang.runtime.declaration_loading import load_data, load_model
from camlang.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
NETS = {20: "resnet20-12fca82f.th", 56: "resnet56-4bfd9763.th"}
OBJECTIVES = ("average_drop", "deletion", "insertion")


def program_text(data: Path, depth: int, seed: int, args: argparse.Namespace, objective: str) -> str:
    """The .cam program of one (network, seed, objective) run."""
    ckpt = data / "cifar10_resnet_akamaster" / NETS[depth]
    images = data / "cifar10_test_1k"
    common = f'size = 32, normalize = "imagenet", shuffle = {seed}, split_fraction = {args.fraction}'
    return f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model net = checkpoint("{ckpt}", arch = "cifar_resnet{depth}") at "layer3"
data train = images("{images}", {common}, split = "train", limit = {args.train})
data hold = images("{images}", {common}, split = "holdout", limit = {args.holdout})
synthesize best from {args.grammar} {{ model = net data = train holdout = hold objective = {objective}
  max_size = {args.max_size} time = "{args.time}" finalists = {args.finalists} }}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--nets", default="20,56")
    ap.add_argument("--seeds", default="7,11")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--grammar", default="combined")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--holdout", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--max-size", type=int, default=6)
    ap.add_argument("--finalists", type=int, default=5)
    ap.add_argument("--time", default="60s", help="the time limit of each synthesis (search + comparison)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the shared stdlib holdout scores")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "cifar10_test_1k").is_dir():
        print(
            f"SKIPPED: the shared data folder {args.data} is absent (needs cifar10_test_1k and the ResNets)"
        )
        return 0
    print(
        f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), "
        f"{torch.get_num_threads()} threads; grammar {args.grammar}, max_size {args.max_size}, "
        f"{args.train} train / {args.holdout} holdout images, time {args.time} per synthesis"
    )
    rows = []
    for depth in (int(d) for d in args.nets.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            for objective in args.objectives.split(","):
                try:
                    rows.append(run_one(args, depth, seed, objective))
                except Exception as err:  # one failed run must not hide the others' numbers
                    print(f"resnet{depth} seed {seed} {objective}: FAILED: {type(err).__name__}: {err}")
                    rows.append(
                        {
                            "net": f"resnet{depth}",
                            "seed": seed,
                            "objective": objective,
                            "direction": "",
                            "winner": "",
                            "constants": [],
                            "holdout": None,
                            "verdict": f"failed ({type(err).__name__})",
                            "seconds": 0.0,
                            "limit": args.time,
                            "best_stdlib": None,
                        }
                    )
                if args.json is not None:
                    args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print_tables(rows, args.objectives.split(","))
    return 0


def run_one(args: argparse.Namespace, depth: int, seed: int, objective: str) -> dict[str, object]:
    """Synthesize for one (network, seed, objective) and collect the comparison's numbers."""
    prog = check_text(program_text(args.data, depth, seed, args, objective), file_checks=False)
    if prog.has_errors:
        raise SystemExit("\n".join(str(d) for d in prog.diagnostics))
    train, hold = load_data(prog.datas["train"]), load_data(prog.datas["hold"])
    live = load_model(prog.models["net"], args.device, train.get([0]).x)
    t0 = time.perf_counter()
    out = synthesize(
        prog,
        prog.synths["best"],
        live,
        train,
        hold,
        batch_size=args.batch_size,
        seed=0,
        cache_dir=args.cache,
        echo=lambda line: print("  " + line, flush=True),
    )
    seconds = time.perf_counter() - t0
    st = out.stats
    assert st is not None
    paired = st.paired
    win = out.result.candidates[0]
    row: dict[str, object] = {
        "net": f"resnet{depth}",
        "seed": seed,
        "objective": objective,
        "direction": prog.metrics[objective].direction,
        "winner": out.source_text,
        "constants": [list(c) for c in st.constants],
        "note": win.equivalence_note,
        "train": win.train_score,
        "holdout": [win.holdout_mean, win.ci_low, win.ci_high],
        "best_stdlib_train": st.best_stdlib_train,
        "holdout_images": st.holdout_images,
        "candidates": st.candidates,
        "partial": out.partial,
        "stop": st.stop_reason,
        "seconds": seconds,
        "limit": args.time,
    }
    if paired is not None:
        ref = out.result.comparison[paired.reference]
        row |= {
            "best_stdlib": paired.reference,
            "best_stdlib_holdout": [ref.mean, ref.ci_low, ref.ci_high],
            "paired": [paired.difference.mean, paired.difference.ci_low, paired.difference.ci_high],
            "verdict": paired.verdict,
        }
    else:
        row |= {"best_stdlib": None, "verdict": "no comparison (partial run)"}
    print(
        f"resnet{depth} seed {seed} {objective}: {row['verdict']} in {seconds:.0f}s ({args.time} allowed)",
        flush=True,
    )
    return row


def _fmt(iv: object) -> str:
    if not isinstance(iv, list):
        return "-"
    m, lo, hi = iv
    return f"{m:.4g} [{lo:.4g}, {hi:.4g}]" if math.isfinite(m) else "-"


def print_tables(rows: list[dict[str, object]], objectives: list[str]) -> None:
    """One table per objective, then the target's verdict per network and seed."""
    for objective in objectives:
        sub = [r for r in rows if r["objective"] == objective]
        if not sub:
            continue
        arrow = "↓" if sub[0]["direction"] == "minimize" else "↑"
        print(f"\n## {objective} {arrow}")
        print(
            "| net | seed | synthesized winner [constants] | its holdout score | best stdlib on holdout | "
            "paired diff (+ = better) | verdict | s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in sub:
            consts = ", ".join(f"{k} = {v:g}" for k, v in r["constants"])  # type: ignore[attr-defined]
            winner = f"`{r['winner']}`" + (f" [{consts}]" if consts else "")
            best = f"{r['best_stdlib']} {_fmt(r.get('best_stdlib_holdout'))}"
            print(
                f"| {r['net']} | {r['seed']} | {winner} | {_fmt(r['holdout'])} | {best} | "
                f"{_fmt(r.get('paired'))} | {r['verdict']} | {r['seconds']:.0f} |"
            )
    print("\n## target: better (paired CI > 0) on at least 2 of 3 objectives")
    holds_all = True
    for key in sorted({(str(r["net"]), int(r["seed"])) for r in rows}):  # type: ignore[call-overload]
        sub = [r for r in rows if (r["net"], r["seed"]) == key]
        wins = [str(r["objective"]) for r in sub if r["verdict"] == "better"]
        ok = len(wins) >= 2
        holds_all &= ok
        print(
            f"{key[0]} seed {key[1]}: better on {len(wins)}/{len(sub)} ({', '.join(wins) or 'none'}): "
            f"{'HOLDS' if ok else 'MISSED'}"
        )
    print("target " + ("holds on every network and seed" if holds_all else "is MISSED (see the rows above)"))
    over = [r for r in rows if r["seconds"] > 1.1 * _seconds(str(r["limit"]))]  # type: ignore[operator]
    print(f"time limit kept within 10%: {len(rows) - len(over)}/{len(rows)} runs")


def _seconds(text: str) -> float:
    from camlang.frontend.signatures import parse_duration

    return parse_duration(text)


if __name__ == "__main__":
    sys.exit(main())

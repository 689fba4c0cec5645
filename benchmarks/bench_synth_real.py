"""Benchmark: SyCAM on real networks against the best stdlib CAM on held-out images.

For the pretrained CIFAR-10 ResNet-20 (split seeds 7 and 11) and ResNet-56 (seed 7), at
`layer3`, and each objective of the panel (average drop, deletion, insertion, ADCC,
max-sensitivity): synthesize from a grammar on the selection split, then compare the winner with
every stdlib CAM on a disjoint holdout split. Prints, per objective, the synthesized winner (with
the constants it chose), its holdout score, the best stdlib CAM on the holdout, the paired
difference (winner minus best stdlib, oriented so that positive is better) with a bootstrap CI,
and the verdict. The target: on each network and seed, the winner is better with the paired CI
above zero on all objectives but one. The last lines say whether it holds.

Each run also prints the scoring loop's throughput (the objective's forward passes per second of
the race's and final checks' scoring calls) next to the network's raw forward throughput at the
same call size (the mean images per model call of that loop), and their ratio (target: the raw
network at most 1.5x faster than the loop).

The images are the 10,000 CIFAR-10 test images of `cifar10_test_jpg` (a tar.gz that `images()`
unpacks once into ~/.cache/camlang/archives), else the 1,000 of `cifar10_test_1k`. The selection
and holdout splits are disjoint, drawn by the split seed: `split_fraction` is the selection's
share of `--train + --holdout` unless `--fraction` is given.

Needs `../shared/data` (or `--data`); without it the benchmark says so and exits 0.

ResNet-56 is 3.5x slower per image than ResNet-20, so it gets about twice the time per
synthesis. The default plan, on one process, gives ResNet-20's syntheses 6 minutes and
ResNet-56's 11 (`--plan "20:7,11 56:7@11m"`): 115 minutes of synthesis in all. The benchmark as
the README reports it uses both cores of a 2-core machine for its 2 hours, one network per core
and one thread each, with 11.5 and 23 minutes per synthesis (100.6 minutes of wall time in
session 9):

    python benchmarks/bench_synth_real.py [--device cuda] [--train 1000] [--holdout 2000] [--time 6m]
    python benchmarks/bench_synth_real.py --quick      # ResNet-20, seed 7, 200 + 400 images
    taskset -c 0 python benchmarks/bench_synth_real.py --threads 1 --plan "20:7,11@690s" &
    taskset -c 1 python benchmarks/bench_synth_real.py --threads 1 --plan "56:7@23m"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from camlang.frontend.check import check_text
from camlang.runtime.declaration_loading import load_data, load_model
from camlang.synth import synthesize
from camlang.synth.driver import SynthStats

ROOT = Path(__file__).resolve().parents[1]
NETS = {20: "resnet20-12fca82f.th", 56: "resnet56-4bfd9763.th"}
OBJECTIVES = ("average_drop", "deletion", "insertion", "adcc", "max_sensitivity")
ARCHIVE = Path("cifar10_test_jpg") / "cifar10_test_jpg.tar.gz"


def program_text(
    data: Path, depth: int, seed: int, args: argparse.Namespace, objective: str, limit: str
) -> str:
    """The .cam program of one (network, seed, objective) run, each synthesis within `limit`."""
    ckpt = data / "cifar10_resnet_akamaster" / NETS[depth]
    images = _images(data)
    fraction = args.fraction if args.fraction is not None else args.train / (args.train + args.holdout)
    common = f'size = 32, normalize = "imagenet", shuffle = {seed}, split_fraction = {fraction:.6g}'
    return f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model net = checkpoint("{ckpt}", arch = "cifar_resnet{depth}") at "layer3"
data train = images("{images}", {common}, split = "train", limit = {args.train})
data hold = images("{images}", {common}, split = "holdout", limit = {args.holdout})
synthesize best from {args.grammar} {{ model = net data = train holdout = hold objective = {objective}
  max_size = {args.max_size} time = "{limit}" finalists = {args.finalists} }}
"""


def _images(data: Path) -> Path:
    """The 10,000-image archive when present, else the 1,000-image folder."""
    return data / ARCHIVE if (data / ARCHIVE).is_file() else data / "cifar10_test_1k"


def _plan(text: str, default_time: str) -> list[tuple[int, int, str]]:
    """`"20:7,11 56:7@12m"` -> [(20, 7, default), (20, 11, default), (56, 7, "12m")].

    `@TIME` after a network's seeds gives that network its own time limit per synthesis.
    """
    runs = []
    for part in text.split():
        head, _, own_time = part.partition("@")
        limit = own_time or default_time
        depth, _, seeds = head.partition(":")
        if int(depth) not in NETS:
            raise SystemExit(f"--plan: no ResNet-{depth} here (choose from {sorted(NETS)})")
        try:
            _seconds(limit)  # a malformed time stops the benchmark before any run
        except ValueError:
            raise SystemExit(f'--plan: "{limit}" is not a time such as 90s or 11m') from None
        runs += [(int(depth), int(seed), limit) for seed in seeds.split(",")]
    return runs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--plan",
        default="20:7,11 56:7@11m",
        help='networks, split seeds and optional per-network time, e.g. "20:7,11 56:7@12m"',
    )
    ap.add_argument("--quick", action="store_true", help="ResNet-20, seed 7, 200 + 400 images, 45 s each")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--grammar", default="panel")
    ap.add_argument("--train", type=int, default=1000, help="selection images")
    ap.add_argument("--holdout", type=int, default=2000)
    ap.add_argument("--fraction", type=float, default=None, help="selection share of the split")
    ap.add_argument("--max-size", type=int, default=6)
    ap.add_argument("--finalists", type=int, default=5)
    ap.add_argument("--time", default="6m", help="the time limit of each synthesis (search + comparison)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="the syntheses' cache folder (captured terminals, stdlib holdout scores); default: a new "
        "temporary folder, so the objectives on one network and split share captures "
        "as a user's OUT/cache does",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.plan, args.train, args.holdout, args.time = "20:7", 200, 400, "45s"
    if args.threads:
        torch.set_num_threads(args.threads)
    made_cache = args.cache is None
    if made_cache:
        args.cache = Path(tempfile.mkdtemp(prefix="camlang-bench-synth-"))
    try:
        return _run_plan(args)
    finally:
        if made_cache:  # captured terminals reach a gigabyte per network: never leave them behind
            shutil.rmtree(args.cache, ignore_errors=True)


def _run_plan(args: argparse.Namespace) -> int:
    """Every (network, objective) of the plan, then the tables; the JSON is rewritten after each run."""
    if not _images(args.data).exists():
        print(
            f"SKIPPED: the shared data folder {args.data} is absent (needs cifar10_test_jpg or "
            "cifar10_test_1k, and the ResNets)"
        )
        return 0
    print(
        f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), "
        f"{torch.get_num_threads()} threads; grammar {args.grammar}, max_size {args.max_size}, "
        f"{args.train} selection / {args.holdout} holdout images of {_images(args.data).name}, "
        f"time {args.time} per synthesis unless the plan gives a network its own "
        f"(--plan {args.plan!r}); cache {args.cache}; load average {_load()}"
    )
    rows = []
    for depth, seed, limit in _plan(args.plan, args.time):
        for objective in args.objectives.split(","):
            try:
                rows.append(run_one(args, depth, seed, objective, limit))
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
                        "limit": limit,
                        "best_stdlib": None,
                    }
                )
            if args.json is not None:
                args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print_tables(rows, args.objectives.split(","))
    print(f"load average at the end: {_load()}")
    return 0


def _load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_one(args: argparse.Namespace, depth: int, seed: int, objective: str, limit: str) -> dict[str, object]:
    """Synthesize for one (network, seed, objective) within `limit` and collect the comparison's numbers."""
    prog = check_text(program_text(args.data, depth, seed, args, objective, limit), file_checks=False)
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
    loop_rate, call_size = _scoring_rate(st)
    raw_rate = raw_forward_rate(
        live.module, train.get(list(range(min(len(train), call_size)))).x, args.device
    )
    ratio = raw_rate / loop_rate if loop_rate > 0 else math.inf
    print(
        f"  throughput: scoring loop {loop_rate:.0f} images/s ({call_size} images per call), "
        f"raw forward {raw_rate:.0f} images/s at that call size: {ratio:.2f}x "
        f"({'within' if ratio <= 1.5 else 'MISSES'} the 1.5x target); "
        f"time split {st.search_seconds:.0f}s search + tuning, {st.compare_seconds:.0f}s comparison",
        flush=True,
    )
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
        "limit": limit,
        "loop_images_per_s": loop_rate,
        "raw_images_per_s": raw_rate,
        "call_size": call_size,
        "tuned": [[c.nonterminal, c.grid_value, c.value] for c in st.tuning.constants],
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
        f"resnet{depth} seed {seed} {objective}: {row['verdict']} in {seconds:.0f}s ({limit} allowed)",
        flush=True,
    )
    return row


def _scoring_rate(st: SynthStats) -> tuple[float, int]:
    """Images per second of the synthesis's scoring calls, and their mean images per model call."""
    rate = st.scoring_passes / st.scoring_seconds if st.scoring_seconds > 0 else 0.0
    size = max(1, round(st.scoring_passes / st.scoring_calls)) if st.scoring_calls else 1
    return rate, size


def raw_forward_rate(model: torch.nn.Module, x: torch.Tensor, device: str, seconds: float = 2.0) -> float:
    """The network's own forward throughput (images/s) on calls of `len(x)` images, no grad."""
    x = x.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        model(x)  # warm-up
        sync()
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(x)
            calls += 1
        sync()
    return calls * len(x) / (time.perf_counter() - t0)


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
    need = max(1, len(objectives) - 1)
    print(f"\n## target: better (paired CI > 0) on at least {need} of {len(objectives)} objectives")
    holds_all = True
    for key in sorted({(str(r["net"]), int(r["seed"])) for r in rows}):  # type: ignore[call-overload]
        sub = [r for r in rows if (r["net"], r["seed"]) == key]
        wins = [str(r["objective"]) for r in sub if r["verdict"] == "better"]
        ok = len(wins) >= need
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

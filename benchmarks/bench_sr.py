"""Saliency-robustness benchmark: our engine (bounds + HiGHS MILP) against the naive z3 encoding.

Part 1, BanditNet (models/banditnet.pt): saliency_robust at x = [1,1,0,1,1], eps = 1, box [0,1],
for five deltas; both verdicts must agree; then the delta where the verdict flips (bisection).

Part 2, mnistfc 256x2 (../shared/data/mnistfc, skipped with a message when absent): on the 30
VNN-COMP regions, saliency-robust at the box centre for delta 1e-4, 5e-4, 1e-3, and plain
robustness against the naive z3 encoding (short timeout).

Usage: python benchmarks/bench_sr.py [--timeout 120] [--regions 30] [--naive-timeout 10]
       [--deltas 1e-4,5e-4,1e-3] [--skip-mnist] [--skip-naive-mnist]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_banditnet import banditnet  # noqa: E402

from camlang.smt import (  # noqa: E402
    Verdict,
    check_saliency_robust,
    check_vnnlib,
    find_delta_flip,
    load_vnnlib,
    naive_z3_saliency_robust,
    naive_z3_vnnlib,
)

MNIST = ROOT.parent / "shared" / "data" / "mnistfc"


def _check_replay(v: Verdict) -> None:
    if v.status == "violated":
        assert v.replay is not None and v.replay["ok"], f"violated without a successful replay: {v}"


def bandit() -> None:
    net = banditnet()
    net.load_state_dict(torch.load(ROOT / "models" / "banditnet.pt", weights_only=True))
    net.eval()
    x = [1.0, 1.0, 0.0, 1.0, 1.0]
    print("== BanditNet saliency_robust(at=[1,1,0,1,1], eps=1, box=[0,1]) ==")
    print(f"{'delta':>6} {'ours':>9} {'ours s':>8} {'naive z3':>9} {'naive s':>8} {'ratio':>7}  agree")
    slow = []
    for delta in (0.5, 0.75, 1.0, 1.25, 1.5):
        ours = check_saliency_robust(net, x, 1.0, delta, box=(0.0, 1.0), timeout_s=60)
        naive = naive_z3_saliency_robust(net, x, 1.0, delta, box=(0.0, 1.0), timeout_s=60)
        _check_replay(ours)
        _check_replay(naive)
        agree = ours.status == naive.status
        ratio = naive.seconds / max(ours.seconds, 1e-9)
        print(
            f"{delta:>6g} {ours.status:>9} {ours.seconds:>8.3f} {naive.status:>9} {naive.seconds:>8.3f} "
            f"{ratio:>6.0f}x  {'yes' if agree else 'NO'}"
        )
        if ours.seconds >= 0.5:
            slow.append(delta)
        assert agree, f"verdicts disagree at delta={delta}: {ours} vs {naive}"
    print(f"target < 0.5 s per query: {'met' if not slow else f'missed at {slow}'}")
    flip = find_delta_flip(net, x, 1.0, 0.0, 8.0, box=(0.0, 1.0), tol=1e-3)
    spent = sum(v.seconds for v in flip.verdicts)
    print(f"delta flip (bisection over [0, 8], tol 1e-3): {flip.reason}; {flip.steps} queries, {spent:.2f} s")


def _summary(label: str, vs: list[Verdict]) -> None:
    holds = sum(v.status == "holds" for v in vs)
    viol = sum(v.status == "violated" for v in vs)
    unk = sum(v.status == "unknown" for v in vs)
    bounds = sum(v.decided_by_bounds for v in vs)
    times = [v.seconds for v in vs]
    print(
        f"{label:<28} decided {holds + viol:>2}/{len(vs)}  holds {holds:>2}  violated {viol:>2}  "
        f"unknown {unk:>2}  "
        f"by bounds {bounds:>2}  time total {sum(times):7.1f} s  median {statistics.median(times):6.2f} s  "
        f"max {max(times):6.1f} s"
    )


def mnist(timeout: float, regions: int, naive_timeout: float, deltas: list[float], naive: bool) -> None:
    onnx_path = MNIST / "mnist-net_256x2.onnx"
    if not onnx_path.is_file():
        print(f"== mnistfc skipped: {MNIST} not found ==")
        return
    import onnx
    import onnx2torch

    net = onnx2torch.convert(onnx.load(str(onnx_path))).eval()
    props = sorted(
        MNIST.glob("prop_*.vnnlib"), key=lambda p: (p.stem.split("_")[2], int(p.stem.split("_")[1]))
    )
    props = props[:regions]
    print(f"== mnistfc 256x2: {len(props)} regions, timeout {timeout:g} s ==")
    for delta in deltas:
        vs = []
        for p in props:
            v = check_vnnlib(net, load_vnnlib(p, 784), delta=delta, timeout_s=timeout)
            _check_replay(v)
            vs.append(v)
            print(f"  {p.stem:<14} delta={delta:g}: {v.status:<8} {v.seconds:7.2f} s  {v.reason}", flush=True)
        _summary(f"saliency delta={delta:g}", vs)
    ours, peers = [], []
    for p in props:
        prop = load_vnnlib(p, 784)
        v = check_vnnlib(net, prop, timeout_s=timeout)
        _check_replay(v)
        ours.append(v)
        line = f"  {p.stem:<14} robust: ours {v.status:<8} {v.seconds:7.2f} s"
        if naive:
            w = naive_z3_vnnlib(net, prop, timeout_s=naive_timeout)
            _check_replay(w)
            peers.append(w)
            assert "unknown" in (v.status, w.status) or v.status == w.status, f"disagree on {p}: {v} vs {w}"
            line += f" | naive z3 {w.status:<8} {w.seconds:7.2f} s"
        print(line, flush=True)
    _summary("robust (ours)", ours)
    if naive:
        _summary(f"robust (naive z3, {naive_timeout:g} s)", peers)


def main() -> None:
    ap = argparse.ArgumentParser(description="saliency-robustness benchmark")
    ap.add_argument("--timeout", type=float, default=120.0, help="per mnistfc query (ours)")
    ap.add_argument("--regions", type=int, default=30, help="how many mnistfc regions")
    ap.add_argument("--naive-timeout", type=float, default=10.0, help="per mnistfc query (naive z3)")
    ap.add_argument("--deltas", default="1e-4,5e-4,1e-3", help="saliency deltas for mnistfc")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-naive-mnist", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.monotonic()
    bandit()
    if not args.skip_mnist:
        mnist(
            args.timeout,
            args.regions,
            args.naive_timeout,
            [float(d) for d in args.deltas.split(",")],
            not args.skip_naive_mnist,
        )
    print(f"total {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()

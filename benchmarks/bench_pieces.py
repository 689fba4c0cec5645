"""One property's pieces on 1 vs 2 ranks (gloo, localhost): seconds per mnistfc region, verdicts,
pieces solved and skipped, and the early stop's latency.

Plain robustness (the VNN-LIB question) on mnistfc regions that are slow (many output disjuncts
left after the bounds), and on regions that are violated, with the PGD attack switched off so that
the MILP pieces must find the witness and the early stop has something to stop. The 1-rank column
is the ordinary single-process check (2 intra-op threads, as `camlang run` gives one worker on
this machine); the 2-rank column runs the same check on two processes of one gloo process group
(1 thread each, as `--workers 2` gives), each deciding its share of the pieces
(camlang/smt/pieces.py), and combines their partial verdicts as rank 0 does. Both columns exclude
start-up (importing torch, loading the network), which bench_distributed.py measures.

Other jobs share this 2-core machine: `--repeat 2` alternates the columns and keeps each region's
faster run per column (the load average is printed after each turn).

Usage: python benchmarks/bench_pieces.py [--timeout 10] [--repeat 2] [--slow prop_9_0.05,...] [--violated ...]
Needs ../shared/data/mnistfc (skips with a message without it).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnistfc"
SLOW = "prop_9_0.05,prop_11_0.05,prop_2_0.03,prop_6_0.03,prop_14_0.05"
VIOLATED = "prop_1_0.05,prop_5_0.05,prop_12_0.05"


def _network() -> torch.nn.Module:
    import onnx
    from onnx2torch import convert

    return convert(onnx.load(str(MNIST / "mnist-net_256x2.onnx")))


def _check(net: Any, stem: str, timeout: float, attack: bool, share: Any = None) -> Any:
    from camlang import smt

    prop = smt.load_vnnlib(MNIST / f"{stem}.vnnlib", 784)
    return smt.check(net, smt.VnnlibQuestion(prop), timeout_s=timeout, attack=attack, share=share)


def _rank(rank: int, port: int, folder: str, jobs: list[tuple[str, bool]], timeout: float) -> None:
    import torch.distributed as dist

    from camlang.distributed.pieces import StorePieceShare, default_store

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=600),
    )
    try:
        net = _network()
        out = []
        for k, (stem, attack) in enumerate(jobs):
            dist.barrier()  # both ranks start each region together, as after a check's previous one
            share = StorePieceShare(default_store(), f"bench/{k}", rank, 2)
            out.append(_check(net, stem, timeout, attack, share))
        Path(folder, f"rank{rank}.pkl").write_bytes(pickle.dumps(out))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--slow", default=SLOW)
    ap.add_argument("--violated", default=VIOLATED)
    ap.add_argument(
        "--repeat", type=int, default=1, help="alternate the columns this many times; keep the faster"
    )
    ap.add_argument("--verbose", action="store_true", help="print every piece's outcome, seconds and rank")
    args = ap.parse_args()
    if not (MNIST / "mnist-net_256x2.onnx").is_file():
        print(f"skipped: {MNIST} not found (the mnistfc network and VNN-LIB files)")
        return
    from camlang.smt.pieces import combine

    jobs = [(s, True) for s in args.slow.split(",") if s] + [
        (s, False) for s in args.violated.split(",") if s
    ]
    print(
        f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; timeout {args.timeout:g} s"
    )
    torch.set_num_threads(2)
    net = _network()
    ones: list[Any] = []
    twos: list[Any] = []
    for turn in range(args.repeat):  # 1 rank, 2 ranks, 1 rank, ...: each column keeps its faster run
        one = [_check(net, stem, args.timeout, attack) for stem, attack in jobs]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            torch.multiprocessing.spawn(_rank, args=(_port(), tmp, jobs, args.timeout), nprocs=2, join=True)
            wall2 = time.perf_counter() - t0
            parts = [pickle.loads(Path(tmp, f"rank{r}.pkl").read_bytes()) for r in range(2)]
        two = [combine([parts[0][k], parts[1][k]]) for k in range(len(jobs))]
        ones = (
            one if not ones else [min(a, b, key=lambda v: v.seconds) for a, b in zip(ones, one, strict=True)]
        )
        twos = (
            two if not twos else [min(a, b, key=lambda v: v.seconds) for a, b in zip(twos, two, strict=True)]
        )
        print(f"turn {turn + 1}: load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'region':<14} {'attack':<6} {'1 rank':>17} {'2 ranks':>17} {'ratio':>6}  pieces (2 ranks)")
    total1 = total2 = 0.0
    agree = True
    for (stem, attack), one, two in zip(jobs, ones, twos, strict=True):
        pieces = two.stats.get("pieces", {})
        counts = (pieces.get(k, 0) for k in ("count", "solved", "skipped"))
        info = "{} dealt, {} solved, {} skipped".format(*counts) if pieces else "none dealt"
        if "found" in pieces:
            info += f", witness at piece {pieces['found']}"
        if "stop_latency_s" in pieces:
            info += f", stop latency {pieces['stop_latency_s']:.2f} s"
        same = one.status == two.status
        agree &= same or "unknown" in (one.status, two.status)
        total1 += one.seconds
        total2 += two.seconds
        print(
            f"{stem:<14} {'on' if attack else 'off':<6} {one.status:>8} {one.seconds:6.2f} s "
            f"{two.status:>8} {two.seconds:6.2f} s {one.seconds / max(two.seconds, 1e-9):5.2f}x  {info}"
            + ("" if same else "  (verdicts differ: a time limit)")
        )
        if args.verbose:
            for label, v in (("1 rank", one), ("2 ranks", two)):
                outs = v.stats.get("pieces", {}).get("outcomes", {})
                row = ", ".join(
                    f"{n}:{o['outcome'][:5]} {o['seconds']:.2f}s r{o.get('rank', 0)}" for n, o in outs.items()
                )
                print(f"    {label}: attack {v.stats.get('attack_seconds', 0):.2f} s; {row}")
    print(f"total          {'':<6} {total1:17.2f} {total2:17.2f} {total1 / max(total2, 1e-9):5.2f}x")
    print(f"(2 ranks whole spawn incl. start-up {wall2:.1f} s)")
    if not agree:
        print("DISAGREEMENT: a holds against a violated", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Benchmark: a synthesis's peak memory as the number of selection images grows.

On the pretrained CIFAR-10 ResNet-20 at `layer3`, grammar `multilayer` (A and G at layer1,
layer2 and layer3, and GX: about 0.25 MB of terminals per image), objective deletion: one
synthesis per image count, each in its own subprocess, which reports its peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`), its peak during the synthesis alone (VmHWM reset
after loading the model and data) and its winner. A small `max_size` keeps the search short
without a limit, so the race ends by itself and the final checks capture and re-score every
selection image (a `budget` or `time` that stops the search would leave the finals on the
captured prefix). Prints the peak RSS per image count and the growth ratio (largest count over
smallest; flat memory is a ratio near 1).

`--memory-mb` sets `CAMLANG_SYNTH_MEMORY_MB` in the subprocesses: the captured terminals kept in
memory (the rest is spilled to disk and read back a chunk at a time). Its default (256 MB) holds
about 1,000 of these images; the benchmark's default, 32 MB, makes the spilling show at these
sizes.

Needs `../shared/data` (or `--data`); without it the benchmark says so and exits 0.

    python benchmarks/bench_synth_memory.py [--sizes 200,800] [--memory-mb 32] [--max-size 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CKPT = Path("cifar10_resnet_akamaster") / "resnet20-12fca82f.th"
ARCHIVE = Path("cifar10_test_jpg") / "cifar10_test_jpg.tar.gz"


def program_text(data: Path, args: argparse.Namespace, count: int) -> str:
    """The .cam program of one run: `count` selection images, no holdout."""
    budget = "" if args.budget is None else f" budget = {args.budget}"
    return f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model net = checkpoint("{data / CKPT}", arch = "cifar_resnet20") at "layer3"
data train = images("{data / ARCHIVE}", size = 32, normalize = "imagenet", shuffle = 7, limit = {count})
synthesize best from {args.grammar} {{ model = net data = train objective = {args.objective}
  max_size = {args.max_size} finalists = {args.finalists}{budget} }}
"""


def child(args: argparse.Namespace, count: int) -> int:
    """One synthesis in this process; prints one JSON line with its peak RSS and winner."""
    import torch

    from camlang.frontend.check import check_text
    from camlang.runtime.declaration_loading import load_data, load_model
    from camlang.synth import synthesize

    torch.set_num_threads(1)
    prog = check_text(program_text(args.data, args, count), file_checks=False)
    if prog.has_errors:
        raise SystemExit("\n".join(str(d) for d in prog.diagnostics))
    train = load_data(prog.datas["train"])
    live = load_model(prog.models["net"], "cpu", train.get([0]).x)
    loaded_mb = _status_mb("VmRSS")
    _reset_peak()
    with tempfile.TemporaryDirectory() as cache:  # a cold terminal store, as a first run has
        out = synthesize(prog, prog.synths["best"], live, train, None, batch_size=32, cache_dir=Path(cache))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    synth_peak_mb = _status_mb("VmHWM")  # since the reset: the synthesis's own peak
    stats = out.stats
    print(
        json.dumps(
            {
                "images": count,
                "captured": None if stats is None else stats.train_captured,
                "loaded_mb": loaded_mb,
                "peak_mb": peak_kb / 1024,
                "synth_peak_mb": synth_peak_mb,
                "winner": out.source_text,
                "score": out.result.candidates[0].train_score,
            }
        )
    )
    return 0


def _status_mb(field: str) -> float:
    """A `/proc/self/status` memory field (VmRSS, VmHWM) in MB (NaN where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> None:
    """Reset the peak RSS (VmHWM) to the current RSS, so it measures the synthesis alone (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure(args: argparse.Namespace, count: int) -> dict[str, object]:
    """Run one image count in a fresh subprocess and read its JSON line."""
    env = dict(os.environ)
    if args.memory_mb is not None:
        env["CAMLANG_SYNTH_MEMORY_MB"] = str(args.memory_mb)
    cmd = [sys.executable, __file__, "--child", str(count), *_passed(args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run on {count} images failed:\n{done.stderr[-3000:]}")
    row: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _passed(args: argparse.Namespace) -> list[str]:
    return [
        f"--data={args.data}",
        f"--grammar={args.grammar}",
        f"--objective={args.objective}",
        f"--max-size={args.max_size}",
        *([] if args.budget is None else [f"--budget={args.budget}"]),
        f"--finalists={args.finalists}",
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sizes", default="200,800", help="selection image counts, smallest first")
    ap.add_argument("--grammar", default="multilayer")
    ap.add_argument("--objective", default="deletion")
    ap.add_argument("--max-size", type=int, default=4)
    ap.add_argument("--budget", type=int, default=None, help="forward passes of the search (none: unlimited)")
    ap.add_argument("--finalists", type=int, default=2)
    ap.add_argument("--memory-mb", type=int, default=32, help="CAMLANG_SYNTH_MEMORY_MB (-1: leave unset)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_mb is not None and args.memory_mb < 0:
        args.memory_mb = None
    if not ((args.data / CKPT).is_file() and (args.data / ARCHIVE).is_file()):
        print(f"SKIPPED: the shared data folder {args.data} lacks {CKPT} or {ARCHIVE}")
        return 0
    if args.child is not None:
        return child(args, args.child)
    sizes = [int(s) for s in args.sizes.split(",")]
    budget = "default" if args.memory_mb is None else f"{args.memory_mb} MB"
    print(
        f"ResNet-20 layer3, grammar {args.grammar}, objective {args.objective}, budget {args.budget} "
        f"passes, terminals kept in memory: {budget}"
    )
    rows = []
    for count in sizes:
        row = measure(args, count)
        rows.append(row)
        print(
            f"{count:5d} selection images: peak RSS {row['peak_mb']:7.1f} MB "
            f"(after loading {row['loaded_mb']:.1f} MB, the synthesis's own peak "
            f"{row['synth_peak_mb']:.1f} MB); winner {row['winner']}",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    ratio = float(last["peak_mb"]) / float(first["peak_mb"])  # type: ignore[arg-type]
    growth = float(last["peak_mb"]) - float(first["peak_mb"])  # type: ignore[arg-type]
    print(
        f"growth {sizes[0]} -> {sizes[-1]} images: x{ratio:.2f} peak RSS ({growth:+.1f} MB, "
        f"{1024 * growth / max(1, sizes[-1] - sizes[0]):.1f} KB per added image)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

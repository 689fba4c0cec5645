"""Language-server diagnostics latency on a 300-line file. Target: under 50 ms.

What is timed is what the server does for each debounced edit before it publishes: check the
document with its imports (`camlang.lsp.analysis.analyze`, the checker of `camlang check`, plus
the name index) and turn the diagnostics into LSP records. The server keeps one `PieceParser`
per document, so after an edit only the changed statement is parsed again; opening a file
(every statement parsed) is timed too. The file imports the stdlib's CAMs
and metrics, declares a model, data and 280 CAMs and metrics, two of them with errors (so the
error path is timed too), and its own text changes between runs (one digit), as typing does.

Also timed: hover and completion on the checked file. The machine's load average is printed
with the numbers: on a shared machine they are upper bounds.

Run: python benchmarks/bench_lsp.py [--lines 300] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp

from camlang.lsp import features
from camlang.lsp.analysis import analyze
from camlang.lsp.incremental import PieceParser

_HEAD = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"

model r18 = torchvision("resnet18") at "layer4"
data test = synthetic_shapes(count = 8, size = 64)
"""

_BODIES = (
    "cam c{i} = relu(sum_c(mean_hw(G) * A)) * {k}",
    "cam c{i} = relu(sum_c(relu(G) * A + {k} * A))",
    "metric m{i} = maximize mean(L * {k}) - P",
    "cam c{i} = gradcam + hirescam * {k}",
)


def document(lines: int, variant: int) -> str:
    """A `lines`-line file; `variant` changes one constant, as an edit would."""
    body = [_BODIES[i % len(_BODIES)].format(i=i, k=(variant if i == 7 else 1)) for i in range(lines - 6)]
    body[40] = "cam bad = sum_c(mean_c(A))"  # E301
    body[90] = "cam worse = relu(Q)"  # E101
    tail = "evaluate [gradcam, c0] on r18, test with [deletion]\n"
    return _HEAD + "\n".join(body) + "\n" + tail


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    median = statistics.median(samples)
    return f"median {1000 * median:.1f} ms, p90 {1000 * p90:.1f} ms, min {1000 * ordered[0]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    path = (folder / "bench.cam").resolve()
    os.symlink(Path(__file__).resolve().parents[1] / "stdlib", folder / "stdlib")
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")

    parser = PieceParser()  # the server keeps one per open document
    analyze(document(args.lines, 0), path, parser=parser)  # warm-up: grammar tables, the stdlib
    cold: list[float] = []
    first_hover: list[float] = []
    check: list[float] = []
    for n in range(args.repeat):
        text = document(args.lines, n + 2)
        t0 = time.perf_counter()
        analyze(text, path)  # a fresh parser: every statement parsed (opening a file)
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        analysis = analyze(text, path, parser=parser)  # one statement changed since the last check
        diagnostics = features.diagnostics(analysis)
        check.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        features.hover(analysis, lsp.Position(12, 5))  # builds the name index
        first_hover.append(time.perf_counter() - t0)
    assert text.count("\n") == args.lines, text.count("\n")
    assert sorted(d.code for d in diagnostics) == ["E101", "E301"], [d.message for d in diagnostics]

    hover: list[float] = []
    complete: list[float] = []
    line = text.splitlines().index("cam c1 = relu(sum_c(relu(G) * A + 1 * A))")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        features.hover(analysis, lsp.Position(line, 5))
        hover.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        features.completion(analysis, text, lsp.Position(line, 12), folder)
        complete.append(time.perf_counter() - t0)

    print(f"diagnostics on a {args.lines}-line file after an edit ({args.repeat} edits): {_ms(check)}")
    print("  (target: under 50 ms)")
    print(f"the same file opened (every statement parsed): {_ms(cold)}")
    print(f"first hover after an edit (builds the name index): {_ms(first_hover)}")
    print(f"hover: {_ms(hover)}")
    print(f"completion: {_ms(complete)}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""The fault campaign's toolkit: a small program with every action kind, running camlang in this
process or another, a comparison of reports number by number, and the campaign's tally.

The tally counts every fault a test injects (a kill, a damaged cache file, a full disk, a second
run on the same folder) and every run that lost something (a number different from the reference,
a complete report overwritten, an internal error or a traceback). The summary at the end of the
test session prints it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOOK_DIR = Path(__file__).resolve().parent / "hook"

#: Every action kind (evaluate, synthesize, check with a MILP, concepts, export) on the demo CNN,
#: small enough for a few seconds a run. `tied.pt` (`write_tied_net`) is robust at that point, which
#: only MILP solves of three output disjuncts tell.
PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
import "stdlib/grammars.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
model tied = mlp([4, 16, 16, 6], weights = "tied.pt")
data train = synthetic_shapes(count = 8, size = 64, seed = 0)
data test = synthetic_shapes(count = 8, size = 64, seed = 1)
synthesize best from gradient_weights {{
  model = shapes
  data = train
  objective = average_drop
  max_size = 3
}}
property tied_robust = robust(tied, at = [0.5, 0.5, 0.5, 0.5], eps = 0.02)
concepts truth = annotations(test, concepts = ["red", "small"])
evaluate [gradcam, layercam] on shapes, test with [average_drop, sparsity]
evaluate [best] on shapes, test with [sparsity]
check tied_robust
heatmaps truth on shapes, test
export best to "best_cam.py"
"""

#: An evaluate alone: the cheapest run that has a cache (for the tests that need many runs).
SMALL_PROGRAM = f"""
import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 8, size = 64, seed = 1)
evaluate [gradcam, layercam] on shapes, test with [average_drop, sparsity]
"""

BATCH = "2"

#: Report fields that differ between two correct runs: when it ran, on how many workers, how long
#: things took, and what a resumed run did not have to pay for (its forward passes).
VOLATILE = frozenset(
    {
        "created",
        "world_size",
        "seconds",
        "spent",  # a synthesis's seconds per phase (syntheses[i].time.spent)
        "forward_images",
        "forward_passes",
        "exhaustive_forward_passes",
        "warnings",
        "failure",
    }
)


@dataclass
class Tally:
    """What the campaign injected and what it lost (printed at the end of the session)."""

    injected: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    losses: list[str] = field(default_factory=list)
    internal_errors: int = 0
    tracebacks: int = 0

    def fault(self, kind: str, count: int = 1) -> None:
        self.injected[kind] += count

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.injected.items()))
        return (
            f"fault campaign: {sum(self.injected.values())} faults injected ({kinds}); "
            f"{self.runs} runs checked; {len(self.losses)} lost anything; "
            f"{self.internal_errors} internal errors; {self.tracebacks} tracebacks"
        )


TALLY = Tally()


# ---- running camlang ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """One finished `camlang run`: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str


def run_here(program: Path, out: Path, *extra: str) -> Ran:
    """`camlang run` in this process (no interpreter start-up), output captured."""
    from camlang.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(program), "--out", str(out), "--batch-size", BATCH, *extra])
    return Ran(code, stdout.getvalue(), stderr.getvalue())


def clean(ran: Ran, tally: Tally | None = None) -> bool:
    """No internal error and no traceback in what a run printed (counted in the tally)."""
    text = ran.stdout + ran.stderr
    internal = "internal error" in text
    traceback = "Traceback (most recent call last)" in text
    if tally is not None:
        tally.internal_errors += internal
        tally.tracebacks += traceback
    return not internal and not traceback


def env_with_hook(fault: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of a `camlang` subprocess: this checkout first, and the fault hook
    (`hook/sitecustomize.py`) armed with `fault`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), str(ROOT)])}
    env.pop("CAMLANG_FAULT", None)
    if fault is not None:
        env["CAMLANG_FAULT"] = json.dumps(fault)
    return env


def camlang_command(program: Path, out: Path, *extra: str, batch: str = BATCH) -> list[str]:
    """`python -m camlang run PROGRAM --out OUT --batch-size BATCH EXTRA...` in a new process."""
    return [
        sys.executable,
        "-m",
        "camlang",
        "run",
        str(program),
        "--out",
        str(out),
        "--batch-size",
        batch,
        *extra,
    ]


# ---- comparing reports ----------------------------------------------------------------------------


def report(out: Path, name: str = "report") -> dict[str, Any]:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def differences(a: Any, b: Any, where: str = "", rel: float = 1e-6) -> Iterator[str]:
    """Where two reports' numbers (and every other field not in `VOLATILE`) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in VOLATILE:
                yield from differences(a.get(key), b.get(key), f"{where}/{key}", rel)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items != {len(b)}"
        else:
            for i, (u, v) in enumerate(zip(a, b)):
                yield from differences(u, v, f"{where}[{i}]", rel)
    elif isinstance(a, float) and isinstance(b, float | int) or isinstance(b, float) and isinstance(a, int):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
        if not same:
            yield f"{where}: {a!r} != {b!r}"
    elif a != b:
        yield f"{where}: {str(a)[:80]!r} != {str(b)[:80]!r}"


def assert_same(reference: dict[str, Any], got: dict[str, Any], tally: Tally | None, what: str) -> None:
    """`got` has every number of `reference` (a loss is counted in the tally, then fails)."""
    diff = list(differences(_portable(reference), _portable(got)))
    if tally is not None:
        tally.runs += 1
        if diff:
            tally.losses.append(f"{what}: {diff[:3]}")
    assert not diff, f"{what}: {diff[:10]}"


def assert_same_run(reference: Path, out: Path, tally: Tally | None, what: str) -> None:
    """The run in `out` finished with the reference's report and exported the same module."""
    doc = report(out)
    assert doc["partial"] is False, what
    assert_same(report(reference), doc, tally, what)
    for export in report(reference)["exports"]:
        name = Path(export["path"]).name
        same = (reference / name).read_bytes() == (out / name).read_bytes()
        if tally is not None and not same:
            tally.losses.append(f"{what}: exported {name} differs")
        assert same, f"{what}: exported {name} differs"


def _portable(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with the exports' paths relative to their run folder (copies live elsewhere)."""
    exports = [dict(e, path=Path(e["path"]).name) for e in doc.get("exports", [])]
    return dict(doc, exports=exports)


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a finished run's folder (to damage or resume without touching the original)."""
    shutil.copytree(source, target)
    return target


def write_tied_net(path: Path) -> None:
    """A 4-16-16-6 ReLU net whose six logits are within 0.3 of each other at (0.5, 0.5, 0.5, 0.5), as
    tests/e2e/test_distributed_pieces.py builds it: robust at eps 0.02, with three output
    disjuncts left for the MILP after the bounds."""
    import torch

    from camlang.models.architectures import build_mlp

    torch.manual_seed(1)
    net = build_mlp([4, 16, 16, 6])
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
        y = net(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))[0]
        net[-1].bias.sub_(y - torch.tensor([0.3, 0.0, 0.1, 0.05, 0.15, 0.2]))
    torch.save(net.state_dict(), path)

"""kill -9 at random points of every action kind, with 1 and 2 workers; the resumed run ends with
every number of an uninterrupted one, and the complete report already in the folder survives
every kill.

One chain of runs per worker count: the first run is killed inside its evaluate, the next one
(`--resume`) inside the synthesis, then inside a MILP of the check, inside the concepts action and
inside the export; a last resume finishes. Where each kill falls (which pass through the point,
before or after the call, which worker) is drawn at random every time (CAMLANG_FAULT_SEED
replays a draw). The kills come from `hook/sitecustomize.py`, which every process of a run loads.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from faultkit import (
    ROOT,
    Ran,
    Tally,
    assert_same_run,
    camlang_command,
    clean,
    env_with_hook,
    run_here,
)

SEED = int(os.environ.get("CAMLANG_FAULT_SEED", random.randrange(1 << 30)))

#: How often each rank passes each point in one uninterrupted run of `PROGRAM` (batch size 2), by
#: worker count; a kill is drawn among these passes. The evaluate's are those of the first
#: evaluate (the second one runs the synthesis first). With 2 workers the MILP's disjuncts are
#: dealt over both ranks, and concepts and export run on rank 0 alone.
PASSES: dict[str, dict[int, tuple[int, ...]]] = {
    "evaluate": {1: (4,), 2: (2, 2)},
    "synthesize": {1: (4,), 2: (4, 4)},
    "check": {1: (3,), 2: (1, 1)},
    "concepts": {1: (4,), 2: (4, 0)},
    "export": {1: (1,), 2: (1, 0)},
}


def _draw(rng: random.Random, point: str, workers: int, mark: Path) -> dict[str, object]:
    passes = PASSES[point][workers]
    rank = rng.choice([r for r, n in enumerate(passes) if n])
    return {
        "point": point,
        "at": rng.randint(1, passes[rank]),
        "rank": rank,
        "when": rng.choice(["before", "after"]),
        "mark": str(mark),
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_in_every_action_kind_then_resume(
    program: Path, reference: Path, tmp_path: Path, tally: Tally, workers: int
) -> None:
    rng = random.Random(f"{SEED}-{workers}")
    out = tmp_path / "out"
    out.mkdir()
    kept = ("report.json", "report.html")
    for name in kept:  # a complete report is there already: no kill may replace it
        shutil.copy(reference / name, out / name)
    before = {name: (out / name).read_bytes() for name in kept}
    launch = ["--workers", "2"] if workers == 2 else []
    for step, point in enumerate(PASSES):
        spec = _draw(rng, point, workers, tmp_path / f"killed-{step}")
        command = camlang_command(program, out, *(["--resume"] if step else []), *launch)
        got = subprocess.run(
            command, env=env_with_hook(spec), cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        context = f"kill {spec} (seed {SEED})"
        killed = Path(str(spec["mark"])).is_file()
        assert killed, f"{context}: no kill, exit {got.returncode}: {got.stderr[-2000:]}"
        tally.fault(f"kill -9 in {point}, {workers} worker(s)")
        assert got.returncode != 0, context
        assert clean(Ran(got.returncode, got.stdout, got.stderr), tally), f"{context}: {got.stderr[-3000:]}"
        assert {name: (out / name).read_bytes() for name in kept} == before, f"{context}: report replaced"
    ran = run_here(program, out, "--resume")
    assert ran.code == 0 and clean(ran, tally), f"seed {SEED}: {ran.stderr[-3000:]}"
    assert_same_run(reference, out, tally, f"resume after five kills, {workers} worker(s) (seed {SEED})")
    assert not (out / "report.partial.json").exists()

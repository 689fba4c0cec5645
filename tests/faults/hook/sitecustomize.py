"""The fault campaign's hook: kills this process with SIGKILL at a chosen point of a camlang run.

Python imports `sitecustomize` at start-up from the path, so putting this folder first on
PYTHONPATH arms every process of a run: the one process of a plain run, and the launcher and each
worker of `--workers 2`. Nothing happens unless CAMLANG_FAULT holds a JSON spec:

    {"point": "evaluate", "at": 3, "rank": 1, "when": "after", "mark": "/tmp/x/killed"}

kills worker `rank` (RANK, 0 without a launcher) at its `at`-th pass through `point`, `before`
or `after` the call, first writing `mark` so that the test knows the kill happened. With
"pause_until": PATH it waits there, instead, until PATH exists (a run that holds its lock). With
{"count": "/tmp/x/counts"} it kills nothing and writes, at exit, how often each point was passed
(`counts-<rank>.json`). With "raise": TEXT it raises a `CamlangError(TEXT)` there instead of
killing (a worker's own error).

The points: a finished batch of an evaluate kept in the cache, a save of the synthesis score
cache, a MILP solve of a check, a concept PNG saved, and an export's module generated.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import time
from collections import Counter
from typing import Any


def _arm(spec: dict[str, Any]) -> None:
    import camlang.concepts.report as concepts_report
    import camlang.run.cache as run_cache
    import camlang.run.export as export
    import camlang.smt.milp as milp
    import camlang.synth.cache as synth_cache

    rank = int(os.environ.get("RANK", "0"))
    passes: Counter[str] = Counter()

    def die() -> None:
        with open(spec["mark"], "w", encoding="utf-8") as f:
            json.dump(spec | {"pid": os.getpid()}, f)
        if "raise" in spec:
            from camlang.errors import CamlangError

            raise CamlangError(spec["raise"])
        if "pause_until" in spec:  # hold the run here (and its lock) until the test says go
            while not os.path.exists(spec["pause_until"]):
                time.sleep(0.05)
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner: Any, name: str, point: str, applies: Any = None) -> None:
        real = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if applies is not None and not applies(*args):
                return real(*args, **kwargs)
            passes[point] += 1
            fire = spec.get("point") == point and spec.get("rank", 0) == rank and passes[point] == spec["at"]
            if fire and spec.get("when") == "before":
                die()
            result = real(*args, **kwargs)
            if fire and spec.get("when") != "before":
                die()
            return result

        setattr(owner, name, wrapper)

    wrap(run_cache.Section, "append", "evaluate", lambda section, unit: section.name.startswith("evaluate"))
    wrap(synth_cache.ScoreCache, "save", "synthesize")
    wrap(milp, "milp", "check")
    wrap(concepts_report.ConceptReport, "_save", "concepts")
    wrap(export, "generate", "export")
    if "count" in spec:
        path = f"{spec['count']}-{rank}-{os.getpid()}.json"
        atexit.register(lambda: passes and open(path, "w", encoding="utf-8").write(json.dumps(dict(passes))))


if os.environ.get("CAMLANG_FAULT"):
    _arm(json.loads(os.environ["CAMLANG_FAULT"]))

"""Phase 1 of `synthesize`: capture the terminals of the training and holdout images once.

Every later evaluation of a candidate reuses them: the only other model calls are the
objective's. Under a time limit each capture may use a share of the time and keeps the prefix
of its split it captured (the selection or the comparison then says how many images it used).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from camlang.backends.torch_eager import terminals_used
from camlang.data import Dataset
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.runtime.metric_evaluation import referenced_cams
from camlang.synth.enumeration import Apply, Enumerator, Fixed, Template
from camlang.synth.job import Stop, SynthJob
from camlang.synth.racing import StopSearch
from camlang.synth.scoring import SplitData, capture_split

#: Share of `time` the training capture may use (selection then uses the images captured).
TRAIN_CAPTURE_SHARE = 0.3
#: Share of `time` the holdout capture may use (the rest of its images are left out).
HOLDOUT_CAPTURE_SHARE = 0.25


def grammar_terminals(en: Enumerator) -> set[str]:
    """The terminals the grammar's alternatives read (through their hole-free parts)."""
    fixed: list[Node] = []

    def walk(t: Template) -> None:
        if isinstance(t, Fixed):
            fixed.append(t.node)
        elif isinstance(t, Apply):
            for a in t.args:
                walk(a)

    for alts in en.alts.values():
        for alt in alts:
            walk(alt.template)
    return terminals_used(fixed)


def _share_deadline(job: SynthJob, share: float) -> float | None:
    """When a capture's `share` of the time limit ends (None without a time limit)."""
    seconds = job.limits.seconds
    return None if seconds is None else time.monotonic() + share * seconds


def _capture_batch_size(job: SynthJob) -> int:
    """Under a time limit, small batches let a capture stop in time."""
    return job.batch_size if job.limits.seconds is None else max(1, min(job.batch_size, 4))


def capture_train(job: SynthJob, train: Dataset) -> SplitData:
    """The training images' terminals that the grammar and the objective read."""
    dummy = Enumerator(job.program, job.grammar, job.settings.max_size, lambda nt, n, s: "kept")
    objective_refs = [job.refs[r] for r in referenced_cams([job.objective.node]) if r in job.refs]
    needs = grammar_terminals(dummy) | terminals_used(objective_refs) | {"S", "P"}
    job.log.say(f"capturing {len(train)} training images ({', '.join(sorted(needs))})")
    share_check = _deadline_check(
        _share_deadline(job, TRAIN_CAPTURE_SHARE), "the training capture's share of the time limit reached"
    )

    def check() -> None:
        job.limits.check()
        share_check()

    # Under a time limit, selection uses the images captured so far (a prefix of the training
    # split) and says so.
    try:
        before = job.group.stop_check(check, job.timed)
        data = capture_split(
            job.live,
            train,
            needs,
            _capture_batch_size(job),
            job.counter,
            before,
            keep_partial=True,
            group=job.group,
        )
    except StopSearch as stop:
        raise CamlangError(
            f"synthesize `{job.name}`: {stop} while capturing the training data",
            hint="raise `budget` or `time`",
        ) from None
    if data.count < len(train):
        job.log.say(f"time allowed capturing {data.count} of {len(train)} training images")
    return data


def capture_holdout(job: SynthJob, holdout: Dataset | None, data: SplitData, stop: Stop) -> SplitData | None:
    """The holdout's terminals, for the winner and every stdlib CAM (captured before the search,
    so its cost is known and the comparison's estimate covers only scoring)."""
    if holdout is None or stop.partial:
        return None
    needs = set(data.terminals) | terminals_used(list(job.refs.values()))
    job.log.say(f"capturing {len(holdout)} holdout images")
    # The holdout capture may use a share of the time; a prefix of the holdout is still disjoint
    # from the training split, and the comparison says how many images it used.
    check = _deadline_check(
        _share_deadline(job, HOLDOUT_CAPTURE_SHARE), "the holdout capture's share of the time limit reached"
    )
    try:
        before = job.group.stop_check(check, job.timed)
        hdata = capture_split(
            job.live,
            holdout,
            needs,
            _capture_batch_size(job),
            job.counter,
            before,
            keep_partial=True,
            group=job.group,
        )
    except KeyboardInterrupt:
        job.interrupted(stop)
        return None
    if hdata.count < len(holdout):
        job.log.say(f"time allowed capturing {hdata.count} of {len(holdout)} holdout images")
    return hdata


def _deadline_check(share_end: float | None, reason: str) -> Callable[[], None]:
    """A check that raises `StopSearch(reason)` once `share_end` has passed."""

    def check() -> None:
        if share_end is not None and time.monotonic() >= share_end:
            raise StopSearch(reason)

    return check

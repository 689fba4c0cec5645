"""Between tuning and the holdout comparison: every stdlib CAM on the same first training images,
so the comparison's first references are the best stdlib CAMs on equal evidence.

Under a time limit the holdout comparison must score only its first references (the two best
stdlib CAMs on the selection split) and adds the others as time allows. The race's evidence on the
stdlib CAMs is uneven: a contained CAM dropped in the first round and an anchor have 4 images; a
survivor has hundreds; when the final checks have no time, nothing evens it out. On ResNet-56's
insertion (sessions 10 and 11) Score-CAM, the best stdlib CAM there, was dropped early and never
compared, so the verdict was against Ablation-CAM. Here every stdlib CAM the training capture can
serve is scored on the first `REFERENCE_IMAGES` training images (values the race cached cost
nothing), inside the comparison's share of `time`; the comparison then orders them by these means.
Selection still never sees the holdout: these are training images, and they choose only what the
winner is compared against.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from camlang.backends.torch_eager import terminals_used
from camlang.passes.simplify import simplify
from camlang.synth.job import Stop, SynthJob
from camlang.synth.race_scorer import RaceScorer
from camlang.synth.racing import StopSearch

#: Training images every stdlib CAM is scored on to choose the comparison's first references.
REFERENCE_IMAGES = 64
#: At most this share of the comparison's time goes to scoring the references on training images.
REFERENCE_SHARE = 0.25


def reference_scores(job: SynthJob, scorer: RaceScorer, stop: Stop) -> Mapping[str, float]:
    """Under a time limit, each stdlib CAM's mean metric value (not oriented) on the same first
    training images, for the ones scored within the share. Nothing without a time limit (the
    comparison then scores every stdlib CAM) or after an interrupt; Ctrl-C here ends it with the
    means so far."""
    if job.limits.seconds is None or stop.partial:
        return {}
    names = [r for r in sorted(job.stdlib) if terminals_used([job.refs[r]]) <= scorer.split.needs]
    n = min(REFERENCE_IMAGES, scorer.n_train)
    if not names or n == 0:
        return {}
    per_pair = job.clock.per_pair()
    share = REFERENCE_SHARE * max(0.0, job.limits.remaining())
    deadline = time.monotonic() + share

    def check() -> None:
        if time.monotonic() >= deadline:
            raise StopSearch("the references' share of the time limit reached")

    images = list(range(n))
    # under its normal form, a contained CAM finds the values the race cached for it
    normal = [simplify(job.program.builder, job.refs[r]) for r in names]
    rows = scorer.add_rows(normal)
    means: dict[str, float] = {}
    spent = 0.0
    for name, node, row in zip(names, normal, rows):
        cost = per_pair * scorer.missing(node, n)
        if job.agree_timed(spent + cost > share):
            continue
        try:
            values = scorer.values([row], images, job.group.stop_check(check, job.timed))
        except StopSearch:
            break
        except KeyboardInterrupt:
            job.interrupted(stop)
            break
        spent += cost
        means[name] = float(values[0].nanmean())
    skipped = len(names) - len(means)
    job.log.say(
        f"references: {len(means)} stdlib CAMs scored on the first {n} training images"
        + (f" ({skipped} left out: time)" if skipped else "")
    )
    return means

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

How many are the first references follows the same evidence: every stdlib CAM not confidently
worse than the best there (the race's paired rule, at `LEVEL_Z`), at least `FIRST_REFERENCES` and
at most `MAX_REFERENCES`; the comparison adds the contained stdlib CAMs the final checks re-scored
(`holdout._contained`). Two fixed references were not enough on insertion (session 11): the
stdlib CAMs lie within 0.01 AUC of one another, 64 images cannot rank them, and Score-CAM, the
best there on thousands of images, was third on ResNet-56 and ResNet-20 seed 11.
Selection still never sees the holdout: these are training images, and they choose only what the
winner is compared against.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.passes.simplify import simplify
from camlang.synth.job import Stop, SynthJob
from camlang.synth.race_scorer import RaceScorer
from camlang.synth.racing import StopSearch, paired_upper_bound

#: Training images every stdlib CAM is scored on to choose the comparison's first references.
REFERENCE_IMAGES = 64
#: At most this share of the comparison's time goes to scoring the references on training images.
REFERENCE_SHARE = 0.25
#: A stdlib CAM is confidently worse than the best when the upper bound of its paired mean
#: difference, `LEVEL_Z` standard errors, is below zero.
LEVEL_Z = 2.0
#: The comparison scores at least this many first references...
FIRST_REFERENCES = 2
#: ...and at most this many (each costs about as much holdout time as the winner).
MAX_REFERENCES = 4


@dataclass(frozen=True)
class References:
    """Each scored stdlib CAM's mean (not oriented) on the same first training images, and the
    ones not confidently worse than the best there, best first."""

    means: dict[str, float] = field(default_factory=dict)
    level: tuple[str, ...] = ()

    def first(self, available: int) -> int:
        """How many first references the comparison must score, of `available` stdlib CAMs."""
        return min(available, max(FIRST_REFERENCES, min(MAX_REFERENCES, len(self.level))))


def level_with_best(values: dict[str, torch.Tensor], sign: float, z: float = LEVEL_Z) -> tuple[str, ...]:
    """The names whose per-image `values` are not confidently worse than the best mean's (`sign`
    orients them: +1 maximize), best mean first. Images where either value is NaN are left out
    of that pair."""
    means = {r: float(sign * v.nanmean()) for r, v in values.items()}
    finite = [r for r in values if math.isfinite(means[r])]
    if not finite:
        return ()
    best = max(finite, key=lambda r: (means[r], r))
    level = []
    for r in finite:
        d = sign * (values[r] - values[best])
        d = d[~d.isnan()]
        if r != best and len(d) > 1 and bool((d != 0).any()):
            if float(paired_upper_bound(d, z)) < 0:
                continue
        level.append(r)
    return tuple(sorted(level, key=lambda r: (-means[r], r)))


def reference_scores(job: SynthJob, scorer: RaceScorer, stop: Stop) -> References:
    """Under a time limit, each stdlib CAM's mean metric value (not oriented) on the same first
    training images, for the ones scored within the share, and the ones level with the best.
    Nothing without a time limit (the comparison then scores every stdlib CAM) or after an
    interrupt; Ctrl-C here ends it with the means so far."""
    if job.limits.seconds is None or stop.partial:
        return References()
    names = [r for r in sorted(job.stdlib) if terminals_used([job.refs[r]]) <= scorer.split.needs]
    n = min(REFERENCE_IMAGES, scorer.n_train)
    if not names or n == 0:
        return References()
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
    values: dict[str, torch.Tensor] = {}
    spent = 0.0
    for name, node, row in zip(names, normal, rows):
        cost = per_pair * scorer.missing(node, n)
        if job.agree_timed(spent + cost > share):
            continue
        try:
            values[name] = scorer.values([row], images, job.group.stop_check(check, job.timed))[0]
        except StopSearch:
            break
        except KeyboardInterrupt:
            job.interrupted(stop)
            break
        spent += cost
    refs = References({r: float(v.nanmean()) for r, v in values.items()}, level_with_best(values, job.sign))
    skipped = len(names) - len(values)
    level = f"; level with the best: {', '.join(f'`{r}`' for r in refs.level)}" if refs.level else ""
    job.log.say(
        f"references: {len(values)} stdlib CAMs scored on the first {n} training images"
        + (f" ({skipped} left out: time)" if skipped else "")
        + level
    )
    return refs

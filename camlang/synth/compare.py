"""The holdout comparison: the winner against every stdlib CAM on images selection never saw.

For the winner and the best stdlib CAM on the holdout, the per-image paired difference gets a
bootstrap CI, and one sentence says whether the synthesized CAM is better, equal (it is a
stdlib CAM, proved or probe-equal), worse, or not distinguishable on these images.

The stdlib CAMs' holdout scores are cached in `cache_dir`, keyed by a digest of the model's
outputs and the images (so the same model and data), the objective's text and the seed: every
synthesis with the same model, data and objective reuses them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from camlang.report.model import Interval
from camlang.synth.cache import read_values, write_values
from camlang.synth.scoring import SplitRows, bootstrap

#: Fewer paired holdout images than this give no better/worse verdict (a bootstrap CI over a
#: handful of images does not hold its 95%).
MIN_PAIRED_IMAGES = 10


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """The winner minus the best stdlib CAM per holdout image, oriented so positive is better."""

    reference: str
    images: int
    difference: Interval
    verdict: str
    sentence: str


def paired_comparison(
    winner: torch.Tensor,
    stdlib: dict[str, torch.Tensor],
    sign: float,
    seed: int,
    equal_to: str | None,
    metric: str,
) -> PairedComparison | None:
    """Compare per-image values (not oriented) of the winner with the best stdlib CAM.

    `equal_to` names the stdlib CAM the winner is (proved or probe-equal), if any.
    """
    finite = {r: v for r, v in stdlib.items() if bool(torch.isfinite(v).any())}
    if not finite or winner.numel() == 0:
        return None
    best = max(sorted(finite), key=lambda r: sign * float(finite[r].nanmean()))
    diff = sign * (winner - finite[best])
    defined = diff[torch.isfinite(diff)]  # images where a CAM's value is undefined drop out
    n = int(defined.numel())
    iv = bootstrap(defined[None], seed)[0] if n else Interval(math.nan, math.nan, math.nan)
    undefined = int(diff.numel()) - n
    dropped = f" ({undefined} more left out: a value is undefined there)" if undefined else ""
    what = (
        f"{metric}, paired difference to `{best}` over {n} holdout images{dropped}: {iv.mean:+.4g} "
        f"[{iv.ci_low:+.4g}, {iv.ci_high:+.4g}], positive = better"
    )
    if equal_to is not None:
        verdict = "equal"
        sentence = f"Equal: the synthesized CAM is stdlib `{equal_to}`; against the best stdlib CAM: {what}."
    elif n < MIN_PAIRED_IMAGES:
        verdict = "inconclusive"
        sentence = (
            f"Not distinguishable from the best stdlib CAM `{best}`: too few holdout images for a "
            f"confidence interval (at least {MIN_PAIRED_IMAGES}; {what})."
        )
    elif iv.ci_low > 0:
        verdict, sentence = "better", f"Better than the best stdlib CAM `{best}` ({what})."
    elif iv.ci_high < 0:
        verdict, sentence = "worse", f"Worse than the best stdlib CAM `{best}` ({what})."
    else:
        verdict = "inconclusive"
        sentence = f"Not distinguishable from the best stdlib CAM `{best}`: the CI includes 0 ({what})."
    return PairedComparison(best, n, iv, verdict, sentence)


class StdlibScoreCache:
    """Per-image holdout values of stdlib CAMs, shared by syntheses with the same key (JSON)."""

    def __init__(
        self, cache_dir: Path | None, data: SplitRows, total: int, objective_text: str, seed: int, model: str
    ) -> None:
        # Rows are prefixes of one ordered data set: its first images, its model outputs and its
        # length identify it, so a comparison on fewer images reuses a longer row.
        h = hashlib.sha256()
        h.update(f"{model}\n{objective_text}\n{seed}\n{total}".encode())
        head = data.rows(range(min(16, data.count)))
        h.update(head.x.contiguous().numpy().tobytes())
        h.update(head.logits.contiguous().numpy().round(3).tobytes())
        self.digest = h.hexdigest()[:20]
        self.path = None if cache_dir is None else Path(cache_dir) / f"stdlib-holdout-{self.digest}.json"
        self.values: dict[str, list[float | None]] = {}
        if self.path is not None:
            # a damaged or out-of-date file is ignored and its rows scored again (camlang.synth.cache)
            found, _ = read_values(self.path, self.digest)
            self.values = {k: v for k, v in (found or {}).items() if isinstance(v, list)}

    def get(self, cam_text: str, n: int) -> torch.Tensor | None:
        """Values of a stdlib CAM (by its expression text) on the first `n` images, if cached."""
        row = self.values.get(cam_text)
        if row is None or len(row) < n:
            return None
        return torch.tensor([math.nan if v is None else v for v in row[:n]], dtype=torch.float32)

    def put(self, cam_text: str, values: torch.Tensor) -> None:
        """Store a stdlib CAM's values (a longer row replaces a shorter one)."""
        row = [float(v) if math.isfinite(float(v)) else None for v in values.tolist()]
        if len(row) >= len(self.values.get(cam_text, [])):
            self.values[cam_text] = row

    def save(self) -> None:
        """Write the cache atomically (no-op without a cache folder)."""
        if self.path is None:
            return
        write_values(self.path, self.digest, dict(self.values))

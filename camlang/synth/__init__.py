"""Metric-guided synthesis of CAM expressions (SyCAM, made fast and with proofs).

- `enumeration`: bottom-up enumeration by size over a grammar, in the interning IR builder;
- `observe`: the observational-equivalence and correctness oracles on a probe batch;
- `proof`: the symbolic oracle (normal forms, sympy, z3 on bounded instances);
- `racing`: racing and exhaustive selection on the objective metric;
- `cache`: the resume cache; `terminal_store`: captured terminals on disk, batch by batch;
- `tuning`: continuous tuning of numeric-constant holes (scipy);
- `driver`: `synthesize`, which runs the phases in order: `job` (what they share), `capturing`
  (lazy captures, as the race asks), `candidates` (enumerate, deduplicate), `race_scorer`,
  `finalise`, `tune_winner`, `holdout` (with `compare` and `equivalence`) and `reporting`.
"""

from camlang.synth.driver import SynthOutcome, default_reference_cams, synthesize
from camlang.synth.observe import all_ranking_only, depends_only_on_ranking
from camlang.synth.proof import EquivalenceVerdict, prove_bounded, prove_equivalent, prove_nonnegative

__all__ = [
    "EquivalenceVerdict",
    "SynthOutcome",
    "all_ranking_only",
    "default_reference_cams",
    "depends_only_on_ranking",
    "prove_bounded",
    "prove_equivalent",
    "prove_nonnegative",
    "synthesize",
]

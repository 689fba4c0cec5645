"""Which stdlib CAMs a candidate equals, and the report's note saying how we know.

Equal on the probe data is the observer's verdict; the symbolic oracle then tries a proof. The
holdout comparison (is the winner a stdlib CAM?) and the report (a note per shown candidate)
both ask, so the answers are kept: a proof is tried once per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

from camlang.frontend.ir import Node
from camlang.synth.job import SynthJob
from camlang.synth.observe import Observer
from camlang.synth.proof import prove_equivalent

#: Seconds of the time limit below which no proof is tried.
NO_PROOF_BELOW_S = 10.0
#: Longest proof attempt, in seconds (and at most a quarter of the time left).
PROOF_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Equivalence:
    """A candidate's equalities with stdlib CAMs: the note for the report and the names."""

    note: str | None
    equal: tuple[str, ...]  # proved equal, or equal on the probe with no counterexample found


class EquivalenceNotes:
    """The equalities of candidates with the reference CAMs, worked out once per candidate.

    Only rank 0 works them out (they are notes for the report, which rank 0 writes); the other
    ranks get no equalities.
    """

    def __init__(self, job: SynthJob, observer: Observer) -> None:
        self.job = job
        self.observer = observer
        self._known: dict[int, Equivalence] = {}

    def of(self, node: Node) -> Equivalence:
        """`node`'s equalities with the reference CAMs, in name order."""
        if not self.job.group.is_main:
            return Equivalence(None, ())
        known = self._known.get(node.nid)
        if known is None:
            known = self._work_out(node)
            self._known[node.nid] = known
        return known

    def _work_out(self, node: Node) -> Equivalence:
        notes: list[str] = []
        equal: list[str] = []
        for r, ref in sorted(self.job.refs.items()):
            try:
                same_probe = self.observer.equal_on_probe(node, ref)
            except KeyError:  # a terminal the probe did not capture
                continue
            if not same_probe:
                continue
            note, disproved = self._note(node, r, ref)
            notes.append(note)
            if not disproved:  # a counterexample: not stdlib `r`, whatever the probe says
                equal.append(r)
        return Equivalence("; ".join(notes) if notes else None, tuple(equal))

    def _note(self, node: Node, r: str, ref: Node) -> tuple[str, bool]:
        """How we know `node` equals stdlib `r` (equal on the probe data; proved, or not), and
        whether the proof found a counterexample (then `node` is not `r` for all inputs)."""
        left = self.job.limits.remaining()
        if left < NO_PROOF_BELOW_S:
            return f"equal to stdlib `{r}` on the probe data (no proof tried: time limit)", False
        try:
            v = prove_equivalent(
                self.job.program.builder, node, ref, timeout_s=min(PROOF_TIMEOUT_S, left / 4)
            )
        except ImportError as err:  # the symbolic oracle's solver is not installed
            return f"equal to stdlib `{r}` on the probe data (no proof tried: {err})", False
        if v.status == "equivalent":
            return f"equivalent to stdlib `{r}` (proved: {v.method}, {v.detail})", False
        if v.status == "not_equivalent":
            return (
                f"equal to stdlib `{r}` on the probe data only (not for all inputs: counterexample found)",
                True,
            )
        return f"equal to stdlib `{r}` on the probe data only", False

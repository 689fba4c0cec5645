"""Phases 2 and 3 of `synthesize`: enumerate the grammar, then deduplicate its CAMs.

Enumeration goes bottom-up by size; the observer drops observationally equal and invalid terms
on the probe batch (the first `probe` training images). Deduplication simplifies the kept CAMs
(normal forms), merges equal ones, and finds the stdlib CAMs the grammar contains and the stdlib
CAMs outside it that can be scored for free (the race's anchors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from camlang.backends.torch_eager import terminals_used
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, to_text
from camlang.passes.simplify import simplify
from camlang.synth.enumeration import Admit, Enumerator
from camlang.synth.job import Stop, SynthJob
from camlang.synth.observe import Observer, all_ranking_only
from camlang.synth.racing import StopSearch
from camlang.synth.scoring import SplitData


@dataclass(frozen=True)
class Search:
    """The enumeration's outcome: the enumerator (terms, sizes, counts) and its probe observer."""

    en: Enumerator
    observer: Observer


@dataclass(frozen=True)
class Pool:
    """The distinct complete CAMs after deduplication, and the stdlib CAMs around them."""

    cands: tuple[Node, ...]
    texts: tuple[str, ...]  # the simplified text of each candidate
    contained: dict[str, Node]  # stdlib CAMs the grammar builds (or simplifies to)
    anchors: dict[str, Node]  # stdlib CAMs outside the grammar that the captured terminals can score


def enumerate_terms(job: SynthJob, data: SplitData, stop: Stop) -> Search:
    """Enumerate the grammar size by size until `max_size`, the limits or an interrupt."""
    st = job.settings
    probe_idx = list(range(min(st.probe, data.count)))
    observer = Observer(
        data.terminals_of(probe_idx),
        data.size,
        job.grammar.start,
        all_ranking_only([job.objective.node]),
        seed=st.seed,
    )
    job.limits.start_enumeration()
    check = job.group.stop_check(job.limits.check, job.timed)
    en = Enumerator(job.program, job.grammar, st.max_size, _checked(observer, check))
    try:
        for k in en.levels():
            job.log.update(
                f"enumerating: size {k}/{st.max_size} · {en.stats.kept.get(job.grammar.start, 0)} candidates",
                k,
            )
            check()
    except StopSearch as reason:
        stop.set(str(reason))
    except KeyboardInterrupt:
        job.interrupted(stop)
    finally:
        job.limits.enumeration_end = None
    return Search(en, observer)


#: Terms admitted between two limit checks inside an enumeration level (one level can take long).
ADMITS_PER_CHECK = 256


def _checked(observer: Observer, check: Callable[[], None]) -> Admit:
    """`observer.admit`, checking the limits every `ADMITS_PER_CHECK` terms.

    The enumeration is the same on every rank, so every rank checks at the same term (the check
    agrees on rank 0's clock).
    """
    seen = [0]

    def admit(nt: str, node: Node, size: int) -> str:
        seen[0] += 1
        if seen[0] % ADMITS_PER_CHECK == 0:
            check()
        return observer.admit(nt, node, size)

    return admit


def deduplicate(job: SynthJob, en: Enumerator, data: SplitData) -> Pool:
    """One candidate per normal form, and the stdlib CAMs inside and outside the grammar."""
    cands: list[Node] = []
    texts: list[str] = []
    seen_simplified: set[int] = set()
    for _, node in en.terms(job.grammar.start):
        normal = simplify(job.program.builder, node)
        if normal.nid in seen_simplified:
            continue
        seen_simplified.add(normal.nid)
        cands.append(node)
        texts.append(to_text(normal))
    if not cands:
        raise CamlangError(
            f"synthesize `{job.name}`: grammar `{job.grammar.name}` gave no valid CAM within "
            f"max_size = {job.settings.max_size}",
            hint="raise max_size or check the grammar's types",
        )
    # A stdlib CAM is in the grammar when the enumerator built it, or when its normal form is one
    # a kept candidate simplifies to (`softmax_c(1 * S_masked)` is Score-CAM's weight).
    in_grammar = en.seen.get(job.grammar.start, set())
    contained = {
        r: node
        for r, node in job.refs.items()
        if node.nid in in_grammar or simplify(job.program.builder, node).nid in seen_simplified
    }
    captured = set(data.terminals)
    anchors = {
        r: node
        for r, node in sorted(job.refs.items())
        if r not in contained and terminals_used([node]) <= captured
    }
    # Every rank enumerated on its own: the race needs the same rows, in the same order, everywhere.
    job.group.check_same("candidate list", "\n".join(texts + sorted(contained) + ["|"] + list(anchors)))
    return Pool(tuple(cands), tuple(texts), contained, anchors)

"""The `check` action: decide a statement's properties, spread over the run's workers.

Each property becomes a typed question and one call into `camlang.smt` (or the cam prover of
`camlang.synth`), in `camlang.run.questions`. This module decides which rank answers what, keeps
every verdict in the run's cache as soon as it is found (`--resume` skips the cached ones), and
gathers the rows on rank 0. When the run stops early, `state.unfinished` receives the rows that
finished.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch.distributed as torch_dist

from camlang import smt
from camlang.distributed.pieces import StorePieceShare, default_store
from camlang.errors import CamlangError
from camlang.report import CheckResult
from camlang.run.cache import Section
from camlang.run.questions import (
    SMT_KINDS,
    SmtQuestion,
    decide,
    property_key,
    question_of,
    row_of,
    smt_verdict,
)
from camlang.run.state import RunState

# Not in `camlang.smt`'s public names (yet): combining the ranks' partial verdicts of one property.
from camlang.smt import combine

__all__ = ["run_check", "run_checks"]


@dataclass(frozen=True)
class _CheckPart:
    """What one rank sends to rank 0: the rows it decided, and its partial verdicts of the
    properties every rank works on together."""

    rows: Mapping[str, CheckResult]
    partial: Mapping[str, smt.Verdict]


def run_check(state: RunState, name: str) -> CheckResult:
    """Decide one property on this process and turn the verdict into a report row."""
    return decide(state, state.program.properties[name])


def run_checks(state: RunState, names: list[str]) -> list[CheckResult] | None:
    """Decide properties, spread over the workers (each takes the next property when it is free,
    `_claimed_in_turn`); rank 0 gets the rows, in the statement's order."""
    dist = state.dist
    section = state.cache.section("check", [property_key(state, n) for n in names])
    cached = {u["property"]: u for u in section.units()} if state.options.resume else {}
    done = set(cached)
    if state.options.resume and dist.world_size > 1:
        # every rank must claim from the same list: rank 0's view of the cache decides (only rank 0
        # needs the cached rows themselves)
        done = set(dist.broadcast(sorted(cached)))
    rows: dict[str, CheckResult] = {}
    partial: dict[str, smt.Verdict] = {}
    by_pieces = _dealt_by_pieces(state, names)
    state.check_statements += 1
    try:
        if dist.is_main:
            rows |= {n: CheckResult(**cached[n]) for n in names if n in done}
        whole = [n for n in names if n not in by_pieces and n not in done]
        for name in _claimed_in_turn(state, whole):
            rows[name] = run_check(state, name)
            section.append(_unit(rows[name]))
        for position, name in enumerate(names):
            if name in by_pieces and name not in done:
                partial[name] = _piece_verdict(state, name, position)
        parts = dist.gather(_CheckPart(rows, partial))
    except BaseException:
        if state.is_main:
            found = {
                u["property"]: CheckResult(**u) for u in section.units(this_run_only=not state.options.resume)
            }
            found |= rows
            state.unfinished = [found[n] for n in names if n in found]
        raise
    if parts is None:
        return None
    return _merged(state, names, parts, by_pieces, section)


def _merged(
    state: RunState, names: list[str], parts: list[_CheckPart], by_pieces: set[str], section: Section
) -> list[CheckResult]:
    """Rank 0: every rank's rows, and the verdicts of the properties decided piece by piece."""
    merged: dict[str, CheckResult] = {}
    for part in parts:
        merged.update(part.rows)
    for name in names:
        if name in by_pieces and name not in merged:
            verdict = combine([part.partial[name] for part in parts])
            merged[name] = row_of(state.program.properties[name], verdict)
            section.append(_unit(merged[name]))
    return [merged[n] for n in names]


def _piece_verdict(state: RunState, name: str, position: int) -> smt.Verdict:
    """This rank's partial verdict over its share of property `name`'s pieces."""
    pdef = state.program.properties[name]
    try:
        question = question_of(state, pdef)
    except CamlangError as err:
        if err.span is None:
            err.span = pdef.span
        raise
    assert isinstance(question, SmtQuestion)  # only SMT properties are dealt by pieces
    # store keys unique to the run, the statement and the property
    prefix = f"camlang/{state.cache.run_id}/check{state.check_statements}/p{position}"
    share = StorePieceShare(default_store(), prefix, state.dist.rank, state.dist.world_size)
    return smt_verdict(state, pdef, question, share)


def _claimed_in_turn(state: RunState, names: list[str]) -> Iterator[str]:
    """The properties this rank decides: with several ranks, each takes the next unclaimed one
    from a counter in the process group's store when it is free, so a rank that drew quick
    properties takes more of them (a verdict does not depend on the rank that found it)."""
    if state.dist.world_size <= 1:
        yield from names
        return
    prefix = f"camlang/{state.cache.run_id}/check{state.check_statements}/claims"
    store = torch_dist.PrefixStore(prefix, default_store())
    while (k := int(store.add("next", 1)) - 1) < len(names):
        yield names[k]


def _dealt_by_pieces(state: RunState, names: list[str]) -> set[str]:
    """The properties whose pieces (output disjuncts, branches) are dealt over every rank.

    With N ranks and P properties, the first P - (P mod N) go one per rank (property i on rank
    i mod N: whole properties balance best and share nothing); the last P mod N (all of them when
    P < N) would leave ranks idle, so each of those that has pieces (a robustness, saliency or
    VNN-LIB property with an SMT back end other than z3-naive) is worked on by every rank together,
    one after the other. docs/scaling.md explains the choice."""
    world = state.dist.world_size
    if world <= 1:
        return set()
    tail = names[len(names) - len(names) % world :]
    return {
        n
        for n in tail
        if state.program.properties[n].kind in SMT_KINDS
        and state.program.properties[n].args.get("backend", "auto") != "z3-naive"
    }


def _unit(row: CheckResult) -> dict[str, Any]:
    """A row as its cache unit (plain JSON)."""
    out = dataclasses.asdict(row)
    out["replay"] = None if row.replay is None else dict(row.replay)
    return out

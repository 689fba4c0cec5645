"""`synthesize`: enumerate a grammar, prune with the oracles, race on the objective, report.

1. Capture the terminals of every training image once (forward + partial backward, plus the
   score terminals when the grammar reads them). Every later evaluation of a candidate reuses
   them: the only other model calls are the objective metric's.
2. Enumerate bottom-up by size; the observer drops observationally equal and invalid terms on
   the probe batch (the first `probe` training images).
3. Race the distinct complete CAMs on the training images (or score them all: `exhaustive`).
4. Fully evaluate the top candidates and the stdlib CAMs the grammar contains on the training
   split; the best is the winner. The holdout split is only used afterwards, for the report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from camlang.backends.torch_eager import TorchContext, evaluate, normalize_maps, terminals_used
from camlang.capture import capture
from camlang.data import Dataset
from camlang.engine import CamBatch, CamEngine
from camlang.errors import CamlangError
from camlang.evaluation import Evaluator, referenced_cams
from camlang.ir import Node, to_text
from camlang.metrics._common import CallCounter
from camlang.passes.simplify import simplify
from camlang.program import MetricDef, Program, Ref, SynthDef
from camlang.report.model import Candidate, Interval, MetricInfo, SynthCounts, SynthResult, Visuals
from camlang.runtime import LiveModel
from camlang.synth.cache import ScoreCache
from camlang.synth.enumeration import Enumerator, Fixed, Template
from camlang.synth.observe import Observer, all_ranking_only, as_map
from camlang.synth.proof import prove_equivalent
from camlang.synth.racing import RaceResult, StopSearch, exhaustive, race


@dataclass(frozen=True)
class SynthOutcome:
    """What a synthesis returns: the winner (built in `program.builder`) and its report."""

    name: str
    node: Node
    source_text: str
    partial: bool
    result: SynthResult
    forward_passes: int
    search_forward_passes: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Data:
    """A split's images, masks and captured terminals (keep-dims layout), all on the CPU."""

    x: torch.Tensor
    raw: torch.Tensor
    masks: torch.Tensor | None
    logits: torch.Tensor
    targets: torch.Tensor
    terminals: dict[str, torch.Tensor]
    labels: list[int]


class _Limits:
    def __init__(self, counter: CallCounter, budget: int | None, seconds: float | None) -> None:
        self.counter = counter
        self.budget = budget
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        if self.budget is not None and self.counter.images >= self.budget:
            raise StopSearch(f"budget of {self.budget} forward passes reached")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise StopSearch("time limit reached")


def default_reference_cams(program: Program) -> dict[str, Node]:
    """The cams that came from the stdlib's cams.cam, by name."""
    return {
        n: c.node for n, c in program.cams.items() if c.node is not None and c.origin.endswith("cams.cam")
    }


def _capture_split(
    live: LiveModel,
    ds: Dataset,
    needs: set[str],
    batch_size: int,
    counter: CallCounter,
    limits: _Limits | None,
) -> _Data:
    parts: list[dict[str, torch.Tensor]] = []
    xs, raws, masks, logits, targets = [], [], [], [], []
    labels: list[int] = []
    for batch in ds.batches(batch_size):
        if limits is not None:
            limits.check()
        x = batch.x.to(live.device)
        cap = capture(live.module, live.layer, x, needs, None, counter=counter)
        parts.append({k: v.detach().cpu() for k, v in cap.terminals.items()})
        xs.append(batch.x)
        raws.append(batch.raw)
        if batch.masks is not None:
            masks.append(batch.masks)
        logits.append(cap.logits.detach().cpu())
        targets.append(cap.targets.cpu())
        labels.extend(int(t) for t in cap.targets)
    terms = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return _Data(
        torch.cat(xs),
        torch.cat(raws),
        torch.cat(masks) if masks else None,
        torch.cat(logits),
        torch.cat(targets),
        terms,
        labels,
    )


def _slice(d: _Data, idx: list[int]) -> dict[str, torch.Tensor]:
    i = torch.tensor(idx)
    return {k: v[i] if v.shape[0] == d.x.shape[0] else v for k, v in d.terminals.items()}


class _Scorer:
    """Objective values of CAM nodes on images of a split, batched across cams."""

    def __init__(
        self,
        live: LiveModel,
        data: _Data,
        objective: MetricDef,
        refs: dict[str, Node],
        counter: CallCounter,
        seed: int,
    ) -> None:
        self.live, self.data, self.objective, self.refs = live, data, objective, refs
        self.counter, self.seed = counter, seed
        self.size = (int(data.x.shape[-2]), int(data.x.shape[-1]))

    def maps(self, nodes: list[Node], idx: list[int]) -> list[torch.Tensor]:
        ctx = TorchContext(_slice(self.data, idx), self.size)
        with torch.no_grad():
            vals = evaluate(nodes, ctx)
        return [normalize_maps(as_map(vals[n.nid], len(idx)), self.size) for n in nodes]

    def __call__(self, nodes: list[Node], idx: list[int]) -> torch.Tensor:
        """Metric values `[len(nodes), len(idx)]` (not oriented)."""
        names = [f"c{i}" for i in range(len(nodes))]
        ref_names = sorted(referenced_cams([self.objective.node]))
        missing = [r for r in ref_names if r not in self.refs]
        if missing:
            raise CamlangError(f"the objective reads ref({missing[0]}), which is not a known cam")
        all_nodes = nodes + [self.refs[r] for r in ref_names]
        maps = self.maps(all_nodes, idx)
        by_name = dict(zip(names + ref_names, maps))
        i = torch.tensor(idx)
        batch = CamBatch(by_name, {}, self.data.logits[i], self.data.targets[i], self.counter)
        engine = CamEngine(self.live.module, self.live.layer, dict(zip(names, nodes)))
        ev = Evaluator(self.live, engine, counter=self.counter, seed=self.seed)
        masks = self.data.masks[i] if self.data.masks is not None else None
        x = self.data.x[i].to(self.live.device)
        # Positions in this split key the metrics' random draws: stable however candidates are batched.
        out = ev.score(names, batch, x, masks, {self.objective.name: self.objective}, indices=i)
        return out.values[self.objective.name]


def _bootstrap(values: torch.Tensor, seed: int, draws: int = 1000) -> list[Interval]:
    """Mean and 95% percentile bootstrap CI over images, per row of `values [K, N]` (paired draws)."""
    k, n = values.shape
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (draws, n), generator=gen)
    means = values[:, idx].nanmean(-1)  # [K, draws]
    lo = torch.nanquantile(means, 0.025, dim=1)
    hi = torch.nanquantile(means, 0.975, dim=1)
    m = values.nanmean(1)
    return [Interval(float(m[j]), float(lo[j]), float(hi[j])) for j in range(k)]


def _grammar_terminals(en: Enumerator) -> set[str]:
    fixed: list[Node] = []

    def walk(t: Template) -> None:
        if isinstance(t, Fixed):
            fixed.append(t.node)
        elif not hasattr(t, "nonterminal"):
            for a in t.args:  # type: ignore[union-attr]
                walk(a)

    for alts in en.alts.values():
        for alt in alts:
            walk(alt.template)
    return terminals_used(fixed)


def synthesize(
    program: Program,
    sdef: SynthDef,
    live: LiveModel,
    train: Dataset,
    holdout: Dataset | None,
    *,
    batch_size: int = 32,
    seed: int = 0,
    cache_dir: Path | None = None,
    resume: bool = False,
    progress: Any = None,
    reference_cams: dict[str, Node] | None = None,
) -> SynthOutcome:
    """Find the grammar's expression that best optimizes the objective on `train` (see module docs)."""
    t0 = time.monotonic()
    st = sdef.settings
    grammar = program.grammars.get(sdef.grammar)
    if grammar is None:
        raise CamlangError(f"synthesize `{sdef.name}`: unknown grammar `{sdef.grammar}`", span=sdef.span)
    obj_name = st["objective"].name if isinstance(st["objective"], Ref) else str(st["objective"])
    objective = program.metrics.get(obj_name)
    if objective is None:
        raise CamlangError(f"synthesize `{sdef.name}`: unknown objective metric `{obj_name}`", span=sdef.span)
    sign = 1.0 if objective.direction == "maximize" else -1.0
    refs = default_reference_cams(program) if reference_cams is None else dict(reference_cams)
    for r in referenced_cams([objective.node]):
        if r not in refs and r in program.cams and program.cams[r].node is not None:
            refs[r] = program.cams[r].node  # type: ignore[assignment]
    max_size, top = int(st.get("max_size", 9)), int(st.get("top", 10))
    strategy, probe_n = str(st.get("strategy", "racing")), int(st.get("probe", 16))
    seed = int(st.get("seed", seed))
    counter = CallCounter()
    limits = _Limits(counter, st.get("budget"), st.get("time"))
    partial, stop_reason = False, None
    task = progress.add_task(f"synthesize {sdef.name}", total=max_size) if progress is not None else None

    def show(text: str, advance: int | None = None) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=f"{sdef.name}: {text}", completed=advance)

    # ---- enumeration with the observational oracle on the probe batch
    dummy = Enumerator(program, grammar, max_size, lambda nt, n, s: "kept")
    objective_refs = [refs[r] for r in referenced_cams([objective.node]) if r in refs]
    obs_needs = _grammar_terminals(dummy) | terminals_used(objective_refs) | {"S", "P"}
    try:
        data = _capture_split(live, train, obs_needs, batch_size, counter, limits)
    except StopSearch as stop:
        raise CamlangError(
            f"synthesize `{sdef.name}`: {stop} while capturing the training data",
            hint="raise `budget` or `time`",
        ) from None
    n_train = int(data.x.shape[0])
    probe_idx = list(range(min(probe_n, n_train)))
    size = (int(data.x.shape[-2]), int(data.x.shape[-1]))
    en_probe = Observer(
        _slice(data, probe_idx), size, grammar.start, all_ranking_only([objective.node]), seed=seed
    )
    en = Enumerator(program, grammar, max_size, en_probe.admit)
    try:
        for k in en.levels():
            show(f"size {k}/{max_size} · {en.stats.kept.get(grammar.start, 0)} candidates", k)
            limits.check()
    except StopSearch as stop:
        partial, stop_reason = True, str(stop)
    except KeyboardInterrupt:
        partial, stop_reason = True, "interrupted"
    cands: list[Node] = [n for _, n in en.terms(grammar.start)]
    if not cands:
        raise CamlangError(
            f"synthesize `{sdef.name}`: grammar `{grammar.name}` gave no valid CAM within "
            f"max_size = {max_size}",
            hint="raise max_size or check the grammar's types",
        )
    texts = [to_text(simplify(program.builder, n)) for n in cands]
    contained = {r: node for r, node in refs.items() if node.nid in en.seen.get(grammar.start, set())}

    # ---- selection on the training split (racing or exhaustive)
    scorer = _Scorer(live, data, objective, refs, counter, seed)
    cache = ScoreCache(
        ScoreCache.file_for(cache_dir, sdef.name),
        {
            "grammar": grammar.name,
            "objective": obj_name,
            "max_size": max_size,
            "seed": seed,
            "model": live.name,
            "layer": live.layer_path,
            "n": n_train,
            "data": getattr(train, "name", ""),
        },
        resume,
    )
    pairs_scored = [0]
    before_search = counter.images

    def score(ci: list[int], ii: list[int]) -> torch.Tensor:
        limits.check()
        out = torch.full((len(ci), len(ii)), math.nan)
        todo = [j for j, c in enumerate(ci) if any(cache.get(texts[c], i) is None for i in ii)]
        for j, c in enumerate(ci):
            if j not in todo:
                out[j] = torch.tensor([cache.get(texts[c], i) for i in ii])  # type: ignore[misc]
        if todo:
            got = scorer([cands[ci[j]] for j in todo], ii)
            pairs_scored[0] += len(todo) * len(ii)
            for r, j in enumerate(todo):
                out[j] = got[r]
                for col, i in enumerate(ii):
                    cache.put(texts[ci[j]], i, float(got[r, col]))
            cache.save()
        best = float(sign * out.nanmean(1).max()) if out.numel() else math.nan
        show(f"{len(cands)} candidates · {counter.images} forward passes · best {best:.4g}")
        return sign * out

    if strategy == "exhaustive":
        result: RaceResult = exhaustive(len(cands), n_train, score)
    else:
        result = race(len(cands), n_train, score, first=int(st.get("race_first", 4)))
    if result.stopped is not None:
        partial, stop_reason = True, stop_reason or result.stopped
    search_passes = counter.images
    per_pair = (counter.images - before_search) / max(1, pairs_scored[0])

    # ---- the winner: best race finalist, checked against the stdlib cams the grammar contains
    order = result.ranking()
    means = result.means()
    seen_n = result.evaluated()
    train_scores = {cands[i].nid: float(sign * means[i]) for i in order if int(seen_n[i]) > 0}
    train_images = {cands[i].nid: int(seen_n[i]) for i in order}
    ordered = [cands[i] for i in order]
    if not partial and contained:
        try:
            limits.budget = None  # the budget bounds the search; this final check always completes
            extra = [n for n in contained.values() if train_images.get(n.nid, 0) < n_train]
            if extra:
                vals = scorer(extra, list(range(n_train)))
                for node, row in zip(extra, vals):
                    train_scores[node.nid] = float(row.mean())
                    train_images[node.nid] = n_train
            finalists = [
                n for n in ordered[:1] + list(contained.values()) if train_images.get(n.nid) == n_train
            ]
            if finalists:
                best = max(finalists, key=lambda n: sign * train_scores[n.nid])
                if (
                    best is not ordered[0]
                    and sign * train_scores[best.nid] > sign * train_scores[ordered[0].nid]
                ):
                    ordered = [best] + [n for n in ordered if n is not best]
        except KeyboardInterrupt:
            partial, stop_reason = True, "interrupted"
    winner = ordered[0]
    winner_ci = None
    if winner in cands and int(seen_n[cands.index(winner)]) == n_train:
        winner_ci = _bootstrap(sign * result.scores[cands.index(winner)][None], seed)[0]
    shown = ordered[: max(1, top)]

    # ---- holdout comparison (never used for selection), equivalence notes and visuals
    comparison: dict[str, Interval] = {}
    hold_iv: dict[int, Interval] = {}
    visuals = None
    if not partial:
        try:
            hold = holdout if holdout is not None else None
            if hold is not None:
                hold_needs = obs_needs | terminals_used(list(refs.values()))
                hdata = _capture_split(live, hold, hold_needs, batch_size, counter, None)
                hscorer = _Scorer(live, hdata, objective, refs, counter, seed)
                ref_names = sorted(refs)
                nodes = shown + [refs[r] for r in ref_names]
                vals = torch.cat(
                    [
                        hscorer(nodes[s : s + 32], list(range(hdata.x.shape[0])))
                        for s in range(0, len(nodes), 32)
                    ]
                )
                ivs = _bootstrap(vals, seed)
                for node, iv in zip(shown, ivs):
                    hold_iv[node.nid] = iv
                comparison[sdef.name] = ivs[0]
                for r, iv in zip(ref_names, ivs[len(shown) :]):
                    comparison[r] = iv
                visuals = _visuals(hscorer, hdata, sdef.name, winner, refs)
            else:
                visuals = _visuals(scorer, data, sdef.name, winner, refs)
        except KeyboardInterrupt:
            partial, stop_reason = True, "interrupted"
    notes = {n.nid: _equivalence_note(program, en_probe, n, refs) for n in shown}
    nan = math.nan
    candidates = [
        Candidate(
            to_text(simplify(program.builder, n)),
            en.sizes.get(n.nid, n.size),
            train_scores.get(n.nid, nan),
            hold_iv[n.nid].mean if n.nid in hold_iv else nan,
            hold_iv[n.nid].ci_low if n.nid in hold_iv else nan,
            hold_iv[n.nid].ci_high if n.nid in hold_iv else nan,
            notes.get(n.nid),
        )
        for n in shown
    ]
    built = sum(en.stats.built.values())
    start_dropped = en.stats.dropped.get(grammar.start, {})
    start_built = en.stats.built.get(grammar.start, 0)
    distinct: dict[str, int] = {}
    after = start_built - start_dropped.get("syntactic", 0)
    distinct["syntactic"] = after
    after -= start_dropped.get("invalid", 0)
    distinct["valid"] = after
    after -= start_dropped.get("observational", 0)
    distinct["observational"] = after
    if en_probe.ranking:
        after -= start_dropped.get("ranking", 0)
        distinct["ranking"] = after
    n_full = len({n for n, k in train_images.items() if k == n_train})
    exhaustive_passes = (
        int(before_search + per_pair * len(cands) * n_train) if strategy != "exhaustive" else None
    )
    # Forward passes of the search itself (capture + selection), comparable with the exhaustive
    # estimate; the final full evaluations and the holdout report are counted in the outcome.
    counts = SynthCounts(
        start_built, distinct, n_full, search_passes, time.monotonic() - t0, exhaustive_passes
    )
    res = SynthResult(
        sdef.name,
        grammar.name,
        MetricInfo(obj_name, objective.direction, objective.source_text),  # type: ignore[arg-type]
        candidates,
        counts,
        partial,
        comparison,
        visuals,
    )
    stats = {
        "terms_built": built,
        "ill_typed": en.stats.ill_typed,
        "kept": dict(en.stats.kept),
        "dropped": {k: dict(v) for k, v in en.stats.dropped.items()},
        "levels_done": en.stats.levels_done,
        "stop_reason": stop_reason,
        "strategy": strategy,
        "ranking_compare": en_probe.ranking,
        "train_scores_winner": train_scores.get(winner.nid),
        "train_ci_winner": None if winner_ci is None else (winner_ci.ci_low, winner_ci.ci_high),
        "contained_stdlib": sorted(contained),
        "stdlib_train": {r: train_scores[n.nid] for r, n in contained.items() if n.nid in train_scores},
        "train_images": {to_text(n): train_images.get(n.nid, 0) for n in shown},
        "race_rounds": sorted(set(result.eliminated_at.values())),
        "candidates": len(cands),
        "per_candidate_image_passes": per_pair,
    }
    if progress is not None and task is not None:
        progress.update(task, completed=max_size)
    return SynthOutcome(
        sdef.name,
        winner,
        to_text(simplify(program.builder, winner)),
        partial,
        res,
        counter.images,
        search_passes,
        stats,
    )


def _equivalence_note(program: Program, obs: Observer, node: Node, refs: dict[str, Node]) -> str | None:
    notes = []
    for r, ref in sorted(refs.items()):
        try:
            same_probe = obs.equal_on_probe(node, ref)
        except KeyError:  # a terminal the probe did not capture
            continue
        if not same_probe:
            continue
        v = prove_equivalent(program.builder, node, ref, timeout_s=5.0)
        if v.status == "equivalent":
            notes.append(f"equivalent to stdlib `{r}` (proved: {v.method}, {v.detail})")
        elif v.status == "not_equivalent":
            notes.append(
                f"equal to stdlib `{r}` on the probe data only (not for all inputs: counterexample found)"
            )
        else:
            notes.append(f"equal to stdlib `{r}` on the probe data only")
    return "; ".join(notes) if notes else None


def _visuals(
    scorer: _Scorer, data: _Data, name: str, winner: Node, refs: dict[str, Node], count: int = 4
) -> Visuals:
    idx = list(range(min(count, int(data.x.shape[0]))))
    shown = sorted(r for r, n in refs.items() if terminals_used([n]) <= set(data.terminals))
    names = [name] + shown
    nodes = [winner] + [refs[r] for r in shown]
    maps = scorer.maps(nodes, idx)
    masks = data.masks[torch.tensor(idx)] if data.masks is not None else None
    return Visuals(
        data.raw[torch.tensor(idx)], dict(zip(names, maps)), masks, predictions=[data.labels[i] for i in idx]
    )

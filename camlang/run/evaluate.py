"""The `evaluate` action: plan -> batches -> summary.

1. `plan_evaluate` resolves the action once (cams, metrics, model, data, concept target),
   validates it (E501, E502: the one place a run checks them) and names its cache section: a
   frozen `EvalPlan`.
2. `score_batches` scores this worker's share of the data's batches
   (`camlang.distributed.shard_batches`), takes the cached ones from the run's cache on
   `--resume`, and writes every finished batch into the cache at once; each batch gives a typed
   `BatchScores`.
3. `camlang.run.eval_summary.summarise` turns the per-image rows into the report section, in data set
   order, exactly as one process computes it. Rank 0 gathers every worker's `EvalPart` first.

When the run stops early (Ctrl-C, a lost worker), `state.unfinished` receives the section for the
images that finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from camlang.backends.torch_eager import terminals_used
from camlang.concepts.targets import concept_live_model
from camlang.core.call_counter import CallCounter
from camlang.core.oom import OutOfMemory, is_out_of_memory, split_on_oom
from camlang.distributed import shard_batches
from camlang.errors import CamlangError
from camlang.frontend import syntax as s
from camlang.frontend.ir import Node
from camlang.frontend.program import MetricDef
from camlang.progress import make_progress
from camlang.report import EvalResult
from camlang.run.cache import Section
from camlang.run.eval_records import BatchScores, EvalPart, EvalPlan, ImageRow, Shown
from camlang.run.eval_summary import shown_image, summarise
from camlang.run.state import RunState
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.capture import LAYER_TERMINALS
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator, metric_needs_mask, referenced_cams

__all__ = ["plan_evaluate", "run_evaluate", "score_batches"]


@dataclass
class _Done:
    """What this worker has finished so far (gathered to rank 0 at the end)."""

    rows: dict[int, ImageRow] = field(default_factory=dict)
    shown: dict[int, Shown] = field(default_factory=dict)

    def add(self, batch: BatchScores) -> None:
        self.rows.update(batch.rows)
        self.shown.update(batch.shown)


def run_evaluate(state: RunState, act: s.Evaluate) -> EvalResult | None:
    """Evaluate cams with metrics on a model and data; returns the report section (on rank 0)."""
    plan = plan_evaluate(state, act)
    plan.data.unreadable.clear()  # this evaluate reports the files it could not read itself
    engine = CamEngine(
        plan.live.module,
        plan.live.target_layers,
        plan.nodes,
        chunk_size=max(64, state.options.batch_size),
        seed=state.options.seed,
        layout=plan.live.layout,
        fuse=plan.live.fuse,
    )
    counter = CallCounter()
    evaluator = Evaluator(plan.live, engine, chunk_size=256, counter=counter, seed=state.options.seed)
    section = state.cache.section("evaluate", dict(plan.cache_key))
    done = _Done()
    try:
        with make_progress(state.console, enabled=state.is_main) as progress:
            task = progress.add_task(f"evaluate on {plan.data_name}", total=len(plan.data))
            for batch in score_batches(state, plan, engine, evaluator, section, counter):
                done.add(batch)
                # rank 0 shows its own share, scaled to the whole data set
                progress.update(task, advance=batch.size * state.dist.world_size)
        parts = state.dist.gather(EvalPart(done.rows, done.shown, counter.images, dict(plan.data.unreadable)))
    except BaseException:
        _keep_finished(state, plan, section, done, counter, engine)
        raise
    if parts is None:
        return None
    return summarise(state, plan, EvalPart.merge(parts), engine)


def plan_evaluate(state: RunState, act: s.Evaluate) -> EvalPlan:
    """Resolve and validate `act` (every cam it reads must be a declared or synthesized one)."""
    live = state.model(act.model.name, act.data.name)
    data = state.data(act.data.name)
    concept_index = None
    if act.concept is not None:
        live, concept_index = concept_live_model(state, live, act.concept)
    cams = tuple(c.name for c in act.cams)
    nodes = {name: state.cam_node(name)[0] for name in cams}
    metrics = {m.name: state.program.metrics[m.name] for m in act.metrics}
    for ref in sorted(referenced_cams([m.node for m in metrics.values()])):
        nodes.setdefault(ref, state.cam_node(ref)[0])
    describe = data.describe()
    _validate(state, act, live, nodes.values(), metrics, describe)
    return EvalPlan(
        act,
        cams,
        metrics,
        nodes,
        live,
        data,
        describe,
        concept_index,
        _cache_key(state, act, cams, metrics),
        min(state.options.grid_images, len(data)),
    )


def _validate(
    state: RunState,
    act: s.Evaluate,
    live: LiveModel,
    nodes: Iterable[Node],
    metrics: Mapping[str, MetricDef],
    describe: Mapping[str, object],
) -> None:
    """The evaluate's user errors, raised before any image is scored: cams that read the layer on
    a model without one (E501), metrics that read MASK on data without masks (E502)."""
    if live.layer is None and terminals_used(nodes) & LAYER_TERMINALS:
        raise CamlangError(
            f"model `{act.model.name}` has no layer with spatial output ([batch, C, H, W]), so CAMs "
            "that read A or G cannot run on it",
            span=state.program.models[act.model.name].span,
            code="E501",
            hint='CAMs need an image model; name a convolutional layer with `at "..."`, or use '
            "input-gradient methods such as vanilla_gradient",
        )
    if describe.get("has_masks", False):
        return
    needing = [n for n, m in metrics.items() if metric_needs_mask(m.node)]
    if needing:
        raise CamlangError(
            f"metric{'s' if len(needing) > 1 else ''} {', '.join(needing)} read MASK, but data "
            f"`{act.data.name}` has no ground-truth masks",
            code="E502",
            hint="drop them from this evaluate, or give the data masks",
        )


def _cache_key(
    state: RunState, act: s.Evaluate, cams: Sequence[str], metrics: Mapping[str, MetricDef]
) -> dict[str, Any]:
    """Everything an evaluate's per-image values depend on (names a cached section)."""
    program = state.program
    model, data = program.models[act.model.name], program.datas[act.data.name]
    key: dict[str, Any] = {
        "cams": {c: state.cam_node(c)[1] for c in cams},
        "metrics": {m: d.source_text for m, d in metrics.items()},
        "model": [act.model.name, model.kind, repr(model.args), model.layer],
        "data": [act.data.name, data.kind, repr(data.args)],
        "seed": state.options.seed,
        "batch_size": state.options.batch_size,
        "device": state.options.device.split(":")[0],
    }
    if act.concept is not None:
        key["concept"] = [act.concept.concepts.name, act.concept.concept.name]
    return key


def score_batches(
    state: RunState,
    plan: EvalPlan,
    engine: CamEngine,
    evaluator: Evaluator,
    section: Section,
    counter: CallCounter,
) -> Iterator[BatchScores]:
    """This worker's batches, scored (or read from the cache on `--resume`), in order."""
    cached = rows_from_units(section.units()) if state.options.resume else {}
    dist = state.dist
    # Out of memory on a batch: the same images again in calls half as large (per-image results
    # do not depend on the call size), and the size that fitted for the batches after it.
    call_size = state.options.batch_size
    for shard in shard_batches(len(plan.data), state.options.batch_size, dist.rank, dist.world_size):
        positions = list(range(shard.start, shard.stop))
        indices = plan.data.indices(positions)
        if all(i in cached for i in indices):
            yield BatchScores({i: cached[i] for i in indices}, {}, shard.size, cached=True)
            continue
        try:
            batch, call_size = split_on_oom(
                partial(_score_slice, plan, engine, evaluator, positions, counter),
                len(positions),
                call_size,
                _joined,
                release=_release_memory,
            )
        except OutOfMemory as err:
            raise CamlangError(
                f"out of memory even on {err.tried} image(s) of data `{plan.data_name}` on "
                f"{plan.live.device}: {err}",
                hint=f"run again with --batch-size {err.suggest} --resume (everything finished is kept)",
                code="E602",
            ) from None
        if call_size < state.options.batch_size:
            state.warn(
                f"evaluate: out of memory at {state.options.batch_size} images per call; "
                f"continued at {call_size} (same numbers)"
            )
        section.append([[i, r.values, r.nan] for i, r in batch.rows.items()])
        yield batch


def _score_slice(
    plan: EvalPlan,
    engine: CamEngine,
    evaluator: Evaluator,
    positions: list[int],
    counter: CallCounter,
    start: int,
    stop: int,
) -> BatchScores:
    return _score(plan, engine, evaluator, positions[start:stop], counter)


def _joined(parts: list[BatchScores]) -> BatchScores:
    rows: dict[int, ImageRow] = {}
    shown: dict[int, Shown] = {}
    for part in parts:
        rows.update(part.rows)
        shown.update(part.shown)
    return BatchScores(rows, shown, sum(p.size for p in parts), cached=False)


def _release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _score(
    plan: EvalPlan, engine: CamEngine, evaluator: Evaluator, positions: list[int], counter: CallCounter
) -> BatchScores:
    batch = plan.data.get(positions, skip_unreadable=True)
    if len(batch) == 0:  # every image of this batch became unreadable (counted by the data set)
        return BatchScores({}, {}, len(positions), cached=False)
    x = batch.x.to(plan.live.device)
    try:
        cam_batch = engine(x, plan.targets(x), counter=counter, indices=batch.indices)
    except CamlangError:
        raise
    except RuntimeError as err:
        if is_out_of_memory(err):
            raise  # retried in smaller calls by the caller
        raise _forward_error(err, plan, x) from None
    masks = batch.masks.to(plan.live.device) if batch.masks is not None else None
    cams = list(plan.cams)
    values = evaluator.score(cams, cam_batch, x, masks, plan.metrics, indices=batch.indices)
    rows = _rows(batch.indices.tolist(), cams, list(plan.metrics), values.values, cam_batch.maps)
    # an image that could not be read leaves its batch: find each kept image's position
    position_of = dict(zip(plan.data.indices(positions), positions))
    kept = [position_of[int(i)] for i in batch.indices]
    shown = {p: shown_image(plan, batch, cam_batch, j) for j, p in enumerate(kept) if p < plan.grid_images}
    return BatchScores(rows, shown, len(positions), cached=False)


def _forward_error(err: Exception, plan: EvalPlan, x: torch.Tensor) -> CamlangError:
    return CamlangError(
        f"model `{plan.model_name}` failed on images of data `{plan.data_name}` with shape "
        f"{tuple(x.shape)}: {err}",
        hint="check the data's size, channels and normalization against what the model expects",
        code="E601",
    )


def _rows(
    indices: list[int],
    cams: list[str],
    metrics: list[str],
    values: Mapping[str, torch.Tensor],
    maps: Mapping[str, torch.Tensor],
) -> dict[int, ImageRow]:
    nan = {c: torch.isnan(maps[c]).flatten(1).any(1).tolist() for c in cams}
    return {
        index: ImageRow(
            {c: {m: float(values[m][k, b]) for m in metrics} for k, c in enumerate(cams)},
            {c: bool(nan[c][b]) for c in cams},
        )
        for b, index in enumerate(indices)
    }


def rows_from_units(units: Iterable[Any]) -> dict[int, ImageRow]:
    """The rows kept in an evaluate's cache section (each unit: `[[index, values, nan], ...]`)."""
    out: dict[int, ImageRow] = {}
    for unit in units:
        for index, values, nan in unit or []:
            out[int(index)] = ImageRow(values, nan)
    return out


def _keep_finished(
    state: RunState, plan: EvalPlan, section: Section, done: _Done, counter: CallCounter, engine: CamEngine
) -> None:
    """On rank 0, when the run stops inside this evaluate: the section for the images that finished."""
    if not state.is_main:
        return
    try:
        finished = rows_from_units(section.units(this_run_only=not state.options.resume)) | done.rows
        part = EvalPart(finished, done.shown, counter.images)
        state.unfinished = summarise(state, plan, part, engine)
    except Exception as err:  # noqa: BLE001 - the error that stopped the run matters more
        state.warn(f"could not summarise the finished images of this evaluate: {err}")

"""The `evaluate` and `check` actions of a run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from camlang.core.call_counter import CallCounter
from camlang.distributed import shard_batches
from camlang.errors import CamlangError
from camlang.frontend import syntax as s
from camlang.frontend.program import IndexRef, PropertyDef, Ref
from camlang.progress import make_progress
from camlang.report import CheckResult, EvalResult, MetricInfo, Visuals
from camlang.report.model import stat_of
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.metric_evaluation import Evaluator, metric_needs_mask, metric_settings, referenced_cams

if TYPE_CHECKING:
    from camlang.run.state import RunState


def _forward_error(err: Exception, model: str, data: str, x: torch.Tensor) -> CamlangError:
    return CamlangError(
        f"model `{model}` failed on images of data `{data}` with shape {tuple(x.shape)}: {err}",
        hint="check the data's size, channels and normalization against what the model expects",
        code="E601",
    )


def run_evaluate(state: RunState, act: s.Evaluate) -> EvalResult | None:
    """Evaluate cams with metrics on a model and data; returns the report section (on rank 0).

    The data's batches are sharded over the workers (`camlang.distributed.shard_batches`); each
    finished batch goes into the run's cache at once. Rank 0 gathers the per-image values and
    computes the table exactly as one process would. When the run stops early (Ctrl-C, a lost
    worker), `state.unfinished` receives the section for the images that finished.
    """
    program = state.program
    model_name, data_name = act.model.name, act.data.name
    live = state.model(model_name, data_name)
    ds = state.data(data_name)
    concept_index = None
    if act.concept is not None:
        from camlang.concepts.targets import concept_live_model

        live, concept_index = concept_live_model(state, live, act.concept)
    cams = [c.name for c in act.cams]
    nodes = {name: state.cam_node(name)[0] for name in cams}
    metrics = {m.name: program.metrics[m.name] for m in act.metrics}
    for ref in referenced_cams([m.node for m in metrics.values()]):
        nodes.setdefault(ref, state.cam_node(ref)[0])
    from camlang.backends.torch_eager import terminals_used
    from camlang.runtime.capture import LAYER_TERMINALS

    if live.layer is None and terminals_used(nodes.values()) & LAYER_TERMINALS:
        raise CamlangError(
            f"model `{model_name}` has no layer with spatial output ([batch, C, H, W]), so CAMs that "
            "read A or G cannot run on it",
            span=program.models[model_name].span,
            code="E501",
            hint='CAMs need an image model; name a convolutional layer with `at "..."`, or use '
            "input-gradient methods such as vanilla_gradient",
        )
    describe = ds.describe()
    if not describe.get("has_masks", False):
        needing = [n for n, m in metrics.items() if metric_needs_mask(m.node)]
        if needing:
            raise CamlangError(
                f"metric{'s' if len(needing) > 1 else ''} {', '.join(needing)} read MASK, but data "
                f"`{data_name}` has no ground-truth masks",
                code="E502",
                hint="drop them from this evaluate, or give the data masks",
            )
    counter = CallCounter()
    engine = CamEngine(
        live.module,
        live.target_layers,
        nodes,
        chunk_size=max(64, state.options.batch_size),
        seed=state.options.seed,
        layout=live.layout,
        fuse=live.fuse,
    )
    evaluator = Evaluator(live, engine, chunk_size=256, counter=counter, seed=state.options.seed)
    dist = state.dist
    key = _evaluate_key(state, cams, metrics, model_name, data_name)
    if act.concept is not None:
        key["concept"] = [act.concept.concepts.name, act.concept.concept.name]
    section = state.cache.section("evaluate", key)
    cached = _images_from(section.units()) if state.options.resume else {}
    want = min(state.options.grid_images, len(ds))
    class_names = describe.get("class_names") or live.loaded.class_names
    device = live.device
    done: dict[int, _ImageRow] = {}
    shown: dict[int, _Shown] = {}
    shards = shard_batches(len(ds), state.options.batch_size, dist.rank, dist.world_size)
    scale = dist.world_size  # rank 0 shows its own share, scaled to the whole data set
    info = _EvalInfo(act, cams, metrics, live, describe, data_name, model_name, len(ds), concept_index)
    try:
        with make_progress(state.console, enabled=state.is_main) as progress:
            task = progress.add_task(f"evaluate on {data_name}", total=len(ds))
            for shard in shards:
                positions = list(range(shard.start, shard.stop))
                batch_indices = ds.indices(positions)
                if all(i in cached for i in batch_indices):
                    done.update({i: cached[i] for i in batch_indices})
                    progress.update(task, advance=shard.size * scale)
                    continue
                batch = ds.get(positions)
                x = batch.x.to(device)
                try:
                    cam_batch = engine(x, _targets(concept_index, x), counter=counter, indices=batch.indices)
                except CamlangError:
                    raise
                except RuntimeError as err:
                    raise _forward_error(err, model_name, data_name, x) from None
                masks = batch.masks.to(device) if batch.masks is not None else None
                values = evaluator.score(cams, cam_batch, x, masks, metrics, indices=batch.indices)
                rows = _rows(batch.indices.tolist(), cams, list(metrics), values.values, cam_batch.maps)
                section.append([[i, r.values, r.nan] for i, r in rows.items()])
                done.update(rows)
                for j, position in enumerate(positions):
                    if position < want:
                        label = (
                            None if batch.labels is None else _names([int(batch.labels[j])], class_names)[0]
                        )
                        shown[position] = _Shown(
                            batch.raw[j],
                            {c: cam_batch.maps[c][j].detach().cpu() for c in cams},
                            None if batch.masks is None else batch.masks[j],
                            label,
                            _prediction(info, [int(cam_batch.targets[j])], class_names),
                        )
                progress.update(task, advance=len(batch) * scale)
        parts = dist.gather((done, shown, counter.images))
    except BaseException:
        if state.is_main:
            try:
                finished = _images_from(section.units(this_run_only=not state.options.resume)) | done
                state.unfinished = _eval_result(state, info, ds, finished, shown, counter.images, engine)
            except Exception as err:  # noqa: BLE001 - the error that stopped the run matters more
                state.warn(f"could not summarise the finished images of this evaluate: {err}")
        raise
    if parts is None:
        return None
    rows_all: dict[int, _ImageRow] = {}
    for part_rows, part_shown, _ in parts:
        rows_all.update(part_rows)
        shown.update(part_shown)
    forward_images = sum(p[2] for p in parts)
    return _eval_result(state, info, ds, rows_all, shown, forward_images, engine)


@dataclass(frozen=True)
class _ImageRow:
    """One image's results: `values[cam][metric]`, and which cams gave a NaN map."""

    values: dict[str, dict[str, float]]
    nan: dict[str, bool]


@dataclass(frozen=True)
class _Shown:
    """What the report's heatmap grid shows of one image."""

    raw: torch.Tensor
    maps: dict[str, torch.Tensor]
    mask: torch.Tensor | None
    label: Any
    prediction: Any


@dataclass(frozen=True)
class _EvalInfo:
    act: s.Evaluate
    cams: list[str]
    metrics: dict[str, Any]
    live: Any
    describe: dict[str, Any]
    data_name: str
    model_name: str
    count: int
    concept_index: torch.Tensor | None = None

    @property
    def concept_title(self) -> str:
        """` for concept SET.NAME` when the cams explain a concept, else nothing."""
        target = self.act.concept
        return "" if target is None else f" for concept {target.concepts.name}.{target.concept.name}"


def _evaluate_key(
    state: RunState, cams: list[str], metrics: dict[str, Any], model: str, data: str
) -> dict[str, Any]:
    """Everything an evaluate's per-image values depend on (names a cached section)."""
    program = state.program
    return {
        "cams": {c: state.cam_node(c)[1] for c in cams},
        "metrics": {m: d.source_text for m, d in metrics.items()},
        "model": [
            model,
            program.models[model].kind,
            repr(program.models[model].args),
            program.models[model].layer,
        ],
        "data": [data, program.datas[data].kind, repr(program.datas[data].args)],
        "seed": state.options.seed,
        "batch_size": state.options.batch_size,
        "device": state.options.device.split(":")[0],
    }


def _rows(
    indices: list[int],
    cams: list[str],
    metrics: list[str],
    values: dict[str, torch.Tensor],
    maps: dict[str, torch.Tensor],
) -> dict[int, _ImageRow]:
    nan = {c: torch.isnan(maps[c]).flatten(1).any(1).tolist() for c in cams}
    out: dict[int, _ImageRow] = {}
    for b, index in enumerate(indices):
        out[index] = _ImageRow(
            {c: {m: float(values[m][k, b]) for m in metrics} for k, c in enumerate(cams)},
            {c: bool(nan[c][b]) for c in cams},
        )
    return out


def _images_from(units: Any) -> dict[int, _ImageRow]:
    out: dict[int, _ImageRow] = {}
    for unit in units:
        for index, values, nan in unit or []:
            out[int(index)] = _ImageRow(values, nan)
    return out


def _eval_result(
    state: RunState,
    info: _EvalInfo,
    ds: Any,
    rows: dict[int, _ImageRow],
    shown: dict[int, _Shown],
    forward_images: int,
    engine: CamEngine,
) -> EvalResult:
    """The report section from per-image rows, in data set order, as one process computes it."""
    order = ds.indices(range(len(ds)))
    present = [i for i in order if i in rows]
    table = {
        cam: {
            m: stat_of(torch.tensor([rows[i].values[cam][m] for i in present], dtype=torch.float32))
            for m in info.metrics
        }
        for cam in info.cams
    }
    for cam in info.cams:
        count = sum(1 for i in present if rows[i].nan.get(cam))
        if count:
            state.warn(f"cam `{cam}` produced NaN maps on {count} image(s); its metrics count them as NaN")
    want = min(state.options.grid_images, len(ds))
    missing = [p for p in range(want) if p not in shown]
    if missing and len(present) == len(order):  # resumed from the cache: draw the grid's images again
        shown.update(_show(ds, missing, info, engine))
    visuals = None
    grid = [shown[p] for p in range(want) if p in shown]
    if grid:
        visuals = Visuals(
            torch.stack([g.raw for g in grid]),
            {c: torch.stack([g.maps[c] for g in grid]) for c in info.cams},
            torch.stack([g.mask for g in grid]) if all(g.mask is not None for g in grid) else None,  # type: ignore[misc]
            [g.label for g in grid] if all(g.label is not None for g in grid) else None,
            [g.prediction for g in grid],
        )
    input_size = _input_size(ds, grid)
    infos = [
        MetricInfo(
            n,
            "minimize" if m.direction == "minimize" else "maximize",
            m.source_text,
            metric_settings(m.node, input_size),
        )
        for n, m in info.metrics.items()
    ]
    model_info = info.live.describe() | {"forward_images": forward_images}
    if engine.layouts:
        model_info["layout"] = "; ".join(dict.fromkeys(lay.describe() for lay in engine.layouts))
    data_info = {"name": info.data_name} | {k: v for k, v in info.describe.items() if k != "class_names"}
    title = f"evaluate {', '.join(info.cams)} on {info.model_name}, {info.data_name}{info.concept_title}"
    if len(present) < len(order):
        data_info["evaluated"] = f"{len(present):,} of {len(order):,} images"
        state.warn(
            f"{title}: stopped after {len(present):,} of {len(order):,} images; the table covers those"
        )
    definitions = {c: state.program.cams[c].source_text for c in info.cams if c in state.program.cams}
    return EvalResult(title, model_info, data_info, info.cams, infos, table, visuals, definitions)


def _input_size(ds: Any, grid: list[_Shown]) -> tuple[int, int]:
    """The model input's (H, W), which size-relative metric settings (pointing tolerance) depend on."""
    if grid:
        return int(grid[0].raw.shape[-2]), int(grid[0].raw.shape[-1])
    if len(ds):
        x = ds.get([0]).x
        return int(x.shape[-2]), int(x.shape[-1])
    return 0, 0


def _show(ds: Any, positions: list[int], info: _EvalInfo, engine: CamEngine) -> dict[int, _Shown]:
    batch = ds.get(positions)
    class_names = info.describe.get("class_names") or info.live.loaded.class_names
    x = batch.x.to(info.live.device)
    got = engine(x, _targets(info.concept_index, x), indices=batch.indices)
    out = {}
    for j, position in enumerate(positions):
        label = None if batch.labels is None else _names([int(batch.labels[j])], class_names)[0]
        out[position] = _Shown(
            batch.raw[j],
            {c: got.maps[c][j].detach().cpu() for c in info.cams},
            None if batch.masks is None else batch.masks[j],
            label,
            _prediction(info, [int(got.targets[j])], class_names),
        )
    return out


def _targets(concept_index: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The cams' targets: the predicted class (None), or the concept's column for every image."""
    if concept_index is None:
        return None
    return concept_index.expand(x.shape[0]).to(x.device)


def _prediction(info: _EvalInfo, target: list[int], class_names: Any) -> Any:
    """What the grid shows as the explained output: the predicted class, or the concept explained."""
    if info.act.concept is not None:
        return f"{info.act.concept.concepts.name}.{info.act.concept.concept.name}"
    return _names(target, class_names)[0]


def _names(indices: list[int], class_names: Any) -> list[Any]:
    if class_names:
        return [class_names[i] if 0 <= i < len(class_names) else i for i in indices]
    return indices


# ---- checks -------------------------------------------------------------------------


def run_checks(state: RunState, names: list[str]) -> list[CheckResult] | None:
    """Decide properties, spread over the workers (each takes the next property when it is free,
    `_claimed_in_turn`); rank 0 gets the rows.

    Each verdict goes into the run's cache as soon as it is found; `--resume` skips the cached ones.
    Cams the properties name are resolved first on every rank, so a synthesis they need runs on all.
    When the run stops early, `state.unfinished` receives the rows that finished.
    """
    dist = state.dist
    for name in names:
        for value in state.program.properties[name].args.values():
            if isinstance(value, Ref) and (
                value.name in state.program.cams or value.name in state.program.synths
            ):
                state.cam_node(value.name)
    section = state.cache.section("check", [_property_key(state, n) for n in names])
    cached = {u["property"]: u for u in section.units()} if state.options.resume else {}
    done = set(cached)
    if state.options.resume and dist.world_size > 1:
        # every rank must claim from the same list: rank 0's view of the cache decides (only rank 0
        # needs the cached rows themselves)
        done = set(dist.broadcast(sorted(cached)))
    mine: dict[str, CheckResult] = {}
    partial_verdicts: dict[str, Any] = {}
    by_pieces = _dealt_by_pieces(state, names)
    state.check_statements += 1
    try:
        if dist.is_main:
            mine |= {n: _check_row(cached[n]) for n in names if n in done}
        whole = [n for n in names if n not in by_pieces and n not in done]
        for name in _claimed_in_turn(state, whole):
            mine[name] = run_check(state, name)
            section.append(_check_dict(mine[name]))
        for position, name in enumerate(names):
            if name in by_pieces and name not in done:
                share = _piece_share(state, position)
                partial_verdicts[name] = _smt_verdict(state, state.program.properties[name], share)
        parts = dist.gather((mine, partial_verdicts))
    except BaseException:
        if state.is_main:
            found = {
                u["property"]: _check_row(u) for u in section.units(this_run_only=not state.options.resume)
            }
            found |= mine
            state.unfinished = [found[n] for n in names if n in found]
        raise
    if parts is None:
        return None
    merged: dict[str, CheckResult] = {}
    for part, _ in parts:
        merged.update(part)
    for name in names:
        if name in by_pieces and name not in merged:
            from camlang.smt.pieces import combine

            verdict = combine([verdicts[name] for _, verdicts in parts])
            merged[name] = _row(state.program.properties[name], verdict)
            section.append(_check_dict(merged[name]))
    return [merged[n] for n in names]


def _claimed_in_turn(state: RunState, names: list[str]) -> Iterator[str]:
    """The properties this rank decides: with several ranks, each takes the next unclaimed one
    from a counter in the process group's store when it is free, so a rank that drew quick
    properties takes more of them (a verdict does not depend on the rank that found it)."""
    if state.dist.world_size <= 1:
        yield from names
        return
    import torch.distributed as torch_dist

    from camlang.distributed.pieces import default_store

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


SMT_KINDS = ("robust", "saliency_robust", "vnnlib")


def _piece_share(state: RunState, position: int) -> Any:
    """This rank's share of property ``position`` of the current check statement (store keys unique
    to the run, the statement and the property)."""
    from camlang.distributed.pieces import StorePieceShare, default_store

    prefix = f"camlang/{state.cache.run_id}/check{state.check_statements}/p{position}"
    return StorePieceShare(default_store(), prefix, state.dist.rank, state.dist.world_size)


def _property_key(state: RunState, name: str) -> list[Any]:
    """What a property's verdict depends on: its definition and its network's weights (so
    `--resume` after the weights file changed decides it again)."""
    pdef = state.program.properties[name]
    model = pdef.args.get("model")
    weights = state.model(model.name).weights_digest if isinstance(model, Ref) else None
    return [name, pdef.kind, repr(sorted(pdef.args.items(), key=lambda kv: kv[0])), weights]


def _check_dict(row: CheckResult) -> dict[str, Any]:
    import dataclasses

    out = dataclasses.asdict(row)
    out["replay"] = None if row.replay is None else dict(row.replay)
    return out


def _check_row(unit: dict[str, Any]) -> CheckResult:
    return CheckResult(**unit)


def run_check(state: RunState, name: str) -> CheckResult:
    """Decide one property and turn the verdict into a report row."""
    pdef = state.program.properties[name]
    try:
        return _run_check(state, pdef)
    except CamlangError as err:
        if err.span is None:
            err.span = pdef.span
        raise


def _run_check(state: RunState, pdef: PropertyDef) -> CheckResult:
    started = time.perf_counter()
    if pdef.kind in ("equivalent", "nonnegative", "bounded"):
        return _check_cam_property(state, pdef, started)
    return _row(pdef, _smt_verdict(state, pdef, None))


def _row(pdef: PropertyDef, verdict: Any) -> CheckResult:
    return CheckResult(
        pdef.name,
        pdef.kind,
        verdict.status,
        verdict.backend,
        verdict.seconds,
        verdict.reason,
        verdict.decided_by_bounds,
        verdict.counterexample,
        verdict.replay,
    )


def _smt_verdict(state: RunState, pdef: PropertyDef, share: Any) -> Any:
    """The `camlang.smt.Verdict` of an SMT property; with ``share``, this rank's partial verdict
    over its share of the property's pieces (camlang.smt.pieces).

    The solver turns a Ctrl-C into an `unknown` verdict (right for a library call); a run stops
    there instead, so the property is not kept as decided and `--resume` continues it from the
    pieces already proved."""
    from camlang.smt.driver import INTERRUPTED

    try:
        verdict = _decide(state, pdef, share)
    except CamlangError as err:
        if err.span is None:
            err.span = pdef.span
        raise
    if verdict.status == "unknown" and verdict.reason == INTERRUPTED:
        raise KeyboardInterrupt
    return verdict


class _CachedPieces:
    """A property's pieces proved infeasible, kept in the run's cache as they are proved
    (`camlang.smt.pieces.PieceMemo`): `--resume` skips them instead of solving them again."""

    def __init__(self, state: RunState, pdef: PropertyDef) -> None:
        # keyed by the network's weights too (`_property_key`): a proof is about these weights
        self.section = state.cache.section("pieces", _property_key(state, pdef.name))
        self.proved: dict[str, set[int]] = {}
        if state.options.resume:
            for unit in self.section.units():
                self.proved.setdefault(str(unit["list"]), set()).add(int(unit["piece"]))

    def infeasible(self, key: str) -> set[int]:
        return set(self.proved.get(key, ()))

    def keep(self, key: str, piece: int) -> None:
        self.section.append({"list": key, "piece": piece})


def _decide(state: RunState, pdef: PropertyDef, share: Any) -> Any:
    name = pdef.name
    from camlang import smt

    module = state.model(pdef.args["model"].name).module
    memo = _CachedPieces(state, pdef)
    timeout = _seconds(pdef.args.get("timeout", 120.0))
    backend = pdef.args.get("backend", "auto")
    with make_progress(state.console, enabled=state.is_main) as progress:
        task = progress.add_task(f"check {name}", total=None)

        def report_progress(done: int, total: int, message: str = "") -> None:
            progress.update(task, completed=done, total=total or None, description=f"check {name} {message}")

        if pdef.kind == "vnnlib":
            prop = smt.load_vnnlib(_user_path(pdef, pdef.args["path"]), _input_count(module))
            verdict = smt.check_vnnlib(
                module,
                prop,
                timeout_s=timeout,
                backend=backend,
                progress=report_progress,
                share=share,
                memo=memo,
            )
        else:
            x = _point(state, pdef, module)
            label = pdef.args.get("label")
            if pdef.kind == "saliency_robust":
                box = tuple(pdef.args["box"]) if pdef.args.get("box") else (0.0, 1.0)
                verdict = smt.check_saliency_robust(
                    module,
                    x,
                    pdef.args["eps"],
                    pdef.args["delta"],
                    label=label,
                    box=box,
                    timeout_s=timeout,
                    backend=backend,
                    progress=report_progress,
                    share=share,
                    memo=memo,
                )
            else:
                robust_box = tuple(pdef.args["box"]) if pdef.args.get("box") else None
                verdict = smt.check_robust(
                    module,
                    x,
                    pdef.args["eps"],
                    label=label,
                    box=robust_box,
                    timeout_s=timeout,
                    backend=backend,
                    progress=report_progress,
                    share=share,
                    memo=memo,
                )
    return verdict


def _seconds(value: Any) -> float:
    """A property's timeout in seconds (a number, or a duration such as "30s" or "2m")."""
    from camlang.frontend.signatures import parse_duration

    return float(parse_duration(value))


def _user_path(pdef: PropertyDef, value: str) -> str:
    from camlang.paths import resolve_user_path

    found = resolve_user_path(value, pdef.base_dir)
    if found is None:
        raise CamlangError(f'"{value}" does not exist', span=pdef.span, code="E503")
    return str(found)


def _input_count(module: torch.nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            return int(m.in_features)
    raise CamlangError("cannot tell how many inputs the network takes", hint="give `at` as a literal vector")


def _point(state: RunState, pdef: PropertyDef, module: torch.nn.Module) -> torch.Tensor:
    at = pdef.args["at"]
    if isinstance(at, list):
        first = next((m for m in module.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)), None)
        if isinstance(first, torch.nn.Linear) and len(at) != first.in_features:
            raise CamlangError(
                f"`at` has {len(at)} values but the network takes {first.in_features} inputs",
                span=pdef.span,
                code="E503",
                hint="give one value per input",
            )
        return torch.tensor([float(v) for v in at], dtype=torch.float64)
    if isinstance(at, IndexRef):
        ds = state.data(at.name)
        if not 0 <= at.index < len(ds):
            raise CamlangError(
                f"{at.name}[{at.index}] is out of range: `{at.name}` has {len(ds)} images",
                span=pdef.span,
                code="E503",
            )
        return ds.get([at.index]).x[0].double()
    if isinstance(at, tuple) and at[0] == "vnnlib":
        from camlang import smt

        prop = smt.load_vnnlib(_user_path(pdef, at[1]), _input_count(module))
        return torch.as_tensor(prop.point(), dtype=torch.float64)
    if isinstance(at, Ref):
        raise CamlangError(
            f"`at = {at.name}` names a data set; pick one image with {at.name}[i]", span=pdef.span
        )
    raise CamlangError(f"cannot use {at!r} as a point", span=pdef.span)


def _check_cam_property(state: RunState, pdef: PropertyDef, started: float) -> CheckResult:
    from camlang import synth

    builder = state.program.builder
    timeout = _seconds(pdef.args.get("timeout", 30.0))
    if pdef.kind == "equivalent":
        a, _ = state.cam_node(pdef.args["a"].name)
        b, _ = state.cam_node(pdef.args["b"].name)
        verdict = synth.prove_equivalent(builder, a, b, timeout)
    else:
        node, _ = state.cam_node(pdef.args["cam"].name)
        if pdef.kind == "nonnegative":
            verdict = synth.prove_nonnegative(builder, node, timeout)
        else:
            verdict = synth.prove_bounded(builder, node, pdef.args["lo"], pdef.args["hi"], timeout)
    status: Literal["holds", "violated", "unknown"] = verdict.check_status  # type: ignore[assignment]
    return CheckResult(
        pdef.name,
        pdef.kind,
        status,
        verdict.method,
        time.perf_counter() - started,
        verdict.detail,
        False,
        None if verdict.counterexample is None else [f"{k}={v}" for k, v in verdict.counterexample.items()],
        None,
    )

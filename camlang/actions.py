"""The `evaluate` and `check` actions of a run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import torch

from camlang import syntax as s
from camlang.engine import CamEngine
from camlang.errors import CamlangError
from camlang.evaluation import Evaluator, metric_needs_mask, referenced_cams
from camlang.metrics._common import CallCounter
from camlang.program import IndexRef, PropertyDef, Ref
from camlang.progress import make_progress
from camlang.report import CheckResult, EvalResult, MetricInfo, Stat, Visuals
from camlang.report.model import stat_of

if TYPE_CHECKING:
    from camlang.run import RunState


def _forward_error(err: Exception, model: str, data: str, x: torch.Tensor) -> CamlangError:
    return CamlangError(
        f"model `{model}` failed on images of data `{data}` with shape {tuple(x.shape)}: {err}",
        hint="check the data's size, channels and normalization against what the model expects",
        code="E601",
    )


def run_evaluate(state: RunState, act: s.Evaluate) -> EvalResult:
    """Evaluate cams with metrics on a model and data; returns the report section."""
    program = state.program
    model_name, data_name = act.model.name, act.data.name
    live = state.model(model_name, data_name)
    ds = state.data(data_name)
    cams = [c.name for c in act.cams]
    nodes = {name: state.cam_node(name)[0] for name in cams}
    metrics = {m.name: program.metrics[m.name] for m in act.metrics}
    for ref in referenced_cams([m.node for m in metrics.values()]):
        nodes.setdefault(ref, state.cam_node(ref)[0])
    from camlang.backends.torch_eager import terminals_used
    from camlang.capture import LAYER_TERMINALS

    if live.layer is None and terminals_used(nodes.values()) & LAYER_TERMINALS:
        raise CamlangError(f"model `{model_name}` has no layer with spatial output ([batch, C, H, W]), so CAMs that "
                           "read A or G cannot run on it", span=program.models[model_name].span, code="E501",
                           hint='CAMs need an image model; name a convolutional layer with `at "..."`, or use '
                           "input-gradient methods such as vanilla_gradient")  # fmt: skip
    describe = ds.describe()
    if not describe.get("has_masks", False):
        needing = [n for n, m in metrics.items() if metric_needs_mask(m.node)]
        if needing:
            raise CamlangError(f"metric{'s' if len(needing) > 1 else ''} {', '.join(needing)} read MASK, but data "
                               f"`{data_name}` has no ground-truth masks", code="E502",
                               hint="drop them from this evaluate, or give the data masks")  # fmt: skip
    counter = CallCounter()
    engine = CamEngine(live.module, live.target_layers, nodes, chunk_size=max(64, state.options.batch_size),
                       layout=live.layout, fuse=live.fuse)  # fmt: skip
    evaluator = Evaluator(live, engine, chunk_size=256, counter=counter, seed=state.options.seed)
    sums: dict[str, dict[str, list[torch.Tensor]]] = {c: {m: [] for m in metrics} for c in cams}
    nan_maps: dict[str, int] = {c: 0 for c in cams}
    shown: dict[str, list[torch.Tensor]] = {c: [] for c in cams}
    raw_shown: list[torch.Tensor] = []
    masks_shown: list[torch.Tensor] = []
    labels_shown: list[Any] = []
    preds_shown: list[Any] = []
    want = state.options.grid_images
    layouts_used: list[Any] = []
    class_names = describe.get("class_names") or live.loaded.class_names
    device = live.device
    with make_progress(state.console) as progress:
        task = progress.add_task(f"evaluate on {data_name}", total=len(ds))
        for batch in ds.batches(state.options.batch_size):
            x = batch.x.to(device)
            try:
                cam_batch = engine(x, None, counter=counter)
            except CamlangError:
                raise
            except RuntimeError as err:
                raise _forward_error(err, model_name, data_name, x) from None
            layouts_used = cam_batch.layouts
            masks = batch.masks.to(device) if batch.masks is not None else None
            values = evaluator.score(cams, cam_batch, x, masks, metrics)
            for k, cam in enumerate(cams):
                nan_maps[cam] += int(torch.isnan(cam_batch.maps[cam]).flatten(1).any(1).sum())
                for m in metrics:
                    sums[cam][m].append(values.values[m][k])
            take = max(0, want - len(raw_shown))
            if take:
                raw_shown.extend(batch.raw[:take])
                for cam in cams:
                    shown[cam].extend(cam_batch.maps[cam][:take].detach().cpu())
                if batch.masks is not None:
                    masks_shown.extend(batch.masks[:take])
                if batch.labels is not None:
                    labels_shown.extend(_names(batch.labels[:take].tolist(), class_names))
                preds_shown.extend(_names(cam_batch.targets[:take].tolist(), class_names))
            progress.update(task, advance=len(batch))
    table = {cam: {m: _stat(torch.cat(v)) for m, v in per.items()} for cam, per in sums.items()}
    for cam, count in nan_maps.items():
        if count:
            state.warnings.append(f"cam `{cam}` produced NaN maps on {count} image(s); its metrics count them as NaN")
    visuals = None
    if raw_shown:
        visuals = Visuals(
            torch.stack(raw_shown),
            {c: torch.stack(v) for c, v in shown.items()},
            torch.stack(masks_shown) if len(masks_shown) == len(raw_shown) else None,
            labels_shown or None,
            preds_shown or None,
        )
    infos = [MetricInfo(n, "minimize" if m.direction == "minimize" else "maximize", m.source_text)
             for n, m in metrics.items()]  # fmt: skip
    model_info = live.describe() | {"forward_images": counter.images}
    if layouts_used:
        model_info["layout"] = "; ".join(dict.fromkeys(lay.describe() for lay in layouts_used))
    data_info = {"name": data_name} | {k: v for k, v in describe.items() if k != "class_names"}
    definitions = {c: program.cams[c].source_text for c in cams if c in program.cams}
    return EvalResult(f"evaluate {', '.join(cams)} on {model_name}, {data_name}", model_info, data_info, cams, infos,
                      table, visuals, definitions)  # fmt: skip


def _names(indices: list[int], class_names: Any) -> list[Any]:
    if class_names:
        return [class_names[i] if 0 <= i < len(class_names) else i for i in indices]
    return indices


def _stat(values: torch.Tensor) -> Stat:
    return stat_of(values.double())  # mean, std and a 95% bootstrap CI of the mean


# ---- checks -------------------------------------------------------------------------


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
    name = pdef.name
    started = time.perf_counter()
    if pdef.kind in ("equivalent", "nonnegative", "bounded"):
        return _check_cam_property(state, pdef, started)
    from camlang import smt

    module = state.model(pdef.args["model"].name).module
    timeout = float(pdef.args.get("timeout", 120.0))
    backend = pdef.args.get("backend", "auto")
    with make_progress(state.console) as progress:
        task = progress.add_task(f"check {name}", total=None)

        def report_progress(done: int, total: int, message: str = "") -> None:
            progress.update(task, completed=done, total=total or None, description=f"check {name} {message}")

        if pdef.kind == "vnnlib":
            prop = smt.load_vnnlib(_user_path(pdef, pdef.args["path"]), _input_count(module))
            verdict = smt.check_vnnlib(module, prop, timeout_s=timeout, backend=backend, progress=report_progress)
        else:
            x = _point(state, pdef, module)
            label = pdef.args.get("label")
            if pdef.kind == "saliency_robust":
                box = tuple(pdef.args["box"]) if pdef.args.get("box") else (0.0, 1.0)
                verdict = smt.check_saliency_robust(module, x, pdef.args["eps"], pdef.args["delta"], label=label,
                                                    box=box, timeout_s=timeout, backend=backend,
                                                    progress=report_progress)  # fmt: skip
            else:
                robust_box = tuple(pdef.args["box"]) if pdef.args.get("box") else None
                verdict = smt.check_robust(module, x, pdef.args["eps"], label=label, box=robust_box, timeout_s=timeout,
                                           backend=backend, progress=report_progress)  # fmt: skip
    return CheckResult(name, pdef.kind, verdict.status, verdict.backend, verdict.seconds, verdict.reason,
                       verdict.decided_by_bounds, verdict.counterexample, verdict.replay)  # fmt: skip


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
            raise CamlangError(f"`at` has {len(at)} values but the network takes {first.in_features} inputs",
                               span=pdef.span, code="E503", hint="give one value per input")  # fmt: skip
        return torch.tensor([float(v) for v in at], dtype=torch.float64)
    if isinstance(at, IndexRef):
        ds = state.data(at.name)
        if not 0 <= at.index < len(ds):
            raise CamlangError(f"{at.name}[{at.index}] is out of range: `{at.name}` has {len(ds)} images",
                               span=pdef.span, code="E503")  # fmt: skip
        return ds.get([at.index]).x[0].double()
    if isinstance(at, tuple) and at[0] == "vnnlib":
        from camlang import smt

        prop = smt.load_vnnlib(_user_path(pdef, at[1]), _input_count(module))
        return torch.as_tensor(prop.centre, dtype=torch.float64)
    if isinstance(at, Ref):
        raise CamlangError(f"`at = {at.name}` names a data set; pick one image with {at.name}[i]", span=pdef.span)
    raise CamlangError(f"cannot use {at!r} as a point", span=pdef.span)


def _check_cam_property(state: RunState, pdef: PropertyDef, started: float) -> CheckResult:
    from camlang import synth

    builder = state.program.builder
    timeout = float(pdef.args.get("timeout", 30.0))
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
    return CheckResult(pdef.name, pdef.kind, status, verdict.method, time.perf_counter() - started,
                       verdict.detail, False, None if verdict.counterexample is None else
                       [f"{k}={v}" for k, v in verdict.counterexample.items()], None)  # fmt: skip

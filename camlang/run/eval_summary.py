"""The last step of an evaluate: the report section from the per-image rows of every worker, in
data set order, exactly as one process computes it (`camlang.run.evaluate`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from camlang.data import Batch
from camlang.report import EvalResult, MetricInfo, Visuals
from camlang.report.model import Stat, stat_of
from camlang.run.eval_records import EvalPart, EvalPlan, ImageRow, Shown, class_name
from camlang.run.state import RunState
from camlang.runtime.cam_engine import CamBatch, CamEngine
from camlang.runtime.metric_evaluation import metric_settings

__all__ = ["shown_image", "summarise"]


def summarise(state: RunState, plan: EvalPlan, part: EvalPart, engine: CamEngine) -> EvalResult:
    """The report section of `plan` from the finished images in `part` (all of them, or the part a
    stopped run finished: the section then says how many it covers)."""
    order = plan.data.indices(range(len(plan.data)))
    present = [i for i in order if i in part.rows]
    table = _table(plan, part.rows, present)
    _warn_nan(state, plan, part.rows, present)
    shown = dict(part.shown)
    missing = [p for p in range(plan.grid_images) if p not in shown]
    if missing and len(present) + len(part.unreadable) >= len(order):  # resumed: draw the grid again
        shown.update(_show(plan, missing, engine))
    grid = [shown[p] for p in range(plan.grid_images) if p in shown]
    input_size = _input_size(plan, grid)
    infos = [
        MetricInfo(
            n,
            "minimize" if m.direction == "minimize" else "maximize",
            m.source_text,
            metric_settings(m.node, input_size),
        )
        for n, m in plan.metrics.items()
    ]
    model_info = plan.live.describe() | {"forward_images": part.forward_images}
    if engine.layouts:
        model_info["layout"] = "; ".join(dict.fromkeys(lay.describe() for lay in engine.layouts))
    data_info = {"name": plan.data_name} | {k: v for k, v in plan.describe.items() if k != "class_names"}
    cams = list(plan.cams)
    title = f"evaluate {', '.join(cams)} on {plan.model_name}, {plan.data_name}{plan.concept_title}"
    if len(present) < len(order):
        data_info["evaluated"] = f"{len(present):,} of {len(order):,} images"
    if part.unreadable:
        first = ", ".join(f"{path} ({why})" for path, why in list(part.unreadable.items())[:3])
        state.warn(
            f"{title}: {len(part.unreadable):,} image file(s) could not be read during the run and are "
            f"left out of the table (first: {first}); fix them and run again with --resume to add them"
        )
    if len(present) + len(part.unreadable) < len(order):
        state.warn(
            f"{title}: stopped after {len(present):,} of {len(order):,} images; the table covers those"
        )
    definitions = _definitions(state, cams)
    return EvalResult(title, model_info, data_info, cams, infos, table, _visuals(plan, grid), definitions)


def _definitions(state: RunState, cams: list[str]) -> dict[str, str]:
    """Each evaluated cam's source text: its declaration, or the winner of its synthesis."""
    out: dict[str, str] = {}
    for cam in cams:
        if cam in state.program.cams:
            out[cam] = state.program.cams[cam].source_text
        elif cam in state.synthesized:
            out[cam] = state.synthesized[cam].source_text
    return out


def _table(
    plan: EvalPlan, rows: Mapping[int, ImageRow], present: Sequence[int]
) -> dict[str, dict[str, Stat]]:
    return {
        cam: {
            m: stat_of(torch.tensor([rows[i].values[cam][m] for i in present], dtype=torch.float32))
            for m in plan.metrics
        }
        for cam in plan.cams
    }


def _warn_nan(state: RunState, plan: EvalPlan, rows: Mapping[int, ImageRow], present: Sequence[int]) -> None:
    for cam in plan.cams:
        count = sum(1 for i in present if rows[i].nan.get(cam))
        if count:
            state.warn(f"cam `{cam}` produced NaN maps on {count} image(s); its metrics count them as NaN")


def _visuals(plan: EvalPlan, grid: list[Shown]) -> Visuals | None:
    if not grid:
        return None
    masks = [g.mask for g in grid if g.mask is not None]
    labels = [g.label for g in grid if g.label is not None]
    return Visuals(
        torch.stack([g.raw for g in grid]),
        {c: torch.stack([g.maps[c] for g in grid]) for c in plan.cams},
        torch.stack(masks) if len(masks) == len(grid) else None,
        labels if len(labels) == len(grid) else None,
        [g.prediction for g in grid],
    )


def _input_size(plan: EvalPlan, grid: list[Shown]) -> tuple[int, int]:
    """The model input's (H, W), which size-relative metric settings (pointing tolerance) depend on."""
    if grid:
        return int(grid[0].raw.shape[-2]), int(grid[0].raw.shape[-1])
    if len(plan.data):
        x = plan.data.get([0]).x
        return int(x.shape[-2]), int(x.shape[-1])
    return 0, 0


def _show(plan: EvalPlan, positions: list[int], engine: CamEngine) -> dict[int, Shown]:
    """The grid's images drawn again (a resumed run took their rows from the cache)."""
    batch = plan.data.get(positions, skip_unreadable=True)
    if len(batch) == 0:
        return {}
    x = batch.x.to(plan.live.device)
    got = engine(x, plan.targets(x), indices=batch.indices)
    position_of = dict(zip(plan.data.indices(positions), positions))
    return {position_of[int(i)]: shown_image(plan, batch, got, j) for j, i in enumerate(batch.indices)}


def shown_image(plan: EvalPlan, batch: Batch, cam_batch: CamBatch, j: int) -> Shown:
    """Image `j` of `batch` as the report's grid shows it."""
    label = None if batch.labels is None else class_name(int(batch.labels[j]), plan.class_names)
    return Shown(
        batch.raw[j],
        {c: cam_batch.maps[c][j].detach().cpu() for c in plan.cams},
        None if batch.masks is None else batch.masks[j],
        label,
        plan.prediction(int(cam_batch.targets[j])),
    )

"""Showing values in the REPL: heatmaps of cam expressions, metric values, IR listings, grids.

Everything is computed on the current model and the current image only (a batch of one), so
the prompt comes back quickly. Heatmaps are written as PNGs to the session's output folder and
drawn in the terminal as a half-block ANSI preview.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from PIL import Image

from camlang.backends.torch_eager import TorchContext, evaluate, terminals_used
from camlang.data.base import Batch, Dataset
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, postorder, to_text
from camlang.frontend.op_table import OPS
from camlang.frontend.program import MetricDef
from camlang.repl.context import ReplSession
from camlang.repl.results import Result, Typed
from camlang.report.ansi import ansi_preview
from camlang.report.colormap import overlay_rgb
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.capture import capture
from camlang.runtime.declaration_loading import LiveModel

#: Heatmap PNGs are scaled up to at least this many pixels on their long side.
PNG_SIZE = 256


def selection(session: ReplSession) -> tuple[LiveModel, Dataset, Batch]:
    """The live model, the dataset and the batch of the current image; a CamlangError if unset."""
    if session.current_model is None or session.current_data is None:
        missing = "a model" if session.current_model is None else "data"
        raise CamlangError(
            f"no value to show: declare {missing} first (or :load a .cam file)",
            hint="e.g. data test = synthetic_shapes(count = 8, size = 64)",
        )
    ds = session.state.data(session.current_data)
    live = session.state.model(session.current_model, session.current_data)
    if not 0 <= session.image < len(ds):
        raise CamlangError(
            f"image {session.image} is out of range: `{session.current_data}` has {len(ds)} images",
            hint=f":image N with 0 <= N < {len(ds)}",
        )
    return live, ds, ds.get([session.image])


def _class_name(index: int, ds: Dataset, live: LiveModel) -> str:
    names = ds.class_names or live.loaded.class_names
    if names and 0 <= index < len(names):
        return str(names[index])
    return str(index)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")[:40] or "expr"


def show_value(session: ReplSession, typed: Typed) -> Result:
    """Type, and when possible value, of a bare expression."""
    ty = typed.node.ty
    head = f"{typed.text} : {ty}"
    if session.current_model is None or session.current_data is None:
        return Result("value", head + "\n(declare a model and data, or :load a file, to see its value)")
    if typed.context == "cam" and (ty.is_layer_map or ty.is_input_map):
        return heatmap(session, typed.text, typed.node, head)
    if typed.context == "cam":
        return _cam_value(session, typed, head)
    if ty.is_scalar:
        return _metric_value(session, typed, head)
    return Result("value", head + "\n(a metric expression is shown when it is a scalar, e.g. mean(...))")


def heatmap(session: ReplSession, label: str, node: Node, head: str) -> Result:
    """Evaluate a cam on the current image: PNG overlay in the output folder and an ANSI preview."""
    live, ds, batch = selection(session)
    x = batch.x.to(live.device)
    engine = CamEngine(live.module, live.layer, {"_": node})
    out = engine(x)
    cam_map = out.maps["_"][0].detach().cpu()
    rgb = overlay_rgb(batch.raw[0], cam_map)
    session.out_dir.mkdir(parents=True, exist_ok=True)
    path = session.out_dir / f"{session.counter:03d}-{_slug(label)}.png"
    img = Image.fromarray(rgb)
    scale = max(1, PNG_SIZE // max(img.size))
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)
    session.last_png = path
    session.current_cam = label
    session.current_cam_node = None if label in session.names() else node
    pred = int(out.targets[0])
    p = float(torch.softmax(out.logits.detach()[0], 0)[pred])
    where = f"on {session.current_model}, {session.current_data}[{session.image}]"
    label_text = ""
    if batch.labels is not None:
        label_text = f"label {_class_name(int(batch.labels[0]), ds, live)}, "
    nan = " (the map is NaN: shown grey)" if bool(torch.isnan(cam_map).all()) else ""
    lines = [
        head,
        f"{where}: {label_text}predicted {_class_name(pred, ds, live)} (p={p:.2f}){nan}",
        f"wrote {path}",
    ]
    preview = ansi_preview(rgb, session.preview_width, session.truecolor)
    return Result("heatmap", "\n".join(lines), image_path=path, preview=preview)


def _stats(value: torch.Tensor) -> str:
    v = value.detach().double()
    if v.numel() == 1:
        return f"= {float(v):.6g}"
    finite = v[torch.isfinite(v)]
    shape = "x".join(str(d) for d in v.shape if d != 1) or "1"
    if finite.numel() == 0:
        return f"shape {shape}, all NaN/inf"
    return (
        f"shape {shape}: min {float(finite.min()):.4g}, mean {float(finite.mean()):.4g}, "
        f"max {float(finite.max()):.4g}"
    )


def _cam_value(session: ReplSession, typed: Typed, head: str) -> Result:
    """A non-map expression over the layer terminals (a channel vector, a tensor, a scalar)."""
    live, _, batch = selection(session)
    x = batch.x.to(live.device)
    cap = capture(live.module, live.layer, x, terminals_used([typed.node]))
    ctx = TorchContext(cap.terminals, (int(x.shape[-2]), int(x.shape[-1])), x.dtype, x.device)
    with torch.no_grad():
        value = evaluate([typed.node], ctx)[typed.node.nid]
    return Result(
        "value",
        f"{head} {_stats(value[0])}  ({session.current_model}, {session.current_data}[{session.image}])",
    )


def metric_cam(session: ReplSession) -> tuple[str, Node]:
    """The cam whose map a metric expression reads as `L`: the last one shown, or the first declared."""
    node = session.current_cam_node
    if session.current_cam is not None and node is not None:
        return session.current_cam, node
    if session.current_cam is not None and session.current_cam in session.names():
        return session.current_cam, session.state.cam_node(session.current_cam)[0]
    raise CamlangError(
        "a metric expression reads the map L of a cam, but no cam is selected",
        hint="show a cam first (type its name), or :use cam NAME",
    )


def _metric_value(session: ReplSession, typed: Typed, head: str) -> Result:
    from camlang.runtime.metric_evaluation import Evaluator, metric_needs_mask, referenced_cams

    label, cam_node = metric_cam(session)
    live, _, batch = selection(session)
    nodes = {label: cam_node}
    for ref in referenced_cams([typed.node]):
        nodes.setdefault(ref, session.state.cam_node(ref)[0])
    if batch.masks is None and metric_needs_mask(typed.node):
        raise CamlangError(
            f"this expression reads MASK, but data `{session.current_data}` has no masks",
            code="E502",
            hint="use data with ground-truth masks, e.g. synthetic_shapes(...)",
        )
    x = batch.x.to(live.device)
    engine = CamEngine(live.module, live.layer, nodes)
    cam_batch = engine(x)
    masks = batch.masks.to(live.device) if batch.masks is not None else None
    mdef = MetricDef("_", "maximize", typed.node, typed.text, "<repl>")
    values = Evaluator(live, engine, chunk_size=256).score([label], cam_batch, x, masks, {"_": mdef})
    value = float(values.values["_"][0, 0])
    where = f"{session.current_model}, {session.current_data}[{session.image}], L = {label}"
    return Result("value", f"{head} = {value:.6g}  ({where})")


def ir_listing(root: Node) -> list[str]:
    """The nodes reachable from `root` in build order, one `%id = op(args) : type` line each."""
    lines = []
    for n in postorder([root]):
        args = [f"%{a.nid}" for a in n.args]
        args += [f"{k}={v!r}" for k, v in n.attrs]
        body = n.op if OPS[n.op].category == "terminal" and not args else f"{n.op}({', '.join(args)})"
        lines.append(f"  %{n.nid} = {body} : {n.ty}")
    return lines


def ir_passes(session: ReplSession, typed: Typed) -> str:
    """`:ir`: the lowered IR (shared subterms interned), then the IR after each pass."""
    from camlang.passes.simplify import simplify

    out = [f"{typed.text} : {typed.node.ty}", "lowered (hash-consed: equal subterms are one node):"]
    out += ir_listing(typed.node)
    simplified = simplify(session.program.builder, typed.node)
    changed = "" if simplified is typed.node else f"  ->  {to_text(simplified)}"
    out.append(f"after simplify{changed or ' (unchanged)'}:")
    out += ir_listing(simplified)
    return "\n".join(out)


def grid(session: ReplSession, cams: list[str], images: int = 4) -> Result:
    """`:grid a b ...`: the named cams on up to `images` images from the current one, as one PNG."""
    from camlang.report.grid import render_grid
    from camlang.report.model import Visuals

    known = session.names()
    for name in cams:
        if known.get(name) != "cam":
            raise CamlangError(f"`{name}` is not a cam", hint="`:cams` lists the cams")
    live, ds, _ = selection(session)
    indices = list(range(session.image, min(len(ds), session.image + images)))
    batch = ds.get(indices)
    nodes = {name: session.state.cam_node(name)[0] for name in cams}
    out = CamEngine(live.module, live.layer, nodes)(batch.x.to(live.device))
    preds = [_class_name(int(t), ds, live) for t in out.targets]
    labels = [_class_name(int(t), ds, live) for t in batch.labels] if batch.labels is not None else None
    visuals = Visuals(batch.raw, {c: out.maps[c].detach().cpu() for c in cams}, batch.masks, labels, preds)
    img = render_grid(visuals, cams, max_images=len(indices))
    session.out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(session.out_dir / f"{session.counter:03d}-grid-{_slug('-'.join(cams))}.png")
    img.save(path)
    session.last_png = path
    where = f"{session.current_model}, {session.current_data}[{indices[0]}..{indices[-1]}]"
    return Result("ok", f"grid of {', '.join(cams)} on {where}\nwrote {path}", image_path=path)

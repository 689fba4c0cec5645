"""IR -> standalone PyTorch source: an `nn.Module` file that needs only torch.

Like a sympy printer, this backend is mostly a table from op to a source template. The
generated module captures activations and gradients the same way `camlang.runtime.capture` does and
normalizes maps the same way, so it reproduces in-process evaluation. Shared subterms become
named locals; single-use subterms are inlined. The file is registered in `linecache` when loaded
in-process, so tracebacks and `inspect.getsource` show it.
"""

from __future__ import annotations

import keyword
import linecache
import re
import textwrap
import types
from collections import Counter

from camlang.backends import torch_source_layers as layers_src
from camlang.core.version import __version__
from camlang.frontend.ir import Node, layers_read, postorder, split_key, terminal_key
from camlang.frontend.op_table import OPS, SYMBOL_OF, OpSpec

#: Names in generated code that a shared subterm's local may not take.
_RESERVED = {"x", "targets", "cam", "self", "torch", "F", "nn"}


def _source_precedence(spec: OpSpec) -> int:
    """An infix or prefix template binds by the row's precedence; calls and parenthesised forms are atoms."""
    bare = (f"{{0}} {spec.symbol} {{1}}", "-{0}")
    return spec.precedence if spec.precedence is not None and spec.template in bare else 9


def _is_comparison(op: str) -> bool:
    return op in SYMBOL_OF and OPS[op].precedence == 1


class NoSourceLowering(Exception):
    """The expression uses an op that standalone modules do not support."""

    def __init__(self, op: str) -> None:
        super().__init__(f"`{op}` cannot be exported to a standalone module")
        self.op = op


class MultiLayerExport(NoSourceLowering):
    """The cam reads a layer whose path a generated module cannot look up (`features[-1]`)."""

    def __init__(self, layer: str) -> None:
        Exception.__init__(
            self,
            f'the cam reads layer "{layer}", which a standalone module cannot find by name '
            "(it looks layers up with model.get_submodule: write the path with dots, e.g. features.6)",
        )
        self.op = layer


def _terminal_keys(node: Node) -> set[str]:
    return {terminal_key(n) for n in postorder([node]) if OPS[n.op].category == "terminal"}


def class_name(cam_name: str) -> str:
    """`grad_cam_pp` -> `GradCamPp`; never a keyword or builtin name."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", cam_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Cam"
    if name[0].isdigit():
        name = "Cam" + name
    return name + "Module" if keyword.iskeyword(name) or name in dir(__builtins__) else name


def generate(cam_name: str, node: Node, source_text: str) -> str:
    """Readable Python source of an `nn.Module` computing the normalized map of `node`.

    A cam that reads layer-indexed terminals (`A@"layer2"`) gets a module that hooks each of its
    layers too (`torch_source_layers`). Raises `NoSourceLowering` for an op without a template,
    and its `MultiLayerExport` for a layer path that `get_submodule` cannot look up.
    """
    for n in postorder([node]):
        if OPS[n.op].category not in ("terminal", "constant") and OPS[n.op].template is None:
            raise NoSourceLowering(n.op)
    needs = _terminal_keys(node)
    layers = sorted(layers_read([node]))
    bad = layers_src.unsupported_path(layers)
    if bad is not None:
        raise MultiLayerExport(bad)
    body = _expression_lines(node)
    cls = class_name(cam_name)
    helpers = [_MINMAX]
    if "pc1" in {n.op for n in postorder([node])}:
        helpers.append(_FIRST_COMPONENT)
    names = {split_key(k)[0] for k in needs}
    if "S_masked" in names:
        helpers.append(_MASKED_SCORES)
    if "S_ablated" in names:
        helpers.append(_ABLATED_SCORES)
    if "GX_smooth" in names:
        helpers.append(_SMOOTH_INPUT_GRADIENTS)
    if "RISE" in names:
        helpers.append(_RISE_MAP)
    capture = layers_src.capture_lines(needs, layers) if layers else _capture_lines(needs)
    layer_paths, init_layers = layers_src.class_lines(layers) if layers else ("", "")
    quoted = textwrap.indent(f"cam {cam_name} = {source_text}", "    ")
    return (
        _MODULE.format(
            version=__version__,
            cam=cam_name,
            quoted=quoted,
            cls=cls,
            capture=textwrap.indent("\n".join(capture), " " * 8),
            body=textwrap.indent("\n".join(body), " " * 8),
            helpers="\n\n".join(h.strip("\n") for h in helpers),
            needs_input="GX" in needs,
            layer_paths=layer_paths,
            init_layers=init_layers,
            capture_method=layers_src.CAPTURE_LAYERS if layers else _CAPTURE_ONE,
        ).rstrip()
        + "\n"
    )


def expression_source(node: Node) -> str:
    """The helpers generated modules define, then the statements that compute `cam` from the
    terminals' locals (named by each terminal row's `source_name`; the input batch is `x`).

    This is the body of a generated module's `forward` without capture and normalization, so
    tests can run each op's template on given terminal values.
    """
    for n in postorder([node]):
        if OPS[n.op].category not in ("terminal", "constant") and OPS[n.op].template is None:
            raise NoSourceLowering(n.op)
    helpers = [_MINMAX, _FIRST_COMPONENT]
    return "\n\n".join(h.strip("\n") for h in helpers) + "\n\n" + "\n".join(_expression_lines(node)) + "\n"


def _expression_lines(root: Node) -> list[str]:
    order = list(postorder([root]))
    uses: Counter[int] = Counter(a.nid for n in order for a in n.args)
    names: dict[int, str] = {}
    text: dict[int, tuple[str, int]] = {}
    lines: list[str] = []
    taken: set[str] = {r.source_name for r in OPS.values() if r.source_name} | _RESERVED
    # Constants and infix arithmetic on them print as Python numbers; a call needs a tensor.
    number: dict[int, bool] = {}
    for n in order:
        infix = bool(n.args) and _source_precedence(OPS[n.op]) != 9
        number[n.nid] = n.op == "const" or (infix and all(number[a.nid] for a in n.args))
    for n in order:
        spec = OPS[n.op]
        if spec.category == "terminal":
            text[n.nid] = (layers_src.local_name(terminal_key(n)), 9)
            continue
        if n.op == "const":
            v = float(n.attr("value"))
            literal = repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
            text[n.nid] = (literal if v >= 0 else f"({literal})", 9)
            continue
        prec = _source_precedence(spec)
        operands = []
        for i, a in enumerate(n.args):
            t, p = text[a.nid]
            right = i == 1 and n.op in ("sub", "div")
            if p < prec or (right and p == prec) or (n.op == "neg" and p < 9):
                t = f"({t})"
            # torch.where takes a Python number for one of its two values
            scalar_ok = n.op == "where" and i > 0 and not all(number[v.nid] for v in n.args[1:])
            if prec == 9 and number[a.nid] and not scalar_ok:
                t = f"x.new_full((1, 1, 1, 1), {t})"
            operands.append(t)
        if n.op == "where" and _is_comparison(n.args[0].op):
            cond = n.args[0]
            left = text[cond.args[0].nid][0]
            if number[cond.args[0].nid] and number[cond.args[1].nid]:
                left = f"x.new_full((1, 1, 1, 1), {left})"
            operands[0] = f"{left} {SYMBOL_OF[cond.op]} {text[cond.args[1].nid][0]}"
            expr = f"torch.where({operands[0]}, {operands[1]}, {operands[2]})"
        elif n.op == "pow" and n.args[1].op == "const" and float(n.args[1].attr("value")).is_integer():
            expr = f"{operands[0]} ** {int(n.args[1].attr('value'))}"
            prec = 5
        else:
            assert spec.template is not None
            expr = spec.template.format(*operands, **n.attr_dict)
        if n is root:
            lines.append(f"cam = {expr}")
        elif uses[n.nid] > 1 or (n.size >= 5 and not _only_feeds_where(n, order)):
            name = _fresh(_nice_name(n), taken)
            names[n.nid] = name
            lines.append(f"{name} = {expr}")
            text[n.nid] = (name, 9)
        else:
            text[n.nid] = (expr, prec)
    if root.op == "const" or OPS[root.op].category == "terminal":
        lines.append(f"cam = {text[root.nid][0]}")
    return lines


def _only_feeds_where(n: Node, order: list[Node]) -> bool:
    """A comparison used only as a `where` condition is inlined into the `torch.where` call."""
    return _is_comparison(n.op) and all(u.op == "where" and u.args[0] is n for u in order if n in u.args)


def _nice_name(n: Node) -> str:
    if n.op in ("mean_hw", "sum_hw", "max_hw") and n.ty.has_channels:
        return "weights"
    return {"relu": "positive", "pow": "power", "mul": "product", "div": "ratio", "where": "selected"}.get(
        n.op, n.op
    )


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 2
    while name in taken or keyword.iskeyword(name):
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _capture_lines(needs: set[str]) -> list[str]:
    grads = "gradients" if "G" in needs else "_"
    inputs = "input_gradients" if "GX" in needs else "_"
    acts = "activations" if needs & {"A", "S_masked", "S_ablated"} else "_"
    lines = [f"logits, targets, {acts}, {grads}, {inputs} = self._capture(x, targets)"]
    if "S" in needs:
        lines.append("score = logits.gather(1, targets[:, None])[:, :, None, None]")
    if "P" in needs:
        lines.append(
            "probability = torch.softmax(logits, dim=1).gather(1, targets[:, None])[:, :, None, None]"
        )
    if "S_masked" in needs:
        lines.append("masked_scores = _masked_scores(self.model, x, activations, targets)[:, :, None, None]")
    if "S_ablated" in needs:
        lines.append(
            "ablated_scores = _ablated_scores(self.model, self.target_layer, x, activations, targets)"
            "[:, :, None, None]"
        )
    if "GX_smooth" in needs:
        lines.append("smooth_input_gradients = _smooth_input_gradients(self.model, x, targets)")
    if "RISE" in needs:
        lines.append("rise_map = _rise_map(self.model, x, targets)")
    return lines


_MODULE = '''"""`{cam}` as a standalone PyTorch module.

Generated by camlang {version} from:

{quoted}

It needs only torch. Maps are normalized as pytorch-grad-cam does: min-max at layer resolution,
bilinear upsampling (align_corners=False), min-max again; a constant map gives zeros.
"""

import torch
import torch.nn.functional as F
from torch import nn


class {cls}(nn.Module):
    """Computes `{cam}` maps `[B, H, W]` in [0, 1] for a classifier and one of its layers."""

    needs_input_gradient = {needs_input}{layer_paths}

    def __init__(self, model: nn.Module, target_layer: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.target_layer = target_layer{init_layers}

    def forward(self, x: torch.Tensor, targets: torch.Tensor | list[int] | None = None) -> torch.Tensor:
{capture}
{body}
        return _normalize(cam, x.shape[-2:])

{capture_method}

def _normalize(cam: torch.Tensor, size) -> torch.Tensor:
    cam = _minmax(cam)
    if tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)
    return _minmax(cam)[:, 0]


{helpers}
'''

_CAPTURE_ONE = '''    def _capture(self, x: torch.Tensor, targets: torch.Tensor | list[int] | None):
        """One forward pass and one backward pass for the target scores.

        Without input gradients, the forward runs without a graph up to the target layer and
        the backward stops there.
        """
        store = {}

        def keep_output(module, inputs, output):
            if not self.needs_input_gradient:
                output = output.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
            store["activations"] = output
            return output

        handle = self.target_layer.register_forward_hook(keep_output)
        inputs = x.detach().requires_grad_(self.needs_input_gradient)
        try:
            with torch.set_grad_enabled(self.needs_input_gradient):
                logits = self.model(inputs)
                if targets is None:
                    chosen = logits.argmax(dim=1)
                else:
                    chosen = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
                score = logits.gather(1, chosen[:, None]).sum()
                wrt = [store["activations"]] + ([inputs] if self.needs_input_gradient else [])
                grads = torch.autograd.grad(score, wrt)
        finally:
            handle.remove()
        input_gradients = grads[1] if self.needs_input_gradient else None
        return logits.detach(), chosen, store["activations"].detach(), grads[0], input_gradients
'''

_MINMAX = """
def _minmax(maps: torch.Tensor) -> torch.Tensor:
    shifted = maps - maps.amin(dim=(-2, -1), keepdim=True)
    return shifted / (1e-7 + shifted.amax(dim=(-2, -1), keepdim=True))
"""

_FIRST_COMPONENT = '''
def _first_component(values: torch.Tensor) -> torch.Tensor:
    """Projection on the first principal component over channels (largest loading positive; of
    loadings tied to within 1e-4, the first)."""
    n, c, h, w = values.shape
    flat = values.reshape(n, c, h * w).transpose(1, 2)
    centered = flat - flat.mean(dim=1, keepdim=True)
    finite = torch.isfinite(centered).all(dim=2).all(dim=1)  # a NaN or inf image gets a NaN map
    centered = torch.where(finite[:, None, None], centered, torch.zeros_like(centered))
    direction = torch.linalg.svd(centered, full_matrices=False).Vh[:, 0, :]
    size = direction.abs()
    tied = size >= size.amax(dim=1, keepdim=True) * (1 - 1e-4)
    pivot = direction.gather(1, tied.to(direction.dtype).argmax(dim=1, keepdim=True))
    direction = direction * torch.where(pivot < 0, -1.0, 1.0).to(direction.dtype)
    projection = (centered @ direction.unsqueeze(-1)).squeeze(-1)
    projection = torch.where(finite[:, None], projection, torch.full_like(projection, float("nan")))
    return projection.reshape(n, 1, h, w)
'''

_MASKED_SCORES = '''
@torch.no_grad()
def _masked_scores(model, x, activations, targets, chunk_size=64):
    """Score-CAM: target logit on x times each upsampled, min-max scaled channel."""
    b, c = activations.shape[:2]
    up = F.interpolate(activations, size=x.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.reshape(b, c, -1)
    low = flat.min(dim=-1).values[:, :, None, None]
    high = flat.max(dim=-1).values[:, :, None, None]
    masks = (up - low) / (high - low + 1e-8)
    scores = torch.empty(b, c, dtype=x.dtype, device=x.device)
    for i in range(b):
        for start in range(0, c, chunk_size):
            chans = torch.arange(start, min(c, start + chunk_size), device=x.device)
            logits = model(x[i : i + 1] * masks[i, chans][:, None])
            scores[i, chans] = logits[:, int(targets[i])]
    return scores
'''

_SMOOTH_INPUT_GRADIENTS = '''
def _image_seed(image):
    """A seed from one image's float32 bit patterns (integer sums wrap the same in any order)."""
    bits = image.detach().to(torch.float32).cpu().contiguous().view(torch.int32).reshape(-1).to(torch.int64)
    odd = torch.arange(1, 2 * bits.numel(), 2, dtype=torch.int64)
    return int((bits * odd).sum()) % (1 << 63)


def _smooth_input_gradients(model, x, targets, samples=16, noise=0.15):
    """SmoothGrad: the input gradient of the target logit averaged over noisy copies of each image
    (noise 15% of the image's value range, drawn from a generator seeded by the image itself)."""
    x = x.detach()
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        generator = torch.Generator().manual_seed(_image_seed(x[i]))
        draw = torch.randn((samples, *x.shape[1:]), generator=generator, dtype=torch.float32)
        span = float(x[i].max() - x[i].min())
        noise_i = (draw * (noise * span)).to(device=x.device, dtype=x.dtype)
        noisy = (x[i : i + 1] + noise_i).requires_grad_(True)
        with torch.enable_grad():
            score = model(noisy)[:, int(targets[i])].sum()
            (grad,) = torch.autograd.grad(score, noisy)
        out[i] = grad.mean(dim=0)
    return out
'''

_RISE_MAP = '''
def _blur(x, sigma=5.0):
    """Separable Gaussian blur of the last two dimensions (radius ceil(3 sigma), reflect padding)."""
    h, w = x.shape[-2:]
    radius = min(max(1, -int(-3.0 * sigma // 1)), h - 1, w - 1)  # ceil(3 sigma)
    if radius < 1:
        return x.clone()
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).float().to(device=x.device, dtype=x.dtype)
    flat = x.reshape(-1, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def _rise_masks(h, w, masks=128, grid=4, keep=0.5, seed=20180613):
    """RISE's random smooth masks: a grid of cells kept with probability `keep`, upsampled
    bilinearly to grid + 1 cells and cropped at a random offset of less than one cell."""
    generator = torch.Generator().manual_seed(seed)
    cell_h, cell_w = -(-h // grid), -(-w // grid)  # ceil(h / grid), ceil(w / grid)
    cells = (torch.rand(masks, 1, grid, grid, generator=generator) < keep).float()
    size = ((grid + 1) * cell_h, (grid + 1) * cell_w)
    up = F.interpolate(cells, size=size, mode="bilinear", align_corners=False)
    dy = torch.randint(0, cell_h, (masks,), generator=generator)
    dx = torch.randint(0, cell_w, (masks,), generator=generator)
    crops = [up[i, 0, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(masks)]
    return torch.stack(crops).clamp(0, 1)


@torch.no_grad()
def _rise_map(model, x, targets, keep=0.5, chunk_size=64):
    """RISE on the insertion canvas: the mean of the masks weighted by the target probability of
    the image pasted into its blur by each mask, divided by the keep probability."""
    x = x.detach()
    masks = _rise_masks(x.shape[-2], x.shape[-1]).to(device=x.device, dtype=x.dtype)
    canvas = _blur(x)
    out = torch.zeros(x.shape[0], 1, x.shape[-2], x.shape[-1], dtype=x.dtype, device=x.device)
    for i in range(x.shape[0]):
        for start in range(0, masks.shape[0], chunk_size):
            m = masks[start : start + chunk_size][:, None]
            pasted = x[i : i + 1] * m + canvas[i : i + 1] * (1 - m)
            p = torch.softmax(model(pasted), dim=1)[:, int(targets[i])]
            out[i, 0] += (p[:, None, None] * m[:, 0]).sum(dim=0)
    return out / (masks.shape[0] * keep)
'''


_ABLATED_SCORES = '''
@torch.no_grad()
def _ablated_scores(model, target_layer, x, activations, targets, chunk_size=64):
    """Ablation-CAM: target logit with one channel of the layer's output set to zero."""
    b, c = activations.shape[:2]
    scores = torch.empty(b, c, dtype=x.dtype, device=x.device)
    for i in range(b):
        for start in range(0, c, chunk_size):
            chans = torch.arange(start, min(c, start + chunk_size), device=x.device)
            ablated = activations[i : i + 1].repeat(len(chans), 1, 1, 1)
            ablated[torch.arange(len(chans)), chans] = 0
            handle = target_layer.register_forward_hook(lambda module, inputs, output: ablated)
            try:
                logits = model(x[i : i + 1].repeat(len(chans), 1, 1, 1))
            finally:
                handle.remove()
            scores[i, chans] = logits[:, int(targets[i])]
    return scores
'''


def load_generated(source: str, filename: str = "<camlang-generated>") -> types.ModuleType:
    """Execute generated source as a module, registered in linecache for tracebacks."""
    module = types.ModuleType(filename.rsplit("/", 1)[-1].removesuffix(".py"))
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own generated code
    return module

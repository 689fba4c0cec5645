"""Generated modules for cams that read several layers (`A@"layer2"`; docs/multilayer.md).

`torch_source.generate` uses this when a cam reads a layer-indexed terminal: the module finds
each tagged layer on the model by its path (`model.get_submodule`), hooks it beside the target
layer, and captures every layer in one forward and one backward pass, as `runtime.capture` does.
A tagged terminal's local is its row's `source_name` followed by the layer
(`activations_layer2`). Cams that read only the target layer never come here, so their modules
are unchanged.
"""

from __future__ import annotations

import re

from camlang.frontend.ir import split_key
from camlang.frontend.op_table import TERMINALS

#: Layer paths `get_submodule` understands: dotted names and indices (`layer4.2`, `features.6`).
_DOTTED = re.compile(r"^[A-Za-z_0-9]+(\.[A-Za-z_0-9]+)*$")


def local_name(key: str) -> str:
    """The generated local of a terminal key: `activations`, `activations_layer2`."""
    name, layer = split_key(key)
    base = TERMINALS[name].source_name
    assert base is not None, f"terminal {name} has no name in generated modules"
    return f"{base}_{re.sub(r'[^A-Za-z0-9]+', '_', layer).strip('_')}" if layer else base


def unsupported_path(layers: list[str]) -> str | None:
    """A tagged layer whose path a generated module cannot look up, or None."""
    return next((layer for layer in layers if not _DOTTED.match(layer)), None)


def capture_lines(needs: set[str], layers: list[str]) -> list[str]:
    """`forward`'s first lines: one capture of every layer, then each terminal's local."""
    grads = "gradients_at" if any(split_key(k)[0] == "G" for k in needs) else "_"
    inputs = "input_gradients" if "GX" in needs else "_"
    lines = [f"logits, targets, activations_at, {grads}, {inputs} = self._capture(x, targets)"]
    for layer in ["", *layers]:
        at = {split_key(k)[0] for k in needs if split_key(k)[1] == layer}
        suffix = f"@{layer}" if layer else ""
        if at & {"A", "S_masked", "S_ablated"}:
            lines.append(f'{local_name("A" + suffix)} = activations_at["{layer}"]')
        if "G" in at:
            lines.append(f'{local_name("G" + suffix)} = gradients_at["{layer}"]')
    if "S" in needs:
        lines.append("score = logits.gather(1, targets[:, None])[:, :, None, None]")
    if "P" in needs:
        lines.append(
            "probability = torch.softmax(logits, dim=1).gather(1, targets[:, None])[:, :, None, None]"
        )
    for layer in ["", *layers]:
        suffix = f"@{layer}" if layer else ""
        acts = local_name("A" + suffix)
        if "S_masked" + suffix in needs:
            lines.append(
                f"{local_name('S_masked' + suffix)} = _masked_scores(self.model, x, {acts}, targets)"
                "[:, :, None, None]"
            )
        if "S_ablated" + suffix in needs:
            module = f'self.layers["{layer}"]' if layer else "self.target_layer"
            lines.append(
                f"{local_name('S_ablated' + suffix)} = _ablated_scores(self.model, {module}, x, {acts}, "
                "targets)[:, :, None, None]"
            )
    if "GX_smooth" in needs:
        lines.append("smooth_input_gradients = _smooth_input_gradients(self.model, x, targets)")
    if "RISE" in needs:
        lines.append("rise_map = _rise_map(self.model, x, targets)")
    return lines


def class_lines(layers: list[str]) -> tuple[str, str]:
    """The class attribute naming the layers, and the `__init__` line that finds them."""
    quoted = ", ".join(f'"{path}"' for path in layers) + ("," if len(layers) == 1 else "")
    return (
        f"\n    layer_paths = ({quoted})",
        "\n        self.layers = {path: model.get_submodule(path) for path in self.layer_paths}",
    )


CAPTURE_LAYERS = '''    def _capture(self, x: torch.Tensor, targets: torch.Tensor | list[int] | None):
        """One forward pass and one backward pass for the target scores, for every layer read.

        Without input gradients, the forward runs without a graph up to the first of the layers
        reached, and the backward stops there. Activations and gradients are keyed by layer
        path ("" is the target layer).
        """
        store = {}

        def keep_output(path):
            def hook(module, inputs, output):
                if not self.needs_input_gradient and not torch.is_grad_enabled():
                    output = output.detach().requires_grad_(True)
                    torch.set_grad_enabled(True)
                store[path] = output
                return output

            return hook

        hooked = {"": self.target_layer, **self.layers}
        handles = [layer.register_forward_hook(keep_output(path)) for path, layer in hooked.items()]
        inputs = x.detach().requires_grad_(self.needs_input_gradient)
        try:
            with torch.set_grad_enabled(self.needs_input_gradient):
                logits = self.model(inputs)
                if targets is None:
                    chosen = logits.argmax(dim=1)
                else:
                    chosen = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
                score = logits.gather(1, chosen[:, None]).sum()
                paths = list(hooked)
                wrt = [store[p] for p in paths] + ([inputs] if self.needs_input_gradient else [])
                grads = torch.autograd.grad(score, wrt, allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        gradients = {
            p: g if g is not None else torch.zeros_like(store[p]) for p, g in zip(paths, grads)
        }
        input_gradients = grads[-1] if self.needs_input_gradient else None
        activations = {p: store[p].detach() for p in paths}
        return logits.detach(), chosen, activations, gradients, input_gradients
'''

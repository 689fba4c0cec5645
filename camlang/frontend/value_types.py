"""Types of camlang values: sets of named axes.

Layer axes are `C` (channels), `H`, `W` (a layer's grid); input axes are `Cin`,
`Hin`, `Win` (the image the model consumes). A value's type is the set of axes it carries;
a scalar has none. A `point` (from `argmax`) is a pixel position, not a tensor.

A type's `layer` names the layer that *all* of its layer axes come from: `""` is the model's
target layer, `"layer2"` a layer-indexed terminal's (`A@"layer2"`). Channel axes and grids of
different layers never mix (`union`); maps of different layers meet on the input grid through
`upsample`. A type without layer axes carries no layer.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYER_AXES = ("C", "H", "W")
INPUT_AXES = ("Cin", "Hin", "Win")
ALL_AXES = LAYER_AXES + INPUT_AXES
_LAYER_SET = frozenset(LAYER_AXES)


@dataclass(frozen=True, slots=True)
class Ty:
    """A value type: its axes (a subset of `ALL_AXES`) and its kind."""

    axes: frozenset[str] = frozenset()
    kind: str = "tensor"  # "tensor" | "point"
    layer: str = ""  # the layer of the layer axes ("" = the target layer)

    def __str__(self) -> str:
        if self.kind == "point":
            return "Point"
        if not self.axes:
            return "Scalar"
        if self.layer:
            return f'{self.shape_text()} @ "{self.layer}"'
        return self.shape_text()

    def shape_text(self) -> str:
        """The axes part of the printed type (`Map[H, W]`), without the layer."""
        order = [a for a in ALL_AXES if a in self.axes]
        names = ", ".join(order)
        spatial = {"H", "W"} <= self.axes or {"Hin", "Win"} <= self.axes
        channel = "C" in self.axes or "Cin" in self.axes
        if spatial and not channel:
            return f"Map[{names}]"
        if channel and not spatial and len(self.axes) == 1:
            return f"Vector[{names}]"
        return f"Tensor[{names}]"

    def with_axes(self, axes: frozenset[str]) -> Ty:
        """The same layer's type with other axes (the layer goes when no layer axis is left)."""
        return Ty(axes, self.kind, self.layer if axes & _LAYER_SET else "")

    @property
    def has_layer_axes(self) -> bool:
        return bool(self.axes & _LAYER_SET)

    @property
    def is_scalar(self) -> bool:
        return self.kind == "tensor" and not self.axes

    @property
    def has_channels(self) -> bool:
        return bool(self.axes & {"C", "Cin"})

    @property
    def has_grid(self) -> bool:
        return bool(self.axes & {"H", "W", "Hin", "Win"})

    @property
    def is_layer_map(self) -> bool:
        return self.kind == "tensor" and self.axes == frozenset({"H", "W"})

    @property
    def is_input_map(self) -> bool:
        return self.kind == "tensor" and self.axes == frozenset({"Hin", "Win"})


def ty(*axes: str) -> Ty:
    """A tensor type with the given axes."""
    return Ty(frozenset(axes))


SCALAR = Ty()
POINT = Ty(frozenset(), "point")
LAYER_TENSOR = ty("C", "H", "W")
LAYER_MAP = ty("H", "W")
CHANNEL_VECTOR = ty("C")
IMAGE = ty("Cin", "Hin", "Win")
INPUT_MAP = ty("Hin", "Win")


class AxisError(Exception):
    """A type rule failed; the message is shown to the user, with an optional hint and its code."""

    def __init__(self, message: str, hint: str | None = None, code: str = "E301") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


def layer_name(layer: str) -> str:
    """A layer as the diagnostics name it."""
    return f'"{layer}"' if layer else "the target layer"


def _check_layers(types: tuple[Ty, ...]) -> str:
    """The one layer the operands' layer axes come from, or AxisError (E305 channels, E306 grids)."""
    layered = [t for t in types if t.has_layer_axes]
    layers = {t.layer for t in layered}
    if len(layers) <= 1:
        return layers.pop() if layers else ""
    shown = " and ".join(f"{t} (the target layer)" if not t.layer else str(t) for t in layered)
    with_channels = {t.layer for t in layered if "C" in t.axes}
    if len(with_channels) > 1:
        a, b = sorted(with_channels)[:2]
        raise AxisError(
            f"mixes the channels of two layers: {shown}",
            f"channel c of {layer_name(a)} and channel c of {layer_name(b)} are different features; "
            "reduce each layer to a map first and bring the maps to the input grid with upsample(...)",
            code="E305",
        )
    raise AxisError(
        f"combines values on the grids of different layers: {shown}",
        "bring both maps to the input grid first: upsample(sum_c(...)) + upsample(sum_c(...))",
        code="E306",
    )


def union(*types: Ty) -> Ty:
    """Broadcast element-wise operands: the union of their axes.

    Layer-grid and input-grid values cannot be combined (they have different resolutions), nor
    can the layer axes of two different layers (E305 for channels, E306 for grids).
    """
    axes: frozenset[str] = frozenset()
    for t in types:
        if t.kind != "tensor":
            raise AxisError(f"a {t} cannot be used in arithmetic", "use inside(point, mask) on points")
        axes |= t.axes
    if axes & set(LAYER_AXES) and axes & set(INPUT_AXES):
        raise AxisError(
            "cannot combine layer-resolution and input-resolution values: "
            + " and ".join(str(t) for t in types),
            "upsample(x) brings a layer map to the input resolution",
        )
    return Ty(axes, layer=_check_layers(types))

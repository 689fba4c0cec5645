"""Types of camlang values: sets of named axes.

Layer axes are `C` (channels), `H`, `W` (the target layer's grid); input axes are `Cin`,
`Hin`, `Win` (the image the model consumes). A value's type is the set of axes it carries;
a scalar has none. A `point` (from `argmax`) is a pixel position, not a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYER_AXES = ("C", "H", "W")
INPUT_AXES = ("Cin", "Hin", "Win")
ALL_AXES = LAYER_AXES + INPUT_AXES


@dataclass(frozen=True, slots=True)
class Ty:
    """A value type: its axes (a subset of `ALL_AXES`) and its kind."""

    axes: frozenset[str] = frozenset()
    kind: str = "tensor"  # "tensor" | "point"

    def __str__(self) -> str:
        if self.kind == "point":
            return "Point"
        if not self.axes:
            return "Scalar"
        order = [a for a in ALL_AXES if a in self.axes]
        names = ", ".join(order)
        spatial = {"H", "W"} <= self.axes or {"Hin", "Win"} <= self.axes
        channel = "C" in self.axes or "Cin" in self.axes
        if spatial and not channel:
            return f"Map[{names}]"
        if channel and not spatial and len(self.axes) == 1:
            return f"Vector[{names}]"
        return f"Tensor[{names}]"

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
    """A type rule failed; the message is shown to the user, with an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def union(*types: Ty) -> Ty:
    """Broadcast element-wise operands: the union of their axes.

    Layer-grid and input-grid values cannot be combined (they have different resolutions).
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
    return Ty(axes)

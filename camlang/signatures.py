"""Argument signatures of the declaration sources: models, data sets and properties.

Each entry lists a call's parameters in positional order, with the literal kinds it accepts
and a default (or `REQUIRED`). The checker binds calls against these tables; loaders read the
bound dictionaries. `kind` values: "string", "int", "number", "bool", "list", "any",
"model" / "cam" / "data" (a reference to a declaration), "point" (a list, `data[i]` or
`vnnlib("file")`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kinds: tuple[str, ...]
    default: Any = REQUIRED
    doc: str = ""
    is_path: bool = False


_MODEL_COMMON = (
    Arg("input_size", ("int",), None, "input resolution (pixels) the model expects"),
    Arg("normalize", ("string", "list", "none"), None, "normalization preset or [mean, std] lists"),
    Arg("num_classes", ("int",), None, "number of output classes"),
)

MODEL_SOURCES: dict[str, tuple[Arg, ...]] = {
    "torchvision": (
        Arg("name", ("string",), doc="a torchvision.models classification architecture"),
        Arg("weights", ("string", "none"), None, "none, a weights enum name (from the local cache) or a .pth file"),
    )
    + _MODEL_COMMON,
    "checkpoint": (
        Arg("path", ("string",), doc="a state_dict or TorchScript file", is_path=True),
        Arg("arch", ("string", "none"), None, "architecture name (torchvision, shapes_cnn, cifar_resnet20, ...)"),
    )
    + _MODEL_COMMON,
    "onnx": (Arg("path", ("string",), doc="an ONNX file (needs camlang[onnx])", is_path=True),) + _MODEL_COMMON,
    "mlp": (
        Arg("sizes", ("list",), doc="layer widths, e.g. [5, 6, 6, 2]"),
        Arg("weights", ("string", "none"), None, "a state_dict file", is_path=True),
    )
    + _MODEL_COMMON,
}

_DATA_COMMON = (
    Arg("limit", ("int",), None, "use only the first N items"),
    Arg("shuffle", ("int", "none"), None, "shuffle with this seed"),
    Arg("split", ("string", "none"), None, '"train" or "holdout" part of a split'),
    Arg("split_fraction", ("number",), 0.5, "the holdout share when split is given"),
)

DATA_SOURCES: dict[str, tuple[Arg, ...]] = {
    "synthetic_shapes": (
        Arg("count", ("int",), 128, "number of images"),
        Arg("size", ("int",), 64, "image side in pixels"),
        Arg("seed", ("int",), 0, "generator seed"),
        Arg("classes", ("list", "none"), None, "subset of class names"),
    )
    + _DATA_COMMON,
    "images": (
        Arg("folder", ("string",), doc="an image folder (flat or one subfolder per class)", is_path=True),
        Arg("size", ("int",), 224, "resize to size x size"),
        Arg("normalize", ("string", "list"), "imagenet", "imagenet, cifar, none or [mean, std]"),
        Arg("labels", ("string", "list", "none"), None, "a CSV file or class-name list"),
        Arg("masks", ("string", "none"), None, "a folder of ground-truth masks", is_path=True),
        Arg("boxes", ("string", "none"), None, "a CSV of bounding boxes", is_path=True),
        Arg("channels", ("int",), 3, "1 or 3"),
    )
    + _DATA_COMMON,
    "mnist": (
        Arg("path", ("string",), doc="folder with the idx files", is_path=True),
        Arg("normalize", ("string", "list"), "none", "none or [mean, std]"),
        Arg("train", ("bool",), False, "use the training split files"),
    )
    + _DATA_COMMON,
    "idx": (
        Arg("images", ("string",), doc="idx images file", is_path=True),
        Arg("labels", ("string", "none"), None, "idx labels file", is_path=True),
        Arg("normalize", ("string", "list"), "none", "none or [mean, std]"),
    )
    + _DATA_COMMON,
}

PROPERTY_KINDS: dict[str, tuple[Arg, ...]] = {
    "saliency_robust": (
        Arg("model", ("model",)),
        Arg("at", ("point",), doc="a literal vector, data[i] or vnnlib(\"file\")"),
        Arg("eps", ("number",)),
        Arg("delta", ("number",)),
        Arg("label", ("int", "none"), None),
        Arg("box", ("list", "none"), None),
        Arg("timeout", ("string", "number"), "120s"),
        Arg("backend", ("string",), "auto"),
    ),
    "robust": (
        Arg("model", ("model",)),
        Arg("at", ("point",)),
        Arg("eps", ("number",)),
        Arg("label", ("int", "none"), None),
        Arg("box", ("list", "none"), None),
        Arg("timeout", ("string", "number"), "120s"),
        Arg("backend", ("string",), "auto"),
    ),
    "vnnlib": (
        Arg("model", ("model",)),
        Arg("path", ("string",), is_path=True),
        Arg("timeout", ("string", "number"), "120s"),
        Arg("backend", ("string",), "auto"),
    ),
    "equivalent": (
        Arg("a", ("cam",)),
        Arg("b", ("cam",)),
        Arg("timeout", ("string", "number"), "30s"),
    ),
    "nonnegative": (Arg("cam", ("cam",)), Arg("timeout", ("string", "number"), "30s")),
    "bounded": (
        Arg("cam", ("cam",)),
        Arg("lo", ("number",), 0.0),
        Arg("hi", ("number",), 1.0),
        Arg("timeout", ("string", "number"), "30s"),
    ),
}

SYNTH_SETTINGS: dict[str, Arg] = {
    a.name: a
    for a in (
        Arg("model", ("model",)),
        Arg("data", ("data",)),
        Arg("objective", ("metric",)),
        Arg("holdout", ("data", "none"), None),
        Arg("max_size", ("int",), 9),
        Arg("budget", ("int", "none"), None, "forward passes"),
        Arg("time", ("string", "number", "none"), None, 'e.g. "10m"'),
        Arg("top", ("int",), 10),
        Arg("seed", ("int",), 0),
        Arg("strategy", ("string",), "racing", "racing or exhaustive"),
        Arg("probe", ("int",), 16, "probe batch size for observational equivalence"),
        Arg("race_first", ("int",), 4, "training images of the first racing round"),
        Arg("finalists", ("int",), 5, "race leaders re-scored on every training image"),
    )
}
SYNTH_REQUIRED = ("model", "data", "objective")


def parse_duration(value: Any) -> float:
    """Seconds from `"120s"`, `"10m"`, `"1h"` or a number; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("a duration must be positive")
        return float(value)
    text = str(value).strip().lower()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            number = float(text[: -len(unit)])
            if number <= 0:
                raise ValueError("a duration must be positive")
            return number * units[unit]
    number = float(text)
    if number <= 0:
        raise ValueError("a duration must be positive")
    return number

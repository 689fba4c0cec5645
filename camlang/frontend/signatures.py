"""Argument signatures of the declaration sources: models, data sets and properties.

Each entry lists a call's parameters in positional order, with the literal kinds it accepts,
a default (or `REQUIRED`) and an optional value check (`Choices`, `AtLeast`, `Duration`, ...).
The checker binds calls against these tables and runs the value checks; loaders read the
bound dictionaries. `kind` values: "string", "int", "number", "bool", "list", "any",
"model" / "cam" / "data" (a reference to a declaration), "point" (a list, `data[i]` or
`vnnlib("file")`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The default of a parameter that has none (compared by identity).
REQUIRED: Final[object] = object()

#: A value check's verdict: (message, hint) when the value is bad.
Problem = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Choices:
    """The value must be one of a few strings."""

    values: tuple[str, ...]

    def problem(self, name: str, value: object) -> Problem | None:
        if value in self.values:
            return None
        allowed = " or ".join(f'"{v}"' for v in self.values)
        return f'{name} must be {allowed}, got "{value}"', None


@dataclass(frozen=True, slots=True)
class AtLeast:
    """A number bounded below: `> bound` when `strict`, else `>= bound`."""

    bound: float
    strict: bool = False
    hint: str | None = None

    def problem(self, name: str, value: object) -> Problem | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if value > self.bound or (not self.strict and value == self.bound):
            return None
        if self.strict and self.bound == 0:
            return f"`{name}` must be positive, got {value}", self.hint
        return f"`{name}` must be {'>' if self.strict else '>='} {self.bound:g}, got {value}", self.hint


@dataclass(frozen=True, slots=True)
class PositiveInts:
    """A list of at least `min_len` positive integers (layer widths)."""

    min_len: int
    message: str

    def problem(self, name: str, value: object) -> Problem | None:
        if (
            isinstance(value, list)
            and len(value) >= self.min_len
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            return None
        return self.message, None


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration such as `"90s"` or a number of seconds; `convert` turns it into seconds."""

    word: str
    example: str

    def problem(self, name: str, value: object) -> Problem | None:
        try:
            parse_duration(value)
        except ValueError:
            return f'bad {self.word} "{value}"', f"write e.g. {self.example}"
        return None

    def convert(self, value: object) -> float:
        return parse_duration(value)


ValueCheck = Choices | AtLeast | PositiveInts | Duration


@dataclass(frozen=True, slots=True)
class Arg:
    """One parameter of a declaration source: accepted literal kinds, default, value check."""

    name: str
    kinds: tuple[str, ...]
    default: object = REQUIRED
    doc: str = ""
    is_path: bool = False
    check: ValueCheck | None = None

    def problem(self, value: object) -> Problem | None:
        """What is wrong with a well-kinded `value` (None when it is fine or `none`)."""
        if value is None or self.check is None:
            return None
        return self.check.problem(self.name, value)

    def convert(self, value: object) -> object:
        """The value loaders see (durations become seconds); call only after `problem` is None."""
        if value is None or not isinstance(self.check, Duration):
            return value
        return self.check.convert(value)


_POSITIVE = AtLeast(0, strict=True)
_EPS = AtLeast(0, hint="eps is a distance bound")
_DELTA = AtLeast(0, hint="delta is a distance bound")
_TIMEOUT = Duration("timeout", '"120s" or "2m"')


_MODEL_COMMON = (
    Arg("input_size", ("int",), None, "input resolution (pixels) the model expects"),
    Arg("normalize", ("string", "list", "none"), None, "normalization preset or [mean, std] lists"),
    Arg("num_classes", ("int",), None, "number of output classes"),
)

MODEL_SOURCES: dict[str, tuple[Arg, ...]] = {
    "torchvision": (
        Arg("name", ("string",), doc="a torchvision.models classification architecture"),
        Arg(
            "weights",
            ("string", "none"),
            None,
            "none, a weights enum name (from the local cache) or a .pth file",
        ),
    )
    + _MODEL_COMMON,
    "checkpoint": (
        Arg("path", ("string",), doc="a state_dict or TorchScript file", is_path=True),
        Arg(
            "arch",
            ("string", "none"),
            None,
            "architecture name (torchvision, shapes_cnn, cifar_resnet20, ...)",
        ),
    )
    + _MODEL_COMMON,
    "timm": (
        Arg("name", ("string",), doc="a timm architecture (needs camlang[timm])"),
        Arg(
            "weights",
            ("string", "none"),
            None,
            "a local weights file (.pth, .pt, .bin or .safetensors)",
            is_path=True,
        ),
    )
    + _MODEL_COMMON,
    "onnx": (Arg("path", ("string",), doc="an ONNX file (needs camlang[onnx])", is_path=True),)
    + _MODEL_COMMON,
    "mlp": (
        Arg(
            "sizes",
            ("list",),
            doc="layer widths, e.g. [5, 6, 6, 2]",
            check=PositiveInts(2, "mlp sizes must be a list of at least two positive integers"),
        ),
        Arg("weights", ("string", "none"), None, "a state_dict file", is_path=True),
    )
    + _MODEL_COMMON,
}

_DATA_COMMON = (
    Arg("limit", ("int",), None, "use only the first N items", check=_POSITIVE),
    Arg("shuffle", ("int", "none"), None, "shuffle with this seed"),
    Arg(
        "split",
        ("string", "none"),
        None,
        '"train" or "holdout" part of a split',
        check=Choices(("train", "holdout")),
    ),
    Arg("split_fraction", ("number",), 0.5, "the train share when split is given"),
)

DATA_SOURCES: dict[str, tuple[Arg, ...]] = {
    "synthetic_shapes": (
        Arg("count", ("int",), 128, "number of images", check=_POSITIVE),
        Arg("size", ("int",), 64, "image side in pixels", check=_POSITIVE),
        Arg("seed", ("int",), 0, "generator seed"),
        Arg("classes", ("list", "none"), None, "subset of class names"),
        Arg(
            "shortcut",
            ("number",),
            0.0,
            "probability that a shape takes its class's colour family",
            check=AtLeast(0, hint="a probability between 0 and 1"),
        ),
    )
    + _DATA_COMMON,
    "images": (
        Arg(
            "folder",
            ("string",),
            doc="an image folder (flat or one subfolder per class), or a .tar.gz / .zip of one",
            is_path=True,
        ),
        Arg("size", ("int",), 224, "resize to size x size", check=_POSITIVE),
        Arg("normalize", ("string", "list"), "imagenet", "imagenet, cifar, none or [mean, std]"),
        Arg("labels", ("string", "list", "none"), None, "a CSV file or class-name list"),
        Arg("masks", ("string", "none"), None, "a folder of ground-truth masks", is_path=True),
        Arg("boxes", ("string", "none"), None, "a CSV of bounding boxes", is_path=True),
        Arg("channels", ("int",), 3, "1 or 3"),
        Arg("concepts", ("string", "none"), None, "a CSV of 0/1 concept annotations per file", is_path=True),
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
        Arg("at", ("point",), doc='a literal vector, data[i] or vnnlib("file")'),
        Arg("eps", ("number",), check=_EPS),
        Arg("delta", ("number",), check=_DELTA),
        Arg("label", ("int", "none"), None),
        Arg("box", ("list", "none"), None),
        Arg("timeout", ("string", "number"), "120s", check=_TIMEOUT),
        Arg("backend", ("string",), "auto"),
    ),
    "robust": (
        Arg("model", ("model",)),
        Arg("at", ("point",)),
        Arg("eps", ("number",), check=_EPS),
        Arg("label", ("int", "none"), None),
        Arg("box", ("list", "none"), None),
        Arg("timeout", ("string", "number"), "120s", check=_TIMEOUT),
        Arg("backend", ("string",), "auto"),
    ),
    "vnnlib": (
        Arg("model", ("model",)),
        Arg("path", ("string",), is_path=True),
        Arg("timeout", ("string", "number"), "120s", check=_TIMEOUT),
        Arg("backend", ("string",), "auto"),
    ),
    "equivalent": (
        Arg("a", ("cam",)),
        Arg("b", ("cam",)),
        Arg("timeout", ("string", "number"), "30s", check=_TIMEOUT),
    ),
    "nonnegative": (Arg("cam", ("cam",)), Arg("timeout", ("string", "number"), "30s")),
    "bounded": (
        Arg("cam", ("cam",)),
        Arg("lo", ("number",), 0.0),
        Arg("hi", ("number",), 1.0),
        Arg("timeout", ("string", "number"), "30s", check=_TIMEOUT),
    ),
}

#: Sources of `concepts NAME = ...` declarations (see camlang/concepts/).
CONCEPT_SOURCES: dict[str, tuple[Arg, ...]] = {
    "annotations": (
        Arg("data", ("data",), doc="data whose images carry concept annotations"),
        Arg("concepts", ("list", "none"), None, "concept names (default: all annotated)"),
    ),
    "probes": (
        Arg("model", ("model",)),
        Arg("data", ("data",), doc="annotated images to fit the probes on"),
        Arg("heldout", ("data",), doc="annotated images to score the probes on"),
        Arg("layer", ("string",), "penultimate", 'a layer path or "penultimate"'),
        Arg("concepts", ("list", "none"), None, "concept names (default: all annotated)"),
    ),
    "clip": (
        Arg(
            "weights",
            ("string",),
            doc="a local open_clip weights file (never downloaded; checked by check/concepts.py)",
        ),
        Arg("arch", ("string",), "ViT-B-32", "open_clip architecture name"),
        Arg("prompts", ("list",), doc="one text prompt per concept"),
        Arg("concepts", ("list", "none"), None, "concept names (default: the prompts)"),
        Arg("model", ("model",)),
        Arg("align", ("data",), doc="held-out images to fit the feature aligner on"),
    ),
    "discovered": (
        Arg("model", ("model",)),
        Arg("data", ("data",), doc="images to discover concepts on (no annotations needed)"),
        Arg("layer", ("string",), doc='a layer path with spatial output, e.g. "layer2"'),
        Arg("count", ("int",), 8, "number of concepts (NMF rank)", check=AtLeast(2)),
        Arg("seed", ("int",), 0, "NMF initialisation seed"),
        Arg("images", ("int",), 1000, "factorise at most this many images", check=AtLeast(1)),
    ),
}

#: Kinds of `monitor NAME = ...` declarations.
MONITOR_KINDS: dict[str, tuple[Arg, ...]] = {
    "concept_monitor": (
        Arg("concepts", ("concepts",)),
        Arg("model", ("model",)),
        Arg("fit", ("data",), doc="labelled images to build the heatmaps on (where the model errs)"),
        Arg("calibrate", ("data",), doc="labelled validation images to set the threshold on"),
        Arg(
            "fpr",
            ("number",),
            0.05,
            "false-positive rate on correct validation images",
            check=AtLeast(0, strict=True),
        ),
        Arg(
            "pgd_eps",
            ("number", "none"),
            None,
            "also test on L-inf PGD examples of this radius",
            check=AtLeast(0, strict=True),
        ),
        Arg("pgd_steps", ("int",), 10, "PGD steps", check=AtLeast(1)),
        Arg("seed", ("int",), 0, "PGD random start seed"),
        Arg(
            "early",
            ("concepts", "none"),
            None,
            "probes at an early layer: PGD examples are also scored by early/late concept disagreement",
        ),
        Arg(
            "fit_attack",
            ("string",),
            "pgd_small",
            "the attack that detector is fitted on: PGD at pgd_eps / 4, or FGSM at pgd_eps",
            check=Choices(("fgsm", "pgd_small")),
        ),
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
        Arg(
            "time",
            ("string", "number", "none"),
            None,
            'e.g. "10m"',
            check=Duration("time limit", '"90s" or "10m"'),
        ),
        Arg("top", ("int",), 10),
        Arg("seed", ("int",), 0),
        Arg(
            "strategy", ("string",), "racing", "racing or exhaustive", check=Choices(("racing", "exhaustive"))
        ),
        Arg("probe", ("int",), 16, "probe batch size for observational equivalence"),
        Arg("race_first", ("int",), 4, "training images of the first racing round", check=AtLeast(1)),
        Arg("finalists", ("int",), 5, "race leaders re-scored on every training image", check=AtLeast(1)),
    )
}
SYNTH_REQUIRED = ("model", "data", "objective")


def parse_duration(value: object) -> float:
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


# ---- concept names of the built-in data (read by the checker without importing the data layer) ----
#: Colour families by hue: family `k` covers hues within 1/12 of `k/6` (red at hue 0).
COLOUR_FAMILIES: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")
#: Concept attributes of every shapes image, in column order of `Batch.concepts`
#: (the data layer, `camlang.data.shapes`, renders them).
SHAPE_CONCEPTS: tuple[str, ...] = (
    *COLOUR_FAMILIES,
    "small",
    "large",
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
    "distractor",
    "arc_distractor",
    "line_distractor",
    "blob_distractor",
    "strong_texture",
)

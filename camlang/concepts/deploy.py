"""`prog.monitor("m")`: a fitted monitor in front of a deployed model.

guard = camlang.load("examples/concepts.cam").monitor("guard")
out = guard(images)            # images [B, C, H, W] as the model consumes them
out.flags, out.scores, out.predictions
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from camlang.concepts.build import ConceptRuntime
from camlang.concepts.features import Features, forward_with_features
from camlang.concepts.monitor import DETECTORS, ConceptMonitor
from camlang.concepts.state import ConceptModel
from camlang.data.base import Dataset
from camlang.errors import CamlangError
from camlang.frontend.program import Program


@dataclass(frozen=True)
class MonitorOutput:
    """Per image: flagged as a likely mistake, the detector's score, and the model's prediction."""

    flags: torch.Tensor  # [B] bool
    scores: torch.Tensor  # [B]
    predictions: torch.Tensor  # [B]
    logits: torch.Tensor  # [B, classes]


class LoadedProgramLike(Protocol):
    """What a monitor needs of `camlang.api.LoadedProgram`: its program, models and data."""

    @property
    def program(self) -> Program: ...

    def model(self, name: str | None = None) -> ConceptModel:
        """The model `name`."""
        ...

    def data(self, name: str) -> Dataset:
        """The data set `name`."""
        ...


class _ProgramState:
    """Adapts a `LoadedProgram` to what `ConceptRuntime` needs (cached data and models)."""

    def __init__(self, prog: LoadedProgramLike) -> None:
        self.program = prog.program
        self._prog = prog
        self._data: dict[str, Dataset] = {}

    def data(self, name: str) -> Dataset:
        if name not in self._data:
            self._data[name] = self._prog.data(name)
        return self._data[name]

    def model(self, name: str, data_name: str | None = None) -> ConceptModel:
        return self._prog.model(name)


class DeployedMonitor:
    """A calibrated concept monitor and its model; call it on a batch of images."""

    def __init__(
        self, monitor: ConceptMonitor, model: torch.nn.Module, layers: list[str], detector: str
    ) -> None:
        if detector not in DETECTORS:
            raise CamlangError(f"unknown detector {detector!r}", hint="one of " + ", ".join(DETECTORS))
        self.monitor = monitor
        self.model = model
        self.layers = layers
        self.detector = detector

    @property
    def threshold(self) -> float:
        """The threshold calibrated on the validation split."""
        return self.monitor.thresholds[self.detector]

    def __call__(self, images: torch.Tensor) -> MonitorOutput:
        """Run the model once on `images` and flag likely mistakes."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise CamlangError("a monitor takes a batch of images [batch, channels, height, width]")
        self.model.eval()
        logits, pooled = forward_with_features(self.model, images, self.layers)
        feats = Features(logits, pooled, None, None, ())
        flags, scores = self.monitor.flags(feats, self.detector)
        return MonitorOutput(flags, scores, logits.argmax(1), logits)


def deployed_monitor(prog: LoadedProgramLike, name: str, detector: str = "monitor") -> DeployedMonitor:
    """Fit and calibrate monitor `name` of a loaded program (as `camlang run` would)."""
    if name not in prog.program.monitors:
        raise CamlangError(
            f"unknown monitor `{name}`", hint=f"declared: {', '.join(prog.program.monitors) or 'none'}"
        )
    runtime = ConceptRuntime(_ProgramState(prog))
    monitor = runtime.monitor(name)
    model_name = prog.program.monitors[name].args["model"].name
    return DeployedMonitor(monitor, prog.model(model_name).module, runtime.layers_of(model_name), detector)

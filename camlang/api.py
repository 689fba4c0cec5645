"""The Python API, shaped like pytorch-grad-cam's:

import camlang
prog = camlang.load("examples/quickstart.cam")
cam = prog.cam("gradcampp", model="shapes")          # an nn.Module
maps = cam(images, targets=None)                      # [B, H, W] in [0, 1]
cam2 = camlang.CAM("relu(sum_c(mean_hw(G) * A))", model=my_model, target_layer=my_model.layer4)
guard = prog.monitor("guard")                         # a fitted concept monitor
out = guard(images)                                   # out.flags, out.scores per image
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camlang.concepts.deploy import DeployedMonitor
from camlang.data.base import Dataset
from camlang.errors import CamlangError
from camlang.frontend.check import check_file, check_text
from camlang.frontend.diagnostics import CompileError
from camlang.frontend.ir import Node
from camlang.frontend.layer_layout import LayerLayout
from camlang.frontend.program import Program
from camlang.notebook import OverlayGrid, RunResult, overlay_batch
from camlang.run.state import Workspace
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.capture import LayoutArg, Targets
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import SynthOutcome


class CAMModule(nn.Module):
    """A CAM as an `nn.Module`: `forward(x, targets=None) -> [B, H, W]` maps in [0, 1].

    `targets` may be None (predicted class), class indices, or a callable on the logits.
    With `differentiable=True` the maps keep their autograd graph (the costly terminals
    `S_masked`, `S_ablated`, `GX_smooth` and `RISE` enter it as constants).
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | Sequence[nn.Module] | None,
        node: Node,
        name: str = "cam",
        *,
        chunk_size: int = 64,
        layout: LayoutArg = None,
        fuse: str = "mean",
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.node = node
        self._engine = CamEngine(
            model, target_layer, {name: node}, chunk_size=chunk_size, layout=layout, fuse=fuse
        )
        self.layouts: list[LayerLayout] = []

    def forward(self, x: torch.Tensor, targets: Targets = None, differentiable: bool = False) -> torch.Tensor:
        out = self._engine(x, targets, differentiable=differentiable)
        self.layouts = out.layouts
        return out.maps[self.name]

    def layout_report(self) -> list[str]:
        """How each target layer's output was laid out as [C, H, W] in the last call."""
        return [layout.describe() for layout in self.layouts]

    @staticmethod
    def overlay(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
        """Jet heatmaps of `maps` [B, H, W] blended onto `images` [B, 3, H, W] in [0, 1]: uint8 [B, H, W,
        3]."""
        return overlay_batch(images, maps, alpha)

    def show(
        self,
        images: torch.Tensor,
        targets: Targets = None,
        *,
        raw: torch.Tensor | None = None,
        alpha: float = 0.5,
    ) -> OverlayGrid:
        """Compute the maps of `images` and return them overlaid on the images (shown inline in Jupyter).

        `raw` gives the images in [0, 1] for display when `images` are normalized model inputs.
        """
        maps = self.forward(images, targets).detach().cpu()
        shown = raw if raw is not None else images
        return OverlayGrid(overlay_batch(shown.detach().cpu(), maps, alpha), self.name)


class LoadedProgram:
    """A checked `.cam` program whose models and data load on demand."""

    def __init__(self, program: Program, device: str = "cpu") -> None:
        self.program = program
        self.device = device
        self._workspace = Workspace(program, device)
        #: The winners of the last `run()`'s syntheses, by name (`cam` serves them too).
        self._synthesized: dict[str, SynthOutcome] = {}

    def model(self, name: str | None = None) -> LiveModel:
        """The live model `name` (the only declared model when None)."""
        if name is None:
            if len(self.program.models) != 1:
                raise CamlangError(
                    "say which model: " + ", ".join(self.program.models)
                    if self.program.models
                    else "the program declares no model"
                )
            name = next(iter(self.program.models))
        return self._workspace.model(name)

    def data(self, name: str) -> Dataset:
        """The dataset `name` (lazy; loaded once)."""
        return self._workspace.data(name)

    def cam(self, name: str, model: str | None = None, *, chunk_size: int = 64) -> CAMModule:
        """The cam `name` on `model`, as an `nn.Module`."""
        cdef = self.program.cams.get(name)
        node = cdef.node if cdef is not None else None
        if node is None and name in self._synthesized:
            node = self._synthesized[name].node
        if node is None:
            if name in self.program.synths:
                raise CamlangError(f"`{name}` is synthesized: run the file first (camlang run)")
            raise CamlangError(
                f"unknown cam `{name}`", hint=f"declared: {', '.join(sorted(self.program.cams))}"
            )
        live = self.model(model)
        return CAMModule(
            live.module,
            live.target_layers,
            node,
            name,
            chunk_size=chunk_size,
            layout=live.layout,
            fuse=live.fuse,
        )

    def run(
        self, out: str | Path | None = None, *, batch_size: int = 32, seed: int = 0, quiet: bool = True
    ) -> RunResult:
        """Run the program as `camlang run` does; the result shows its metrics and heatmaps in Jupyter.

        The report is written to `out` (default: camlang-out/<file stem>). `quiet` hides progress bars.
        """
        import io

        from rich.console import Console

        from camlang.run.program import RunOptions, run_program

        out_dir = Path(out) if out is not None else Path("camlang-out") / Path(self.program.main.name).stem
        console = Console(file=io.StringIO()) if quiet else Console()
        self._synthesized = {}
        report, status = run_program(
            self.program, RunOptions(out_dir, self.device, batch_size, seed), console, None, self._synthesized
        )
        assert report is not None, "a single-process run always has a report"
        return RunResult(report, out_dir, status)

    def monitor(self, name: str, detector: str = "monitor") -> DeployedMonitor:
        """The concept monitor `name`, fitted and calibrated: `monitor(images)` gives per-image flags and
        scores.

        `detector` is "monitor", "msp", "energy" or "combined" (all calibrated the same way).
        """
        from camlang.concepts.deploy import deployed_monitor

        return deployed_monitor(self, name, detector)


def load(path: str | Path, device: str = "cpu") -> LoadedProgram:
    """Parse and check a `.cam` file; raises `CompileError` (with diagnostics) on user errors."""
    program = check_file(path)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    return LoadedProgram(program, device)


def CAM(
    expression: str,
    model: nn.Module,
    target_layer: nn.Module | Sequence[nn.Module] | None = None,
    *,  # noqa: N802
    chunk_size: int = 64,
    layout: LayoutArg = None,
    fuse: str = "mean",
) -> CAMModule:
    """A CAM from an expression over `A`, `G`, ... (stdlib cam names may be used inside).

    `target_layer` may be a list: the maps of all layers are fused with `fuse` ("mean" or "max").
    `layout` says how a layer's output becomes [C, H, W] (None: recognised; see `camlang.tokens`).
    """
    program = check_text(f'import "stdlib/cams.cam"\ncam expression = {expression}\n', "<expression>", None)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    node = program.cams["expression"].node
    assert node is not None
    return CAMModule(
        model.eval(), target_layer, node, "expression", chunk_size=chunk_size, layout=layout, fuse=fuse
    )

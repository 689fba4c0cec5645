"""The Python API, shaped like pytorch-grad-cam's:

    import camlang
    prog = camlang.load("examples/quickstart.cam")
    cam = prog.cam("gradcampp", model="shapes")          # an nn.Module
    maps = cam(images, targets=None)                      # [B, H, W] in [0, 1]
    cam2 = camlang.CAM("relu(sum_c(mean_hw(G) * A))", model=my_model, target_layer=my_model.layer4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from camlang.capture import Targets
from camlang.check import check_file, check_text
from camlang.diagnostics import CompileError
from camlang.engine import CamEngine
from camlang.errors import CamlangError
from camlang.ir import Node
from camlang.program import Program
from camlang.runstate import Workspace
from camlang.runtime import LiveModel


class CAMModule(nn.Module):
    """A CAM as an `nn.Module`: `forward(x, targets=None) -> [B, H, W]` maps in [0, 1].

    `targets` may be None (predicted class), class indices, or a callable on the logits.
    With `differentiable=True` the maps keep their autograd graph.
    """

    def __init__(self, model: nn.Module, target_layer: nn.Module | None, node: Node, name: str = "cam", *,
                 chunk_size: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.name = name
        self.node = node
        self._engine = CamEngine(model, target_layer, {name: node}, chunk_size=chunk_size)

    def forward(self, x: torch.Tensor, targets: Targets = None, differentiable: bool = False) -> torch.Tensor:
        return self._engine(x, targets, differentiable=differentiable).maps[self.name]


class LoadedProgram:
    """A checked `.cam` program whose models and data load on demand."""

    def __init__(self, program: Program, device: str = "cpu") -> None:
        self.program = program
        self.device = device
        self._workspace = Workspace(program, device)

    def model(self, name: str | None = None) -> LiveModel:
        """The live model `name` (the only declared model when None)."""
        if name is None:
            if len(self.program.models) != 1:
                raise CamlangError("say which model: " + ", ".join(self.program.models) if self.program.models
                                   else "the program declares no model")  # fmt: skip
            name = next(iter(self.program.models))
        return self._workspace.model(name)

    def data(self, name: str) -> Any:
        """The dataset `name` (lazy; loaded once)."""
        return self._workspace.data(name)

    def cam(self, name: str, model: str | None = None, *, chunk_size: int = 64) -> CAMModule:
        """The cam `name` on `model`, as an `nn.Module`."""
        cdef = self.program.cams.get(name)
        if cdef is None or cdef.node is None:
            if name in self.program.synths:
                raise CamlangError(f"`{name}` is synthesized: run the file first (camlang run)")
            raise CamlangError(f"unknown cam `{name}`", hint=f"declared: {', '.join(sorted(self.program.cams))}")
        live = self.model(model)
        return CAMModule(live.module, live.layer, cdef.node, name, chunk_size=chunk_size)


def load(path: str | Path, device: str = "cpu") -> LoadedProgram:
    """Parse and check a `.cam` file; raises `CompileError` (with diagnostics) on user errors."""
    program = check_file(path)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    return LoadedProgram(program, device)


def CAM(expression: str, model: nn.Module, target_layer: nn.Module | None = None, *,  # noqa: N802
        chunk_size: int = 64) -> CAMModule:  # fmt: skip
    """A CAM from an expression over `A`, `G`, ... (stdlib cam names may be used inside)."""
    program = check_text(f'import "stdlib/cams.cam"\ncam expression = {expression}\n', "<expression>", None)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    node = program.cams["expression"].node
    assert node is not None
    return CAMModule(model.eval(), target_layer, node, "expression", chunk_size=chunk_size)

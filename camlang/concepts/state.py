"""What the concept actions need of a run: its program, loaded models and data sets.

`camlang.run.state.RunState` (during a run and in the REPL) and `deploy._ProgramState` (for
`LoadedProgram.monitor`) both qualify; the protocols keep this package below the runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from camlang.data.base import Dataset
from camlang.frontend.program import Program
from camlang.models.loaded import LoadedModel


class ConceptModel(Protocol):
    """A loaded model as the concept actions read it (`runtime.declaration_loading.LiveModel`)."""

    @property
    def loaded(self) -> LoadedModel: ...

    @property
    def module(self) -> nn.Module: ...

    @property
    def device(self) -> torch.device: ...


class ConceptState(Protocol):
    """The declarations and the (cached) models and data sets of a run."""

    @property
    def program(self) -> Program: ...

    def data(self, name: str) -> Dataset:
        """The data set `name`, loaded once."""
        ...

    def model(self, name: str, data_name: str | None = None) -> ConceptModel:
        """The model `name` (preprocessing checked against `data_name`), loaded once."""
        ...


class RunOutput(Protocol):
    """Where a run writes its files."""

    @property
    def out_dir(self) -> Path: ...

"""Concept-targeted CAMs: any cam explains a concept's score instead of a class logit.

`ConceptScores(model, source)` is an `nn.Module` whose outputs are the concept scores `[B, K]`
of a probe source, computed differentiably from the model's own layer. Give it to any CAM with
`targets = [concept index]` (or a concept name through `concept_targets`): a Grad-CAM of "red"
then shows where the network sees red. The CAM layer is the model's, so the usual target
layer paths apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import torch
from torch import nn

from camlang.concepts.features import PENULTIMATE, last_linear, pool_activation
from camlang.concepts.sources import ProbeSource, select_concepts
from camlang.concepts.state import ConceptModel
from camlang.frontend import syntax as s
from camlang.models.layers import resolve_layer

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from camlang.concepts.run_hook import ConceptRunState

    class _LiveDataclass(ConceptModel, DataclassInstance, Protocol):
        """A live model that `dataclasses.replace` can copy (`runtime.declaration_loading.LiveModel`)."""


_Live = TypeVar("_Live", bound="_LiveDataclass")


class ConceptScores(nn.Module):
    """The model seen through a probe source: `forward(x) -> [B, K]` probe logits (differentiable)."""

    def __init__(self, model: nn.Module, source: ProbeSource) -> None:
        super().__init__()
        self.model = model
        self.source = source
        self._hooked = (
            last_linear(model) if source.layer == PENULTIMATE else resolve_layer(model, source.layer)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concept scores of `x`; the model's logits are computed and dropped."""
        seen: list[torch.Tensor] = []

        def pre(_m: nn.Module, args: tuple[object, ...]) -> None:
            seen.append(pool_activation(args[0], self.source.layer))

        def post(_m: nn.Module, _args: tuple[object, ...], output: object) -> None:
            seen.append(pool_activation(output, self.source.layer))

        handle = (
            self._hooked.register_forward_pre_hook(pre)
            if self.source.layer == PENULTIMATE
            else self._hooked.register_forward_hook(post)
        )
        try:
            self.model(x)
        finally:
            handle.remove()
        return self.source.logits(seen[0])


def concept_targets(source: ProbeSource, names: Sequence[str] | str, count: int) -> torch.Tensor:
    """Target indices `[count]` for concept `names` (one name for all images, or one per image)."""
    wanted = [names] * count if isinstance(names, str) else list(names)
    index = {n: i for i, n in enumerate(source.names)}
    for n in wanted:
        if n not in index:
            select_concepts(source.names, [n, source.names[0]], "this concept set")  # raises the user error
    return torch.tensor([index[n] for n in wanted], dtype=torch.long)


def concept_live_model(
    state: ConceptRunState, live: _Live, target: s.ConceptTarget
) -> tuple[_Live, torch.Tensor]:
    """For `evaluate ... for concept SET.NAME`: `live` seen through probe set SET, and NAME's index.

    The returned live model's module is `ConceptScores`, so the cams' target score (and S, S_at)
    is the concept's probe logit; the target layers are the model's own, hooked as usual.
    """
    from dataclasses import replace

    from camlang.concepts.build import ConceptRuntime
    from camlang.concepts.report import ConceptReport
    from camlang.errors import CamlangError

    if state.concepts is None:
        state.concepts = (ConceptRuntime(state), ConceptReport(state.options.out_dir))
    source = state.concepts[0].source(target.concepts.name)
    if not isinstance(source, ProbeSource):  # the checker refuses this; a REPL redefinition may not
        raise CamlangError(
            f"concept set `{target.concepts.name}` is not a probes set, so a cam cannot target it",
            span=target.span,
            code="E824",
        )
    wrapped = ConceptScores(live.module, source).to(live.device).eval()
    index = concept_targets(source, target.concept.name, 1)
    return replace(live, loaded=replace(live.loaded, module=wrapped)), index

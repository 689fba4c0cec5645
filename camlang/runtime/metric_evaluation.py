"""Metric evaluation: compiled metric IR over a stacked (cam x image) batch.

For K cams and a batch of B images, every metric is evaluated once over `K * B` rows: row
`k * B + b` is cam k on image b. Every model call a metric makes (`P_at`, curves, sufficiency,
ROAD, `L_at`) therefore covers all cams at once, chunked by `chunk_size` images per call.
Transforms that do not depend on `L` (noise, flips, shifts) are computed for B rows and tiled,
so the model and the CAMs see the same perturbed image for every cam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from camlang.backends.torch_eager import evaluate
from camlang.core.call_counter import CallCounter
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, postorder
from camlang.frontend.program import MetricDef
from camlang.metrics.inputs import MetricInputs, SensitivityDraws
from camlang.metrics.kernels import pointing_tolerance, tile
from camlang.runtime.cam_engine import CamBatch, CamEngine
from camlang.runtime.declaration_loading import LiveModel


@dataclass
class MetricValues:
    """Per-image metric values `[K, B]` for K cams, by metric name."""

    values: dict[str, torch.Tensor]
    cams: list[str]


def metric_settings(node: Node, input_size: tuple[int, int]) -> dict[str, str]:
    """Settings a metric resolves from the data (shown in the report), e.g. the pointing tolerance."""
    out: dict[str, str] = {}
    for n in postorder([node]):
        if n.op == "pointing":
            given = n.attr("tolerance")
            px = pointing_tolerance(given, input_size)
            rule = "as given" if given is not None else f"15/224 of the {min(input_size)}-px shorter side"
            out["pointing tolerance"] = f"{px:.3g} px ({rule})"
    return out


def metric_needs_mask(node: Node) -> bool:
    """Does the metric read the ground truth?"""
    return any(n.op == "MASK" for n in postorder([node]))


def referenced_cams(nodes: list[Node]) -> set[str]:
    """Cams named by `ref(...)` inside metric expressions."""
    return {n.attr("cam") for n in postorder(nodes) if n.op == "ref"}


class Evaluator:
    """Scores CAM maps with metrics on one model, batching model calls across cams."""

    def __init__(
        self,
        live: LiveModel,
        engine: CamEngine,
        *,
        chunk_size: int = 128,
        counter: CallCounter | None = None,
        seed: int = 0,
    ) -> None:
        self.live = live
        self.engine = engine
        self.chunk_size = chunk_size
        self.counter = counter or CallCounter()
        self.seed = seed

    def model_fn(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.live.module(x)
        return out[0] if isinstance(out, tuple | list) else out

    def score(
        self,
        cams: list[str],
        cam_batch: CamBatch,
        x: torch.Tensor,
        masks: torch.Tensor | None,
        metrics: Mapping[str, MetricDef],
        indices: torch.Tensor | None = None,
    ) -> MetricValues:
        """Evaluate `metrics` for `cams` on one batch whose maps are in `cam_batch`.

        `indices` [B] are the images' dataset indices (`Batch.indices`): every random draw is keyed
        to them and the seed, so values do not depend on batching (None: positions in this batch).
        """
        b = x.shape[0]
        k = len(cams)
        ctx = MetricContext(self, cams, cam_batch, x, masks, indices)
        for name, mdef in metrics.items():
            if masks is None and metric_needs_mask(mdef.node):
                raise CamlangError(
                    f"metric `{name}` reads MASK, but this data has no ground-truth masks",
                    hint='use synthetic_shapes(...) or images(..., masks = "folder/")',
                    code="E502",
                )
        # One memo for every metric: a subterm two metrics share (e.g. `P_at(X * L)` in average
        # drop and increase in confidence) costs one batched model call.
        ctx.bad = torch.zeros(k * b, dtype=torch.bool, device=x.device)
        inputs: MetricInputs = ctx  # what the metric kernels (and the element-wise ones) read
        values = evaluate([m.node for m in metrics.values()], inputs)
        out: dict[str, torch.Tensor] = {}
        for name, mdef in metrics.items():
            # curve metrics may return their AUCs on another device than the batch (CPU vs CUDA)
            value = values[mdef.node.nid].detach().reshape(-1).to(ctx.bad.device)
            if value.numel() == 1:
                value = value.expand(k * b)
            # A row whose map was NaN (or infinite) scores NaN, whatever the primitive did with the
            # zeros it was handed instead; the report counts these rows as NaN.
            value = torch.where(ctx.bad, torch.full_like(value, float("nan")), value)
            out[name] = value.reshape(k, b).float().cpu()
        return MetricValues(out, cams)


class MetricContext:
    """One stacked (cam x image) batch as the metric kernels read it (`camlang.metrics.inputs`).

    It holds the terminal values, the live model and the CAM engine; the kernels themselves are
    the op table's (`camlang.metrics.kernels`), run by the torch back end.
    """

    def __init__(
        self,
        ev: Evaluator,
        cams: list[str],
        cam_batch: CamBatch,
        x: torch.Tensor,
        masks: torch.Tensor | None,
        indices: torch.Tensor | None = None,
    ) -> None:
        self.ev = ev
        self.cams = cams
        self.b = x.shape[0]
        self.indices = torch.arange(self.b) if indices is None else torch.as_tensor(indices).reshape(-1).cpu()
        if self.indices.shape[0] != self.b:
            raise CamlangError(
                f"indices must give one dataset index per image ({self.b}), got {self.indices.shape[0]}"
            )
        self.cam_batch = cam_batch
        self.dtype = x.dtype
        self.device = x.device
        self.seed = ev.seed
        self.chunk_size = ev.chunk_size
        self.counter = ev.counter
        self.model_fn = ev.model_fn
        self.sensitivity_draws: dict[tuple[float, int], SensitivityDraws] = {}
        targets = cam_batch.targets
        self.targets = targets.repeat(self.k)
        logits = cam_batch.logits.detach()
        p = torch.softmax(logits, 1).gather(1, targets[:, None])[:, 0]
        s = logits.gather(1, targets[:, None])[:, 0]
        maps = (
            torch.stack([cam_batch.maps[c] for c in cams]).reshape(self.k * self.b, 1, *x.shape[-2:]).detach()
        )
        # NaN maps (a cam dividing by zero) must not stop the run: metrics see zeros on those rows
        # and `Evaluator.score` turns the rows that read them back into NaN (`self.bad`).
        self.nonfinite = ~torch.isfinite(maps).flatten(1).all(1)
        self.bad = torch.zeros(self.k * self.b, dtype=torch.bool, device=x.device)
        self.terms = {
            "X": tile(self, x),
            "L": torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0),
            "P": tile(self, p)[:, None, None, None],
            "S": tile(self, s)[:, None, None, None],
        }
        if masks is not None:
            self.terms["MASK"] = tile(self, masks.to(x.dtype))[:, None]

    @property
    def k(self) -> int:
        return len(self.cams)

    @property
    def module(self) -> torch.nn.Module:
        return self.ev.live.module

    def terminal(self, name: str) -> torch.Tensor:
        if name not in self.terms:
            raise CamlangError(f"`{name}` is not available here")
        if name == "L":
            self.bad |= self.nonfinite
        return self.terms[name]

    def clean(self, map: torch.Tensor) -> torch.Tensor:
        """`map` with non-finite rows zeroed (the primitives refuse them); those rows become NaN."""
        finite = torch.isfinite(map)
        if finite.all():
            return map
        if map.shape[0] == self.k * self.b:
            self.bad |= ~finite.flatten(1).all(1)
        else:
            self.bad |= True
        return torch.where(finite, map, torch.zeros((), dtype=map.dtype, device=map.device))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.terms["X"].shape[-2:], mode="bilinear", align_corners=False)

    def cams_at(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = self.targets[: self.b]
        return self.ev.engine(images, targets, counter=self.counter, indices=self.indices).maps

    def ref_map(self, cam: str) -> torch.Tensor:
        if cam not in self.cam_batch.maps:
            raise CamlangError(f"ref({cam}) needs `{cam}` to be evaluated alongside")
        return self.cam_batch.maps[cam]

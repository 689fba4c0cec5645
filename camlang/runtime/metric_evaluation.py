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
from typing import Any

import torch
import torch.nn.functional as F

from camlang import metrics as M
from camlang.backends.torch_eager import evaluate
from camlang.core.call_counter import CallCounter
from camlang.core.per_image_rng import image_generators, per_image_normal, per_image_uniform
from camlang.errors import CamlangError
from camlang.frontend.ir import Node, postorder
from camlang.frontend.program import MetricDef
from camlang.runtime.cam_engine import CamBatch, CamEngine
from camlang.runtime.declaration_loading import LiveModel


@dataclass
class MetricValues:
    """Per-image metric values `[K, B]` for K cams, by metric name."""

    values: dict[str, torch.Tensor]
    cams: list[str]


POINTING_TOLERANCE_SHARE = 15 / 224
"""Zhang et al.'s 15-pixel tolerance on 224-pixel images, as a share of the shorter image side."""


def pointing_tolerance(tolerance: float | None, input_size: tuple[int, int]) -> float:
    """The pointing game tolerance in pixels: as given, or 15/224 of the shorter side when None."""
    if tolerance is None:
        return POINTING_TOLERANCE_SHARE * min(input_size)
    return float(tolerance)


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
        values = evaluate([m.node for m in metrics.values()], ctx)
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
    """Terminal values and `op_*` implementations of the metric language for one stacked batch."""

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
        self.k = len(cams)
        self.b = x.shape[0]
        self.indices = torch.arange(self.b) if indices is None else torch.as_tensor(indices).reshape(-1).cpu()
        if self.indices.shape[0] != self.b:
            raise CamlangError(
                f"indices must give one dataset index per image ({self.b}), got {self.indices.shape[0]}"
            )
        self.cam_batch = cam_batch
        self.dtype = x.dtype
        self.device = x.device
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
            "X": self._tile(x),
            "L": torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0),
            "P": self._tile(p)[:, None, None, None],
            "S": self._tile(s)[:, None, None, None],
        }
        if masks is not None:
            self.terms["MASK"] = self._tile(masks.to(x.dtype))[:, None]
        self._sensitivity_memo: dict[tuple[float, int], dict[str, torch.Tensor]] = {}

    def _tile(self, t: torch.Tensor) -> torch.Tensor:
        return t.repeat(self.k, *([1] * (t.dim() - 1)))

    def _is_tiled(self, t: torch.Tensor) -> bool:
        first = t[: self.b]
        return all(torch.equal(t[i * self.b : (i + 1) * self.b], first) for i in range(1, self.k))

    def terminal(self, name: str) -> torch.Tensor:
        if name not in self.terms:
            raise CamlangError(f"`{name}` is not available here")
        if name == "L":
            self.bad |= self.nonfinite
        return self.terms[name]

    def _clean(self, map: torch.Tensor) -> torch.Tensor:
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

    # ---- model re-evaluation
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self._is_tiled(x):
            logits = M._common.run_model(self.ev.model_fn, x[: self.b], self.ev.chunk_size, self.ev.counter)
            return self._tile(logits)
        return M._common.run_model(self.ev.model_fn, x, self.ev.chunk_size, self.ev.counter)

    def op_P_at(self, image: torch.Tensor) -> torch.Tensor:
        logits = self._logits(image)
        return torch.softmax(logits, 1).gather(1, self.targets[:, None])[:, :, None, None]

    def op_S_at(self, image: torch.Tensor) -> torch.Tensor:
        return self._logits(image).gather(1, self.targets[:, None])[:, :, None, None]

    def op_L_at(self, image: torch.Tensor) -> torch.Tensor:
        engine = self.ev.engine
        if self._is_tiled(image):
            got = engine(
                image[: self.b], self.targets[: self.b], counter=self.ev.counter, indices=self.indices
            )
            return torch.cat([got.maps[c] for c in self.cams])[:, None]
        rows = []
        for i, cam in enumerate(self.cams):
            part = image[i * self.b : (i + 1) * self.b]
            rows.append(
                engine(part, self.targets[: self.b], counter=self.ev.counter, indices=self.indices).maps[cam]
            )
        return torch.cat(rows)[:, None]

    def op_ref(self, cam: str) -> torch.Tensor:
        if cam not in self.cam_batch.maps:
            raise CamlangError(f"ref({cam}) needs `{cam}` to be evaluated alongside")
        return self._clean(self._tile(self.cam_batch.maps[cam].detach())[:, None])

    # ---- points and transforms
    def op_argmax(self, map: torch.Tensor) -> torch.Tensor:
        map = self._clean(map)
        return M.argmax_points(map[:, 0]).to(self.dtype)[:, :, None, None]

    def op_inside(self, point: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return M.inside(point[:, :, 0, 0].long(), mask[:, 0] > 0.5).to(self.dtype)[:, None, None, None]

    def op_blur(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return M.blur(x, sigma)

    def op_noise(self, x: torch.Tensor, std: float, seed: int) -> torch.Tensor:
        # Keyed per image (run seed, dataset index, `seed`); every cam's row of an image gets the same draw.
        draw = per_image_normal(self.ev.seed, self.indices, "noise", x.shape[1:], seed, dtype=x.dtype)
        return x + (std * draw.to(x.device)).repeat(x.shape[0] // self.b, *([1] * (x.dim() - 1)))

    def op_hflip(self, x: torch.Tensor) -> torch.Tensor:
        return M.hflip(x)

    def op_shift(self, x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
        return M.shift(x, dx, dy)

    def op_mask_top(self, x: torch.Tensor, map: torch.Tensor, fraction: float, fill: float) -> torch.Tensor:
        map = self._clean(map)
        return M.mask_top(x, map[:, 0], fraction, fill)

    def op_keep_top(self, x: torch.Tensor, map: torch.Tensor, fraction: float, fill: float) -> torch.Tensor:
        map = self._clean(map)
        return M.keep_top(x, map[:, 0], fraction, fill)

    # ---- curve and search metrics
    def _x(self) -> torch.Tensor:
        return self.terms["X"]

    def op_deletion_auc(self, map: torch.Tensor, steps: int, fill: Any) -> torch.Tensor:
        map = self._clean(map)
        r = M.deletion_auc(
            self.ev.model_fn,
            self._x(),
            map[:, 0],
            self.targets,
            steps,
            fill,
            chunk_size=self.ev.chunk_size,
            counter=self.ev.counter,
        )
        return r.auc.to(self.dtype)[:, None, None, None]

    def op_insertion_auc(self, map: torch.Tensor, steps: int, fill: Any) -> torch.Tensor:
        map = self._clean(map)
        r = M.insertion_auc(
            self.ev.model_fn,
            self._x(),
            map[:, 0],
            self.targets,
            steps,
            fill,
            chunk_size=self.ev.chunk_size,
            counter=self.ev.counter,
        )
        return r.auc.to(self.dtype)[:, None, None, None]

    def op_sufficient_fraction(self, map: torch.Tensor, fill: float) -> torch.Tensor:
        map = self._clean(map)
        r = M.sufficient_fraction(
            self.ev.model_fn,
            self._x(),
            map[:, 0],
            self.targets,
            fill,
            chunk_size=self.ev.chunk_size,
            counter=self.ev.counter,
        )
        return r.fraction.to(self.dtype)[:, None, None, None]

    def op_road(self, map: torch.Tensor, mode: str, tie_rule: str = "rank") -> torch.Tensor:
        map = self._clean(map)
        opts: dict[str, Any] = dict(
            chunk_size=self.ev.chunk_size,
            counter=self.ev.counter,
            tie_rule=tie_rule,
            seed=self.ev.seed,
            indices=self.indices.repeat(self.k),
        )
        if tie_rule not in M.TIE_RULES:
            raise CamlangError(f'road tie_rule must be "rank" or "threshold", got "{tie_rule}"')
        if mode == "combined":
            r = M.road_combined(self.ev.model_fn, self._x(), map[:, 0], self.targets, **opts)
        elif mode in ("morf", "lerf"):
            r = M.road(self.ev.model_fn, self._x(), map[:, 0], self.targets, mode=mode, **opts)  # type: ignore[arg-type]
        else:
            raise CamlangError(f'road mode must be "morf", "lerf" or "combined", got "{mode}"')
        return r.score.to(self.dtype)[:, None, None, None]

    # ---- localisation and complexity
    def op_pointing(
        self, map: torch.Tensor, mask: torch.Tensor, tolerance: float | None = None
    ) -> torch.Tensor:
        map = self._clean(map)
        px = pointing_tolerance(tolerance, (int(map.shape[-2]), int(map.shape[-1])))
        return M.pointing_game(map[:, 0], mask[:, 0] > 0.5, px).to(self.dtype)[:, None, None, None]

    def op_energy_inside(self, map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        map = self._clean(map)
        return M.energy_pointing_game(map[:, 0], mask[:, 0] > 0.5).to(self.dtype)[:, None, None, None]

    def op_iou(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.clamp(0, 1), b.clamp(0, 1)
        inter = (a * b).sum((1, 2, 3), keepdim=True)
        union = (a + b - a * b).sum((1, 2, 3), keepdim=True)
        return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.ones_like(union))

    def op_gini(self, map: torch.Tensor) -> torch.Tensor:
        map = self._clean(map)
        return M.sparsity(map[:, 0]).to(self.dtype)[:, None, None, None]

    def op_entropy(self, map: torch.Tensor) -> torch.Tensor:
        map = self._clean(map)
        return M.entropy(map[:, 0]).to(self.dtype)[:, None, None, None]

    def _sensitivities(self, radius: float, samples: int, norm: str) -> torch.Tensor:
        """`[samples, K*B]` map changes under uniform L-infinity noise (as `M.sensitivity_samples`).

        Every sensitivity metric with the same radius and samples shares one set of draws and CAM calls.
        """
        if norm not in ("fro", "relative", "mean_abs"):
            raise CamlangError(f'sensitivity norm must be "fro", "relative" or "mean_abs", got "{norm}"')
        if samples < 1 or radius < 0:
            raise CamlangError(f"sensitivity needs samples >= 1 and radius >= 0, got {samples} and {radius}")
        key = (radius, samples)
        if key not in self._sensitivity_memo:
            self._sensitivity_memo[key] = self._sensitivity_draws(radius, samples)
        return self._sensitivity_memo[key][norm]

    def _sensitivity_draws(self, radius: float, samples: int) -> dict[str, torch.Tensor]:
        base = self.terminal("L")
        base_norm = base.flatten(1).norm(dim=1)
        x = self._x()
        out: dict[str, list[torch.Tensor]] = {"fro": [], "relative": [], "mean_abs": []}
        for s in range(samples):
            u = per_image_uniform(self.ev.seed, self.indices, "sensitivity", x.shape[1:], s, dtype=x.dtype)
            moved = self.op_L_at(x + self._tile(radius * (2 * u.to(x.device) - 1)))
            diff = (moved - base).flatten(1)
            size = diff.norm(dim=1)
            out["fro"].append(size)
            out["relative"].append(torch.where(size == 0, torch.zeros_like(size), size / base_norm))
            out["mean_abs"].append(diff.abs().mean(1))
        return {name: torch.stack(v) for name, v in out.items()}

    def op_max_sensitivity(self, radius: float, samples: int, norm: str = "fro") -> torch.Tensor:
        return self._sensitivities(radius, samples, norm).amax(0).to(self.dtype)[:, None, None, None]

    def op_avg_sensitivity(self, radius: float, samples: int, norm: str = "fro") -> torch.Tensor:
        return self._sensitivities(radius, samples, norm).mean(0).to(self.dtype)[:, None, None, None]

    def op_direction_accuracy(self, map: torch.Tensor, fraction: float, pixels: int) -> torch.Tensor:
        map = self._clean(map)
        from camlang.methods import direction_accuracy

        gens = image_generators(self.ev.seed, self.indices.repeat(self.k), "direction_accuracy")
        acc = direction_accuracy(
            self.ev.live.module,
            self._x(),
            self.targets,
            map[:, 0],
            fraction=fraction,
            pixels=pixels,
            generator=gens,
        )
        return torch.as_tensor(acc, dtype=self.dtype, device=self.device).reshape(-1, 1, 1, 1)

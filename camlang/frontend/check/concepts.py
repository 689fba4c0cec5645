"""Checks of the concept statements: `concepts`, `monitor` declarations and their actions.

Concept names are checked against the annotations a data source is known to carry
(`synthetic_shapes`: `SHAPE_CONCEPTS`); a CLIP weights file must exist, since nothing is ever
downloaded. What needs the model itself (a probe layer's output shape) is checked at run time.
"""

from __future__ import annotations

from pathlib import Path

from camlang.frontend import syntax as s
from camlang.frontend.check.base import CheckerBase, suggest
from camlang.frontend.ir import postorder
from camlang.frontend.program import ConceptSetDef, MonitorDef, Ref
from camlang.frontend.signatures import CONCEPT_SOURCES, MONITOR_KINDS, SHAPE_CONCEPTS
from camlang.frontend.source import Span
from camlang.paths import resolve_user_path

CLIP_WEIGHTS_HINT = (
    "camlang never downloads weights; save an open_clip model's state_dict to that path on a machine "
    "with the weights, e.g. torch.save(open_clip.create_model('ViT-B-32', pretrained='openai').state_dict(), "
    "'clip.pt'), and install the extra with pip install 'camlang[clip]'"
)

# Ops of metrics that take a softmax over class logits; refused for a concept target.
CONCEPT_REFUSED_OPS = frozenset({"P", "P_at", "deletion_auc", "insertion_auc", "sufficient_fraction", "road"})

_OUTSIDE = {
    "annotations": "annotations are ground-truth labels of the data, not a function of the image",
    "clip": "clip scores come from a separate CLIP encoder, not from the model",
}


class ConceptChecks(CheckerBase):
    """`concepts` and `monitor` declarations, `heatmaps` and `monitor ... on` actions."""

    def _concepts(self, stmt: s.ConceptsDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = CONCEPT_SOURCES.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, CONCEPT_SOURCES, "concept source")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None:
            return
        ok = self._known_concepts(stmt.source, args)
        if kind == "clip":
            ok &= self._clip_weights(stmt.source, args["weights"], base)
            prompts = args["prompts"]
            if not all(isinstance(p, str) for p in prompts) or len(prompts) < 2:
                self.bag.error(
                    "E823", "clip prompts must be a list of at least two strings", _kw(stmt.source, "prompts")
                )
                ok = False
            names = args.get("concepts")
            if names is not None and len(names) != len(prompts):
                self.bag.error(
                    "E823",
                    f"clip has {len(prompts)} prompts but {len(names)} concept names",
                    _kw(stmt.source, "concepts"),
                    "give one name per prompt",
                )
                ok = False
        if ok and self._declare(stmt.name, "concepts"):
            self.program.concept_sets[stmt.name.name] = ConceptSetDef(
                stmt.name.name, kind, args, base, stmt.span
            )

    def _known_concepts(self, call: s.Call, args: dict[str, object]) -> bool:
        names = args.get("concepts")
        if names is None:
            return True
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.bag.error(
                "E823", "concepts must be a list of concept names (strings)", _kw(call, "concepts")
            )
            return False
        data = args.get("data")
        data_name = data.name if isinstance(data, Ref) else ""
        known = self._annotated(data_name) if data_name else None
        if known is None:
            return True
        ok = True
        items = _list_items(call, "concepts")
        for k, name in enumerate(names):
            if name not in known:
                span = items[k] if k < len(items) else _kw(call, "concepts")
                self.bag.error(
                    "E820",
                    f'unknown concept "{name}": data `{data_name}` has no such annotation',
                    span,
                    suggest(name, list(known)) or "known concepts: " + ", ".join(known),
                )
                ok = False
        return ok

    def _annotated(self, data_name: str) -> tuple[str, ...] | None:
        ddef = self.program.datas.get(data_name)
        if ddef is not None and ddef.kind == "synthetic_shapes":
            return SHAPE_CONCEPTS
        return None  # an images(concepts = "x.csv") table is read at run time

    def _clip_weights(self, call: s.Call, weights: str, base: Path) -> bool:
        try:
            found = resolve_user_path(weights, base)
        except (OSError, ValueError):
            found = None
        if found is None:
            self.bag.error(
                "E822",
                f'CLIP weights file "{weights}" does not exist (relative to {base})',
                _kw(call, "weights"),
                CLIP_WEIGHTS_HINT,
            )
            return False
        return True

    def _monitor(self, stmt: s.MonitorDecl, base: Path) -> None:
        kind = stmt.source.func.name
        spec = MONITOR_KINDS.get(kind)
        if spec is None:
            self._unknown(stmt.source.func, MONITOR_KINDS, "monitor kind")
            return
        args = self._bind(stmt.source, spec, base)
        if args is None:
            return
        if not 0 < args["fpr"] < 1:
            self.bag.error(
                "E823",
                f"monitor fpr must be strictly between 0 and 1, got {args['fpr']}",
                _kw(stmt.source, "fpr"),
            )
            return
        if self._declare(stmt.name, "monitor"):
            self.program.monitors[stmt.name.name] = MonitorDef(stmt.name.name, kind, args, stmt.span)

    def _concept_target(self, stmt: s.Evaluate, target: s.ConceptTarget) -> bool:
        """`evaluate ... for concept SET.NAME`: SET is a probe set on the evaluated model and knows NAME;
        no metric reads the softmax of class logits (`CONCEPT_REFUSED_OPS`)."""
        if not self._expect(target.concepts, ("concepts",)):
            return False
        cdef = self.program.concept_sets.get(target.concepts.name)
        if cdef is None:
            return False  # its declaration failed and was reported there
        if cdef.kind != "probes":
            self.bag.error(
                "E824",
                f"cams can target only a probes concept set; `{cdef.name}` is of kind {cdef.kind}",
                target.concepts.span,
                "a cam needs a score computed differentiably from the model's own activations, but "
                + _OUTSIDE.get(cdef.kind, f"{cdef.kind} scores do not come from the model")
                + "; declare `concepts NAME = probes(MODEL, ...)` and target that",
            )
            return False
        probed = cdef.args["model"].name
        if probed != stmt.model.name:
            self.bag.error(
                "E824",
                f"concept set `{cdef.name}` probes model `{probed}`, not `{stmt.model.name}`",
                target.concepts.span,
                f"evaluate on `{probed}`, or declare a probe set on `{stmt.model.name}`",
            )
            return False
        names = cdef.args.get("concepts")
        if isinstance(names, list) and target.concept.name not in names:
            self.bag.error(
                "E820",
                f'unknown concept "{target.concept.name}": concept set `{cdef.name}` has no such concept',
                target.concept.span,
                suggest(target.concept.name, list(names)) or "known concepts: " + ", ".join(names),
            )
            return False
        ok = True
        for metric in stmt.metrics:
            mdef = self.program.metrics.get(metric.name)
            if mdef is None:
                continue
            used = sorted({n.op for n in postorder([mdef.node])} & CONCEPT_REFUSED_OPS)
            if used:
                self.bag.error(
                    "E825",
                    f"metric `{metric.name}` reads {', '.join(used)}, a softmax over class logits, which "
                    "means nothing for one concept's probe logit",
                    metric.span,
                    "with `for concept`, use localisation metrics (pointing, energy pointing, IoU) or "
                    "ones that read the concept logit S / S_at",
                )
                ok = False
        return ok

    def _concept_action(self, stmt: s.Heatmaps | s.Watch) -> bool:
        match stmt:
            case s.Heatmaps():
                ok = self._expect(stmt.concepts, ("concepts",))
                ok &= self._expect(stmt.model, ("model",))
                return self._expect(stmt.data, ("data",)) and ok
            case s.Watch():
                ok = self._expect(stmt.monitor, ("monitor",))
                return self._expect(stmt.data, ("data",)) and ok


def _kw(call: s.Call, name: str) -> Span:
    for kw in call.kwargs:
        if kw.name.name == name:
            return kw.value.span
    return call.span


def _list_items(call: s.Call, name: str) -> list[Span]:
    value = call.kwarg(name)
    return [item.span for item in value.items] if isinstance(value, s.ListExpr) else []

"""From checked `concepts` / `monitor` declarations to fitted sources and monitors during a run.

`ConceptRuntime` caches, per (model, data), the features of one forward pass over the data that
carries every layer any concept set of that model reads: heatmaps, probes and monitors share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from camlang.concepts.discover import discover_concepts
from camlang.concepts.features import PENULTIMATE, Features, extract_features
from camlang.concepts.monitor import ConceptMonitor, fit_monitor
from camlang.concepts.sources import ConceptSource, annotation_source, fit_probes, select_concepts
from camlang.concepts.state import ConceptState
from camlang.errors import CamlangError
from camlang.frontend.program import ConceptSetDef, MonitorDef
from camlang.frontend.source import Span


@dataclass
class ConceptRuntime:
    """Fitted concept sources, monitors and cached features of one run."""

    state: ConceptState
    sources: dict[str, ConceptSource] = field(default_factory=dict)
    monitors: dict[str, ConceptMonitor] = field(default_factory=dict)
    features: dict[tuple[str, str], Features] = field(default_factory=dict)

    def layers_of(self, model: str) -> list[str]:
        """Every layer a concept set on `model` reads, plus the penultimate features."""
        out = [PENULTIMATE]
        for cdef in self.state.program.concept_sets.values():
            m = cdef.args.get("model")
            if cdef.kind in ("probes", "discovered") and m is not None and m.name == model:
                out.append(cdef.args["layer"])
        return list(dict.fromkeys(out))

    def features_of(self, model: str, data: str) -> Features:
        """The one shared forward pass of `model` over `data`."""
        key = (model, data)
        cached = self.features.get(key)
        # A concept set declared later (in the REPL) may read a layer the cached pass did not keep.
        if cached is None or not set(self.layers_of(model)) <= set(cached.pooled):
            live = self.state.model(model, data)
            ds = self.state.data(data)
            try:
                self.features[key] = extract_features(
                    live.module, ds, self.layers_of(model), device=live.device
                )
            except CamlangError as err:
                if err.code == "E821" and err.span is None:
                    err.span = self._probe_span(model)
                raise
        return self.features[key]

    def _probe_span(self, model: str) -> Span | None:
        for cdef in self.state.program.concept_sets.values():
            if cdef.kind == "probes" and cdef.args["model"].name == model:
                return cdef.span
        return None

    def source(self, name: str) -> ConceptSource:
        """The fitted concept source `name` (fitted on first use)."""
        if name not in self.sources:
            cdef = self.state.program.concept_sets[name]
            try:
                self.sources[name] = self._build(cdef)
            except CamlangError as err:
                err.span = err.span or cdef.span
                if err.code == "E900":
                    err.code = "E823"
                raise
        return self.sources[name]

    def _build(self, cdef: ConceptSetDef) -> ConceptSource:
        a = cdef.args
        if cdef.kind == "annotations":
            ds = self.state.data(a["data"].name)
            return annotation_source(ds.concept_names or [], a["concepts"])
        if cdef.kind == "probes":
            model, data, heldout = a["model"].name, a["data"].name, a["heldout"].name
            train = self.features_of(model, data)
            held = self.features_of(model, heldout)
            cols = select_concepts(train.annotation_names, a["concepts"], f"data `{data}`")
            names = [train.annotation_names[c] for c in cols]
            return fit_probes(train, held, a["layer"], names, cols)
        if cdef.kind == "discovered":
            live = self.state.model(a["model"].name, a["data"].name)
            return discover_concepts(
                live.module,
                self.state.data(a["data"].name),
                a["layer"],
                count=a["count"],
                seed=a["seed"],
                images=a["images"],
                device=live.device,
            )
        if cdef.kind == "clip":
            from camlang.concepts.clip import build_clip_source

            model = a["model"].name
            live = self.state.model(model, a["align"].name)
            return build_clip_source(
                a,
                cdef.base_dir,
                live,
                self.state.data(a["align"].name),
                self.features_of(model, a["align"].name),
            )
        raise CamlangError(f"unknown concept source {cdef.kind!r}")

    def monitor(self, name: str) -> ConceptMonitor:
        """The fitted, calibrated monitor `name`."""
        if name not in self.monitors:
            mdef: MonitorDef = self.state.program.monitors[name]
            a = mdef.args
            src = self.source(a["concepts"].name)
            model = a["model"].name
            fit = self.features_of(model, a["fit"].name)
            val = self.features_of(model, a["calibrate"].name)
            classes = self.class_names(model, a["fit"].name)
            try:
                self.monitors[name] = fit_monitor(src, fit, val, classes, a["fpr"])
            except CamlangError as err:
                err.span = err.span or mdef.span
                raise
        return self.monitors[name]

    def class_names(self, model: str, data: str) -> list[str]:
        """Class names from the data, else the model, else numbers."""
        ds = self.state.data(data)
        live = self.state.model(model, data)
        names = getattr(ds, "class_names", None) or getattr(live.loaded, "class_names", None)
        n = int(self.features_of(model, data).logits.shape[1])
        if names is None or len(names) != n:
            return [str(i) for i in range(n)]
        return list(names)

"""Concepts from natural-language prompts through CLIP (open_clip), with a local weights file only.

Two parts (Hu et al. 2025, after Text2Concept, Moayeri et al. 2023):

- the CLIP model scores prompts against images in its joint space; it is built with
  `pretrained=None` and its weights come from a local state_dict file: nothing is downloaded;
- a linear aligner, fitted by least squares on held-out images, maps the classifier's
  penultimate features into CLIP's image space. At run time the concept scores are cosine
  similarities of the *aligned classifier features* with the prompt embeddings, so they come
  from the classifier's one forward pass; CLIP's image tower runs only when fitting.

The aligner's R² (on a fifth of the alignment images kept out of the fit) and the zero-shot
accuracy through it (class prompts "a photo of a {class}") are reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from camlang.concepts.features import PENULTIMATE, Features
from camlang.concepts.state import ConceptModel
from camlang.data.base import Dataset
from camlang.errors import CamlangError
from camlang.paths import resolve_user_path

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: open_clip's tokenizer: prompts to token ids `[K, context_length]`.
Tokenizer = Callable[[list[str]], torch.Tensor]


class _ClipVisual(Protocol):
    image_size: int | tuple[int, int]


class ClipModel(Protocol):
    """What camlang uses of an open_clip `CLIP` model: its two towers and the image size."""

    @property
    def visual(self) -> _ClipVisual: ...

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text embeddings of token ids."""
        ...

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image embeddings of CLIP-normalized images."""
        ...


def _open_clip() -> ModuleType:
    try:
        import open_clip
    except ImportError as err:
        raise CamlangError(
            "CLIP concepts need the open_clip package", code="E823", hint="pip install 'camlang[clip]'"
        ) from err
    return open_clip


def load_clip(arch: str, weights: Path, base: Path | None = None) -> tuple[ClipModel, Tokenizer]:
    """An open_clip model of `arch` (a name, or a model-config .json file) with weights from `weights`.

    Returns `(model, tokenizer)`. The tokenizer is open_clip's bundled BPE tokenizer; configs
    that need a Hugging Face tokenizer are refused, since that would download it.
    """
    open_clip = _open_clip()
    if arch.endswith(".json"):
        path = resolve_user_path(arch, base) if base is not None else Path(arch)
        if path is None or not Path(path).is_file():
            raise CamlangError(f"CLIP config file {arch!r} does not exist", code="E823")
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    else:
        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise CamlangError(
                f"unknown open_clip architecture {arch!r}",
                code="E823",
                hint="e.g. ViT-B-32, RN50, or a model-config .json file",
            )
    text_cfg = cfg.get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name"):
        raise CamlangError(
            f"CLIP architecture {arch!r} needs a Hugging Face tokenizer, which camlang would have to "
            "download",
            code="E823",
            hint="use an architecture with open_clip's own text tower",
        )
    model = open_clip.model.CLIP(
        **{k: v for k, v in cfg.items() if k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")}
    )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise CamlangError(f"cannot read CLIP weights {str(weights)!r}: {err}", code="E822") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise CamlangError(
            f"CLIP weights {str(weights)!r} do not fit architecture {arch!r}: {str(err)[:300]}",
            code="E822",
            hint="give the arch the weights were saved from",
        ) from err
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
    return model.eval(), tokenizer


@dataclass(frozen=True)
class ClipSource:
    """Prompt concepts scored on aligned penultimate features; see the module docstring."""

    names: tuple[str, ...]
    prompts: tuple[str, ...]
    text: torch.Tensor  # [K, E] unit prompt embeddings
    aligner: torch.Tensor  # [D + 1, E]
    r2: float
    zero_shot_accuracy: float | None
    kind: str = "clip"

    @property
    def layers(self) -> tuple[str, ...]:
        return (PENULTIMATE,)

    def align(self, penultimate: torch.Tensor) -> torch.Tensor:
        """Classifier features `[N, D]` mapped into CLIP image space `[N, E]` (unit norm)."""
        ones = torch.ones(len(penultimate), 1, dtype=penultimate.dtype)
        return F.normalize(torch.cat([penultimate, ones], 1) @ self.aligner, dim=1)

    def scores(self, features: Features) -> torch.Tensor:
        """Cosine similarity of each image's aligned features with each prompt, `[N, K]`."""
        return self.align(features.pooled[PENULTIMATE]) @ self.text.T

    def describe(self) -> dict[str, object]:
        """Kind, concepts, prompts, the aligner's R² and the zero-shot accuracy through it."""
        return {
            "kind": self.kind,
            "concepts": list(self.names),
            "prompts": list(self.prompts),
            "aligner_r2": self.r2,
            "zero_shot_accuracy": self.zero_shot_accuracy,
        }


def encode_text(model: ClipModel, tokenizer: Tokenizer, prompts: list[str]) -> torch.Tensor:
    """Unit text embeddings `[K, E]` of `prompts`."""
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer(prompts)).float(), dim=1)


def encode_images(model: ClipModel, raw: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Unit CLIP image embeddings `[N, E]` of RGB images in [0, 1] (resized, CLIP-normalized)."""
    image_size = model.visual.image_size
    size = image_size if isinstance(image_size, tuple | list) else (image_size, image_size)
    mean = torch.tensor(_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_CLIP_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(raw), batch_size):
            x = F.interpolate(
                raw[start : start + batch_size], size=tuple(size), mode="bicubic", align_corners=False
            )
            out.append(F.normalize(model.encode_image((x.clamp(0, 1) - mean) / std).float(), dim=1))
    return torch.cat(out)


def fit_aligner(features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """Least-squares `[D + 1, E]` map (with bias, a little ridge for stability) from features to targets."""
    x = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64)], 1)
    gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, x.T @ targets.double()).float()


def r_squared(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination over all output dimensions."""
    ss_res = ((target - pred) ** 2).sum()
    ss_tot = ((target - target.mean(0)) ** 2).sum().clamp_min(1e-12)
    return float(1 - ss_res / ss_tot)


def fit_clip_source(
    model: ClipModel,
    tokenizer: Tokenizer,
    prompts: list[str],
    names: list[str],
    align: Features,
    raw: torch.Tensor,
    class_names: list[str] | None = None,
) -> ClipSource:
    """Fit the aligner on `align` (penultimate features) against CLIP embeddings of `raw`."""
    if len(align) < 10:
        raise CamlangError(f"the aligner needs at least 10 images, got {len(align)}", code="E823")
    feats = align.pooled[PENULTIMATE]
    targets = encode_images(model, raw)
    cut = max(1, len(feats) // 5)
    held, fit = slice(0, cut), slice(cut, None)
    w = fit_aligner(feats[fit], targets[fit])
    aligned = torch.cat([feats, torch.ones(len(feats), 1)], 1) @ w
    r2 = r_squared(aligned[held], targets[held])
    zero_shot = None
    if class_names is not None and align.labels is not None:
        cls_text = encode_text(model, tokenizer, [f"a photo of a {c}" for c in class_names])
        pred = (F.normalize(aligned[held], dim=1) @ cls_text.T).argmax(1)
        zero_shot = float((pred == align.labels[held]).float().mean())
    w_all = fit_aligner(feats, targets)
    return ClipSource(
        tuple(names), tuple(prompts), encode_text(model, tokenizer, prompts), w_all, r2, zero_shot
    )


def build_clip_source(
    args: dict[str, Any], base: Path, live: ConceptModel, data: Dataset, align: Features
) -> ClipSource:
    """The `clip(...)` concept source of a `.cam` file."""
    weights = resolve_user_path(args["weights"], base)
    if weights is None:
        raise CamlangError(f'CLIP weights file "{args["weights"]}" does not exist', code="E822")
    model, tokenizer = load_clip(args["arch"], Path(weights), base)
    prompts = list(args["prompts"])
    names = list(args["concepts"] or prompts)
    raw = torch.cat([b.raw for b in data.batches(256)])
    return fit_clip_source(model, tokenizer, prompts, names, align, raw, getattr(data, "class_names", None))

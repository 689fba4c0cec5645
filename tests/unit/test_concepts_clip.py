"""The CLIP concept source, end to end with random weights (`pretrained=None`), tokenizer included.

A tiny open_clip config keeps it to seconds. Random CLIP weights say nothing about semantics
(the annotation and probe tests do); these tests check the path: loading from a local file,
tokenizing, the least-squares aligner (exact on a linear target), scores from the classifier's
features only, and the errors for a missing or mismatched weights file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

open_clip = pytest.importorskip("open_clip", reason="the clip extra (open_clip_torch) is not installed")

from camlang.cli import main  # noqa: E402
from camlang.concepts.clip import fit_aligner, fit_clip_source, load_clip, r_squared  # noqa: E402
from camlang.concepts.features import PENULTIMATE, Features  # noqa: E402
from camlang.errors import CamlangError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clip")
    cfg = folder / "tiny_clip.json"
    cfg.write_text(json.dumps(TINY))
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY)
    weights = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), weights)
    return cfg, weights


def test_aligner_recovers_a_linear_map() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen)
    w = torch.randn(6, 4, generator=gen)
    y = x @ w + 0.5
    a = fit_aligner(x, y, ridge=0.0)
    pred = torch.cat([x, torch.ones(200, 1)], 1) @ a
    assert r_squared(pred, y) > 0.9999
    assert r_squared(torch.zeros_like(y) + y.mean(0), y) == pytest.approx(0.0, abs=1e-6)


def test_clip_source_scores_from_classifier_features(tiny_clip: tuple[Path, Path]) -> None:
    cfg, weights = tiny_clip
    model, tokenizer = load_clip(str(cfg), weights)
    gen = torch.Generator().manual_seed(1)
    raw = torch.rand(40, 3, 64, 64, generator=gen)
    feats = Features(
        torch.randn(40, 4, generator=gen),
        {PENULTIMATE: torch.randn(40, 16, generator=gen)},
        torch.randint(0, 4, (40,), generator=gen),
        None,
        (),
    )
    src = fit_clip_source(
        model,
        tokenizer,
        ["a red shape", "a blue shape", "a small shape"],
        ["red", "blue", "small"],
        feats,
        raw,
        ["circle", "square", "triangle", "cross"],
    )
    scores = src.scores(feats)
    assert scores.shape == (40, 3) and bool(torch.isfinite(scores).all())
    assert float(scores.abs().max()) <= 1.0 + 1e-5  # cosine similarities
    assert src.text.shape == (3, 32) and src.aligner.shape == (17, 32)
    assert src.zero_shot_accuracy is not None and 0.0 <= src.zero_shot_accuracy <= 1.0
    assert src.r2 <= 1.0
    # the tokenizer really tokenizes: different prompts, different embeddings
    assert not torch.allclose(src.text[0], src.text[1])


def test_mismatched_weights_are_a_clear_error(tiny_clip: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = tiny_clip
    bad = tmp_path / "bad.pt"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(CamlangError, match="do not fit architecture"):
        load_clip(str(cfg), bad)


def test_clip_concepts_run_from_a_cam_file(tiny_clip: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, weights = tiny_clip
    cam = tmp_path / "clip.cam"
    cam.write_text(f"""
model shortcut = checkpoint("{ROOT / "models" / "shortcut_cnn.pt"}", arch = "shapes_cnn") at "features.6"
data align = synthetic_shapes(count = 60, seed = 50)
data test = synthetic_shapes(count = 60, seed = 51)
concepts words = clip(weights = "{weights}", arch = "{cfg}", prompts = ["a red shape", "a green shape", "a big shape"],
                      concepts = ["red", "green", "big"], model = shortcut, align = align)
heatmaps words on shortcut, test
""")
    out = tmp_path / "out"
    assert main(["run", str(cam), "--out", str(out)]) == 0
    report = json.loads((out / "concepts" / "concepts.json").read_text())
    (section,) = report["sections"]
    assert section["source"]["kind"] == "clip" and section["source"]["concepts"] == ["red", "green", "big"]
    assert "aligner_r2" in section["source"] and "zero_shot_accuracy" in section["source"]
    assert len(section["classes"]) == 4 and all(
        (out / "concepts" / c["png"]).is_file() for c in section["classes"]
    )

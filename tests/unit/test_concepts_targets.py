"""Concept-targeted CAMs: a Grad-CAM of "red" looks at red pixels; concept maps score against masks."""

from __future__ import annotations

import pytest
import torch

from camlang.api import CAM
from camlang.concepts import extract_features, fit_probes
from camlang.concepts.targets import ConceptScores, concept_targets
from camlang.data import synthetic_shapes
from camlang.data.shapes import SHAPE_CONCEPTS
from camlang.errors import CamlangError
from camlang.metrics.localisation import energy_pointing_game
from camlang.models.checkpoint import load_checkpoint

CONCEPTS = ["red", "blue", "small", "large"]


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    model = load_checkpoint("models/shortcut_cnn.pt", "shapes_cnn").module.eval()
    cols = [SHAPE_CONCEPTS.index(c) for c in CONCEPTS]
    probes = fit_probes(
        extract_features(model, synthetic_shapes(400, seed=30), ["features.6"]),
        extract_features(model, synthetic_shapes(200, seed=31), ["features.6"]),
        "features.6",
        CONCEPTS,
        cols,
    )
    return model, probes


def test_concept_scores_match_the_probe_source(setup) -> None:  # noqa: ANN001
    model, probes = setup
    batch = synthetic_shapes(8, seed=5).get(range(8))
    wrapped = ConceptScores(model, probes)
    feats = extract_features(model, synthetic_shapes(8, seed=5), ["features.6"])
    assert torch.allclose(wrapped(batch.x), probes.scores(feats), atol=1e-5)
    assert wrapped(batch.x.requires_grad_(True)).sum().requires_grad


def test_gradcam_of_red_looks_at_the_red_shape(setup) -> None:  # noqa: ANN001
    model, probes = setup
    batch = synthetic_shapes(200, seed=7).get(range(200))
    red = batch.concepts[:, SHAPE_CONCEPTS.index("red")].bool()
    x, masks = batch.x[red], batch.masks[red]
    assert len(x) >= 15
    wrapped = ConceptScores(model, probes)
    cam = CAM("gradcam", wrapped, model.features[6])
    on_red = cam(x, targets=concept_targets(probes, "red", len(x)))
    on_large = cam(x, targets=concept_targets(probes, "large", len(x)))
    red_energy = energy_pointing_game(on_red, masks).mean()
    # Where the network sees red is the (red) shape: much more of the map's energy lies on it
    # than the shape's share of the image. (A "large" map looks at the shape too: size is a
    # property of the shape, so it is no contrast; both are printed.)
    print(
        f"energy on the red shape: red map {float(red_energy):.3f}, large map "
        f"{float(energy_pointing_game(on_large, masks).mean()):.3f}, mask share {float(masks.float().mean()):.3f}"
    )
    assert float(red_energy) > float(masks.float().mean()) * 1.5


def test_unknown_concept_target_is_a_user_error(setup) -> None:  # noqa: ANN001
    _, probes = setup
    with pytest.raises(CamlangError, match="unknown concept 'purple'"):
        concept_targets(probes, "purple", 3)


def test_distractor_concept_map_scored_against_the_distractor_mask() -> None:
    model = load_checkpoint("models/shapes_cnn.pt", "shapes_cnn").module.eval()
    names = ["distractor", "red", "large"]
    cols = [SHAPE_CONCEPTS.index(c) for c in names]
    probes = fit_probes(
        extract_features(model, synthetic_shapes(400, seed=30), ["features.6"]),
        extract_features(model, synthetic_shapes(200, seed=31), ["features.6"]),
        "features.6",
        names,
        cols,
    )
    ds = synthetic_shapes(120, seed=8)
    batch = ds.get(range(120))
    masks = ds.distractor_masks(range(120))
    has = masks.flatten(1).sum(1) >= 20
    assert int(has.sum()) >= 20
    assert not bool((masks & batch.masks).any())  # visible distractor pixels only
    cam = CAM("gradcam", ConceptScores(model, probes), model.features[6])
    maps = cam(batch.x[has], targets=concept_targets(probes, "distractor", int(has.sum())))
    energy = float(energy_pointing_game(maps, masks[has]).mean())
    share = float(masks[has].float().mean())
    print(f"distractor map: {energy:.3f} of its energy on the distractor (mask share {share:.3f})")
    assert energy > 1.5 * share

"""`images(..., concepts = "attrs.csv")`: one row per file, one 0/1 column per concept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from camlang.concepts import annotation_source, extract_features
from camlang.data import images
from camlang.errors import CamlangError


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255), (255, 0, 0)]):
        Image.new("RGB", (8, 8), colour).save(folder / f"im{i}.png")
    return folder


def test_concept_columns_follow_the_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    csv = tmp_path / "attrs.csv"
    csv.write_text("filename,red,blue\nim0.png,1,0\nim1.png,0,1\nim2,1,0\n")
    ds = images(folder, normalize="none", concepts=csv)
    assert ds.concept_names == ["red", "blue"]
    b = ds.get([1, 0])
    assert torch.equal(b.concepts, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    feats = extract_features(model, ds, ["penultimate"])
    src = annotation_source(ds.concept_names, ["blue", "red"])
    assert torch.equal(src.scores(feats), torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(CamlangError, match="unknown concept 'green'"):
        annotation_source(ds.concept_names, ["green", "red"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("filename,red\nim0.png,1\nim1.png,0\n", "have no row"),
        ("filename,red\nim0.png,2\nim1.png,0\nim2.png,1\n", "values of 0 or 1"),
        ("im0.png,1\nim1.png,0\nim2.png,1\n", "needs a header row"),
        ("filename,red,red\nim0.png,1,1\n", "distinct"),
    ],
)
def test_bad_concept_tables_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    folder = _folder(tmp_path)
    csv = tmp_path / "attrs.csv"
    csv.write_text(text)
    with pytest.raises(CamlangError, match=message):
        images(folder, normalize="none", concepts=csv)

"""The real-data examples (CIFAR-10 ResNet-20, ImageNet MobileNetV2) on the optional shared data.

Each example runs end to end through the CLI as a temp copy limited to a few images; the models
and preprocessing the examples declare are checked for a sensible accuracy on labelled images.
Everything skips, with a reason, when `../shared/data` is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from camlang import cli
from camlang.frontend.check import check_file
from camlang.runtime.declaration_loading import load_data, load_model
from tests.conftest import shared_data

ROOT = Path(__file__).resolve().parents[2]


def _copy(example: str, tmp_path: Path, limit: int) -> Path:
    """The example with absolute data paths and at most `limit` images."""
    data = shared_data()
    text = (ROOT / "examples" / example).read_text(encoding="utf-8")
    text = text.replace("../../shared/data", str(data))
    text = re.sub(r"limit = \d+", f"limit = {limit}", text)
    if "limit =" not in text:
        text = re.sub(r"(data \w+ = images\(.*)\)\n", rf"\1, limit = {limit})\n", text)
    path = tmp_path / example
    path.write_text(text, encoding="utf-8")
    return path


def _run(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    out = tmp_path / "out"
    code = cli.main(["run", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads((out / "report.json").read_text())


def _accuracy(path: Path, model: str, data: str) -> float:
    program = check_file(path)
    live = load_model(program.models[model])
    ds = load_data(program.datas[data])
    hits = total = 0
    with torch.no_grad():
        for batch in ds.batches(50):
            assert batch.labels is not None
            hits += int((live.module(batch.x).argmax(1) == batch.labels).sum())
            total += len(batch)
    return hits / total


def test_cifar10_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy("cifar10.cam", tmp_path, 3)
    report = _run(path, tmp_path, capsys)
    (evaluation,) = report["evaluations"]
    assert evaluation["model"]["layer"] == "layer3" and evaluation["data"]["count"] == 3
    assert len(evaluation["cams"]) == 10
    for cam, row in evaluation["table"].items():
        assert row["average_drop"]["nan_count"] == 0, cam
        assert 0 <= row["average_drop"]["mean"] <= 100
        assert 0 < row["sufficient_fraction"]["mean"] <= 1
    # The declared model and preprocessing classify real CIFAR-10 test images (JPEG re-encodes
    # cost about 10 points: ResNet-20 gets 81% on all 10,000).
    assert _accuracy(_copy("cifar10.cam", tmp_path, 200), "resnet20", "cifar") >= 0.72


def test_imagenet_photos_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy("imagenet_photos.cam", tmp_path, 2)
    report = _run(path, tmp_path, capsys)
    (evaluation,) = report["evaluations"]
    assert evaluation["model"]["layer"] == "features[-1]" and evaluation["data"]["count"] == 2
    for cam, row in evaluation["table"].items():
        assert all(stat["nan_count"] == 0 for stat in row.values()), cam
    # The same architecture and weights on the 20 labelled ImageNet validation samples
    # (file names imagenet_<i>_<label>.jpg): the data README reports 18/20 top-1.
    samples = tmp_path / "imagenet_samples"
    samples.mkdir()
    rows = []
    for jpg in sorted((shared_data() / "foolbox_samples").glob("imagenet_*.jpg")):
        (samples / jpg.name).symlink_to(jpg)
        rows.append(f"{jpg.name},{jpg.stem.rsplit('_', 1)[1]}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    text = path.read_text().replace(
        'images("', f'images("{samples}", labels = "{tmp_path / "labels.csv"}", x = "'
    )
    text = re.sub(r', x = "[^"]*"', "", text)
    text = re.sub(r"limit = \d+", "limit = 20", text)
    labelled = tmp_path / "labelled.cam"
    labelled.write_text(text)
    assert len(rows) == 20
    assert _accuracy(labelled, "mobilenet", "photos") >= 0.85


def test_cifar10_synthesis_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthesis example end to end on the CIFAR-10 archive, shrunk: 8 + 8 images, small
    searches under a short time limit (45 s each) (the grammars, objectives and data paths as written)."""
    path = _copy("cifar10_synthesis.cam", tmp_path, 8)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'time = "\d+s"', 'time = "45s"', text)
    text = re.sub(r"max_size = \d+", "max_size = 4", text)
    path.write_text(text, encoding="utf-8")
    report = _run(path, tmp_path, capsys)
    syntheses = report["syntheses"]
    assert [s["name"] for s in syntheses] == ["best_drop", "best_deletion", "best_insertion"]
    assert [s["grammar"] for s in syntheses] == ["panel", "multilayer", "panel"]
    for s in syntheses:
        assert s["candidates"] and s["comparison"], s["name"]

"""End-to-end: examples/mnist_cnn.cam (properties of the MNIST CNN, from its checkpoint and from
ONNX) through the CLI, on the MNIST test images of the optional shared data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camlang import cli
from tests.conftest import shared_data

ROOT = Path(__file__).resolve().parents[2]


def test_mnist_cnn_example_runs_and_decides_every_property(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    text = (ROOT / "examples" / "mnist_cnn.cam").read_text(encoding="utf-8")
    example = tmp_path / "mnist_cnn.cam"
    example.write_text(text.replace("../../shared/data", str(shared_data())), encoding="utf-8")
    code = cli.main(["run", str(example), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    checks = json.loads((tmp_path / "out" / "report.json").read_text())["checks"]
    verdicts = {c["property"]: c["status"] for c in checks}
    assert verdicts == {
        "robust_0": "holds",
        "saliency_0": "holds",
        "robust_1": "holds",
        "robust_wide": "violated",
    }
    (wide,) = [c for c in checks if c["property"] == "robust_wide"]
    assert len(wide["counterexample"]) == 784 and wide["replay"]["ok"]

"""Golden diagnostics for properties: an unsupported layer, a negative delta, a wrong-sized `at`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camlang.cli import main


def _run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "p.cam"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return err


def test_negative_delta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run(
        tmp_path,
        'model b = mlp([5, 6, 6, 2], weights = "models/banditnet.pt")\n'
        "property p = saliency_robust(b, at = [1, 1, 0, 1, 1], eps = 1.0, delta = -0.5)\ncheck p\n",
        capsys,
    )
    assert "error[E503]: `delta` must be >= 0, got -0.5" in err and "p.cam:2:" in err


def test_at_of_the_wrong_dimension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _run(
        tmp_path,
        'model b = mlp([5, 6, 6, 2], weights = "models/banditnet.pt")\n'
        "property p = saliency_robust(b, at = [1, 1, 0, 1], eps = 1.0, delta = 0.5)\ncheck p\n",
        capsys,
    )
    assert "`at` has 4 values but the network takes 5 inputs" in err and "p.cam:2:1" in err


def test_unsupported_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2))
    pytest.importorskip("onnx2torch", reason="onnx models need the optional onnx extra")
    try:
        torch.onnx.export(net, (torch.zeros(1, 3),), str(tmp_path / "sig.onnx"), dynamo=False)
    except Exception as err:  # noqa: BLE001 - the exporter's own optional dependencies
        pytest.skip(f"torch.onnx.export is unavailable here: {err}")
    err = _run(
        tmp_path,
        'model s = onnx("sig.onnx")\nproperty p = robust(s, at = [0.1, 0.2, 0.3], eps = 0.1)\ncheck p\n',
        capsys,
    )
    assert "Sigmoid" in err or "sigmoid" in err
    assert "p.cam:2:1" in err

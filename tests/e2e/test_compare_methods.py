"""End-to-end: examples/compare_methods.cam runs (on fewer images) and its report holds the comparison."""

from __future__ import annotations

import json
import time
from pathlib import Path

from camlang.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compare_methods.cam"


def _small_copy(tmp_path: Path) -> Path:
    """The example with 8 training and 4 test images and the model path made absolute."""
    text = EXAMPLE.read_text()
    replacements = {
        '"models/shapes_cnn.pt"': f'"{(ROOT / "models" / "shapes_cnn.pt").as_posix()}"',
        "synthetic_shapes(count = 32,": "synthetic_shapes(count = 8,",
        "synthetic_shapes(count = 16,": "synthetic_shapes(count = 4,",
        "max_size = 4": "max_size = 3",
    }
    for old, new in replacements.items():
        assert old in text, f"the example no longer contains {old!r}; update this test"
        text = text.replace(old, new)
    copy = tmp_path / "compare_methods_small.cam"
    copy.write_text(text)
    return copy


def test_compare_methods_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = time.perf_counter()
    assert main(["run", str(_small_copy(tmp_path)), "--out", str(out)]) == 0
    print(f"compare_methods (4 test images) took {time.perf_counter() - started:.1f} s")
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is False
    main_eval, direction, signed = report["evaluations"]
    assert main_eval["cams"] == [
        "vanilla_gradient",
        "gradcam",
        "extremal_fast",
        "extremal_small",
        "deepcover_fast",
        "xmage",
        "best",
    ]
    names = [m["name"] for m in main_eval["metrics"]]
    assert names == ["sufficient_fraction", "pointing_game", "energy_pointing_game", "deletion"]
    for cam in main_eval["cams"]:
        for metric in names:
            cell = main_eval["table"][cam][metric]
            assert cell["n"] == 4 and cell["nan_count"] == 0, (cam, metric, cell)
        fraction = main_eval["table"][cam]["sufficient_fraction"]["mean"]
        assert 0.0 < fraction <= 1.0
    assert direction["cams"] == ["gradcam", "gradcampp", "scorecam", "xmage"]
    for cam in direction["cams"]:
        assert 0.0 <= direction["table"][cam]["direction_accuracy"]["mean"] <= 1.0
    # The exact, signed Xmage map predicts the direction of pixel changes far better than CAMs.
    xmage_signed = signed["table"]["xmage_sign"]["direction_accuracy_signed"]["mean"]
    best_cam = max(
        direction["table"][c]["direction_accuracy"]["mean"] for c in ("gradcam", "gradcampp", "scorecam")
    )
    assert xmage_signed >= 0.9 and xmage_signed > best_cam + 0.2, (xmage_signed, best_cam)
    (synthesis,) = report["syntheses"]
    assert synthesis["candidates"], "the synthesis reports its top candidates"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "http://" not in html and "https://" not in html
    for cam in ("deepcover_fast", "extremal_fast", "xmage", "best"):
        assert cam in html

"""End-to-end: examples/cifar10_concepts.cam on the real CIFAR-10 ResNet-20 (optional data).

Skips, with the reason, when the shared data folder or the splits made by
`scripts/make_cifar_concepts.py` are absent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from camlang.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPLITS = Path("~/.cache/camlang/cifar10_1k_concepts").expanduser()


def test_cifar10_concepts_example(tmp_path: Path) -> None:
    from tests.conftest import shared_data

    shared = shared_data()
    if not (SPLITS / "concepts.csv").is_file():
        pytest.skip(
            f"{SPLITS} is absent: python scripts/make_cifar_concepts.py "
            f"--source {shared / 'cifar10_test_1k'} --out {SPLITS}"
        )
    started = time.perf_counter()
    assert main(["run", str(ROOT / "examples" / "cifar10_concepts.cam"), "--out", str(tmp_path)]) == 0
    print(f"examples/cifar10_concepts.cam took {time.perf_counter() - started:.1f} s")
    sections = json.loads((tmp_path / "concepts" / "concepts.json").read_text())["sections"]
    heat = {s["concepts"]: s for s in sections if s["kind"] == "heatmaps"}
    assert set(heat) == {"seen", "found"} and (tmp_path / "concepts" / heat["found"]["patches_png"]).is_file()
    monitors = {s["monitor"]: s for s in sections if s["kind"] == "monitor"}
    guard = monitors["guard"]
    assert "2/255" in guard["adversarial_detector"] and 0.0 < guard["pgd_success_rate"] <= 1.0
    for test in guard["tests"].values():
        by_name = {d["detector"]: d for d in test["detectors"]}
        # Never worse than MSP beyond noise: the combination is chosen against it on calibrate.
        assert by_name["combined"]["auroc"] >= by_name["msp"]["auroc"] - 0.03 or "PGD" in str(test)
        assert all(d["requested_fpr"] == 0.05 for d in test["detectors"])

"""Resources that run out: memory on a large call (retried in smaller calls, or a clean error that
names the batch size to use), and an image that becomes unreadable in the middle of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from faultkit import ROOT, Tally, assert_same, clean, report, run_here

from camlang.core.oom import OutOfMemory, is_out_of_memory, split_on_oom


def _oom_above(limit: int, calls: list[int]) -> Any:
    def call(start: int, stop: int) -> list[int]:
        calls.append(stop - start)
        if stop - start > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return list(range(start, stop))

    return call


def test_a_call_that_runs_out_of_memory_is_split_and_keeps_its_values(tally: Tally) -> None:
    calls: list[int] = []
    out, size = split_on_oom(_oom_above(3, calls), 11, 8, lambda parts: sum(parts, []))
    tally.fault("out of memory (split)")
    assert out == list(range(11)) and size == 2
    assert calls == [8, 4, 2, 2, 2, 2, 2, 1]  # halved until it fit, then kept at that size
    with pytest.raises(OutOfMemory) as caught:
        split_on_oom(_oom_above(0, []), 4, 4, lambda parts: parts)
    assert caught.value.tried == 1 and caught.value.suggest == 1
    with pytest.raises(ValueError):  # other errors are not memory's
        split_on_oom(lambda a, b: int("x"), 4, 4, lambda parts: parts)
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory")
    )
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(RuntimeError("shape mismatch"))


def _no_memory(where: str) -> BaseException:
    if where == "engine":
        return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    return RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory")


_TARGETS = {
    "engine": ("camlang.runtime.cam_engine", "CamEngine", "__call__"),
    "metrics": ("camlang.runtime.metric_evaluation", "Evaluator", "score"),
}


@pytest.mark.parametrize("where", ["engine", "metrics"])
def test_out_of_memory_on_every_call_names_the_batch_size_to_use(
    small_program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally, where: str
) -> None:
    def no_memory(*args: object, **kwargs: object) -> object:
        raise _no_memory(where)

    module, cls, name = _TARGETS[where]
    monkeypatch.setattr(f"{module}.{cls}.{name}", no_memory)
    ran = run_here(small_program, tmp_path / "out")
    tally.fault("out of memory (a run)")
    assert ran.code == 1 and clean(ran, tally), ran.stderr
    text = " ".join(ran.stderr.split())
    assert "out of memory even on 1 image(s)" in text and "--batch-size 1 --resume" in text, text


@pytest.mark.parametrize("where", ["engine", "metrics"])
def test_out_of_memory_on_a_large_call_is_retried_smaller_with_the_same_numbers(
    small_program: Path,
    small_reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: Tally,
    where: str,
) -> None:
    """Calls of more than one image run out of memory: the run goes on one image at a time and
    every number equals the uninterrupted run's (per-image results do not depend on the call)."""
    import importlib

    module, cls, name = _TARGETS[where]
    owner = getattr(importlib.import_module(module), cls)
    real = getattr(owner, name)

    def one_at_a_time(self: object, *args: object, **kwargs: object) -> object:
        images = args[0] if where == "engine" else args[2]
        assert isinstance(images, torch.Tensor)
        if images.shape[0] > 1:
            raise _no_memory(where)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, one_at_a_time)
    ran = run_here(small_program, tmp_path / "out")
    tally.fault("out of memory (retried smaller)")
    assert ran.code == 0 and clean(ran, tally), ran.stderr
    got, want = report(tmp_path / "out"), report(small_reference)
    assert_same({"e": want["evaluations"]}, {"e": got["evaluations"]}, tally, f"out of memory in {where}")
    assert any("continued at 1" in w for w in got["warnings"]), got["warnings"]


def test_an_image_that_becomes_unreadable_mid_run_is_counted_and_named(tmp_path: Path, tally: Tally) -> None:
    """The data layer decodes images as batches are drawn: a file that cannot be decoded then is
    left out of its batch, counted and named in the report (as at load time), the run finishes,
    and --resume after the file is fixed adds its image."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (64, 64), (40 * i, 100, 200)).save(folder / f"img{i}.png")
    program = tmp_path / "folder.cam"
    program.write_text(
        'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n'
        f'model shapes = checkpoint("{ROOT}/models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"\n'
        'data d = images("imgs", size = 64)\nevaluate [gradcam] on shapes, d with [sparsity]\n',
        encoding="utf-8",
    )
    # cut in half: listing the folder reads its header fine, drawing its batch cannot decode it
    good = (folder / "img4.png").read_bytes()
    (folder / "img4.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    ran = run_here(program, out)
    tally.fault("an image unreadable mid-run")
    assert ran.code == 0 and clean(ran, tally), ran.stderr
    first = report(out)
    assert first["evaluations"][0]["data"]["evaluated"] == "5 of 6 images"
    assert first["evaluations"][0]["table"]["gradcam"]["sparsity"]["n"] == 5
    named = [w for w in first["warnings"] if "img4.png" in w]
    assert named and "1 image file(s) could not be read during the run" in named[0], first["warnings"]
    (folder / "img4.png").write_bytes(good)
    ran = run_here(program, out, "--resume")
    assert ran.code == 0 and clean(ran, tally), ran.stderr
    assert report(out)["evaluations"][0]["table"]["gradcam"]["sparsity"]["n"] == 6

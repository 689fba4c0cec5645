"""Flat memory in a synthesis: captured batches past the memory budget are spilled to disk and read
back a chunk at a time (camlang/synth/spill.py, capturing.LazySplit), and a scoring call that runs
out of memory is split (scoring.Scorer with camlang.core.oom.split_on_oom)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from camlang.core.call_counter import CallCounter
from camlang.core.records import read_sealed
from camlang.data import synthetic_shapes
from camlang.errors import CamlangError
from camlang.frontend.check import check_text
from camlang.runtime.capture import capture
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import SynthOutcome, synthesize
from camlang.synth.capturing import LazySplit
from camlang.synth.job import default_reference_cams
from camlang.synth.scoring import Scorer, SplitData, capture_split
from camlang.synth.sharding import SynthGroup
from camlang.synth.spill import (
    DEFAULT_MEMORY_MB,
    MEMORY_ENV,
    MemoryBudget,
    Shelf,
    SpillFolder,
    memory_budget_bytes,
)
from tests.conftest import demo_live_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROGRAM = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
metric deletion8 = minimize deletion_auc(L, 8)
grammar mixed {
  cam -> relu(sum_c(w * A))
  w   -> mean_hw(g) | relu(S_masked) | relu(S_masked) * mean_hw(g)
  g   -> G | relu(G) | abs(G)
}
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 24, size = 64, seed = 0)
data te = synthetic_shapes(count = 6, size = 64, seed = 1)
synthesize best from mixed { model = m data = tr holdout = te objective = deletion8 max_size = 5
  probe = 4 race_first = 4 finalists = 2 }
"""

#: Without the Eigen-CAMs (an SVD per map) the stdlib comparison stays cheap on a shared CPU.
WITHOUT = ("eigencam", "eigengradcam")


@pytest.fixture(scope="module")
def live() -> LiveModel:
    return demo_live_model()


def _captured(live: LiveModel, count: int = 10) -> SplitData:
    return capture_split(live, synthetic_shapes(count, 64, 3), {"A", "G"}, 3, CallCounter())


def test_a_shelf_past_its_budget_spills_and_reads_back_the_same_rows(live: LiveModel) -> None:
    whole = _captured(live)
    batch_bytes = whole.rows(range(3)).nbytes
    spill = SpillFolder()
    shelf = Shelf(MemoryBudget(batch_bytes + 1), spill)  # room for the first batch only
    for a in range(0, whole.count, 3):
        shelf.add(whole.rows(range(a, min(whole.count, a + 3))))
    assert shelf.count == whole.count and shelf.spilled == whole.count - 3
    assert spill.path is not None and len(list(spill.path.glob("*.pt"))) == 3
    for idx in ([0, 1, 2], [9, 0, 4, 5, 3, 8], list(range(10)), [7], []):
        got, want = shelf.rows(idx), whole.rows(idx)
        assert got.labels == want.labels and torch.equal(got.x, want.x) and torch.equal(got.raw, want.raw)
        assert torch.equal(got.logits, want.logits) and torch.equal(got.targets, want.targets)
        assert set(got.terminals) == set(want.terminals)
        for name, value in want.terminals.items():
            assert torch.equal(got.terminals[name], value), name
    with pytest.raises(IndexError):
        shelf.rows([10])
    folder = spill.path
    spill.close()
    assert not folder.exists()


def test_the_budget_comes_from_the_environment() -> None:
    assert memory_budget_bytes({}) == DEFAULT_MEMORY_MB * 2**20 == 1024 * 2**20
    assert memory_budget_bytes({MEMORY_ENV: "1.5"}) == int(1.5 * 2**20)
    assert memory_budget_bytes({MEMORY_ENV: "0"}) == 0
    for bad in ("lots", "-3", "nan"):
        with pytest.raises(CamlangError, match=MEMORY_ENV):
            memory_budget_bytes({MEMORY_ENV: bad})


def _job(live: LiveModel) -> SimpleNamespace:
    """What a LazySplit reads of a synthesis job, untimed, 4 images per capture."""
    return SimpleNamespace(
        live=live,
        counter=CallCounter(),
        group=SynthGroup(None),
        timed=False,
        batch_size=4,
        limits=SimpleNamespace(seconds=None),
    )


def _lazy(live: LiveModel, budget: int) -> LazySplit:
    job = _job(live)
    split = LazySplit(job, synthetic_shapes(10, 64, 3), {"A", "G", "S_masked"}, None, MemoryBudget(budget))  # type: ignore[arg-type]
    split.ensure(6, split.all_groups, lambda: None)
    split.ensure(10, frozenset(), lambda: None)
    return split


def test_a_lazy_split_reads_the_same_images_in_memory_and_spilled(live: LiveModel) -> None:
    """Score terminals captured for 6 of 10 images: NaN rows past them, whatever is spilled."""
    kept, spilled = _lazy(live, 2**30), _lazy(live, 0)
    assert kept.spilled == 0 and spilled.spilled == 10 + 6
    assert (kept.count, kept.score_count) == (spilled.count, spilled.score_count) == (10, 6)
    for idx in ([0, 5], [9, 2, 6, 5], list(range(10))):
        a, b = kept.rows(idx), spilled.rows(idx)
        assert torch.equal(a.x, b.x) and a.labels == b.labels
        for name in ("A", "G", "S_masked"):
            assert torch.allclose(a.terminals[name], b.terminals[name], rtol=0, atol=0, equal_nan=True)
    s = kept.rows([4, 7]).terminals["S_masked"]
    assert not s[0].isnan().any() and s[1].isnan().all()


def _run(live: LiveModel, cache_dir: Path) -> SynthOutcome:
    prog = check_text(PROGRAM, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    refs = {n: c for n, c in default_reference_cams(prog).items() if n not in WITHOUT}
    return synthesize(
        prog,
        prog.synths["best"],
        live,
        synthetic_shapes(24, 64, 0),
        synthetic_shapes(6, 64, 1),
        batch_size=4,
        cache_dir=cache_dir,
        reference_cams=refs,
    )


def _race_values(cache_dir: Path) -> dict[str, Any]:
    """Every (candidate, image) value the race and the final checks scored (the score cache)."""
    files = list(cache_dir.glob("synth-*.json"))
    assert len(files) == 1
    record = read_sealed(files[0])
    assert record is not None and isinstance(record["values"], dict)
    return record["values"]


def test_a_synthesis_spilling_everything_gives_the_same_numbers(
    live: LiveModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every captured batch on disk (a budget of 0 MB) against all in memory: the same winner,
    the same per-image values of every (candidate, image) scored, the same holdout intervals."""
    monkeypatch.setenv(MEMORY_ENV, "1024")
    in_memory = _run(live, tmp_path / "a")
    monkeypatch.setenv(MEMORY_ENV, "0")
    spilled = _run(live, tmp_path / "b")
    assert in_memory.stats is not None and spilled.stats is not None
    assert spilled.source_text == in_memory.source_text
    assert spilled.stats.train_captured == in_memory.stats.train_captured == 24
    assert spilled.search_forward_passes == in_memory.search_forward_passes
    assert _race_values(tmp_path / "b") == _race_values(tmp_path / "a")
    assert [c.train_score for c in spilled.result.candidates] == [
        c.train_score for c in in_memory.result.candidates
    ]
    assert spilled.result.comparison == in_memory.result.comparison


def _no_memory_above(limit: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every metric call over more than `limit` images run out of memory; the sizes tried."""
    from camlang.runtime.metric_evaluation import Evaluator

    real = Evaluator.score
    sizes: list[int] = []

    def score(self: Evaluator, cams: list[str], batch: Any, x: torch.Tensor, *args: Any, **kw: Any) -> Any:
        sizes.append(int(x.shape[0]))
        if x.shape[0] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, cams, batch, x, *args, **kw)

    monkeypatch.setattr(Evaluator, "score", score)
    return sizes


def test_a_scoring_call_that_runs_out_of_memory_is_split_with_the_same_values(
    live: LiveModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    prog = check_text(PROGRAM, file_checks=False)
    data = _captured(live, 9)
    refs = default_reference_cams(prog)
    nodes = [refs["gradcam"], refs["hirescam"]]
    objective = prog.metrics["deletion8"]
    whole = Scorer(live, data, objective, refs, CallCounter(), 0)(nodes, list(range(9)))
    sizes = _no_memory_above(2, monkeypatch)
    scorer = Scorer(live, data, objective, refs, CallCounter(), 0)
    split = scorer(nodes, list(range(9)))
    assert sizes[:3] == [9, 4, 2] and scorer.call_size == 2  # halved until it fit, then kept
    assert torch.allclose(split, whole, rtol=0, atol=1e-6, equal_nan=True)
    sizes.clear()
    scorer(nodes, [8, 1, 3, 0])
    assert sizes == [2, 2]  # the next call starts at the size that fitted
    _no_memory_above(0, monkeypatch)
    with pytest.raises(CamlangError, match="out of memory even on 1 image") as caught:
        Scorer(live, data, objective, refs, CallCounter(), 0)(nodes, [0, 1])
    assert caught.value.code == "E602"


def test_a_synthesis_whose_scoring_runs_out_of_memory_finishes_with_the_same_winner(
    live: LiveModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = _run(live, tmp_path / "a")
    _no_memory_above(3, monkeypatch)
    got = _run(live, tmp_path / "b")
    assert got.source_text == want.source_text
    a, b = _race_values(tmp_path / "a"), _race_values(tmp_path / "b")
    assert a.keys() == b.keys()
    for text, row in a.items():
        for image, value in row.items():
            other = b[text][image]
            assert (value is None and other is None) or abs(value - other) <= 1e-6, (text, image)


def test_a_long_scoring_call_is_made_in_chunks_of_whole_model_calls(
    live: LiveModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk a call holds is set by bytes (never by the memory budget), rounded down to whole
    model calls of the metric, so one candidate's chunks make the model calls one call would."""
    from camlang.synth import scoring

    prog = check_text(PROGRAM, file_checks=False)
    data = _captured(live, 2)
    scorer = Scorer(live, data, prog.metrics["deletion8"], default_reference_cams(prog), CallCounter(), 0)
    per_image = data.rows([0]).nbytes + 64 * 64 * 4  # its terminals and one map
    monkeypatch.setattr(scoring, "SCORE_CALL_BYTES", 300 * per_image)
    assert scorer.chunk_images(1) == 256
    monkeypatch.setattr(scoring, "SCORE_CALL_BYTES", 100 * per_image)
    assert scorer.chunk_images(1) == 100
    monkeypatch.setattr(scoring, "SCORE_CALL_BYTES", 1)
    assert scorer.chunk_images(1) == 1


def test_each_costly_group_is_captured_only_for_the_images_asked(live: LiveModel) -> None:
    """`GX_smooth` and the score terminals are separate captures: asking for one never pays for the
    other, and every image's values equal a direct capture's."""
    job = _job(live)
    ds = synthetic_shapes(8, 64, 3)
    split = LazySplit(job, ds, {"A", "G", "GX", "S_masked", "GX_smooth"}, None, MemoryBudget(2**30))  # type: ignore[arg-type]
    assert split.all_groups == {"score", "smooth"}
    split.ensure(6, frozenset({"smooth"}), lambda: None)
    assert (split.count, split.count_with(frozenset({"smooth"})), split.count_with(frozenset({"score"}))) == (
        6,
        6,
        0,
    )
    split.ensure(8, frozenset({"score"}), lambda: None)
    assert (split.count, split.count_with(frozenset({"smooth"})), split.count_with(frozenset({"score"}))) == (
        8,
        6,
        8,
    )
    assert split.complete_count == split.score_count == 6
    # each group's capture time counts only where asked (the holdout's estimate asks for its own)
    base = split.seconds_per_image(frozenset())
    assert 0 < base < split.seconds_per_image(frozenset({"smooth"})) < split.seconds_per_image()
    assert split.seconds_per_image() == split.seconds_per_image(frozenset({"smooth", "score"}))
    rows = split.rows(range(8))
    smooth = rows.terminals["GX_smooth"]
    assert smooth.shape == rows.x.shape
    assert not smooth[:6].isnan().any() and smooth[6:].isnan().all()
    assert not rows.terminals["S_masked"].isnan().any()
    direct = capture(live.module, live.layer, rows.x, {"GX_smooth", "S_masked"})
    torch.testing.assert_close(smooth[:6], direct.terminals["GX_smooth"][:6], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rows.terminals["S_masked"], direct.terminals["S_masked"], atol=1e-5, rtol=1e-5)


def test_an_uncaptured_costly_terminal_is_shaped_by_its_type() -> None:
    """A costly terminal no image has yet is filled with NaN in the shape its op-table type gives."""
    from camlang.synth.capturing import _shape_of_type

    terminals = {
        "A": torch.zeros(2, 64, 8, 8),
        "A@layer2": torch.zeros(2, 32, 16, 16),
        "X": torch.zeros(2, 3, 32, 32),
    }
    assert _shape_of_type("S_masked", terminals) == (64, 1, 1)
    assert _shape_of_type("S_ablated@layer2", terminals) == (32, 1, 1)
    assert _shape_of_type("GX_smooth", terminals) == (3, 32, 32)

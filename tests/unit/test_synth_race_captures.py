"""Captures driven by the race, tuned constants in the driver, and the on-disk terminal store
(camlang/synth/capturing.py, tune_winner.py, terminal_store.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import SynthOutcome, synthesize
from camlang.synth.job import default_reference_cams
from tests.conftest import demo_live_model

PRELUDE = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
metric deletion8 = minimize deletion_auc(L, 8)
metric like_gradcam = maximize -mean(abs(L - ref(gradcam)))
grammar powers {
  cam -> pow(relu(sum_c(w * A)), k)
  w   -> mean_hw(g) | sum_hw(g)
  g   -> G | relu(G)
  k   -> 0.5 | 2 | 3
}
grammar mixed {
  cam -> relu(sum_c(w * A))
  w   -> mean_hw(g) | relu(S_masked) | relu(S_masked) * mean_hw(g)
  g   -> G | relu(G) | abs(G)
}
model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 8, size = 64, seed = 0)
data te = synthetic_shapes(count = 4, size = 64, seed = 1)
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Without the Eigen-CAMs (an SVD per map) the stdlib comparison stays cheap on a shared CPU.
WITHOUT = ("eigencam", "eigengradcam")


@pytest.fixture(scope="module")
def live() -> LiveModel:
    return demo_live_model()


class ForwardCount:
    """Images the network itself evaluated (a forward hook: counts real passes, not recorded ones)."""

    def __init__(self, live: LiveModel) -> None:
        self.images = 0
        self.handle = live.module.register_forward_hook(self._hook)

    def _hook(self, module: object, inputs: tuple[torch.Tensor, ...], output: object) -> None:
        self.images += int(inputs[0].shape[0])

    def __enter__(self) -> ForwardCount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def run(
    live: LiveModel,
    grammar: str,
    body: str,
    *,
    n_train: int = 8,
    n_hold: int = 4,
    hold_seed: int = 1,
    cache_dir: Path | None = None,
    resume: bool = False,
) -> SynthOutcome:
    src = PRELUDE + f"synthesize best from {grammar} {{ model = m data = tr holdout = te {body} }}\n"
    prog = check_text(src, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    refs = {n: c for n, c in default_reference_cams(prog).items() if n not in WITHOUT}
    return synthesize(
        prog,
        prog.synths["best"],
        live,
        synthetic_shapes(n_train, 64, 0),
        synthetic_shapes(n_hold, 64, hold_seed),
        cache_dir=cache_dir,
        resume=resume,
        reference_cams=refs,
    )


def test_score_terminals_only_for_the_images_their_candidates_race_on(live: LiveModel) -> None:
    """`relu(S_masked)` weights lose early against Grad-CAM's: their masked passes stop there."""
    out = run(
        live,
        "mixed",
        "objective = like_gradcam max_size = 5 probe = 4 race_first = 4 finalists = 1",
        n_train=32,
    )
    stats = out.stats
    assert stats is not None
    assert stats.train_captured == 32  # the leaders raced on every image
    assert 4 <= stats.train_score_captured < stats.train_captured
    assert "S_masked" not in out.source_text


def test_tuned_constants_never_see_the_holdout(live: LiveModel) -> None:
    """Two holdouts, the same selection split: the same tuned values and training scores.

    Every candidate of `powers` has a constant and none is a stdlib CAM, so the winner is tunable
    (in a grammar that contains Grad-CAM, Grad-CAM stays the winner unless a leader is confidently
    better on the 8 images)."""
    body = "objective = deletion8 max_size = 5 probe = 8"
    a = run(live, "powers", body, hold_seed=1)
    b = run(live, "powers", body, hold_seed=5)
    assert a.stats is not None and b.stats is not None
    assert a.stats.tuning.evaluations > 0  # the winner had constants, and tuning ran
    assert a.stats.tuning.constants == b.stats.tuning.constants
    assert a.stats.constants == b.stats.constants
    assert a.source_text == b.source_text
    assert a.result.comparison["best"] != b.result.comparison["best"]  # the holdouts did differ
    if a.stats.tuning.node is not None:  # tuning improved the grid's choice: the report says so
        assert a.stats.tuning.score is not None and a.stats.tuning.grid_score is not None
        assert a.stats.tuning.score < a.stats.tuning.grid_score  # deletion: lower is better
        assert a.result.candidates[0].expression.endswith("]")


def test_a_second_synthesis_reuses_the_stored_terminals(live: LiveModel, tmp_path: Path) -> None:
    body = "objective = deletion8 max_size = 3 probe = 8"
    with ForwardCount(live) as first_count:
        first = run(live, "mixed", body, n_train=16, cache_dir=tmp_path)
    assert list((tmp_path / "terminals").glob("*.pt"))
    with ForwardCount(live) as second_count:
        second = run(live, "mixed", body, n_train=16, cache_dir=tmp_path)
    assert first.stats is not None and second.stats is not None
    assert first.stats.reused_passes == 0 and second.stats.reused_passes > 0
    # the same selection, and the same pass counts: a stored batch counts the passes it took,
    # so a budget stops where it did
    assert second.source_text == first.source_text
    assert second.search_forward_passes == first.search_forward_passes
    assert [c.train_score for c in second.result.candidates] == [
        c.train_score for c in first.result.candidates
    ]
    # ...for fewer real passes: the captures (with their masked passes) were read back
    saved = second.stats.reused_passes
    assert second_count.images <= first_count.images - saved, (second_count.images, first_count.images, saved)
    # --resume reuses the race's scores too: only the comparison's winner is scored again
    with ForwardCount(live) as third_count:
        third = run(live, "mixed", body, n_train=16, cache_dir=tmp_path, resume=True)
    assert third.source_text == first.source_text
    assert third_count.images < second_count.images / 2, (third_count.images, second_count.images)


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # emptied
        b"\x8a\x17 not a torch file",  # garbage bytes (found by kill -9, then damage, then --resume)
        random.Random(2).randbytes(64),  # the unpickler raises IndexError on these (found the same way)
    ],
)
def test_a_damaged_stored_batch_is_captured_again(tmp_path: Path, damage: bytes) -> None:
    from camlang.synth.terminal_store import TerminalStore

    store = TerminalStore(tmp_path, "net@layer")
    x = torch.zeros(2, 3, 4, 4)
    needs = frozenset({"A"})
    path = store._file(needs, 0, 2)
    assert path is not None
    path.write_bytes(damage)
    assert store.load(needs, 0, 2, x) is None
    assert store.damaged == [path.name]  # named, so the run's report can warn
    # a torch file of the wrong shape (another record) is not a stored batch either
    torch.save({"x": x, "passes": 3}, path)
    assert store.load(needs, 0, 2, x) is None
    assert store.damaged == [path.name, path.name] and store.reused_passes == 0


def test_a_resumed_synthesis_does_not_reuse_scores_of_an_edited_metric(
    live: LiveModel, tmp_path: Path
) -> None:
    """The resume cache is keyed by the objective's definition, not only by its name: after
    `deletion8` is redefined, `--resume` scores the candidates again."""

    def go(prelude: str, resume: bool) -> SynthOutcome:
        src = (
            prelude
            + "synthesize best from mixed { model = m data = tr objective = deletion8 max_size = 3 probe = 8 }\n"
        )
        prog = check_text(src, file_checks=False)
        assert not prog.has_errors, prog.diagnostics
        return synthesize(
            prog,
            prog.synths["best"],
            live,
            synthetic_shapes(8, 64, 0),
            None,
            cache_dir=tmp_path,
            resume=resume,
        )

    first = go(PRELUDE, resume=False)
    again = go(PRELUDE, resume=True)
    edited = go(PRELUDE.replace("deletion_auc(L, 8)", "deletion_auc(L, 3)"), resume=True)
    scores = [[c.train_score for c in out.result.candidates] for out in (first, again, edited)]
    assert scores[1] == scores[0]  # the same definition: the scores are read back
    assert scores[2] != scores[0]  # another definition: scored again, not read back


def test_a_stored_batch_takes_the_data_sets_masks_not_the_stored_ones(
    live: LiveModel, tmp_path: Path
) -> None:
    """The store matches a batch by network and input images; masks and raw images can change
    under the same `x` (a folder that gained masks), so they come from the data set."""
    from camlang.metrics._common import CallCounter
    from camlang.synth.scoring import _capture_or_load
    from camlang.synth.terminal_store import TerminalStore

    ds = synthetic_shapes(4, 64, 0)
    store = TerminalStore(tmp_path, "demo@features.6")
    first = _capture_or_load(live, ds, range(0, 4), {"A", "G"}, CallCounter(), store)
    assert first.masks is not None and bool(first.masks.any())
    (path,) = tmp_path.glob("*.pt")
    saved = torch.load(path, weights_only=True)
    saved["masks"] = torch.zeros_like(saved["masks"])  # what an older capture of the folder stored
    torch.save(saved, path)
    again = _capture_or_load(live, ds, range(0, 4), {"A", "G"}, CallCounter(), store)
    assert store.reused_passes > 0  # read back, not captured again
    assert again.masks is not None and torch.equal(again.masks, first.masks)
    assert torch.equal(again.terminals["A"], first.terminals["A"])

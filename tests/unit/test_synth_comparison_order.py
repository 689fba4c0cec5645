"""The holdout comparison's order: stdlib CAMs best on the selection split first, the first
references always scored, the others only as time and the capture allow (issue 22: a holdout of
thousands of images fits the time when not every stdlib CAM must be scored on it)."""

from __future__ import annotations

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth import synthesize
from camlang.synth.holdout import left_out_note
from camlang.synth.references import FIRST_REFERENCES, MAX_REFERENCES, References, level_with_best
from tests.conftest import demo_live_model
from tests.unit.test_synth_driver import PRELUDE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def live() -> LiveModel:
    return demo_live_model()


def _run(live: LiveModel, time: str | None, n_hold: int = 6):
    limit = f'time = "{time}"' if time else ""
    src = PRELUDE + (
        "synthesize best from gradient_weights { model = m data = tr holdout = te "
        f"objective = deletion8 max_size = 3 probe = 8 {limit} }}\n"
    )
    prog = check_text(src, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    out = synthesize(
        prog, prog.synths["best"], live, synthetic_shapes(8, 64, 0), synthetic_shapes(n_hold, 64, 1)
    )
    return prog, out


def test_with_a_time_limit_the_best_on_selection_go_first(live: LiveModel) -> None:
    prog, out = _run(live, "10m")
    st = out.stats
    assert st is not None and st.paired is not None
    stdlib = {n for n, c in prog.cams.items() if c.origin.endswith("cams.cam")}
    trained = {r: v for r, v in st.stdlib_train.items() if r in stdlib}
    compared = set(out.result.comparison) & stdlib
    # the stdlib CAMs the grammar contains were re-scored on every selection image; the best of
    # them (minimize: the lowest) are among the first references and so compared on the holdout
    best_first = sorted(trained, key=lambda r: trained[r])[:FIRST_REFERENCES]
    assert best_first and set(best_first) <= compared
    # Score-CAM and Ablation-CAM read score terminals this grammar never captures: with a time
    # limit the holdout capture does not pay for them, and the verdict names them as left out
    assert {"scorecam", "ablationcam"}.isdisjoint(compared)
    assert "Not compared (time limit; the stdlib CAMs best on the selection split go first)" in (
        st.paired.sentence
    )
    assert "`scorecam`" in st.paired.sentence and "`ablationcam`" in st.paired.sentence


def test_without_a_time_limit_every_stdlib_cam_is_compared(live: LiveModel) -> None:
    # 20 holdout images: more than the first scoring chunk, so the chunks grow without a clock
    prog, out = _run(live, None, n_hold=20)
    stdlib = {n for n, c in prog.cams.items() if c.origin.endswith("cams.cam")}
    assert stdlib <= set(out.result.comparison)
    assert out.stats is not None and out.stats.paired is not None
    assert "Not compared" not in out.stats.paired.sentence
    assert out.stats.holdout_images == 20


def test_the_left_out_note_does_not_name_the_stdlib_cam_the_winner_equals() -> None:
    # seen on ResNet-56: the winner was proved equal to `gradcam_elementwise`, and the note still
    # listed `gradcam_elementwise` among the stdlib CAMs the time limit left out
    note = left_out_note(("scorecam", "gradcam_elementwise"), ("gradcam_elementwise",))
    assert note == (
        " Not compared (time limit; the stdlib CAMs best on the selection split go first): `scorecam`."
    )
    assert left_out_note(("gradcam_elementwise",), ("gradcam_elementwise",)) == ""
    assert left_out_note((), ()) == ""


def test_the_race_anchors_are_ordered_by_their_race_means_not_by_name() -> None:
    # the stdlib CAMs outside the grammar race as anchors; their race means order them among
    # the contained ones (re-scored on every image), so the note "best on the selection split
    # go first" is true for them too (they used to follow in name order)
    from types import SimpleNamespace

    from camlang.synth.holdout import comparison_order

    refs = {name: SimpleNamespace(nid=nid) for nid, name in enumerate(["ablationcam", "gradcam", "xgradcam"])}
    job = SimpleNamespace(stdlib=set(refs), refs=refs, sign=-1.0, settings=SimpleNamespace(race_first=4))
    final = SimpleNamespace(  # minimize: lowest first
        stdlib_train={"gradcam": 0.5},  # contained: re-scored on every selection image
        train_scores={},
        train_images={},
        anchor_scores={refs["xgradcam"].nid: 0.1, refs["ablationcam"].nid: 0.9},
        anchor_images={refs["xgradcam"].nid: 64, refs["ablationcam"].nid: 64},
        contained_nids={},
    )
    order = comparison_order(job, final)  # type: ignore[arg-type]
    assert order.stdlib == ("xgradcam", "gradcam", "ablationcam")
    assert order.first == FIRST_REFERENCES


def test_an_anchor_scored_on_the_first_round_only_follows_the_ones_scored_on_more() -> None:
    # seen on ResNet-56 insertion: Eigen-Grad-CAM's mean on the race's first 4 images ranked it
    # above Score-CAM's on 256, so the comparison scored Eigen-Grad-CAM and left Score-CAM out
    from types import SimpleNamespace

    from camlang.synth.holdout import comparison_order

    names = ["eigengradcam", "gradcam", "scorecam", "layercam", "hirescam"]
    refs = {name: SimpleNamespace(nid=nid) for nid, name in enumerate(names)}
    job = SimpleNamespace(stdlib=set(refs), refs=refs, sign=1.0, settings=SimpleNamespace(race_first=4))
    final = SimpleNamespace(  # maximize: highest first
        stdlib_train={"gradcam": 0.69},  # contained, re-scored on every selection image
        # Score-CAM is contained and raced under its normal form (node 99); the final checks did
        # not re-score it
        train_scores={refs["layercam"].nid: 0.66, 99: 0.70},
        train_images={refs["layercam"].nid: 256, 99: 256},
        contained_nids={"scorecam": 99, "gradcam": 98},
        anchor_scores={refs["eigengradcam"].nid: 0.80, refs["hirescam"].nid: 0.75},  # first round only
        anchor_images={refs["eigengradcam"].nid: 4, refs["hirescam"].nid: 4},
    )
    order = comparison_order(job, final)  # type: ignore[arg-type]
    assert order.stdlib == ("scorecam", "gradcam", "layercam", "eigengradcam", "hirescam")


def test_reference_means_on_equal_images_rank_before_race_evidence() -> None:
    # seen on ResNet-56 insertion (sessions 10 and 11): with no time for the final checks, the
    # race's uneven evidence put Ablation-CAM among the first references and left Score-CAM out
    from types import SimpleNamespace

    from camlang.synth.holdout import comparison_order

    names = ["ablationcam", "gradcam", "scorecam", "layercam"]
    refs = {name: SimpleNamespace(nid=nid) for nid, name in enumerate(names)}
    job = SimpleNamespace(stdlib=set(refs), refs=refs, sign=1.0, settings=SimpleNamespace(race_first=4))
    final = SimpleNamespace(  # maximize
        stdlib_train={},
        train_scores={refs["layercam"].nid: 0.75},
        train_images={refs["layercam"].nid: 256},
        contained_nids={},
        anchor_scores={refs["ablationcam"].nid: 0.80},
        anchor_images={refs["ablationcam"].nid: 4},
    )
    means = {"scorecam": 0.71, "gradcam": 0.70, "ablationcam": 0.66}  # the first 64 training images
    order = comparison_order(job, final, References(means, ("scorecam", "gradcam")))  # type: ignore[arg-type]
    assert order.stdlib == ("scorecam", "gradcam", "ablationcam", "layercam")
    assert order.first == FIRST_REFERENCES


def test_every_stdlib_cam_level_with_the_best_is_a_first_reference_up_to_the_cap() -> None:
    # seen on insertion (session 11): the stdlib CAMs lie within 0.01 AUC; on 64 images Score-CAM
    # was third, so with two fixed references it was never compared
    from types import SimpleNamespace

    from camlang.synth.holdout import comparison_order

    names = ["ablationcam", "gradcam", "gradcampp", "scorecam", "xgradcam", "layercam"]
    refs = {name: SimpleNamespace(nid=nid) for nid, name in enumerate(names)}
    job = SimpleNamespace(stdlib=set(refs), refs=refs, sign=1.0, settings=SimpleNamespace(race_first=4))
    final = SimpleNamespace(
        stdlib_train={},
        train_scores={},
        train_images={},
        contained_nids={},
        anchor_scores={},
        anchor_images={},
    )
    means = {"gradcampp": 0.712, "xgradcam": 0.711, "scorecam": 0.709, "gradcam": 0.70, "layercam": 0.69}
    # Grad-CAM's mean is above Layer-CAM's, but only Layer-CAM is level (a noisier difference)
    level = ("gradcampp", "xgradcam", "scorecam", "layercam")
    order = comparison_order(job, final, References(means, level))  # type: ignore[arg-type]
    assert order.stdlib == ("gradcampp", "xgradcam", "scorecam", "layercam", "gradcam", "ablationcam")
    assert order.first == 4
    many = References(dict.fromkeys(names, 0.7), tuple(names))
    assert many.first(len(names)) == MAX_REFERENCES
    assert References({"gradcam": 0.7}, ("gradcam",)).first(6) == FIRST_REFERENCES
    assert References({"gradcam": 0.7}, ("gradcam",)).first(1) == 1


def test_the_contained_cams_of_the_final_checks_are_always_first_references() -> None:
    # seen on ResNet-56 insertion (session 13): all 10 stdlib CAMs level on the references' 64
    # images, Score-CAM 8th by mean there, so never compared, although the final checks had
    # re-scored it (contained in the grammar) on 1,000 images
    from types import SimpleNamespace

    from camlang.synth.holdout import comparison_order

    names = ["gradcampp", "gradcam_elementwise", "layercam", "gradcam", "hirescam", "xgradcam", "scorecam"]
    refs = {name: SimpleNamespace(nid=nid) for nid, name in enumerate(names)}
    job = SimpleNamespace(stdlib=set(refs), refs=refs, sign=1.0, settings=SimpleNamespace(race_first=4))
    final = SimpleNamespace(
        stdlib_train={"gradcam": 0.700, "layercam": 0.699, "scorecam": 0.698},  # the final checks
        train_scores={},
        train_images={},
        contained_nids={},
        anchor_scores={},
        anchor_images={},
    )
    means = {r: 0.72 - 0.002 * i for i, r in enumerate(names)}  # Score-CAM last on the 64 images
    order = comparison_order(job, final, References(means, tuple(names)))  # type: ignore[arg-type]
    # the contained ones first, by the final checks' means; the others in the references' order
    assert order.stdlib == (
        "gradcam",
        "layercam",
        "scorecam",
        "gradcampp",
        "gradcam_elementwise",
        "hirescam",
        "xgradcam",
    )
    # the four best by mean stay first references, and Score-CAM joins them
    assert order.first == MAX_REFERENCES + 1
    assert set(order.stdlib[: order.first]) == {*names[:MAX_REFERENCES], "scorecam"}
    # when the contained ones are among the first references already, the count does not grow
    final.stdlib_train = {"gradcampp": 0.70, "gradcam": 0.71}
    order = comparison_order(job, final, References(means, tuple(names)))  # type: ignore[arg-type]
    assert order.stdlib[:2] == ("gradcam", "gradcampp") and order.first == MAX_REFERENCES
    # minimize: the lowest final-checks mean first
    job.sign = -1.0
    final.stdlib_train = {"gradcampp": 0.71, "scorecam": 0.69}
    low = {r: 0.3 + 0.01 * i for i, r in enumerate(names)}
    order = comparison_order(job, final, References(low, tuple(names)))  # type: ignore[arg-type]
    assert order.stdlib[:3] == ("scorecam", "gradcampp", "gradcam_elementwise")
    assert order.first == MAX_REFERENCES + 1


def test_level_with_best_uses_the_paired_bound() -> None:
    g = torch.Generator().manual_seed(0)
    shared = torch.rand(64, generator=g)  # per-image difficulty, common to every CAM
    values = {
        "best": shared + 0.02,
        "close": shared + 0.02 - 0.002 + 0.01 * torch.randn(64, generator=g),  # within noise
        "worse": shared - 0.05 + 0.001 * torch.randn(64, generator=g),  # far below, every image
        "same": shared + 0.02,  # identical values are ties
        "broken": torch.full((64,), float("nan")),  # never scored: left out
    }
    assert level_with_best(values, 1.0) == ("best", "same", "close")
    # minimize: the lowest is best, and the confidently higher one is worse
    low = {"a": shared, "b": shared + 0.05}
    assert level_with_best(low, -1.0) == ("a",)
    assert level_with_best({}, 1.0) == ()


def test_with_a_time_limit_every_servable_stdlib_cam_is_scored_on_the_same_images(live: LiveModel) -> None:
    src = PRELUDE + (
        "synthesize best from gradient_weights { model = m data = tr holdout = te "
        'objective = deletion8 max_size = 3 probe = 8 time = "10m" }\n'
    )
    prog = check_text(src, file_checks=False)
    lines: list[str] = []
    out = synthesize(
        prog,
        prog.synths["best"],
        live,
        synthetic_shapes(8, 64, 0),
        synthetic_shapes(6, 64, 1),
        echo=lines.append,
    )
    said = [line[line.index("references:") :] for line in lines if ": references:" in line]
    # every stdlib CAM but the two reading score terminals this grammar never captures
    stdlib = {n for n, c in prog.cams.items() if c.origin.endswith("cams.cam")}
    assert len(said) == 1
    head = f"references: {len(stdlib) - 2} stdlib CAMs scored on the first 8 training images; "
    head += "level with the best: "
    assert said[0].startswith(head)
    level = [name.strip("`") for name in said[0][len(head) :].split(", ")]
    assert level and set(level) <= stdlib
    assert out.stats is not None and out.stats.paired is not None

"""The synthesis section of a run's report states how `time` was split (the rule's seconds for
the search, the tuning and the holdout comparison) and the seconds each phase used: in
report.json, report.html, the run's summary and the synthesis's own progress lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camlang.models import DEMO_CHECKPOINT
from camlang.report import validate_report_dict
from camlang.run.program import run_file
from camlang.synth.limits import COMPARE_SHARE, TUNING_SHARE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LIMIT = 60.0

SOURCE = f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
metric like_gradcam = maximize -mean(abs(L - ref(gradcam)))
grammar tunable {{
  cam -> relu(sum_c(w * A)) | pow(relu(sum_c(w * A)), k)
  w   -> mean_hw(G) | sum_hw(G)
  k   -> 0.5 | 2
}}
model m = checkpoint("{DEMO_CHECKPOINT.as_posix()}", arch = "shapes_cnn") at "features.6"
data tr = synthetic_shapes(count = 8, size = 64, seed = 0)
data te = synthetic_shapes(count = 4, size = 64, seed = 1)
synthesize best from tunable {{
  model = m data = tr holdout = te objective = like_gradcam max_size = 5 probe = 8 time = "{LIMIT:g}s"
}}
"""


@pytest.mark.skipif(not DEMO_CHECKPOINT.is_file(), reason="the demo checkpoint is not built")
def test_report_shows_the_planned_split_and_the_seconds_spent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "time.cam").write_text(SOURCE)
    assert run_file(tmp_path / "time.cam", out_dir=tmp_path / "out") == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    validate_report_dict(doc)
    (sy,) = doc["syntheses"]
    t = sy["time"]
    assert t["limit"] == LIMIT and f"{COMPARE_SHARE:.0%}" in t["rule"]
    # the rule: the comparison's and the tuning's shares (a holdout and a constant hole), the rest searches
    planned = t["planned"]
    assert planned["comparison"] == pytest.approx(COMPARE_SHARE * LIMIT)
    assert planned["tuning"] == pytest.approx(TUNING_SHARE * LIMIT)
    assert sum(planned.values()) == pytest.approx(LIMIT)
    # what each phase used: all measured, adding up to the synthesis's seconds, within `time`
    spent = t["spent"]
    assert set(spent) == {"search", "tuning", "comparison"} and all(v >= 0 for v in spent.values())
    assert spent["search"] > 0 and spent["comparison"] > 0  # a holdout was compared
    assert sum(spent.values()) == pytest.approx(sy["counts"]["seconds"], abs=1e-6)
    assert sum(spent.values()) <= LIMIT
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h3>time</h3>" in html and f"time = {LIMIT:g} s" in html
    assert f"<tr><th>search</th><td class='num'>{planned['search']:.2f}</td>" in html
    assert f"<td class='num'>{spent['comparison']:.2f}</td></tr>" in html
    # the run's summary and the synthesis's last progress line say the same
    assert f"best: time {LIMIT:g} s: search {spent['search']:.1f} s of {planned['search']:.1f} s" in (
        " ".join(printed.split())
    )
    assert "done; time 60 s: search" in printed

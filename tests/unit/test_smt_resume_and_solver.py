"""A property's cache key names its inputs (issue 27's `--resume`): the data declaration behind
`at = test[3]` and the bytes of a VNN-LIB file, not only their names, so a resumed run never reads
back a verdict, or pieces proved infeasible, about another point; and only a real infeasibility
from HiGHS closes a branch (both found by a review of the verification engine)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from camlang.frontend.program import IndexRef
from camlang.run.questions import _input_identity


def test_a_vnnlib_file_is_known_by_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "p.vnnlib"
    path.write_text("(declare-const X_0 Real)\n", encoding="utf-8")
    pdef = SimpleNamespace(kind="vnnlib", args={"path": "p.vnnlib"}, base_dir=tmp_path)
    before = _input_identity(None, pdef, "path", "p.vnnlib")  # type: ignore[arg-type]
    assert before is not None
    path.write_text("(declare-const X_0 Real)\n(assert (<= X_0 0.5))\n", encoding="utf-8")
    assert _input_identity(None, pdef, "path", "p.vnnlib") != before  # type: ignore[arg-type]
    # `at = vnnlib("p.vnnlib")` of a robustness property too
    robust = SimpleNamespace(kind="robust", args={"at": ("vnnlib", "p.vnnlib")}, base_dir=tmp_path)
    assert _input_identity(None, robust, "at", ("vnnlib", "p.vnnlib")) is not None  # type: ignore[arg-type]


def test_a_point_of_a_data_set_is_known_by_the_data_declaration() -> None:
    def state(seed: int) -> SimpleNamespace:
        data = SimpleNamespace(kind="synthetic_shapes", args={"count": 4, "seed": seed})
        return SimpleNamespace(program=SimpleNamespace(datas={"test": data}))

    pdef = SimpleNamespace(kind="robust", args={}, base_dir=None)
    at = IndexRef("test", 3)
    one = _input_identity(state(1), pdef, "at", at)  # type: ignore[arg-type]
    assert one is not None and one != _input_identity(state(2), pdef, "at", at)  # type: ignore[arg-type]
    assert _input_identity(state(1), pdef, "eps", 0.02) is None  # type: ignore[arg-type]


def test_only_a_real_infeasibility_is_a_proof() -> None:
    """scipy reports HiGHS's "model error" (bad data) with the status of "infeasible"; only the
    latter may close a branch as proved."""
    import numpy as np
    from scipy.optimize import linprog

    from camlang.smt.query import proved_infeasible

    # x <= -1 with x in [0, 1]: infeasible, and HiGHS says so
    res = linprog(np.zeros(1), A_ub=np.ones((1, 1)), b_ub=np.array([-1.0]), bounds=[(0, 1)], method="highs")
    assert res.status == 2 and proved_infeasible(res)
    model_error = SimpleNamespace(status=2, message="(HiGHS Status 2: Model error)")
    assert not proved_infeasible(model_error)
    assert not proved_infeasible(SimpleNamespace(status=0, message="Optimization terminated successfully."))

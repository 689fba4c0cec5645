"""Shared test configuration: hypothesis profiles and the optional shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# "ci" is reproducible (derandomized) and never flaky on a loaded machine (no deadline); "dev"
# keeps hypothesis' defaults apart from the deadline, which a busy 2-core machine trips.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def shared_data() -> Path:
    """`../shared/data` beside the checkout (optional real models and images), or skip the test."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"optional shared data folder {path} is absent")
    return path

"""Damaged caches heal: every cache file kind, damaged in every way (`damage.py`) at random places,
is read without an error, loses only the damaged records, and is named in a warning with the
count; a resumed run then ends with every number of an undamaged one.

The random places change with every run (the seed is printed on a failure; CAMLANG_FAULT_SEED
replays one)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from damage import FILE_DAMAGE, LOG_DAMAGE, STALE, NoLine
from faultkit import Tally, assert_same_run, clean, copy_run, report, run_here

from camlang.core.records import read_log, read_sealed
from camlang.distributed import Dist
from camlang.run.cache import RunCache, Section, dropped_warning, heal
from camlang.synth.cache import ScoreCache, read_values
from camlang.synth.compare import StdlibScoreCache
from camlang.synth.scoring import SplitData

SEED = int(os.environ.get("CAMLANG_FAULT_SEED", random.randrange(1 << 30)))
#: Random places per (file, damage) at the cache level (each is cheap: no model runs).
PLACES = 3


def _holdout_data() -> SplitData:
    gen = torch.Generator().manual_seed(0)
    x, logits = torch.rand(6, 3, 8, 8, generator=gen), torch.rand(6, 4, generator=gen)
    return SplitData(x, x, None, logits, torch.zeros(6, dtype=torch.long), {}, [0] * 6)


def _stdlib_cache(folder: Path) -> StdlibScoreCache:
    return StdlibScoreCache(folder, _holdout_data(), 6, "minimize deletion_auc(L)", 0, "net@layer")


@pytest.fixture(scope="module")
def caches(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference run's cache folder, plus a stdlib holdout cache (the program has no holdout)."""
    folder = tmp_path_factory.mktemp("caches") / "cache"
    shutil.copytree(reference / "cache", folder)
    stdlib = _stdlib_cache(folder)
    stdlib.put("relu(A)", torch.arange(6.0))
    stdlib.put("relu(G)", torch.tensor([0.5, float("nan"), 2.0, 3.0, 4.0, 5.0]))
    stdlib.save()
    return folder


def _log_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*-rank*.jsonl"))


def test_the_reference_has_every_cache_file_kind(caches: Path) -> None:
    kinds = {p.name.split("-")[0] for p in caches.iterdir()}
    assert kinds >= {"evaluate", "check", "pieces", "synth", "stdlib"}, kinds
    assert all(read_log(p).records for p in _log_files(caches))


@pytest.mark.parametrize("how", sorted(LOG_DAMAGE))
def test_a_damaged_log_loses_only_its_damaged_records(
    caches: Path, tmp_path: Path, tally: Tally, how: str
) -> None:
    rng = random.Random(f"{SEED}-{how}")
    for source in _log_files(caches):
        original = read_log(source).records
        for place in range(PLACES):
            folder = tmp_path / f"{source.stem}-{place}"
            folder.mkdir()
            path = folder / source.name
            hurt = LOG_DAMAGE[how](source.read_bytes(), rng, frozenset())
            path.write_bytes(hurt.data)
            tally.fault(f"cache damage: {how}")
            context = f"{how} in {source.name} (seed {SEED})"
            expected = [r for i, r in enumerate(original) if i not in hurt.lost]
            warning = [dropped_warning(path, hurt.bad_lines)] if hurt.bad_lines else []

            # the reader alone: no error, the good units, and a warning with the count
            warned: list[str] = []
            cache = RunCache(folder, Dist.single(), resume=True, warn=warned.append)
            units = list(Section(cache, source.name.rsplit("-rank", 1)[0]).units())
            assert units == [r["unit"] for r in expected], context
            assert sorted(set(warned)) == warning, context
            # `heal` before a resume: the damaged lines leave the file, and the same warning
            assert heal(folder) == warning, context
            healed = read_log(path)
            assert healed.records == tuple(expected) and healed.dropped == 0, context
            assert heal(folder) == [], context


@pytest.mark.parametrize("how", sorted(FILE_DAMAGE))
def test_a_damaged_score_cache_is_dropped_and_scored_again(
    caches: Path, tmp_path: Path, tally: Tally, how: str
) -> None:
    rng = random.Random(f"{SEED}-{how}")
    sources = sorted(caches.glob("synth-*.json")) + sorted(caches.glob("stdlib-holdout-*.json"))
    for source in sources:
        digest = read_sealed(source)["digest"]  # type: ignore[index]
        for place in range(PLACES):
            folder = tmp_path / f"{source.stem}-{place}"
            folder.mkdir()
            path = folder / source.name
            path.write_bytes(FILE_DAMAGE[how](source.read_bytes(), rng))
            tally.fault(f"cache damage: {how}")
            context = f"{how} in {source.name} (seed {SEED})"
            # the readers alone: no error, nothing used, and (unless merely stale) a reason
            values, why = read_values(path, digest)
            assert values is None and (why is None) == (how == STALE), context
            if source.name.startswith("stdlib"):
                assert _stdlib_cache(folder).values == {}, context
            else:
                score = ScoreCache(path, {}, resume=True)
                assert score.values == {}, context
            # `heal`: a damaged file is removed and named; a stale one is left for its reader
            if how == STALE:
                assert heal(folder) == [] and path.is_file(), context
            else:
                assert heal(folder) == [dropped_warning(path, 1)] and not path.exists(), context


def test_a_score_cache_of_the_right_key_is_used(caches: Path, tmp_path: Path) -> None:
    folder = copy_run(caches, tmp_path / "cache")
    assert heal(folder) == []
    row = _stdlib_cache(folder).get("relu(A)", 6)
    assert row is not None and row.tolist() == list(range(6))


KINDS = sorted(LOG_DAMAGE)
#: Each resumed run gets two damages: every log file has both (at two random lines), the synthesis
#: cache the first. Six resumed runs cover every damage.
PAIRS = [(KINDS[i], KINDS[(i + 1) % len(KINDS)]) for i in range(0, len(KINDS), 2)]


@pytest.mark.parametrize("first,second", PAIRS)
def test_a_resumed_run_heals_its_damaged_cache(
    program: Path, reference: Path, tmp_path: Path, tally: Tally, first: str, second: str
) -> None:
    rng = random.Random(f"{SEED}-{first}-{second}")
    out = copy_run(reference, tmp_path / "out")
    named: set[str] = set()
    for path in _log_files(out / "cache"):
        lost: frozenset[int] = frozenset()
        for how in (first, second):
            try:
                hurt = LOG_DAMAGE[how](path.read_bytes(), rng, lost)
            except NoLine:  # a one-line log takes one damage
                continue
            path.write_bytes(hurt.data)
            lost |= hurt.lost
            tally.fault(f"damage, then resume: {how}")
            if hurt.bad_lines:
                named.add(path.name)
    for path in sorted((out / "cache").glob("synth-*.json")):
        path.write_bytes(FILE_DAMAGE[first](path.read_bytes(), rng))
        tally.fault(f"damage, then resume: {first}")
        if first != STALE:
            named.add(path.name)
    ran = run_here(program, out, "--resume")
    assert ran.code == 0 and clean(ran, tally), f"seed {SEED}: {ran.stderr[-3000:]}"
    assert_same_run(reference, out, tally, f"resume after {first} + {second} (seed {SEED})")
    warnings = " ".join(report(out)["warnings"])
    assert all(name in warnings for name in named), (named, warnings)

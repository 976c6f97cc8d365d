"""Planning a fleet job: inputs, van ids, chunks and markers (no Dask needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vehicle_io.fleet import FleetError
from vehicle_io.fleet.plan import Settings, expand_inputs, make_plan, van_id


def _touch(path: Path, text: str = "(1.000000) pt 0C0#00\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_van_id_sources(tmp_path):
    f = _touch(tmp_path / "VAN-0042" / "2026-11-24_Z10-7.log.gz")
    assert van_id(f, "dirname") == "VAN-0042"
    assert van_id(f, "filename") == "2026-11-24_Z10-7"
    assert van_id(f, r"_(Z10-\d+)\.") == "Z10-7"
    assert van_id(f, r"(?P<van>\d{4})-11") == "2026"
    with pytest.raises(ValueError, match="does not match"):
        van_id(f, r"nothing-like-this")
    with pytest.raises(FleetError, match="regular expression"):
        van_id(f, "([unclosed")
    with pytest.raises(ValueError, match="van id"):
        van_id(_touch(tmp_path / "bad name" / "a.log"), "dirname")


def test_inputs_files_dirs_globs_and_errors(tmp_path):
    a = _touch(tmp_path / "v1" / "a.log")
    b = _touch(tmp_path / "v1" / "sub" / "b.asc")
    _touch(tmp_path / "v1" / "notes.txt")
    _touch(tmp_path / "v1" / ".hidden.log")
    c = _touch(tmp_path / "v2" / "c.blf")
    found = expand_inputs([str(tmp_path / "v1"), str(tmp_path / "v*" / "*.blf"), str(a)])
    assert found == sorted(p.resolve() for p in (a, b, c))
    with pytest.raises(FleetError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing")])
    with pytest.raises(FleetError, match="matched none"):
        expand_inputs([str(tmp_path / "*.trc")])
    with pytest.raises(FleetError, match="expected a"):
        expand_inputs([str(tmp_path / "v1" / "notes.txt")])


def test_a_bad_van_id_is_a_reported_problem_not_a_crash(tmp_path):
    _touch(tmp_path / "ok" / "a.log")
    bad = _touch(tmp_path / "no good" / "b.log")
    plan = make_plan([str(tmp_path)], tmp_path / "out", Settings())
    assert [t.van for t in plan.tasks] == ["ok"]
    assert [p.path for p in plan.problems] == [str(bad.resolve())]
    assert "van id" in plan.problems[0].reason


def test_big_logs_split_other_formats_whole(tmp_path):
    line = "(1700000000.000000) pt 0C0#0011223344556677\n"
    big = _touch(tmp_path / "v" / "big.log", line * 3000)
    _touch(tmp_path / "v" / "whole.asc", "x" * 200_000)
    plan = make_plan([str(tmp_path / "v")], tmp_path / "out", Settings(chunk_bytes=20_000))
    chunks = [t for t in plan.tasks if t.path == str(big.resolve())]
    assert len(chunks) == -(-big.stat().st_size // 20_000)
    assert all((t.end - t.start) % len(line) == 0 for t in chunks)  # whole lines only
    assert [t.kind for t in plan.tasks if t.path.endswith(".asc")] == ["pycan"]
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)
    assert Settings(chunk_bytes=1).digest() != Settings(chunk_bytes=2).digest()

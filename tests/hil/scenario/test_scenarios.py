"""Shipped scenarios pass; a broken expectation fails (exit 1); bad TOML exits 2; reports are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.cli.hil_cmd import main
from hil.scenario.report import report_dict
from hil.scenario.runner import run_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "hil" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_passes(path: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    assert main(["run", str(path), "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["passed"] is True
    assert {"passed", "duration_s", "events", "expectations"} <= set(doc)
    assert all({"t", "code"} <= set(ev) for ev in doc["events"])
    assert doc["expectations"] and all(e["passed"] for e in doc["expectations"])


def test_broken_expectation_exits_1(tmp_path: Path) -> None:
    text = (SCENARIOS[0].parent / "overload_1700kg.toml").read_text()
    broken = tmp_path / "broken.toml"
    # demand a drive-away that the overload interlock must prevent
    broken.write_text(text + '\n[[expect]]\nkind = "reaches"\nsignal = "van.speed_mps"\nlo = 1.0\nwithin_s = 9.0\n')
    report = tmp_path / "r.json"
    assert main(["run", str(broken), "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    assert doc["passed"] is False and doc["expectations"][-1]["passed"] is False


def test_malformed_toml_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\nname = 'x'\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.toml" in err


def test_bad_key_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\nduration_s = -1\n[[expect]]\nkind = "event"\ncode = "X"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scenario.duration_s" in err and "bad.toml" in err


def test_same_seed_same_report() -> None:
    path = SCENARIOS[0].parent / "overload_1700kg.toml"
    a = report_dict(run_scenario(path, seed=3), wall_time=False)
    b = report_dict(run_scenario(path, seed=3), wall_time=False)
    assert a == b

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


@pytest.mark.parametrize("signal", ["van.speeed_mps", "gw.torqe", "comp7.door_open", "comp3.colour"])
def test_unknown_signal_exits_2_naming_it(signal: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "sig.toml"
    bad.write_text(f'[scenario]\nname = "x"\nduration_s = 0.5\n[[expect]]\nkind = "stays"\nsignal = "{signal}"\nlo = 0\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and signal in err


def test_report_timeseries_and_bus_state_events(tmp_path: Path) -> None:
    """The timeseries has one sample per 10 ms tick for every default signal; a node that
    keeps going bus-off is reported once per state with its count, not thousands of times."""
    text = (SCENARIOS[0].parent / "bms_bus_off.toml").read_text().split("[[expect]]")[0]
    text = text.replace("duration_s = 25.0", "duration_s = 11.0")
    text += '[[expect]]\nkind = "event"\ncode = "BUS_BMS_BUS_OFF"\nafter_s = 10.0\nwithin_s = 0.2\n'
    path = tmp_path / "short.toml"
    path.write_text(text)
    doc = report_dict(run_scenario(path), wall_time=False)
    series = doc["timeseries"]
    assert len(series["t_s"]) == 1100 and series["t_s"][0] == pytest.approx(0.01)
    for name in ("van.speed_mps", "gw.torque_nm", "van.soc", "doors_open", "van.gear"):
        assert len(series[name]) == 1100
    assert 0.0 < min(series["van.soc"]) <= max(series["van.soc"]) <= 1.0
    bus_off = [ev for ev in doc["events"] if ev["code"] == "BUS_BMS_BUS_OFF"]
    assert len(bus_off) == 1 and bus_off[0]["count"] >= 2 and bus_off[0]["bus"] == "pt"
    assert 10.0 <= bus_off[0]["t"] <= 10.1


def test_list_shows_every_bundled_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == sorted(p.stem for p in SCENARIOS)
    assert all(r["duration_s"] > 0 and r["description"] for r in rows)


def test_bundled_name_runs_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs the plots extra (matplotlib)")
    png = tmp_path / "o.png"
    assert main(["run", "overload_1700kg", "--plot", str(png), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "overload_1700kg" and doc["passed"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_unknown_scenario_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_scenario"]) == 2
    assert "no_such_scenario" in capsys.readouterr().err


def test_progress_callback_counts_simulated_seconds() -> None:
    calls: list[tuple[float, float]] = []
    path = SCENARIOS[0].parent / "overload_1700kg.toml"
    run_scenario(path, progress=lambda done, total: calls.append((done, total)))
    assert [round(d, 6) for d, _ in calls] == [float(k) for k in range(10)] and {t for _, t in calls} == {10.0}


@pytest.mark.parametrize(("reference", "ok"), [({}, False), ({"after_s": 2.0}, True), ({"after_s": 1.0}, False),
                                               ({"after_event": "ILK_X"}, True), ({"from_s": 2.0}, True),
                                               ({"after_event": "ILK_NEVER_SEEN"}, False)])
def test_never_is_judged_from_its_reference(reference: dict, ok: bool) -> None:
    import numpy as np

    from hil.scenario.model import Expectation
    from hil.scenario.runner import _evaluate

    t = np.arange(0.0, 4.0, 0.5)
    x = np.where(t < 2.0, 1.0, 0.0)  # 1 until t = 1.5 s, 0 from t = 2 s
    events = [{"t": 2.0, "code": "ILK_X", "active": True}]
    e = Expectation(index=0, kind="never", text="x", signal="s", op="!=", value=0.0, **reference)
    assert _evaluate(e, t, {"s": x}, events, end_s=4.0).passed is ok


@pytest.mark.parametrize(("pct", "fragment"), [("75.0", "grade_pct"), ('"steep"', "action grade")])
def test_bad_grade_action_exits_2_naming_it(pct: str, fragment: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "grade.toml"
    bad.write_text('[scenario]\nname = "g"\nduration_s = 1.0\n[[action]]\nt = 0.5\ndo = "grade"\n'
                   f'pct = {pct}\n[[expect]]\nkind = "event"\ncode = "X"\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "grade.toml" in err

"""`z10 hil run` campaigns: several scenarios, worker processes, JSON per scenario, JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.cli.hil_cmd import main

PARKED = """[scenario]
name = "{name}"
duration_s = 1.5
description = "parked"

[[expect]]
kind = "{kind}"
signal = "van.speed_mps"
lo = {lo}
hi = {hi}
{when}
text = "{text}"
"""


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ok = tmp_path / "ok.toml"
    ok.write_text(PARKED.format(name="parked_ok", kind="stays", lo=0.0, hi=0.01, when="after_s = 0.5",
                                text="stays parked"))
    bad = tmp_path / "bad.toml"
    bad.write_text(PARKED.format(name="parked_bad", kind="reaches", lo=5.0, hi=6.0, when="within_s = 1.0",
                                 text="moves although parked"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\n")
    return ok, bad, broken


def test_campaign_on_two_workers_writes_reports_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok, bad, broken = _files(tmp_path)
    junit, reports = tmp_path / "out" / "junit.xml", tmp_path / "out" / "reports"
    code = main(["run", str(ok), str(bad), str(broken), str(ok), "-j", "2", "--junit", str(junit),
                 "--report-dir", str(reports)])
    assert code == 2  # one scenario could not run: that outranks the failure
    out = capsys.readouterr()
    lines = out.out.splitlines()
    # in the order given, whatever order the workers finished in
    assert [line.split()[:2] for line in lines if line[:5] in ("PASS ", "FAIL ", "ERROR")] == [
        ["PASS", "parked_ok"], ["FAIL", "parked_bad"], ["ERROR", "broken:"], ["PASS", "parked_ok-2"]]
    assert "moves although parked" in out.out
    assert lines[-1].startswith("4 scenarios: 2 passed, 1 failed, 1 could not run")
    assert "broken.toml" in out.err and len(out.err.strip().splitlines()) == 1
    assert sorted(p.name for p in reports.iterdir()) == ["parked_bad.json", "parked_ok-2.json", "parked_ok.json"]
    assert json.loads((reports / "parked_bad.json").read_text())["passed"] is False

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "z10-hil"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["parked_ok", "parked_bad", "broken", "parked_ok-2"]
    assert all(c.get("classname") == "hil.scenarios" and float(c.get("time", "-1")) >= 0 for c in cases)
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure is not None and "moves although parked" in (failure.text or "")
    assert cases[2].find("error") is not None and "malformed TOML" in cases[2].find("error").get("message", "")
    props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
    assert props["simulated_s"] == "1.5" and props["seed"] == "0"


def test_campaign_in_line_prints_a_json_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok, bad, _ = _files(tmp_path)
    assert main(["run", str(ok), str(bad), "--json"]) == 1
    out = capsys.readouterr()
    docs = json.loads(out.out)
    assert [d["scenario"] for d in docs] == ["parked_ok", "parked_bad"]
    assert [d["passed"] for d in docs] == [True, False]
    assert "2 scenarios: 1 passed, 1 failed" in out.err


@pytest.mark.parametrize(("argv", "message"), [
    (["run"], "expected a scenario"),
    (["run", "a.toml", "b.toml", "--report", "r.json"], "--report-dir"),
    (["run", "a.toml", "b.toml", "--jobs", "-1"], "--jobs"),
])
def test_campaign_usage_errors_exit_2_with_one_line(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_an_internal_error_in_one_scenario_does_not_end_the_campaign(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import hil.scenario.runner as runner

    ok, _, _ = _files(tmp_path)
    real = runner.run_scenario
    calls = []

    def flaky(path, seed=0, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("simulated bug\nwith a second line")
        return real(path, seed=seed, **kwargs)

    monkeypatch.setattr(runner, "run_scenario", flaky)
    junit = tmp_path / "j.xml"
    assert main(["run", str(ok), str(ok), "--junit", str(junit)]) == 2
    out = capsys.readouterr()
    assert "internal error: RuntimeError: simulated bug" in out.err and "second line" not in out.err
    assert "PASS  parked_ok" in out.out and len(calls) == 2
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert cases[0].find("error") is not None and cases[1].find("error") is None


def test_a_dead_worker_process_is_an_error_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A worker killed mid-scenario (as the OOM killer would): its scenarios are errors, one line each."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    long = tmp_path / "long.toml"
    long.write_text(PARKED.format(name="long", kind="stays", lo=0.0, hi=0.01, when="after_s = 0.5",
                                  text="stays parked").replace("duration_s = 1.5", "duration_s = 300.0"))
    killed: list[int] = []
    before = {p.pid for p in multiprocessing.active_children()}  # e.g. earlier tests' clusters

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # the pool's spawned processes: the children that were not there before
            workers = [p for p in multiprocessing.active_children() if p.pid not in before]
            if len(workers) == 2:
                time.sleep(1.0)
                for worker in workers:
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    code = main(["run", str(long), str(long), "-j", "2"])
    killer.join()
    assert killed
    assert code == 2
    out = capsys.readouterr()
    assert [line.count("worker process died") for line in out.err.splitlines()] == [1, 1]
    assert out.out.splitlines()[-1].startswith("2 scenarios: 0 passed, 0 failed, 2 could not run")

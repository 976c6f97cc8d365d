"""`z10 fleet decode` on a synthetic fleet: values, layout, metadata, damage, restarts, kills."""

from __future__ import annotations

import io
import json
import math
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from fleet_helpers import BUS_MAP, KillOnce, reference_by_van

SAMPLE_ROWS = 150


def _table(out: Path, van: str, message: str) -> Any:
    table = ds.dataset(str(out / f"van={van}" / f"message={message}"), format="parquet").to_table()
    return table.take(np.argsort(table.column("timestamp").to_numpy(), kind="stable"))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_decoded_values_equal_cantools(fleet, decoded, z10_db):
    out = decoded["out"]
    reference = reference_by_van(fleet)
    checked = 0
    for van, messages in reference.items():
        for name, rows in messages.items():
            table = _table(out, van, name)
            assert table.num_rows == len(rows), f"{van}/{name}"
            ts = table.column("timestamp").to_numpy()
            assert np.array_equal(ts, np.array([r[0] for r in rows])), f"{van}/{name} timestamps"
            buses = table.column("bus").to_pylist()
            signals = [s.name for s in z10_db.get_message_by_name(name).signals]
            step = max(1, len(rows) // SAMPLE_ROWS)
            columns = {s: table.column(s).to_numpy() for s in signals}
            for i in range(0, len(rows), step):
                t, bus, values = rows[i]
                assert buses[i] == bus
                for s in signals:
                    assert _same(float(columns[s][i]), values.get(s, math.nan)), f"{van}/{name} row {i} {s}"
                checked += 1
    assert checked > 1000
    # the multiplexed cell messages have NaN wherever a page does not carry a signal
    cells = _table(out, "van01", "BMS_CellVoltages").to_pandas()
    assert cells["BMS_CellVoltage001"].isna().any() and cells["BMS_CellVoltage001"].notna().any()


def test_partitioned_by_van_and_message(fleet, decoded):
    out = decoded["out"]
    reference = reference_by_van(fleet)
    vans = sorted(p.name for p in out.iterdir() if p.name.startswith("van="))
    assert vans == [f"van={v}" for v in sorted(reference)]
    for van, messages in reference.items():
        found = sorted(p.name for p in (out / f"van={van}").iterdir())
        assert found == sorted(f"message={m}" for m in messages)
        for part in (out / f"van={van}").rglob("*"):
            if part.is_file():
                assert part.name.startswith("part-") and part.name.endswith(".parquet")
    import pandas as pd

    df = pd.read_parquet(out / "van=van02" / "message=VCU_Status")
    assert df["timestamp"].dtype == np.float64 and df["VCU_VehicleSpeed"].dtype == np.float64
    assert set(df["bus"].astype(str)) == {"pt"}
    # one message over every van, with the van as a column (hive partition)
    from vehicle_io.fleet.summary import message_dataset

    both = message_dataset(out, "VCU_Status").to_table().to_pandas()
    assert sorted(both["van"].unique()) == sorted(v for v in reference if "VCU_Status" in reference[v])
    assert len(both) == sum(len(reference[v]["VCU_Status"]) for v in reference if "VCU_Status" in reference[v])


def test_schema_metadata_keeps_units_and_choices(decoded, z10_db):
    out = decoded["out"]
    part = next((out / "van=van01" / "message=VCU_Status").glob("part-*.parquet"))
    schema = pq.read_schema(part)
    msg = z10_db.get_message_by_name("VCU_Status")
    assert schema.metadata[b"z10.message"] == b"VCU_Status"
    assert int(schema.metadata[b"z10.frame_id"], 16) == msg.frame_id
    gear = msg.get_signal_by_name("VCU_Gear")
    stored = json.loads(schema.field("VCU_Gear").metadata[b"choices"])
    assert {int(k): v for k, v in stored.items()} == {int(k): str(v) for k, v in gear.choices.items()}
    assert schema.field("VCU_VehicleSpeed").metadata[b"unit"].decode() == msg.get_signal_by_name("VCU_VehicleSpeed").unit
    assert schema.field("VCU_Gear").type == "double"  # enums stay numeric
    from vehicle_io.fleet.schema import FORMAT_VERSION

    assert schema.metadata[b"z10.format"] == FORMAT_VERSION.encode()
    # never null: a signal a frame does not carry is NaN (see the BMS_CellVoltages check)
    assert [f.name for f in schema if f.nullable] == []
    assert [f.name for f in schema][2:] == [s.name for s in msg.signals]


def test_one_part_per_message_and_chunk(decoded):
    """Every part file is claimed by exactly one chunk marker, and a chunk writes one part per
    message it saw, in that message's folder of the chunk's van."""
    out = decoded["out"]
    claimed: list[str] = []
    for marker_file in (out / "_manifest").glob("*.json"):
        marker = json.loads(marker_file.read_text())
        expected = sorted(f"van={marker['van']}/message={m}/part-{marker['key']}.parquet"
                          for m, rows in marker["messages"].items() if rows)
        assert sorted(marker["parts"]) == expected
        for rel in marker["parts"]:
            meta = pq.read_metadata(out / rel)
            assert meta.num_rows == marker["messages"][rel.split("message=")[1].split("/")[0]]
        claimed += marker["parts"]
        # the stage timings tools/bench_fleet.py adds up cover the chunk's time
        stages = marker["stage_seconds"]
        assert set(stages) == {"read", "decode", "write"} and min(stages.values()) >= 0
        assert abs(sum(stages.values()) - marker["seconds"]) <= 0.0005
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert sorted(claimed) == found and len(set(claimed)) == len(claimed)


def test_write_part_makes_its_folder_and_leaves_no_temp(tmp_path):
    import pyarrow as pa

    from vehicle_io.fleet.worker import _write_part

    table = pa.table({"timestamp": [1.0, 2.0], "x": [0.5, float("nan")]})
    target = tmp_path / "van=v" / "message=M" / "part-a.parquet"
    _write_part(target, table)
    _write_part(target, table.slice(1))  # a repeated chunk replaces its own part
    assert pq.read_table(target).to_pandas().equals(table.slice(1).to_pandas())
    assert [p.name for p in target.parent.iterdir()] == ["part-a.parquet"]
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):  # its folder cannot be made: the error, and no temp file
        _write_part(tmp_path / "file" / "x" / "part-b.parquet", table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "van=v"]


def test_local_cluster_workers_keep_chunk_memory(cluster):
    """The LocalCluster's workers run with the glibc settings of job.WORKER_MALLOC_ENV, not
    Dask's 64 KiB trim threshold (which makes every chunk fault in fresh pages)."""
    from vehicle_io.fleet.job import WORKER_MALLOC_ENV

    seen = cluster.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
    assert len(seen) == 2 and all(env == WORKER_MALLOC_ENV for env in seen.values())


def test_damaged_files_reported_and_the_rest_done(fleet, decoded):
    report = decoded["report"]
    assert report["failed_files"] == [fleet["cut"]]
    cut_problems = [p for p in report["problems"] if p["file"] == fleet["cut"]]
    assert len(cut_problems) == 1 and "truncated" in cut_problems[0]["reason"]
    assert cut_problems[0]["offset"] == os.path.getsize(fleet["cut"])
    noisy = [p for p in report["problems"] if p["file"] == fleet["noisy"]]
    text = Path(fleet["noisy"]).read_bytes().split(b"\n")
    expected_lines = [i + 1 for i, line in enumerate(text)
                      if line and not line.startswith(b"(") or b"NOT-HEX" in line or line.endswith(b"#12345")]
    assert sorted(p["line"] for p in noisy) == expected_lines
    assert len(expected_lines) == fleet["junk_lines"]
    for p in noisy:  # the offset points at the line
        assert Path(fleet["noisy"]).read_bytes()[p["offset"]:].split(b"\n")[0] == text[p["line"] - 1]
    entry = {f["file"]: f for f in report["files"]}
    assert entry[fleet["noisy"]]["bad_lines"] == fleet["junk_lines"]
    assert report["totals"]["chunks_failed"] == 0
    assert entry[fleet["noisy"]]["chunks"] > 1  # the line numbers above crossed a chunk boundary
    for path, (_per_message, records) in fleet["reference"].items():
        if path not in (fleet["noisy"],):
            assert entry[path]["frames"] == records


def test_no_temp_or_partial_files(decoded):
    out = decoded["out"]
    for path in out.rglob("*"):
        assert not path.name.startswith("."), path
        if path.suffix == ".parquet":
            assert pq.read_metadata(path).num_rows > 0
    assert sum(1 for _ in (out / "_manifest").glob("*.json")) == decoded["report"]["totals"]["chunks"]


def _snapshot(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*.parquet")}


def test_rerun_skips_done_chunks_and_redoes_a_changed_file(fleet, cluster, tmp_path):
    from vehicle_io.fleet import decode_fleet

    src = tmp_path / "logs"
    for van in ("van01", "van03"):
        (src / van).mkdir(parents=True)
        for f in (fleet["root"] / van).iterdir():
            (src / van / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "ds"
    first = decode_fleet([str(src)], out, client=cluster, chunk_mib=0.05, bus_map=BUS_MAP)
    before = _snapshot(out)
    again = decode_fleet([str(src)], out, client=cluster, chunk_mib=0.05, bus_map=BUS_MAP)
    assert again["totals"]["chunks_skipped"] == again["totals"]["chunks"] == first["totals"]["chunks"]
    assert _snapshot(out) == before
    assert again["problems"] == first["problems"] and again["totals"]["rows"] == first["totals"]["rows"]
    # one file shrinks to its first 10 lines: its chunks are redone, its old parts go
    changed = src / "van01" / "drive_a.log"
    changed.write_text("".join(changed.read_text().splitlines(keepends=True)[:10]))
    third = decode_fleet([str(src)], out, client=cluster, chunk_mib=0.05, bus_map=BUS_MAP)
    assert third["totals"]["chunks"] - third["totals"]["chunks_skipped"] == 1
    entry = {f["file"]: f for f in third["files"]}
    assert entry[str(changed.resolve())]["rows"] == 10
    rows = sum(pq.read_metadata(p).num_rows for p in out.rglob("part-*.parquet"))
    assert rows == third["totals"]["rows"]
    # other settings (chunk size): everything is redone, nothing duplicated
    fourth = decode_fleet([str(src)], out, client=cluster, chunk_mib=1.0, bus_map=BUS_MAP)
    assert fourth["totals"]["chunks_skipped"] == 0
    rows = sum(pq.read_metadata(p).num_rows for p in out.rglob("part-*.parquet"))
    assert rows == fourth["totals"]["rows"] == third["totals"]["rows"]


def test_killed_worker_loses_and_duplicates_nothing(fleet, cluster, decoded, tmp_path):
    from vehicle_io.fleet import decode_fleet
    from vehicle_io.fleet.plan import file_key

    victim = (fleet["root"] / "van01" / "drive_a.log").resolve()
    key = f"{file_key(victim)}-00001"
    flag = tmp_path / "killed"
    cluster.register_plugin(KillOnce(str(flag), key), name=f"kill-{tmp_path.name}")
    out = tmp_path / "ds"
    report = decode_fleet([str(fleet["root"])], out, client=cluster, chunk_mib=0.05, bus_map=BUS_MAP)
    assert flag.exists(), "the worker was not killed"
    killed_pid = int(flag.read_text())
    marker = json.loads((out / "_manifest" / f"{key}.json").read_text())
    assert marker["worker_pid"] != killed_pid  # done again by another worker process
    assert report["totals"]["chunks_failed"] == 0
    assert report["totals"]["rows"] == decoded["report"]["totals"]["rows"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    reference = decoded["out"]
    assert sorted(_snapshot(out)) == sorted(_snapshot(reference))
    for rel in _snapshot(out):
        got, want = pq.read_table(out / rel), pq.read_table(reference / rel)
        assert got.schema.equals(want.schema, check_metadata=True), rel
        assert got.to_pandas().equals(want.to_pandas()), rel  # NaN-aware, unlike Table.equals


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tcp://localhost:1",
                                     "tcp://[::1]:8786", "tls://127.0.0.2:9"])
def test_loopback_scheduler_addresses_accepted(address):
    from vehicle_io.fleet import check_loopback

    assert check_loopback(address) == address


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "192.168.1.2:8786", "tcp://0.0.0.0:8786",
                                     "tcp://example.com:8786", "tcp://[2001:db8::1]:8786", "ucx://127.0.0.1:1"])
def test_non_loopback_scheduler_refused(address, monkeypatch, tmp_path):
    from vehicle_io import cli
    from vehicle_io.fleet import FleetError, check_loopback

    with pytest.raises(FleetError, match="expected"):
        check_loopback(address)
    monkeypatch.setitem(cli.COMMANDS, "fleet", "vehicle_io.cli.fleet_cmd")
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["fleet", "decode", str(tmp_path), "--out", str(tmp_path / "o"), "--scheduler", address])
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --scheduler") and address in lines[0]
    assert not (tmp_path / "o").exists()


def test_cli_decode_and_summary(fleet, cluster, decoded, monkeypatch, tmp_path):
    from vehicle_io import cli
    from vehicle_io.fleet import summarize

    monkeypatch.setitem(cli.COMMANDS, "fleet", "vehicle_io.cli.fleet_cmd")
    args = ["fleet", "decode", str(fleet["root"]), "--out", str(tmp_path / "ds"), "--scheduler",
            cluster.scheduler.address, "--chunk-mib", "0.05", "--json", "--quiet"]
    for item in BUS_MAP.items():
        args += ["--map", "=".join(item)]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(args)
    assert code == 1  # done, but the cut BLF could not be read to its end
    report = json.loads(out.getvalue())
    assert report["failed_files"] == [fleet["cut"]]
    assert report["totals"]["rows"] == decoded["report"]["totals"]["rows"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["fleet", "summary", str(tmp_path / "ds"), "--json"]) == 0
    assert json.loads(out.getvalue()) == json.loads(json.dumps(summarize(decoded["out"])))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["fleet", "summary", str(tmp_path / "ds")]) == 0
    assert all(van in out.getvalue() for van in ("van01", "van02", "van03", "van04"))
    err = io.StringIO()
    with redirect_stderr(err):
        assert cli.main(["fleet", "summary", str(tmp_path / "missing")]) == 2
    assert err.getvalue().startswith("error: ") and len(err.getvalue().strip().splitlines()) == 1

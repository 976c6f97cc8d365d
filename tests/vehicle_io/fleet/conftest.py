"""Fixtures of the fleet tests: a synthetic fleet of logs, a 2-worker Dask cluster, one decode."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("distributed", reason="z10 fleet needs the fleet extra (dask[distributed])")
pytest.importorskip("pyarrow", reason="z10 fleet needs the fleet extra (pyarrow)")

from fleet_helpers import (  # noqa: E402
    BUS_MAP,
    record_rig,
    record_scenario,
    reference_decode,
    to_messages,
    write_log,
)

T0 = {"van01": 1_700_000_000.0, "van02": 1_700_100_000.0, "van03": 1_700_200_000.0, "van04": 1_700_300_000.0}
JUNK_LINES = ["this is not a frame", "(1700200003.000000) pt 0C0#NOT-HEX", "\x00\x17garbage\xff"]


@pytest.fixture(scope="session")
def z10_db() -> Any:
    from vehicle_io import load_database

    return load_database()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, z10_db: Any) -> dict[str, Any]:
    """Four vans of logs (.log, .asc, .blf, .log.gz), junk lines in one, one truncated BLF.

    Returns the fleet directory, the reference decode of every file ({file: (per message
    rows, records)}) and the names of the deliberately damaged files.
    """
    root = tmp_path_factory.mktemp("fleet")
    logs = root / "logs"
    clean = root / "clean"  # undamaged copies, for the reference only
    # van01: a drive with a door opened at speed (ILK_DOOR_OPEN), split into .log + .asc
    door = to_messages(record_scenario("door_open_at_speed", 3, 7.0, 5.0, 6.0), T0["van01"])
    half = len(door) // 2
    write_log(logs / "van01" / "drive_a.log", door[:half])
    write_log(logs / "van01" / "drive_b.asc", door[half:])
    # van02: an e-stop (ILK_ESTOP), as .blf
    estop = to_messages(record_scenario("estop", 11, 6.0, 4.0, 5.0), T0["van02"])
    write_log(logs / "van02" / "drive.blf", estop)
    # van03: the van standing (no gateway): .log.gz, then a .log with junk lines in it
    idle = to_messages(record_rig(5, 6.0), T0["van03"])
    cut = len(idle) * 2 // 3
    write_log(clean / "idle.log", idle[:cut])
    (logs / "van03").mkdir(parents=True)
    with open(clean / "idle.log", "rb") as src, gzip.open(logs / "van03" / "idle.log.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    write_log(clean / "noisy.log", idle[cut:])
    lines = (clean / "noisy.log").read_text().splitlines(keepends=True)
    for k, junk in enumerate(JUNK_LINES):
        lines.insert(100 + 400 * k, junk + "\n")
    lines.append("(1700200009.999999) pt 0C0#12345")  # truncated last line: half a byte, no newline
    (logs / "van03" / "noisy.log").write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
    # van04: a BLF cut in the middle (a recorder that lost power)
    write_log(clean / "cut.blf", to_messages(record_rig(9, 3.0), T0["van04"]))
    data = (clean / "cut.blf").read_bytes()
    (logs / "van04").mkdir()
    (logs / "van04" / "cut.blf").write_bytes(data[: len(data) * 6 // 10])

    reference = {}
    for path in sorted(logs.rglob("*")):
        if path.is_file():
            source = clean / path.name if path.name == "noisy.log" else path
            reference[str(path.resolve())] = reference_decode(source, z10_db)
    return {"root": logs, "reference": reference, "noisy": str((logs / "van03" / "noisy.log").resolve()),
            "cut": str((logs / "van04" / "cut.blf").resolve()), "junk_lines": len(JUNK_LINES) + 1}


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A client of the LocalCluster `z10 fleet decode` starts (2 workers)."""
    from vehicle_io.fleet.job import dask_client

    with dask_client(workers=2) as client:
        yield client


@pytest.fixture(scope="session")
def decoded(fleet: dict[str, Any], cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from vehicle_io.fleet import decode_fleet

    out = tmp_path_factory.mktemp("dataset") / "ds"
    report = decode_fleet([str(fleet["root"])], out, client=cluster, chunk_mib=0.05, bus_map=BUS_MAP)
    return {"out": out, "report": report}

"""Golden output of `z10 diag scan` and `z10 diag read-did` against the live simulated van
(in-process hilbus, as `z10 sim` serves it). Regenerate with Z10_REGEN_GOLDEN=1 (see
tests/vehicle_io/cli/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vehicle_io.cli import main

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "cli" / "golden"


def _golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get("Z10_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
        return
    assert text == path.read_text(encoding="utf-8"), f"output differs from {path}"


def _masked(text: str, live_van) -> str:
    return text.replace(live_van.prefix, "<van>-")


@pytest.mark.parametrize("argv, name", [
    (["diag", "scan", "--bus", "pt"], "diag_scan_pt"),
    (["diag", "scan", "--bus", "pt", "--json"], "diag_scan_pt_json"),
    (["diag", "read-did", "--ecu", "vcu", "0xF190", "0xF195"], "diag_read_did_vcu"),
])
def test_diag_output_golden(live_van, capsys, argv, name) -> None:
    assert main([*argv, *live_van.bus_args("pt")]) == 0
    _golden(name, _masked(capsys.readouterr().out, live_van))

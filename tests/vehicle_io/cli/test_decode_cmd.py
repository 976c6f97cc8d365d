"""`z10 decode`: candump lines in, cantools-equal values out, bad lines reported not fatal."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from vehicle_io import cli, load_database


def _lines() -> list[str]:
    db = load_database()
    soc = db.get_message_by_name("CBC_CompartmentWeights")
    data = soc.encode({f"CBC_Weight{i}": 12.5 * i for i in range(1, 7)})
    cells = db.get_message_by_name("BMS_CellVoltages")
    mux = next(s for s in cells.signals if s.is_multiplexer)
    page0 = {s.name: 3.7 for s in cells.signals if s.multiplexer_ids and 0 in s.multiplexer_ids}
    cell_data = cells.encode({mux.name: 0, **page0}, strict=False)
    return [
        f"(1.000000) body {soc.frame_id:03X}#{data.hex().upper()}",
        "this is not a frame",
        f"(2.000000) pt {cells.frame_id:03X}#{cell_data.hex().upper()}",
        "(3.000000) pt 3FF#00",
        f"(4.000000) body {soc.frame_id:03X}#0011",
    ]


def test_json_output_matches_cantools(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(_lines()) + "\n"))
    assert cli.main(["decode", "--json"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    db = load_database()
    assert [r["message"] for r in records] == ["CBC_CompartmentWeights", "BMS_CellVoltages"]
    for record, line in zip(records, (_lines()[0], _lines()[2])):
        can_id, payload = line.split()[-1].split("#")
        expected = db.decode_message(int(can_id, 16), bytes.fromhex(payload), decode_choices=False)
        got = {k: v for k, v in record["signals"].items() if v is not None}
        assert got == pytest.approx({k: float(v) for k, v in expected.items()})
    assert "<stdin>:2: expected '(SECS) IFACE ID#DATA'" in captured.err
    assert "<stdin>:5: frame shorter than its message needs" in captured.err
    assert "5 frames" not in captured.err and "4 frames: 2 decoded (0 of them with a bad multiplexer), 1 unknown id, 1 too short" in captured.err


def test_text_output_as_subprocess() -> None:
    result = subprocess.run([sys.executable, "-m", "vehicle_io", "decode", "--single-line"],
                            input="\n".join(_lines()) + "\n", capture_output=True, text=True, check=True)
    out = result.stdout.splitlines()
    assert len(out) == len(_lines()), "every line comes out, in order, as cantools decode prints them"
    assert out[0].endswith("CBC_CompartmentWeights(CBC_Weight1: 12.5 kg, CBC_Weight2: 25.0 kg, CBC_Weight3: "
                           "37.5 kg, CBC_Weight4: 50.0 kg, CBC_Weight5: 62.5 kg, CBC_Weight6: 75.0 kg)")
    assert out[1] == "this is not a frame"
    assert "BMS_CellVoltage001: 3.7 V" in out[2] and "BMS_CellVoltage005" not in out[2], "page 0 only"
    assert out[3] == "(3.000000) pt 3FF#00 :: Unknown frame id 1023 (0x3ff)"
    assert out[4].endswith(" :: Wrong data size: 2 instead of 8 bytes")
    assert "expected '(SECS) IFACE ID#DATA'" in result.stderr


def _console_lines(seed: int) -> list[str]:
    """candump console lines (the format cantools decode reads) of random Z10 frames: every
    message with random payloads, short frames, undefined multiplexer pages, unknown ids,
    blank and foreign lines."""
    import random

    rng = random.Random(seed)
    db = load_database()
    lines = []
    for msg in db.messages:
        for _ in range(3):
            # lengths a controller can put on the wire (CAN FD: 12, 16, 20, 24, 32, 48, 64)
            n = msg.length if rng.random() < 0.8 else rng.choice(
                [k for k in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48) if k < msg.length])
            data = bytes(rng.randrange(256) for _ in range(n))
            can_id = f"{msg.frame_id:08X}" if msg.is_extended_frame else f"{msg.frame_id:03X}"
            lines.append(f"  vcan0  {can_id}   [{n}]  {' '.join(f'{b:02X}' for b in data)}".rstrip())
    lines += ["  vcan0  3FF   [1]  00", "", "some other text", "  vcan0  120   [8]  FF 00 00 00 00 00 00 00"]
    rng.shuffle(lines)
    return lines


@pytest.mark.parametrize("single_line", [False, True])
def test_console_lines_print_exactly_as_cantools_decode(single_line: bool, tmp_path) -> None:
    dbc_dir = tmp_path / "dbc"
    dbc_dir.mkdir()
    # cantools decode reads one DBC file: the pt and body sets are disjoint, ads frames are FD.
    from pathlib import Path

    import vehicle_io

    bundled = Path(vehicle_io.__file__).resolve().parent.parent / "dbc"
    for name in ("z10_pt.dbc", "z10_body.dbc"):
        dbc = bundled / name
        text = "\n".join(_console_lines(len(name)))
        flags = ["-s"] if single_line else []
        ours = subprocess.run([sys.executable, "-m", "vehicle_io", "decode", "--dbc", str(dbc), *flags],
                              input=text + "\n", capture_output=True, text=True, check=True)
        theirs = subprocess.run([sys.executable, "-m", "cantools", "decode", *flags, str(dbc)],
                                input=text + "\n", capture_output=True, text=True, check=True)
        assert ours.stdout == theirs.stdout, name


def test_64_bit_values_beyond_float_precision_print_as_floats(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2**64 - 1 decodes to the float64 1.8446744073709552e+19: printing it as the integer
    # 18446744073709551616 would claim a precision the value does not have.
    dbc = tmp_path / "wide.dbc"
    dbc.write_text('VERSION ""\n\nBU_: A\n\nBO_ 1 Wide: 8 A\n SG_ Wide_Serial : 0|64@1+ (1,0) '
                   '[0|18446744073709551615] "" A\n')
    log = tmp_path / "wide.log"
    log.write_text("(1.000000) can0 001#FFFFFFFFFFFFFFFF\n(2.000000) can0 001#0500000000000000\n")
    assert cli.main(["decode", "--dbc", str(dbc), "-s", str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("Wide(Wide_Serial: 1.8446744073709552e+19)")
    assert out[1].endswith("Wide(Wide_Serial: 5)")


"""`z10 decode` on foreign DBC files: repeated message names, float NaN/infinity, shared names.

(Kept with the codec tests: these are layouts of real-world files the Z10 set never has.)
"""

from __future__ import annotations

import json
from pathlib import Path

import cantools
import pytest

from vehicle_io import cli

_DBC = """VERSION ""

BU_: A

BO_ 1 Dup: 1 A
 SG_ a : 0|8@1+ (1,0) [0|0] "" A

BO_ 2 Dup: 1 A
 SG_ b : 0|8@1+ (1,0) [0|0] "" A

BO_ 200 Flt: 4 A
 SG_ f : 0|32@1- (0.5,10) [0|0] "" A

BO_ 206 Shared: 3 A
 SG_ M M : 0|8@1+ (1,0) [0|0] "" A
 SG_ v m1 : 8|8@1+ (1,0) [0|0] "" A
 SG_ v m2 : 16|8@1+ (1,0) [0|0] "" A

SIG_VALTYPE_ 200 f : 1;
"""

_LOG = """(1.000000) can0 001#05
(2.000000) can0 002#07
(3.000000) can0 0C8#0000807F
(4.000000) can0 0C8#0000C07F
(5.000000) can0 0CE#010506
(6.000000) can0 0CE#020506
(7.000000) can0 0CE#030506
"""


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    dbc = tmp_path / "foreign.dbc"
    dbc.write_text(_DBC)
    log = tmp_path / "foreign.log"
    log.write_text(_LOG)
    return dbc, log


def test_text_output(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    dbc, log = files
    assert cli.main(["decode", "--dbc", str(dbc), "-s", str(log)]) == 0
    out = [line.split(" :: ")[1] for line in capsys.readouterr().out.splitlines()]
    # The second "Dup" is a different message: both print their own signals.
    assert out[:2] == ["Dup(a: 5)", "Dup(b: 7)"]
    assert out[2:4] == ["Flt(f: inf)", "Flt(f: nan)"]  # present, not "-" (absent)
    # One column for both "v" signals: present when either branch is selected; an undefined
    # multiplexer value gets cantools decode's own words.
    assert out[4:6] == ["Shared(M: 1, v: 5)", "Shared(M: 2, v: 6)"]
    assert out[6] == "expected multiplexer id 1 or 2, but got 3"


def test_json_output_is_standard_json_equal_to_cantools(files: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    dbc, log = files
    assert cli.main(["decode", "--dbc", str(dbc), "--json", str(log)]) == 0
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
               for line in capsys.readouterr().out.splitlines()]
    db = cantools.database.load_file(str(dbc))
    for record, line in zip(records, _LOG.splitlines()):
        can_id, payload = line.split()[-1].split("#")
        try:
            expected = db.decode_message(int(can_id, 16), bytes.fromhex(payload),
                                         decode_choices=False)
        except cantools.database.DecodeError:
            expected = {"M": 3}  # undefined multiplexer value: cantools stops there
        for name, value in record["signals"].items():
            if name not in expected:
                assert value is None
            elif isinstance(value, str):
                assert value == repr(float(expected[name]))
            else:
                assert value == float(expected[name])
    assert [r["message"] for r in records[:2]] == ["Dup", "Dup@0x2"]
    assert records[2]["signals"] == {"f": "inf"} and records[3]["signals"] == {"f": "nan"}


def test_an_undecodable_message_is_a_warning_that_says_why(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    dbc = tmp_path / "overlap.dbc"
    dbc.write_text('VERSION ""\n\nBU_: A\n\nBO_ 5 Bad: 4 A\n SG_ a : 0|16@1+ (1,0) [0|0] "" A\n'
                   ' SG_ b : 8|16@1+ (1,0) [0|0] "" A\n')
    log = tmp_path / "overlap.log"
    log.write_text("(1.000000) can0 005#01020304\n")
    assert cli.main(["decode", "--dbc", str(dbc), str(log)]) == 2  # strict, as cantools
    assert 'overlap.dbc:7: The signals b and a are overlapping' in capsys.readouterr().err
    assert cli.main(["decode", "--no-strict", "--dbc", str(dbc), str(log)]) == 0
    err = capsys.readouterr().err
    assert 'overlap.log:1: message not decodable: Bad: signals "a" and "b" overlap' in err
    assert "1 frames: 0 decoded" in err and "1 undecodable" in err


def test_a_frame_selecting_an_undecodable_branch_shows_the_rest(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    dbc = tmp_path / "branch.dbc"
    dbc.write_text('VERSION ""\n\nBU_: A\n\nBO_ 106 Ov: 8 A\n SG_ M M : 0|8@1+ (1,0) [0|0] "" A\n'
                   ' SG_ x m1 : 8|16@1+ (1,0) [0|0] "" A\n SG_ y m1 : 16|16@1+ (1,0) [0|0] "" A\n'
                   ' SG_ z m2 : 8|8@1+ (1,0) [0|0] "" A\n')
    log = tmp_path / "branch.log"
    log.write_text("(1.000000) can0 06A#0105060708000000\n(2.000000) can0 06A#0209000000000000\n")
    assert cli.main(["decode", "--no-strict", "--dbc", str(dbc), "-s", str(log)]) == 0
    captured = capsys.readouterr()
    out = [line.split(" :: ")[1] for line in captured.out.splitlines()]
    # The broken branch: what cantools decode says of it; the other branch decodes.
    db = cantools.database.load_file(str(dbc), strict=False)
    with pytest.raises(cantools.database.DecodeError) as err:
        db.get_message_by_name("Ov").decode_simple(bytes.fromhex("0105060708000000"), decode_choices=True)
    assert out == [str(err.value), "Ov(M: 2, z: 9)"]
    assert "branch.log:1: Ov: the multiplexer branch this frame selects is one cantools cannot" \
        in captured.err
    assert "branch.log:2" not in captured.err

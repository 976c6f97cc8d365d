"""The DBC lint: each rule fires on a crafted bad file, the bundled Z10 set is clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicle_io.cli import main
from vehicle_io.dbc import bundled_dbc_paths
from vehicle_io.dbc_lint import RULES, bit_positions, lint_files

# A small, clean file using the Z10 conventions: one E2E-protected cyclic message, one plain
# cyclic message with an enum, one multiplexed message, one diagnostic frame.
BASE = """VERSION ""

NS_ :

BS_:

BU_: ECU1 ECU2

BO_ 256 Safe: 8 ECU1
 SG_ Safe_CRC : 0|8@1+ (1,0) [0|255] "" ECU2
 SG_ Safe_Counter : 8|4@1+ (1,0) [0|14] "" ECU2
 SG_ Safe_Speed : 16|16@1+ (0.01,0) [0|250] "km/h" ECU2

BO_ 512 Plain: 8 ECU2
 SG_ Plain_Temp : 0|8@1+ (1,-40) [-40|215] "degC" ECU1
 SG_ Plain_State : 8|2@1+ (1,0) [0|3] "" ECU1

BO_ 768 Muxed: 8 ECU2
 SG_ Muxed_Page M : 0|8@1+ (1,0) [0|1] "" ECU1
 SG_ Muxed_A m0 : 8|16@1+ (1,0) [0|100] "" ECU1
 SG_ Muxed_B m1 : 8|16@1+ (1,0) [0|100] "" ECU1

BO_ 2015 DiagReq: 8 ECU1

CM_ BO_ 256 "Protected message.";
BA_DEF_ "BusName" STRING ;
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_ BO_ "GenMsgSendType" ENUM "Cyclic","Event","NoMsgSendType";
BA_DEF_ BO_ "SafetyRelevant" ENUM "No","Yes";
BA_DEF_ BO_ "E2E_DataID" INT 0 65535;
BA_DEF_ BO_ "DiagRequest" ENUM "No","Yes";
BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN","reserved","J1939PG","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","StandardCAN_FD","ExtendedCAN_FD";
BA_DEF_ SG_ "E2E_Role" ENUM "None","Counter","CRC";
BA_DEF_DEF_ "BusName" "";
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_DEF_DEF_ "GenMsgSendType" "NoMsgSendType";
BA_DEF_DEF_ "SafetyRelevant" "No";
BA_DEF_DEF_ "E2E_DataID" 0;
BA_DEF_DEF_ "DiagRequest" "No";
BA_DEF_DEF_ "VFrameFormat" "StandardCAN";
BA_DEF_DEF_ "E2E_Role" "None";
BA_ "BusName" "fixture";
BA_ "GenMsgSendType" BO_ 256 0;
BA_ "GenMsgCycleTime" BO_ 256 10;
BA_ "SafetyRelevant" BO_ 256 1;
BA_ "E2E_DataID" BO_ 256 4660;
BA_ "E2E_Role" SG_ 256 Safe_CRC 2;
BA_ "E2E_Role" SG_ 256 Safe_Counter 1;
BA_ "GenMsgSendType" BO_ 512 0;
BA_ "GenMsgCycleTime" BO_ 512 100;
BA_ "GenMsgSendType" BO_ 768 0;
BA_ "GenMsgCycleTime" BO_ 768 100;
BA_ "DiagRequest" BO_ 2015 1;
VAL_ 512 Plain_State 3 "Init" 2 "Error" 1 "On" 0 "Off" ;
"""


def second_file(bus: str, body: str, extra_attrs: str = "") -> str:
    """A second fixture file on bus ``bus`` with the messages in ``body``."""
    head = BASE[: BASE.index("BO_ 256")]
    attrs = BASE[BASE.index("BA_DEF_ ") : BASE.index('BA_ "BusName"')]
    return head + body + "\n" + attrs + f'BA_ "BusName" "{bus}";\n' + extra_attrs


def edit(text: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def codes(report) -> list[str]:
    return sorted(f.code for f in report.findings)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


PLAIN_AT_512 = ' SG_ Other_X : 0|8@1+ (1,0) [0|255] "" ECU1\n'
CYCLIC_512 = 'BA_ "GenMsgSendType" BO_ 512 0;\nBA_ "GenMsgCycleTime" BO_ 512 100;\n'

# code -> (edits to BASE, optional second file (name, text)); each must fire exactly that rule.
CASES: dict[str, list[tuple[list[tuple[str, str]], tuple[str, str] | None]]] = {
    "DBC001": [
        ([(" SG_ Safe_Speed : 16|16", " SG_ Safe_Speed : 10|16")], None),
        ([(" SG_ Muxed_B m1 :", " SG_ Muxed_B m0 :")], None),
        ([(" SG_ Muxed_A m0 : 8|16", " SG_ Muxed_A m0 : 4|16")], None),  # with the mux itself
    ],
    "DBC002": [
        ([(" SG_ Plain_State : 8|2@1+", " SG_ Plain_State : 63|2@1+")], None),
        ([(" SG_ Plain_State : 8|2@1+", " SG_ Plain_State : 56|2@0+")], None),  # Motorola
    ],
    "DBC003": [([('BA_ "GenMsgCycleTime" BO_ 512 100;\n', "")], None)],
    "DBC004": [([('BA_ "DiagRequest" BO_ 2015 1;', 'BA_ "DiagRequest" BO_ 2015 1;\nBA_ "GenMsgCycleTime" BO_ 2015 100;')], None)],
    "DBC005": [
        ([], ("same_bus.dbc", second_file("fixture", "BO_ 512 Other: 8 ECU1\n" + PLAIN_AT_512, CYCLIC_512))),
        ([("BO_ 2015 DiagReq: 8 ECU1", "BO_ 2015 DiagReq: 8 ECU1\n\nBO_ 512 Other: 8 ECU1\n" + PLAIN_AT_512)], None),
    ],
    "DBC006": [([], ("other_bus.dbc", second_file("other", "BO_ 512 Other: 8 ECU1\n" + PLAIN_AT_512, CYCLIC_512)))],
    "DBC007": [([], ("other_bus.dbc", second_file("other", "BO_ 1536 Plain: 8 ECU1\n" + PLAIN_AT_512, 'BA_ "GenMsgSendType" BO_ 1536 0;\nBA_ "GenMsgCycleTime" BO_ 1536 100;\n')))],
    "DBC008": [([(" SG_ Muxed_A m0 :", " SG_ Plain_Temp m0 :")], None)],
    "DBC009": [
        ([('BA_ "E2E_Role" SG_ 256 Safe_Counter 1;\n', "")], None),
        ([(" SG_ Safe_Counter : 8|4", " SG_ Safe_Counter : 12|4")], None),
        ([(" SG_ Safe_Counter : 8|4@1+ (1,0) [0|14]", " SG_ Safe_Counter : 8|4@1- (1,0) [0|7]")], None),
        ([(' SG_ Safe_Speed : 16|16@1+ (0.01,0) [0|250] "km/h" ECU2', ' SG_ Safe_Speed : 16|16@1+ (0.01,0) [0|250] "km/h" ECU2\n SG_ Safe_Extra : 12|4@1+ (1,0) [0|15] "" ECU2'),
          ('BA_ "E2E_Role" SG_ 256 Safe_Counter 1;', 'BA_ "E2E_Role" SG_ 256 Safe_Counter 1;\nBA_ "E2E_Role" SG_ 256 Safe_Extra 1;')], None),
    ],
    "DBC010": [
        ([('BA_ "E2E_Role" SG_ 256 Safe_CRC 2;\n', "")], None),
        ([(" SG_ Safe_CRC : 0|8@1+", " SG_ Safe_CRC : 7|8@0+")], None),  # same bits, Motorola
    ],
    "DBC011": [([('BA_ "E2E_DataID" BO_ 256 4660;\n', "")], None)],
    "DBC012": [
        ([], ("other_bus.dbc", second_file(
            "other",
            'BO_ 1536 Safe2: 8 ECU1\n SG_ Safe2_CRC : 0|8@1+ (1,0) [0|255] "" ECU2\n'
            ' SG_ Safe2_Counter : 8|4@1+ (1,0) [0|14] "" ECU2\n',
            'BA_ "GenMsgSendType" BO_ 1536 0;\nBA_ "GenMsgCycleTime" BO_ 1536 10;\n'
            'BA_ "SafetyRelevant" BO_ 1536 1;\nBA_ "E2E_DataID" BO_ 1536 4660;\n'
            'BA_ "E2E_Role" SG_ 1536 Safe2_CRC 2;\nBA_ "E2E_Role" SG_ 1536 Safe2_Counter 1;\n',
        ))),
    ],
    "DBC013": [([('BA_ "SafetyRelevant" BO_ 256 1;\n', "")], None)],
    "DBC014": [([('BA_ "GenMsgSendType" BO_ 256 0;\nBA_ "GenMsgCycleTime" BO_ 256 10;\n', 'BA_ "GenMsgSendType" BO_ 256 1;\n')], None)],
    "DBC015": [([("BO_ 512 Plain: 8 ECU2", "BO_ 512 Plain: 8 Vector__XXX")], None)],
    "DBC016": [
        ([(' [-40|215] "degC" ECU1', ' [-40|215] "degC" ECU9')], None),
        ([("BO_ 512 Plain: 8 ECU2", "BO_ 512 Plain: 8 ECU7")], None),
    ],
    "DBC017": [
        ([("BO_ 512 Plain: 8 ECU2", "BO_ 512 Plain: 12 ECU2")], None),
        ([("BO_ 512 Plain: 8 ECU2", "BO_ 512 Plain: 10 ECU2"), ('BA_ "DiagRequest" BO_ 2015 1;', 'BA_ "DiagRequest" BO_ 2015 1;\nBA_ "VFrameFormat" BO_ 512 14;')], None),
    ],
    "DBC018": [([("[-40|215]", "[215|-40]")], None)],
    "DBC019": [
        ([("[-40|215]", "[-40|300]")], None),
        ([("[-40|215]", "[-41|215]")], None),
    ],
    "DBC020": [([('VAL_ 512 Plain_State 3 "Init"', 'VAL_ 512 Plain_State 4 "Bad" 3 "Init"')], None)],
    "DBC021": [([('(0.01,0) [0|250] "km/h"', '(0.01,0) [0|250] ""')], None)],
    "DBC022": [([('BA_ "BusName" "fixture";\n', "")], None)],
}


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


def test_base_fixture_is_clean(tmp_path: Path) -> None:
    report = lint_files([write(tmp_path, "base.dbc", BASE)])
    assert report.errors == []
    assert report.findings == []


@pytest.mark.parametrize(
    ("code", "edits", "extra"),
    [(code, edits, extra) for code, cases in CASES.items() for edits, extra in cases],
)
def test_rule_fires(tmp_path: Path, code: str, edits, extra) -> None:
    paths = [write(tmp_path, "base.dbc", edit(BASE, *edits))]
    if extra is not None:
        paths.append(write(tmp_path, *extra))
    report = lint_files(paths)
    assert report.errors == []
    assert report.findings, f"{code} did not fire"
    assert {f.code for f in report.findings} == {code}, [str(f) for f in report.findings]
    for finding in report.findings:
        line = str(finding)
        assert "\n" not in line
        assert line.startswith(finding.path)
        assert f" {code} {RULES[code][0]}: " in line
        if finding.message is not None:
            assert f"message {finding.message}" in line
            # The line points at the definition of the message or signal it names.
            source = Path(finding.path).read_text().splitlines()
            assert finding.line is not None
            named = finding.signal or finding.message
            assert named in source[finding.line - 1]


def test_mux_branches_may_share_bits_but_not_with_extended_parents(tmp_path: Path) -> None:
    # Extended multiplexing: Inner (present for Outer=1) selects Leaf_A/Leaf_B. Leaf_A shares
    # bits with Plain (Outer=0) -> exclusive; with Other (Outer=1) -> overlap.
    text = edit(
        BASE,
        (
            "BO_ 2015 DiagReq: 8 ECU1",
            "BO_ 1024 Ext: 8 ECU2\n"
            ' SG_ Ext_Outer M : 0|4@1+ (1,0) [0|1] "" ECU1\n'
            ' SG_ Ext_Plain m0 : 8|16@1+ (1,0) [0|1] "" ECU1\n'
            ' SG_ Ext_Inner m1M : 4|4@1+ (1,0) [0|1] "" ECU1\n'
            ' SG_ Ext_LeafA m0 : 8|8@1+ (1,0) [0|1] "" ECU1\n'
            ' SG_ Ext_LeafB m1 : 8|8@1+ (1,0) [0|1] "" ECU1\n'
            ' SG_ Ext_Other m1 : 12|8@1+ (1,0) [0|1] "" ECU1\n'
            "\nBO_ 2015 DiagReq: 8 ECU1",
        ),
        (
            'BA_ "DiagRequest" BO_ 2015 1;',
            'BA_ "DiagRequest" BO_ 2015 1;\nBA_ "GenMsgSendType" BO_ 1024 0;\n'
            'BA_ "GenMsgCycleTime" BO_ 1024 100;\n'
            "SG_MUL_VAL_ 1024 Ext_Inner Ext_Outer 1-1;\n"
            "SG_MUL_VAL_ 1024 Ext_LeafA Ext_Inner 0-0;\n"
            "SG_MUL_VAL_ 1024 Ext_LeafB Ext_Inner 1-1;\n"
            "SG_MUL_VAL_ 1024 Ext_Other Ext_Outer 1-1;\n"
            "SG_MUL_VAL_ 1024 Ext_Plain Ext_Outer 0-0;",
        ),
    )
    report = lint_files([write(tmp_path, "ext.dbc", text)])
    assert report.errors == []
    pairs = {
        frozenset((f.signal, f.text.split()[2])) for f in report.findings if f.code == "DBC001"
    }
    assert pairs == {frozenset(("Ext_LeafA", "Ext_Other")), frozenset(("Ext_LeafB", "Ext_Other"))}
    assert {f.code for f in report.findings} == {"DBC001"}


def test_bundled_set_is_clean() -> None:
    report = lint_files()
    assert report.errors == []
    assert [str(f) for f in report.findings] == []
    assert len(report.files) == len(bundled_dbc_paths())


def test_unreadable_file_is_an_error_not_a_finding(tmp_path: Path) -> None:
    good = write(tmp_path, "good.dbc", BASE)
    bad = write(tmp_path, "bad.dbc", "BO_ 1 X: 8\n SG_ broken")
    report = lint_files([good, bad, tmp_path / "missing.dbc"])
    assert [e.path for e in report.errors] == [str(bad), str(tmp_path / "missing.dbc")]
    assert report.errors[0].line == 2
    assert report.findings == []


def test_overlap_reaches_the_lint_instead_of_the_parser(tmp_path: Path) -> None:
    path = write(tmp_path, "ovl.dbc", edit(BASE, (" SG_ Safe_Speed : 16|16", " SG_ Safe_Speed : 10|16")))
    with pytest.raises(cantools.database.Error):
        cantools.database.load_file(path, strict=True)
    [finding] = lint_files([path]).findings
    assert finding.signal in {"Safe_Speed", "Safe_Counter"}
    assert "bit(s) 10..11" in finding.text


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 63),
    length=st.integers(1, 32),
    big_endian=st.booleans(),
)
def test_bit_positions_match_cantools_encoding(start: int, length: int, big_endian: bool) -> None:
    # Differential: encoding the all-ones raw value with cantools sets exactly those bits.
    from cantools.database.can import Message, Signal

    signal = Signal("S", start, length, "big_endian" if big_endian else "little_endian")
    positions = bit_positions(signal)
    if any(not 0 <= p < 512 for p in positions):
        return
    size = max(positions) // 8 + 1
    message = Message(1, "M", size, [signal], strict=False)
    data = message.encode({"S": (1 << length) - 1}, scaling=False, strict=False)
    set_bits = {byte * 8 + bit for byte in range(size) for bit in range(8) if data[byte] >> bit & 1}
    assert set(positions) == set_bits
    assert len(positions) == length


# ------------------------------------------------------------------------------ CLI
def test_cli_clean_bundled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dbc", "check"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"{len(bundled_dbc_paths())} file(s), 0 finding(s)"


def test_cli_findings_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.dbc", edit(BASE, ("[-40|215]", "[-40|300]")))
    assert main(["dbc", "check", str(path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:") and " DBC019 range-unreachable: " in lines[0]
    assert "message Plain signal Plain_Temp" in lines[0]
    assert lines[1] == "1 file(s), 1 finding(s)"


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.dbc", edit(BASE, ('BA_ "BusName" "fixture";\n', "")))
    assert main(["dbc", "check", "--json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [str(path)]
    assert report["errors"] == []
    [finding] = report["findings"]
    assert finding["code"] == "DBC022" and finding["rule"] == "no-bus-name"
    assert finding["path"] == str(path)


def test_cli_directory_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.dbc", BASE)
    write(tmp_path, "b.dbc", edit(BASE, ('"fixture"', '"other"')))
    # Same names and ids on a second bus: set-level rules fire across the directory.
    assert main(["dbc", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "DBC006 cross-bus-frame-id" in out and "DBC007 duplicate-message-name" in out
    assert "DBC006 cross-bus-frame-id: message DiagReq" not in out  # diagnostic ids may repeat


def test_cli_unreadable_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "garbage.dbc", "")
    path.write_bytes(b"\x00\x01\x02")
    assert main(["dbc", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:1: binary data" in err


def test_cli_without_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dbc"]) == 2
    assert "check" in capsys.readouterr().err


def test_cli_rules_lists_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dbc", "check", "--rules"]) == 0
    out = capsys.readouterr().out
    for code, (name, _) in RULES.items():
        assert f"{code} {name}:" in out


def test_cli_subprocess_exit_codes(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.dbc", edit(BASE, ("BO_ 512 Plain: 8 ECU2", "BO_ 512 Plain: 8 Vector__XXX")))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    clean = subprocess.run(
        [sys.executable, "-m", "vehicle_io", "dbc", "check"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip().endswith("0 finding(s)")
    dirty = subprocess.run(
        [sys.executable, "-m", "vehicle_io", "dbc", "check", str(bad)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert dirty.returncode == 1
    assert "DBC015 no-sender" in dirty.stdout


_U64 = """VERSION ""

BU_: A B

BO_ 1 Wide: 8 A
 SG_ Wide_Serial : 0|64@1+ (1,0) [0|{hi}] "" B
"""


@pytest.mark.parametrize(("hi", "flagged"), [
    ("1.84467440737096E+019", False),  # 2**64 - 1 as DBC tools write it (15 digits)
    ("18446744073709551615", False),
    ("1.84467440738E+019", True),  # 2**64 + ~9e7: beyond any rounding of the 64-bit raw range
    ("1.85E+019", True),
])
def test_range_of_a_64_bit_signal_tolerates_printed_rounding_only(tmp_path: Path, hi: str, flagged: bool) -> None:
    report = lint_files([write(tmp_path, "wide.dbc", _U64.format(hi=hi))])
    found = [f for f in report.findings if f.rule == "range-unreachable"]
    assert bool(found) is flagged
    for f in found:  # the two ranges print differently: the finding says what is wrong
        expected, got = f.text.split("expected a range within ")[1].split(", but got ")
        assert expected.split(" (")[0] != got


def test_cli_select_and_ignore_by_code_or_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "two.dbc", edit(BASE, ("[-40|215]", "[-40|300]"), ('BA_ "BusName" "fixture";\n', "")))
    assert main(["dbc", "check", str(path)]) == 1
    both = capsys.readouterr().out
    assert " DBC019 " in both and " DBC022 " in both
    assert main(["dbc", "check", "--ignore", "no-bus-name", str(path)]) == 1
    out = capsys.readouterr().out
    assert " DBC019 " in out and " DBC022 " not in out
    assert main(["dbc", "check", "--select", "dbc022", str(path)]) == 1
    out = capsys.readouterr().out
    assert " DBC019 " not in out and " DBC022 " in out
    assert main(["dbc", "check", "--ignore", "DBC019,DBC022", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("1 file(s), 0 finding(s)")


def test_cli_unknown_rule_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dbc", "check", "--ignore", "DBC019,nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --ignore: expected rule codes or names (see --rules), but got 'nonsense'"

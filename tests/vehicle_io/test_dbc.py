"""Loading and merging DBC files: vehicle_io.dbc."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import cantools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vehicle_io
from vehicle_io import DbcError, load_database
from vehicle_io import dbc as dbc_mod
from vehicle_io.dbc import (
    E2EAttributes,
    attribute_value,
    bundled_dbc_dir,
    bundled_dbc_paths,
    cycle_time_s,
    e2e_spec,
    is_diagnostic,
    message_source,
    split_by_bus,
)

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """VERSION ""

BU_: A B

BO_ 256 M1: 8 A
 SG_ M1_X : 0|8@1+ (1,0) [0|255] "" B

BA_DEF_ "BusName" STRING ;
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_ BO_ "GenMsgSendType" ENUM "Cyclic","Event","NoMsgSendType";
BA_DEF_DEF_ "BusName" "";
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_DEF_DEF_ "GenMsgSendType" "NoMsgSendType";
BA_ "BusName" "{bus}";
BA_ "GenMsgSendType" BO_ 256 0;
BA_ "GenMsgCycleTime" BO_ 256 20;
"""

E2E_BASE = """VERSION ""

BU_: A B

BO_ 291 Prot: 8 A
 SG_ Prot_CRC : 0|8@1+ (1,0) [0|255] "" B
 SG_ Prot_Counter : 8|4@1+ (1,0) [0|14] "" B
 SG_ Prot_Value : 16|16@1+ (1,0) [0|65535] "" B

BA_DEF_ BO_ "SafetyRelevant" ENUM "No","Yes";
BA_DEF_ BO_ "E2E_DataID" INT 0 65535;
BA_DEF_ SG_ "E2E_Role" ENUM "None","Counter","CRC";
BA_DEF_DEF_ "SafetyRelevant" "No";
BA_DEF_DEF_ "E2E_DataID" 0;
BA_DEF_DEF_ "E2E_Role" "None";
BA_ "SafetyRelevant" BO_ 291 1;
BA_ "E2E_DataID" BO_ 291 4386;
BA_ "E2E_Role" SG_ 291 Prot_CRC 2;
BA_ "E2E_Role" SG_ 291 Prot_Counter 1;
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------ bundled files
def test_bundled_dir_in_checkout_is_top_level_dbc() -> None:
    assert bundled_dbc_dir() == REPO / "dbc"
    assert [p.name for p in bundled_dbc_paths()] == ["z10_ads.dbc", "z10_body.dbc", "z10_pt.dbc"]


def _fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, wheel: bool, checkout: bool) -> Path:
    package = tmp_path / "site" / "vehicle_io"
    package.mkdir(parents=True)
    if wheel:
        (package / "_dbc").mkdir()
        write(package / "_dbc", "w.dbc", MINIMAL.format(bus="w"))
    if checkout:
        (package.parent / "dbc").mkdir()
        write(package.parent / "dbc", "c.dbc", MINIMAL.format(bus="c"))
    monkeypatch.setattr(dbc_mod, "__file__", str(package / "dbc.py"))
    return package


def test_bundled_dir_prefers_the_package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _fake_package(tmp_path, monkeypatch, wheel=True, checkout=True)
    assert bundled_dbc_dir() == package / "_dbc"
    assert [m.bus_name for m in load_database().messages] == ["w"]


def test_bundled_dir_falls_back_to_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _fake_package(tmp_path, monkeypatch, wheel=False, checkout=True)
    assert bundled_dbc_dir() == package.parent / "dbc"


def test_bundled_dir_missing_is_dbc_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(tmp_path, monkeypatch, wheel=False, checkout=False)
    with pytest.raises(DbcError, match="bundled DBC files not found"):
        bundled_dbc_dir()


def test_package_exports_load_database_lazily() -> None:
    assert vehicle_io.load_database is load_database
    assert vehicle_io.bundled_dbc_paths is bundled_dbc_paths


# ------------------------------------------------------------------------------ merging
def test_bundled_merge_keeps_every_message_with_its_bus(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        db = load_database()
    assert not [r for r in caplog.records if "Overwriting" in r.getMessage()]
    per_file = {
        p.stem: cantools.database.load_file(p, strict=True) for p in bundled_dbc_paths()
    }
    assert len(db.messages) == sum(len(d.messages) for d in per_file.values())
    expected_bus = {"z10_pt": "pt", "z10_body": "body", "z10_ads": "ads"}
    for stem, file_db in per_file.items():
        for message in file_db.messages:
            merged = [m for m in db.messages if m.name == message.name]
            assert len(merged) == 1
            assert merged[0].bus_name == expected_bus[stem]
            assert merged[0].frame_id == message.frame_id
            assert [s.name for s in merged[0].signals] == [s.name for s in message.signals]
    assert {b.name for b in db.buses} == {"pt", "body", "ads"}


def test_functional_diag_id_on_two_buses() -> None:
    db = load_database()
    functional = [m for m in db.messages if m.frame_id == 0x7DF]
    assert sorted(m.bus_name for m in functional) == ["body", "pt"]
    # The later file (sorted: ads, body, pt) wins the frame-id lookup, as documented.
    assert db.get_message_by_frame_id(0x7DF).bus_name == "pt"
    buses = split_by_bus(db)
    assert buses["body"].get_message_by_frame_id(0x7DF).bus_name == "body"
    assert buses["pt"].get_message_by_frame_id(0x7DF).bus_name == "pt"


def test_split_by_bus_partitions_messages(caplog: pytest.LogCaptureFixture) -> None:
    db = load_database()
    with caplog.at_level(logging.WARNING):
        buses = split_by_bus(db)
    assert not caplog.records
    assert set(buses) == {"pt", "body", "ads"}
    seen = [m for sub in buses.values() for m in sub.messages]
    assert len(seen) == len(db.messages)
    assert {id(m) for m in seen} == {id(m) for m in db.messages}
    for name, sub in buses.items():
        assert all(m.bus_name == name for m in sub.messages)
        assert [b.name for b in sub.buses] == [name]
        for message in sub.messages:
            data = bytes(range(1, message.length + 1))
            if not message.is_multiplexed():
                assert sub.decode_message(message.frame_id, data) == message.decode(data)


def test_bus_name_falls_back_to_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "chassis.dbc", MINIMAL.format(bus=""))
    db = load_database(path)
    assert [m.bus_name for m in db.messages] == ["chassis"]


def test_paths_forms_and_deduplication(tmp_path: Path) -> None:
    a = write(tmp_path, "a.dbc", MINIMAL.format(bus="x"))
    b = write(tmp_path, "b.DBC", MINIMAL.replace("256 M1", "512 M2").replace("M1_X", "M2_X")
              .replace("BO_ 256", "BO_ 512").format(bus="y"))
    write(tmp_path, "notes.txt", "not a dbc")
    by_dir = load_database(tmp_path)
    by_list = load_database([str(a), b, a])
    assert sorted(m.name for m in by_dir.messages) == ["M1", "M2"]
    assert sorted(m.name for m in by_list.messages) == ["M1", "M2"]
    assert {m.name: m.bus_name for m in by_list.messages} == {"M1": "x", "M2": "y"}


def test_same_id_on_same_bus_still_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = write(tmp_path, "a.dbc", MINIMAL.format(bus="x"))
    b = write(tmp_path, "b.dbc", MINIMAL.replace("M1", "Q1").format(bus="x"))
    with caplog.at_level(logging.WARNING):
        db = load_database([a, b])
    assert any("identical masked frame ids" in r.getMessage() for r in caplog.records)
    assert len(db.messages) == 2


def test_same_id_on_other_bus_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = write(tmp_path, "a.dbc", MINIMAL.format(bus="x"))
    b = write(tmp_path, "b.dbc", MINIMAL.replace("M1", "Q1").format(bus="y"))
    with caplog.at_level(logging.WARNING):
        db = load_database([a, b])
    assert not caplog.records
    assert sorted(split_by_bus(db)) == ["x", "y"]


def test_bus_objects_carry_bitrates() -> None:
    buses = {b.name: b for b in load_database().buses}
    assert buses["pt"].baudrate == 500_000 and buses["pt"].fd_baudrate is None
    assert buses["body"].baudrate == 500_000
    assert buses["ads"].baudrate == 500_000 and buses["ads"].fd_baudrate == 2_000_000


def test_non_strict_loads_overlaps(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        ' SG_ M1_X : 0|8@1+ (1,0) [0|255] "" B',
        ' SG_ M1_X : 0|8@1+ (1,0) [0|255] "" B\n SG_ M1_Y : 4|8@1+ (1,0) [0|255] "" B',
    ).format(bus="x")
    path = write(tmp_path, "ovl.dbc", text)
    with pytest.raises(DbcError) as info:
        load_database(path)
    assert info.value.line == 7  # the SG_ line of the first signal cantools names
    assert len(load_database(path, strict=False).messages) == 1


# ------------------------------------------------------------------------------ conventions
def test_cycle_time_s() -> None:
    db = load_database()
    assert cycle_time_s(db.get_message_by_name("GW_BrakeCommand")) == pytest.approx(0.010)
    assert cycle_time_s(db.get_message_by_name("BMS_CellTemps")) == pytest.approx(1.0)
    assert cycle_time_s(db.get_message_by_name("DiagReq_VCU")) is None


def test_cycle_time_s_send_types(tmp_path: Path) -> None:
    event = MINIMAL.replace('BA_ "GenMsgSendType" BO_ 256 0;', 'BA_ "GenMsgSendType" BO_ 256 1;')
    assert cycle_time_s(load_database(write(tmp_path, "e.dbc", event.format(bus="x"))).messages[0]) is None
    no_type = "\n".join(line for line in MINIMAL.splitlines() if "GenMsgSendType" not in line)
    message = load_database(write(tmp_path, "n.dbc", no_type.format(bus="x"))).messages[0]
    assert message.send_type is None
    assert cycle_time_s(message) == pytest.approx(0.020)


def test_attribute_value_applies_defaults_and_enum_names() -> None:
    db = load_database()
    cmd = db.get_message_by_name("GW_BrakeCommand")
    status = db.get_message_by_name("MCU_Power")
    assert attribute_value(cmd, "SafetyRelevant") == "Yes"
    assert attribute_value(status, "SafetyRelevant") == "No"  # default
    assert attribute_value(cmd, "GenMsgSendType") == "Cyclic"
    assert attribute_value(cmd, "NoSuchAttribute") is None
    assert attribute_value(cmd.get_signal_by_name("GW_BrakeCommand_CRC"), "E2E_Role") == "CRC"
    assert attribute_value(cmd.get_signal_by_name("GW_BrakeEnable"), "E2E_Role") == "None"
    assert is_diagnostic(db.get_message_by_name("DiagResp_BMS"))
    assert not is_diagnostic(cmd)


def test_e2e_spec_of_bundled_messages() -> None:
    db = load_database()
    spec = e2e_spec(db.get_message_by_name("GW_BrakeCommand"))
    assert spec == E2EAttributes(0x0101, "GW_BrakeCommand_Counter", "GW_BrakeCommand_CRC", 8)
    assert spec.data_id_bytes == b"\x01\x01"
    assert e2e_spec(db.get_message_by_name("ADC_Command")).length == 64
    assert e2e_spec(db.get_message_by_name("BMS_CellVoltages")) is None


def test_e2e_spec_of_fixture(tmp_path: Path) -> None:
    message = load_database(write(tmp_path, "p.dbc", E2E_BASE)).messages[0]
    spec = e2e_spec(message)
    assert spec is not None
    assert (spec.data_id, spec.counter_signal, spec.crc_signal) == (4386, "Prot_Counter", "Prot_CRC")
    assert spec.data_id_bytes == bytes((0x22, 0x11))


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('BA_ "E2E_DataID" BO_ 291 4386;\n', "", "no E2E_DataID"),
        ('BA_ "E2E_Role" SG_ 291 Prot_Counter 1;\n', "", "exactly one signal with E2E_Role=Counter"),
        ('BA_ "E2E_Role" SG_ 291 Prot_CRC 2;\n', 'BA_ "E2E_Role" SG_ 291 Prot_CRC 2;\nBA_ "E2E_Role" SG_ 291 Prot_Value 2;\n',
         "but got Prot_CRC, Prot_Value"),
        ("Prot_Counter : 8|4@1+", "Prot_Counter : 12|4@1+", "4 bits at start bit 8"),
        ("Prot_CRC : 0|8@1+", "Prot_CRC : 7|8@0+", "Intel byte order"),
        ("Prot_CRC : 0|8@1+ (1,0) [0|255]", "Prot_CRC : 0|8@1- (1,0) [-128|127]", "unsigned integer"),
        ("Prot_Counter : 8|4@1+ (1,0)", "Prot_Counter : 8|4@1+ (2,0)", "scale 1 and offset 0"),
        ("BO_ 291 Prot: 8 A", "BO_ 291 Prot: 1 A", "at least 2 bytes"),
    ],
)
def test_e2e_spec_rejects_broken_protection(tmp_path: Path, old: str, new: str, reason: str) -> None:
    assert old in E2E_BASE
    path = write(tmp_path, "p.dbc", E2E_BASE.replace(old, new))
    message = load_database(path, strict=False).messages[0]
    with pytest.raises(DbcError) as info:
        e2e_spec(message)
    assert reason in str(info.value)
    assert info.value.path == str(path)
    assert info.value.line == 5  # the BO_ line
    assert str(info.value).startswith(f"{path}:5: message Prot: ")
    assert message_source(message) == (str(path), 5)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    [
        ("empty.dbc", b"", None, "empty file"),
        ("blank.dbc", b"  \n\n\t\n", None, "empty file"),
        ("nul.dbc", b'VERSION ""\n\nBU_: A\x00B\n', 3, "binary data (NUL byte)"),
        ("enc.dbc", b'VERSION ""\nBU_: A\nCM_ "\x81";\n', 3, "undecodable byte 0x81"),
        ("syntax.dbc", b'VERSION ""\n\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0 [0|1] "" A\n', 5,
         "invalid DBC syntax at column"),
        ("words.dbc", b"hello world\n", 1, "invalid DBC syntax at column 1"),
        ("overlap.dbc", b'VERSION ""\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|1] "" A\n'
         b' SG_ T : 4|8@1+ (1,0) [0|1] "" A\n', 5, "overlapping"),
        ("past.dbc", b'VERSION ""\nBU_: A\nBO_ 1 M: 2 A\n SG_ S : 12|8@1+ (1,0) [0|1] "" A\n', 4,
         "does not fit"),
        ("val.dbc", b'VERSION ""\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|1] "" A\n'
         b'\nVAL_ 7 X 1 "a" ;\n', 6, "unused VAL_ entries"),
        ("attr.dbc", b'VERSION ""\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|1] "" A\n'
         b'BA_ "Nope" BO_ 1 3;\n', 5, "undefined name 'Nope'"),
        ("format.kcd", b"<NetworkDefinition/>", None, "unsupported database format"),
    ],
)
def test_malformed_input_names_file_and_line(
    tmp_path: Path, name: str, content: bytes, line: int | None, reason: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DbcError) as info:
        load_database(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert reason in err.reason
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: " if line else f"{path}: ")
    assert isinstance(err, ValueError)  # DbcError is also a ValueError for plain callers


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(DbcError, match="no such file"):
        load_database(tmp_path / "nope.dbc")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(DbcError, match="found none"):
        load_database(empty_dir)
    with pytest.raises(DbcError, match="at least one DBC file"):
        load_database([])


def test_cp1252_file_loads(tmp_path: Path) -> None:
    text = MINIMAL.format(bus="x").replace('VERSION ""', 'VERSION ""\n\nCM_ "Drehzahl \xb0C";')
    path = write(tmp_path, "latin.dbc", text.encode("cp1252"))
    assert len(load_database(path).messages) == 1


def _outcome(path: Path) -> str:
    try:
        db = load_database(path)
    except DbcError as err:
        assert err.path == str(path)
        assert "\n" not in str(err)
        return "error"
    assert isinstance(db, cantools.database.can.Database)
    return "ok"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_give_database_or_dbc_error(tmp_path: Path, data: bytes) -> None:
    _outcome(write(tmp_path, "random.dbc", data))


_BODY_TEXT = (REPO / "dbc" / "z10_body.dbc").read_text()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.integers(1, 4),
    insert=st.text(alphabet=' \n"|@:;,()[]+-0123456789ABmM_SGBOVAL', max_size=12),
)
def test_mutated_bundled_text_gives_database_or_dbc_error(
    tmp_path: Path, seed: int, cuts: int, insert: str
) -> None:
    rng = random.Random(seed)
    text = _BODY_TEXT
    for _ in range(cuts):
        start = rng.randrange(len(text))
        stop = min(len(text), start + rng.randrange(1, 40))
        text = text[:start] + (insert if rng.random() < 0.5 else "") + text[stop:]
    _outcome(write(tmp_path, "mutated.dbc", text))


# ------------------------------------------------------------------------------ nothing lost
_TWO_CHECKSUMS = """VERSION ""

BU_: A B

BO_ 256 FIRST: 8 A
 SG_ CHECKSUM : 0|8@1+ (1,0) [0|255] "" B
 SG_ COUNTER : 8|4@1+ (1,0) [0|15] "" B

BO_ 257 SECOND: 2 A
 SG_ COUNTER : 0|4@1+ (1,0) [0|15] "" B
 SG_ CHECKSUM : 12|8@1+ (1,0) [0|255] "" B
"""


def test_error_line_of_a_repeated_signal_name_is_inside_the_named_message(tmp_path: Path) -> None:
    # CHECKSUM of SECOND (line 11) runs past its 2 bytes; FIRST's CHECKSUM (line 6) is fine.
    path = write(tmp_path, "two.dbc", _TWO_CHECKSUMS)
    with pytest.raises(DbcError, match="does not fit") as info:
        load_database(path)
    assert info.value.line == 11


def test_a_cut_off_signal_line_is_refused_not_dropped(tmp_path: Path) -> None:
    text = MINIMAL.format(bus="x")
    sg = text.index(" SG_ M1_X")
    # Cut anywhere in the SG_ line: cantools refuses some cuts and reads others as message M1
    # without the signal; the loader refuses them all, naming the line.
    silently_dropped = 0
    for cut in range(sg + len(" SG_ M1_X "), text.index("\n", sg)):
        partial = text[:cut] + "\n"
        plain = cantools.database.can.Database()
        try:
            plain.add_dbc_string(partial)
            silently_dropped += not plain.get_message_by_name("M1").signals
        except Exception:  # noqa: BLE001 - cantools' own refusal
            pass
        path = write(tmp_path, "cut.dbc", partial)
        with pytest.raises(DbcError) as info:
            load_database(path)
        assert info.value.line == partial.count("\n", 0, sg) + 1
    assert silently_dropped > 0  # the case the check exists for was exercised


@pytest.mark.parametrize("cut_after", ['CM_ SG_ 256 M1_X "half a comm', 'BA_ "GenMsgCycleTime" BO_ 256 2',
                                       'VAL_ 256 M1_X 1 "one" 2 "two"'])
def test_a_file_that_ends_inside_a_statement_is_refused(tmp_path: Path, cut_after: str) -> None:
    text = MINIMAL.format(bus="x") + "\n" + cut_after
    path = write(tmp_path, "end.dbc", text)
    with pytest.raises(DbcError) as info:  # cantools' syntax error, or ours where it reads on
        load_database(path)
    assert info.value.line == text.count("\n") + 1


def test_ns_keyword_list_is_not_a_cut_off_statement(tmp_path: Path) -> None:
    ns = "NS_ :\n    CM_\n    BA_DEF_\n    BA_\n    VAL_\n    SIG_VALTYPE_\n    SG_MUL_VAL_\n\nBS_:\n"
    text = 'VERSION ""\n\n' + ns + "\nBU_: A\n\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0) [0|255] \"\" A\n"
    db = load_database(write(tmp_path, "ns.dbc", text))
    assert [s.name for s in db.get_message_by_name("M").signals] == ["S"]


def test_every_truncation_of_a_bundled_file_loads_whole_or_is_refused(tmp_path: Path) -> None:
    # What loads must hold every signal the text up to the cut defines: nothing dropped in silence.
    text = _BODY_TEXT
    rng = random.Random(11)
    for cut in sorted(rng.sample(range(100, len(text)), 40)):
        partial = text[:cut]
        try:
            db = load_database(write(tmp_path, "t.dbc", partial))
        except DbcError:
            continue
        defined = sum(1 for line in partial.splitlines() if line.lstrip().startswith("SG_ "))
        assert sum(len(m.signals) for m in db.messages) == defined, cut


def test_vector_independent_signals_message_is_not_a_skipped_line(tmp_path: Path) -> None:
    # Vector tools park signals of no message in this pseudo message; cantools drops it by design.
    text = MINIMAL.format(bus="x").replace(
        "BA_DEF_ ", 'BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX\n'
        ' SG_ Orphan : 0|8@1+ (1,0) [0|0] "" Vector__XXX\n\nBA_DEF_ ', 1)
    db = load_database(write(tmp_path, "vector.dbc", text))
    assert [m.name for m in db.messages] == ["M1"]


@pytest.mark.parametrize("text", ['VERSION ""\n\nNS_ :', 'VERSION ""\n\nNS_ :\n\tCM_\n\tBA_DEF_',
                                  'VERSION ""\n\nNS_ : \n\tNS_DESC_\n\tCM_\n\n\n'])
def test_a_file_cut_inside_the_ns_list_names_its_last_line(tmp_path: Path, text: str) -> None:
    # A file that ends inside the NS_ keyword list makes textparser run past its last token
    # with a bare IndexError ("list index out of range", no position): the error must still
    # say where and why.
    with pytest.raises(DbcError, match="unexpected end of file") as info:
        load_database(write(tmp_path, "cut.dbc", text))
    assert info.value.line == len(text.rstrip().splitlines())


def test_a_missing_attribute_default_points_at_its_definition(tmp_path: Path) -> None:
    # cantools names the attribute bare, without a position (an INT VFrameFormat needs one).
    text = MINIMAL.format(bus="x").replace(
        'BA_DEF_DEF_ "BusName"', 'BA_DEF_ BO_ "VFrameFormat" INT 0 15;\nBA_DEF_DEF_ "BusName"')
    with pytest.raises(DbcError, match="VFrameFormat") as info:
        load_database(write(tmp_path, "nodefault.dbc", text))
    assert info.value.line is not None
    assert text.splitlines()[info.value.line - 1] == 'BA_DEF_ BO_ "VFrameFormat" INT 0 15;'

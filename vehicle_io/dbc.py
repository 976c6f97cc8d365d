"""Find, load and merge the Z10 DBC files; read the Z10 conventions stored in them.

The DBC files are the one source of truth for every frame and signal. This module turns a
set of them into one cantools :class:`~cantools.database.can.Database` whose messages know
their bus (``message.bus_name``: ``"pt"``, ``"body"``, ``"ads"``), and reads the attributes
of the Z10-P1 end-to-end protection convention (docs/e2e.md) and cycle times from it.

Every malformed input (missing file, binary or undecodable bytes, syntax error, a layout
cantools refuses) raises :class:`~vehicle_io.errors.DbcError` naming the file and, where it
can be found, the line; no parser traceback escapes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vehicle_io.errors import DbcError

if TYPE_CHECKING:
    from cantools.database.can import Database, Message, Signal

__all__ = [
    "E2E_COUNTER_LENGTH",
    "E2E_COUNTER_START_BIT",
    "E2E_CRC_LENGTH",
    "E2E_CRC_START_BIT",
    "DbcFile",
    "E2EAttributes",
    "attribute_value",
    "bundled_dbc_dir",
    "bundled_dbc_paths",
    "cycle_time_s",
    "e2e_spec",
    "expand_paths",
    "is_diagnostic",
    "load_database",
    "load_dbc_file",
    "message_source",
    "quiet_overwrites",
    "split_by_bus",
]

PathLike = str | os.PathLike[str]

#: Z10-P1 layout (docs/e2e.md): CRC8 in byte 0, alive counter in the low nibble of byte 1.
E2E_CRC_START_BIT = 0
E2E_CRC_LENGTH = 8
E2E_COUNTER_START_BIT = 8
E2E_COUNTER_LENGTH = 4

#: Other database formats cantools reads; named explicitly so that a KCD or ARXML file gets
#: "unsupported format" instead of a confusing DBC syntax error at line 1.
_OTHER_FORMATS = {".arxml", ".kcd", ".sym", ".cdd", ".xml", ".json", ".ldf"}

_CANTOOLS_DB_LOGGER = "cantools.database.can.database"
_BO_RE = re.compile(r"^[ \t]*BO_[ \t]+(\d+)[ \t]+(\w+)", re.MULTILINE)
_SG_RE = re.compile(r"^[ \t]*SG_[ \t]+(\w+)", re.MULTILINE)
_WORD_RE = re.compile(r"[A-Za-z_]\w*")
_FRAGMENT_RE = re.compile(r"'([^']+)'|\"([^\"]+)\"|((?:VAL_|BA_|CM_|SIG_VALTYPE_)\s+\S+\s+\S+)")
_SYNTAX_RE = re.compile(r"^Invalid syntax at line \d+, column (\d+)")

# Where each loaded message came from, for error messages and lint findings. Weak keys: the
# map never keeps a database alive, so holding it at module level is safe.
_SOURCES: weakref.WeakKeyDictionary[Any, tuple[str, int | None]] = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------ bundled files
def bundled_dbc_dir() -> Path:
    """The directory holding the bundled Z10 DBC files.

    An installed wheel carries them inside the package (``vehicle_io/_dbc``, force-included
    by pyproject); a checkout or editable install has the top-level ``dbc/`` next to the
    package. The package copy is looked at first: next to an installed package is
    site-packages, where a ``dbc`` directory would belong to someone else.
    """
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_dbc", package_dir.parent / "dbc"):
        if candidate.is_dir() and any(candidate.glob("*.dbc")):
            return candidate
    raise DbcError(
        package_dir / "_dbc",
        None,
        "bundled DBC files not found: expected vehicle_io/_dbc/*.dbc (installed wheel) or "
        "dbc/*.dbc next to the package (checkout), but neither exists",
    )


def bundled_dbc_paths() -> list[Path]:
    """Every bundled Z10 DBC file, sorted by name."""
    return sorted(bundled_dbc_dir().glob("*.dbc"))


# ------------------------------------------------------------------------------ reading
def _line_of_offset(data: bytes | str, offset: int) -> int:
    newline: Any = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, max(offset, 0)) + 1


def _read_text(path: Path) -> str:
    """Read a DBC file as text: UTF-8 (with or without BOM), else cp1252 (Vector's default)."""
    if path.suffix.lower() in _OTHER_FORMATS:
        raise DbcError(
            path,
            None,
            f"unsupported database format: expected a .dbc file, but got '{path.suffix}'",
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DbcError(path, None, "no such file") from None
    except IsADirectoryError:
        raise DbcError(path, None, "expected a DBC file, but got a directory") from None
    except OSError as err:
        raise DbcError(path, None, f"cannot read: {err.strerror or err}") from err
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DbcError(
            path, _line_of_offset(data, nul), "binary data (NUL byte): expected a text DBC file"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as err:
            bad = data[err.start]
            raise DbcError(
                path,
                _line_of_offset(data, err.start),
                f"undecodable byte 0x{bad:02x}: expected UTF-8 or cp1252 text",
            ) from None
    if not text.strip():
        raise DbcError(path, None, "empty file: expected a DBC database")
    return text


def _error_line(err: BaseException, text: str) -> int | None:
    """The line a parser error points at, walking the cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        line = getattr(current, "line", None)
        if isinstance(line, int):
            return line
        offset = getattr(current, "offset", None)
        source = getattr(current, "text", None)
        if isinstance(offset, int) and isinstance(source, str):
            return _line_of_offset(source, offset)
        current = current.__cause__ or current.__context__
    return None


def _guess_line(text: str, reason: str) -> int | None:
    """Find the line a positionless cantools error is about, if it names something.

    cantools' semantic errors ("The signals A and B are overlapping in message M.", a
    KeyError for an undefined attribute, "unused VAL_ entries") carry no position; the names
    they quote are enough to point at the offending SG_, BO_ or other line.
    """
    signal_lines: dict[str, int] = {}
    message_lines: dict[str, int] = {}
    for mo in _SG_RE.finditer(text):
        signal_lines.setdefault(mo.group(1), _line_of_offset(text, mo.start()))
    for mo in _BO_RE.finditer(text):
        message_lines.setdefault(mo.group(2), _line_of_offset(text, mo.start()))
    words = _WORD_RE.findall(reason)
    # "... in message M": signal names repeat across messages (CHECKSUM, COUNTER), so a
    # signal is looked up inside the message the reason names first.
    named = [word for word in words if word in message_lines]
    if named:
        message_ids, signal_ids = _source_lines(text)
        frame_id_of = {name: fid for fid, name in message_ids}
        for message in reversed(named):  # cantools names the message last
            fid = frame_id_of.get(message)
            for word in words:
                line = signal_ids.get((fid, word)) if fid is not None else None
                if line is not None:
                    return line
    for word in words:
        if word in signal_lines:
            return signal_lines[word]
    for word in words:
        if word in message_lines:
            return message_lines[word]
    # An attribute named bare ("Default value for VFrameFormat attribute must be defined"):
    # its BA_DEF_ line, where the name stands quoted.
    for word in words:
        mo = re.search(r'^[ \t]*BA_DEF_\w*[^\n"]*"' + re.escape(word) + '"', text, re.MULTILINE)
        if mo:
            return _line_of_offset(text, mo.start())
    # A quoted or listed fragment ("'Foo'", "VAL_ 2 X"): the first line that contains it.
    for fragment in _FRAGMENT_RE.findall(reason):
        needle = next(part for part in fragment if part)
        pattern = re.compile(r"(?<![\w])" + re.escape(needle) + r"(?![\w])")
        mo = pattern.search(text)
        if mo:
            return _line_of_offset(text, mo.start())
    return None


def _ran_past_end(err: BaseException) -> bool:
    """Whether the parser failed by reading past its last token (a file cut off mid-statement).

    textparser then raises a bare IndexError from its token stream, with no position; cantools
    wraps it as "list index out of range".
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, IndexError):
            tb = current.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None and "textparser" in tb.tb_frame.f_code.co_filename:
                return True
        current = current.__cause__ or current.__context__
    return False


def _last_line(text: str) -> int:
    """Number of the last non-blank line (where a cut-off statement ends)."""
    lines = text.splitlines()
    for number in range(len(lines), 0, -1):
        if lines[number - 1].strip():
            return number
    return max(len(lines), 1)


def _one_line(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:
        return f"undefined name {err.args[0]!r}: referenced but never defined"
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0].strip()
    # textparser repeats the position the DbcError already gives: keep the column only.
    first = _SYNTAX_RE.sub(r"invalid DBC syntax at column \1", first)
    # A message that spans lines lists details (cantools' "unused VAL_ entries:"); keep the
    # first detail so the one line still says what is wrong.
    rest = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    if rest and first.endswith(":"):
        first = f"{first} {rest[0]}" + (f" (+{len(rest) - 1} more)" if len(rest) > 1 else "")
    return first


def _source_lines(text: str) -> tuple[dict[tuple[int, str], int], dict[tuple[int, str], int]]:
    """Line numbers of each ``BO_`` (by dbc frame id and name) and of its ``SG_`` lines."""
    messages: dict[tuple[int, str], int] = {}
    signals: dict[tuple[int, str], int] = {}
    current: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("BO_ ") or stripped.startswith("BO_\t"):
            mo = _BO_RE.match(stripped)
            current = None
            if mo:
                current = int(mo.group(1))
                messages.setdefault((current, mo.group(2)), number)
        elif stripped.startswith("SG_") and current is not None:
            mo = _SG_RE.match(stripped)
            if mo:
                signals.setdefault((current, mo.group(1)), number)
        elif stripped and not stripped.startswith("SG_"):
            current = None
    return messages, signals


@dataclass
class DbcFile:
    """One parsed DBC file: its database, its bus and where each definition sits."""

    path: Path
    database: Database
    bus_name: str
    text: str
    message_lines: dict[tuple[int, str], int]
    signal_lines: dict[tuple[int, str], int]

    def message_line(self, message: Message) -> int | None:
        return self.message_lines.get((_dbc_frame_id(message), message.name))

    def signal_line(self, message: Message, signal: Signal) -> int | None:
        return self.signal_lines.get((_dbc_frame_id(message), signal.name))


def _dbc_frame_id(message: Message) -> int:
    return message.frame_id | (0x80000000 if message.is_extended_frame else 0)


@contextlib.contextmanager
def quiet_overwrites(message_names: set[str] | None) -> Iterator[None]:
    """Drop cantools' "Overwriting message" warnings that are expected, exactly those.

    ``message_names=None`` drops every such warning (used when a database that was already
    checked is split again); otherwise only warnings naming a message in the set.
    """

    def keep(record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Overwriting message"):
            return True
        if message_names is None:
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) >= 2 and args[0] in message_names and args[1] in message_names)

    logger = logging.getLogger(_CANTOOLS_DB_LOGGER)
    log_filter = logging.Filter()
    log_filter.filter = keep  # type: ignore[method-assign]
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


#: Statements that end with ";" (a file that ends inside one was cut off). A keyword alone on
#: its line is an entry of the NS_ list, not a statement.
_TERMINATED_RE = re.compile(
    r"^[ \t]*(CM_|BA_DEF_DEF_REL_|BA_DEF_DEF_|BA_DEF_REL_|BA_DEF_|BA_REL_|BA_|VAL_TABLE_|VAL_|SIG_VALTYPE_|"
    r"SG_MUL_VAL_|BO_TX_BU_|SIG_GROUP_|EV_|ENVVAR_DATA_|SGTYPE_|SIG_TYPE_REF_)[ \t]+(?=\S)",
    re.MULTILINE,
)


#: The pseudo message Vector tools write for signals that belong to no message; cantools
#: skips it (and its signals) by design.
_VECTOR_INDEPENDENT = "VECTOR__INDEPENDENT_SIG_MSG"


def _check_nothing_skipped(
    path: Path,
    text: str,
    database: Database,
    message_lines: dict[tuple[int, str], int],
    signal_lines: dict[tuple[int, str], int],
) -> None:
    """Refuse a file cantools read only in part (it skips a cut-off SG_ line without a word).

    Every ``SG_`` line of a message that loaded must have become a signal, every ``BO_`` line
    a message (or have been overwritten by a later one with its frame id, which cantools
    reports), and the file must not end inside a ``;``-terminated statement.
    """
    parsed = {(_dbc_frame_id(m), m.name): {sig.name for sig in m.signals} for m in database.messages}
    frame_ids = {fid for fid, _ in parsed}
    for (fid, name), line in sorted(message_lines.items(), key=lambda item: item[1]):
        if name == _VECTOR_INDEPENDENT:
            continue  # Vector's holder of signals in no message: cantools drops it on purpose
        if (fid, name) not in parsed and fid not in frame_ids:
            raise DbcError(path, line, f"BO_ {name}: expected a complete message definition, but the line was "
                                       "not parsed (truncated or malformed)")
    names_by_id = {fid: name for fid, name in parsed}
    for (fid, signal), line in sorted(signal_lines.items(), key=lambda item: item[1]):
        name = names_by_id.get(fid)
        if name is not None and signal not in parsed[(fid, name)] and _message_at(message_lines, fid, line) == name:
            raise DbcError(path, line, f"SG_ {signal} in message {name}: expected a complete signal definition, "
                                       "but the line was not parsed (truncated or malformed)")
    last = None
    for mo in _TERMINATED_RE.finditer(text):
        last = mo
    if last is not None and ";" not in text[last.start():]:
        raise DbcError(path, _line_of_offset(text, last.start()),
                       f"{last.group(1)} statement: expected it to end with ';', but the file ends first (truncated?)")


def _message_at(message_lines: dict[tuple[int, str], int], fid: int, line: int) -> str | None:
    """Name of the BO_ with frame id ``fid`` that a SG_ at ``line`` belongs to (the last before it)."""
    best: tuple[int, str] | None = None
    for (message_id, name), start in message_lines.items():
        if message_id == fid and start < line and (best is None or start > best[0]):
            best = (start, name)
    return None if best is None else best[1]


def load_dbc_file(path: PathLike, *, strict: bool = True) -> DbcFile:
    """Parse one DBC file (no merging); ``strict=False`` lets overlapping signals through.

    Sets ``message.bus_name`` from the file's ``BA_ "BusName"`` network attribute, falling
    back to the file name without suffix.
    """
    from cantools.database.can import Database

    path = Path(path)
    text = _read_text(path)
    database = Database(strict=strict)
    try:
        database.add_dbc_string(text)
    except Exception as err:  # noqa: BLE001 - every parser failure becomes one DbcError
        if _ran_past_end(err):
            raise DbcError(path, _last_line(text), "unexpected end of file: expected the last "
                           "statement to be complete, but the file ends first (truncated?)") from err
        reason = _one_line(err)
        line = _error_line(err, text)
        if line is None:
            line = _guess_line(text, reason)
        raise DbcError(path, line, reason) from err
    bus_name = ""
    if database.dbc is not None:
        attr = database.dbc.attributes.get("BusName")
        if attr is not None and isinstance(attr.value, str):
            bus_name = attr.value.strip()
    bus_name = bus_name or path.stem
    message_lines, signal_lines = _source_lines(text)
    _check_nothing_skipped(path, text, database, message_lines, signal_lines)
    for message in database.messages:
        message.bus_name = bus_name
        _SOURCES[message] = (
            str(path),
            message_lines.get((_dbc_frame_id(message), message.name)),
        )
    return DbcFile(path, database, bus_name, text, message_lines, signal_lines)


def expand_paths(paths: PathLike | Iterable[PathLike] | None) -> list[Path]:
    """The DBC files ``paths`` stands for: files as given, directories as their ``*.dbc``."""
    if paths is None:
        return bundled_dbc_paths()
    items: Iterable[PathLike] = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    result: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".dbc" and p.is_file())
            if not found:
                raise DbcError(path, None, "expected .dbc files in this directory, but found none")
        else:
            found = [path]
        for file in found:
            key = file.resolve()
            if key not in seen:  # the same file twice would clash with itself
                seen.add(key)
                result.append(file)
    if not result:
        raise DbcError(None, None, "expected at least one DBC file, but got none")
    return result


def _bus_of(file: DbcFile) -> Any:
    from cantools.database.can import Bus

    attrs = file.database.dbc.attributes if file.database.dbc is not None else {}
    baudrate = fd_baudrate = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        baudrate = int(float(attrs["Baudrate"].value)) or None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        fd_baudrate = int(float(attrs["BaudrateCANFD"].value)) or None
    comment = None
    for bus in file.database.buses:
        comment = bus.comment
    return Bus(file.bus_name, comment=comment, baudrate=baudrate, fd_baudrate=fd_baudrate)


def _merged_specifics(files: Sequence[DbcFile]) -> Any:
    from cantools.database.can.formats.dbc import DbcSpecifics

    definitions: OrderedDict[str, Any] = OrderedDict()
    rel_definitions: OrderedDict[str, Any] = OrderedDict()
    value_tables: OrderedDict[str, Any] = OrderedDict()
    env: OrderedDict[str, Any] = OrderedDict()
    for file in files:
        dbc = file.database.dbc
        if dbc is None:
            continue
        for name, definition in dbc.attribute_definitions.items():
            definitions.setdefault(name, definition)
        for name, definition in dbc.relation_attribute_definitions.items():
            rel_definitions.setdefault(name, definition)
        for name, table in dbc.value_tables.items():
            value_tables.setdefault(name, table)
        for name, variable in dbc.environment_variables.items():
            env.setdefault(name, variable)
    # Network attributes (BusName, Baudrate) belong to one file each; the merged database
    # spans several buses, so it keeps the definitions and leaves the values per bus.
    return DbcSpecifics(
        attribute_definitions=definitions,
        environment_variables=env,
        value_tables=value_tables,
        relation_attribute_definitions=rel_definitions,
    )


def load_database(
    paths: PathLike | Iterable[PathLike] | None = None, *, strict: bool = True
) -> Database:
    """Load DBC files into one merged cantools ``Database``; default: every bundled Z10 file.

    ``paths`` is one path or several; a directory stands for the ``*.dbc`` files in it.
    Each message's ``bus_name`` is its file's ``BusName`` attribute (else the file stem).
    A frame id defined on two different buses (the Z10 functional diagnostic id 0x7DF on
    pt and body) is not a conflict: both messages stay in ``db.messages`` and in
    :func:`split_by_bus`, cantools' "Overwriting message" warning for exactly that pair is
    suppressed, and ``db.get_message_by_frame_id`` returns the one from the later file.
    A frame id twice on the same bus still warns (``z10 dbc check`` reports it too).

    Raises :class:`DbcError` (file and line) for any malformed input.
    """
    from cantools.database.can import Database, Node

    files = [load_dbc_file(path, strict=strict) for path in expand_paths(paths)]
    messages = [message for file in files for message in file.database.messages]

    by_id: dict[int, list[Message]] = {}
    by_name: dict[str, list[Message]] = {}
    for message in messages:
        by_id.setdefault(_dbc_frame_id(message), []).append(message)
        by_name.setdefault(message.name, []).append(message)
    expected: set[str] = set()
    for group in (*by_id.values(), *by_name.values()):
        if len({m.bus_name for m in group}) == len(group) > 1:
            expected.update(m.name for m in group)

    nodes: dict[str, Node] = {}
    for file in files:
        for node in file.database.nodes:
            nodes.setdefault(node.name, node)
    buses: dict[str, Any] = {}
    for file in files:
        buses.setdefault(file.bus_name, _bus_of(file))
    versions = {file.database.version for file in files}

    try:
        with quiet_overwrites(expected):
            merged = Database(
                messages=messages,
                nodes=list(nodes.values()),
                buses=list(buses.values()),
                version=versions.pop() if len(versions) == 1 else None,
                dbc_specifics=_merged_specifics(files),
                strict=strict,
            )
    except Exception as err:  # noqa: BLE001 - defensive: each file loaded alone already
        raise DbcError(files[-1].path, None, f"cannot merge: {_one_line(err)}") from err
    return merged


def split_by_bus(db: Database) -> dict[str, Database]:
    """One database per bus (``message.bus_name``; ``""`` for messages without a bus).

    The sub-databases share the message objects of ``db`` (nothing is copied), keep its
    node list and DBC definitions, and are built non-strict since ``db`` was already checked.
    """
    from cantools.database.can import Database

    groups: dict[str, list[Message]] = {}
    for message in db.messages:
        groups.setdefault(message.bus_name or "", []).append(message)
    result: dict[str, Database] = {}
    for bus_name, messages in groups.items():
        buses = [bus for bus in db.buses if bus.name == bus_name]
        with quiet_overwrites(None):
            result[bus_name] = Database(
                messages=list(messages),
                nodes=list(db.nodes),
                buses=buses,
                version=db.version,
                dbc_specifics=db.dbc,
                strict=False,
            )
    return result


# ------------------------------------------------------------------------------ conventions
def attribute_value(obj: Any, name: str) -> str | int | float | None:
    """The DBC attribute ``name`` of a message, signal or node, defaults applied.

    ENUM attributes come back as their choice string ("Yes", "Cyclic"), others as stored;
    ``None`` when the attribute is neither set nor defined with a default.
    """
    dbc = getattr(obj, "dbc", None)
    if dbc is None:
        return None
    attr = dbc.attributes.get(name)
    definition = attr.definition if attr is not None else dbc.attribute_definitions.get(name)
    if attr is None:
        return None if definition is None else definition.default_value
    value = attr.value
    if definition is not None and definition.type_name == "ENUM" and definition.choices:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            if not isinstance(value, str) or value.lstrip("-").isdigit():
                return str(definition.choices[int(value)])
    return value  # type: ignore[no-any-return]


def message_source(message: Message) -> tuple[str | None, int | None]:
    """(file, line of its ``BO_``) for a message loaded by this module, else (None, None)."""
    return _SOURCES.get(message, (None, None))


def is_diagnostic(message: Message) -> bool:
    """True for UDS transport frames (``DiagRequest``/``DiagResponse`` = Yes)."""
    return any(attribute_value(message, name) == "Yes" for name in ("DiagRequest", "DiagResponse"))


def cycle_time_s(message: Message) -> float | None:
    """The period a receiver may expect the message at, in seconds; None if not periodic.

    A message counts as periodic when it has a positive ``GenMsgCycleTime`` and its send
    type is cyclic (or the file defines no send type at all, as many DBCs do).
    """
    cycle_ms = message.cycle_time
    if not cycle_ms or cycle_ms <= 0:
        return None
    send_type = message.send_type
    if send_type is not None and "cyclic" not in send_type.lower():
        return None
    return cycle_ms / 1000.0


@dataclass(frozen=True)
class E2EAttributes:
    """Z10-P1 protection of one message: data id and the names of its counter and CRC."""

    data_id: int
    counter_signal: str
    crc_signal: str
    length: int

    @property
    def data_id_bytes(self) -> bytes:
        """The data id as the CRC sees it first: low byte, then high byte."""
        return bytes((self.data_id & 0xFF, self.data_id >> 8))


def _e2e_error(message: Message, reason: str) -> DbcError:
    path, line = message_source(message)
    return DbcError(path, line, f"message {message.name}: {reason}")


def _check_e2e_signal(
    message: Message, signal: Signal, role: str, start: int, length: int
) -> None:
    problems = []
    if signal.start != start or signal.length != length:
        problems.append(f"{length} bits at start bit {start}")
    if signal.byte_order != "little_endian":
        problems.append("Intel byte order")
    if signal.is_signed or signal.is_float:
        problems.append("unsigned integer")
    if signal.scale != 1 or signal.offset != 0:
        problems.append("scale 1 and offset 0")
    if signal.multiplexer_ids is not None:
        problems.append("not multiplexed")
    if problems:
        raise _e2e_error(
            message,
            f"E2E {role} signal {signal.name}: expected " + ", ".join(problems)
            + f", but got {signal.length} bits at start bit {signal.start}, "
            f"{'Intel' if signal.byte_order == 'little_endian' else 'Motorola'}, "
            f"{'signed' if signal.is_signed else 'unsigned'}"
            f"{', float' if signal.is_float else ''}, scale {signal.scale}, offset {signal.offset}"
            f"{', multiplexed' if signal.multiplexer_ids is not None else ''}",
        )


def e2e_spec(message: Message) -> E2EAttributes | None:
    """The Z10-P1 protection of ``message``, or None if it is not safety-relevant.

    Raises :class:`DbcError` when a message marked ``SafetyRelevant`` lacks its
    ``E2E_DataID``, its single Counter and CRC signals, or has them in the wrong place:
    a gateway must never run a safety message with a guessed layout.
    """
    if attribute_value(message, "SafetyRelevant") != "Yes":
        return None
    dbc = message.dbc
    data_id_attr = dbc.attributes.get("E2E_DataID") if dbc is not None else None
    if data_id_attr is None:
        raise _e2e_error(message, "SafetyRelevant=Yes but no E2E_DataID is set")
    try:
        data_id = int(data_id_attr.value)
    except (TypeError, ValueError):
        raise _e2e_error(
            message, f"expected an integer E2E_DataID, but got {data_id_attr.value!r}"
        ) from None
    if not 0 <= data_id <= 0xFFFF:
        raise _e2e_error(message, f"expected E2E_DataID in 0..65535, but got {data_id}")
    if message.length < 2:
        raise _e2e_error(
            message,
            f"expected a length of at least 2 bytes for CRC and counter, but got {message.length}",
        )
    roles: dict[str, list[Signal]] = {"Counter": [], "CRC": []}
    for signal in message.signals:
        role = attribute_value(signal, "E2E_Role")
        if role in roles:
            roles[role].append(signal)
    for role, found in roles.items():
        if len(found) != 1:
            names = ", ".join(s.name for s in found) or "none"
            raise _e2e_error(
                message, f"expected exactly one signal with E2E_Role={role}, but got {names}"
            )
    counter, crc = roles["Counter"][0], roles["CRC"][0]
    _check_e2e_signal(message, crc, "CRC", E2E_CRC_START_BIT, E2E_CRC_LENGTH)
    _check_e2e_signal(message, counter, "Counter", E2E_COUNTER_START_BIT, E2E_COUNTER_LENGTH)
    return E2EAttributes(data_id, counter.name, crc.name, message.length)

"""What a fleet job has to do: input files, van ids, chunks, settings, the manifest.

A chunk is the unit of work and of restart: a byte range of a candump ``.log`` (aligned to
line starts), or a whole ``.log.gz`` / ``.asc`` / ``.blf`` file. Its outputs are named by
the chunk (``part-<file key>-<chunk>.parquet``, the file key a hash of the input's resolved
path), so a retried chunk overwrites its own parts and nothing else. Its marker,
``_manifest/<file key>-<chunk>.json``, is written last and records the input's size and
mtime and the settings hash: a re-run skips every chunk whose marker still matches.
"""

from __future__ import annotations

import glob
import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vehicle_io.errors import VehicleIoError

#: Input suffixes a fleet job reads, and how.
SUFFIX_KIND = {".log": "log", ".log.gz": "log.gz", ".asc": "pycan", ".blf": "pycan"}
MANIFEST_DIR = "_manifest"
#: Chunk size: each chunk pays a fixed ~20 ms (one Parquet part per message, its marker), so
#: bigger chunks cost less per frame. One chunk's run_chunk alone, 63 MiB candump file, best
#: of 2: 4 MiB 1.7 M frames/s, 8 MiB 2.4 M, 16 MiB 2.9 M, 32 MiB 3.4 M, 48 MiB 3.4 M. A
#: 32 MiB chunk (~550 k frames) raised a process's peak RSS by 220 MB (16 MiB: 175 MB).
DEFAULT_CHUNK_MIB = 32.0
_VAN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FleetError(VehicleIoError, ValueError):
    """A fleet job cannot run as asked (no inputs, a bad option, an unusable address)."""


def suffix_of(path: str | os.PathLike[str]) -> str:
    name = Path(path).name.lower()
    return ".log.gz" if name.endswith(".log.gz") else Path(name).suffix


def check_loopback(address: str) -> str:
    """``address`` if it names a loopback scheduler (127.0.0.0/8, ::1, localhost), else FleetError."""
    text = address.strip()
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme not in ("tcp", "tls"):
            raise FleetError(f"--scheduler: expected a tcp:// or tls:// address, but got {address!r}")
    host = rest
    if rest.startswith("["):
        host = rest[1:].split("]", 1)[0]
    elif rest.count(":") == 1:
        host = rest.split(":", 1)[0]
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok:
        raise FleetError(f"--scheduler: expected a loopback address (127.0.0.1, ::1, localhost; "
                         f"no network beyond loopback), but got {address!r}")
    return text


@dataclass(frozen=True)
class Settings:
    """Everything that changes a chunk's output; its digest is part of every marker."""

    dbc: tuple[str, ...] | None = None
    bus_map: tuple[tuple[str, str], ...] = ()
    chunk_bytes: int = int(DEFAULT_CHUNK_MIB * (1 << 20))
    dbc_digest: str = ""

    def digest(self) -> str:
        from vehicle_io.fleet.schema import FORMAT_VERSION

        text = json.dumps({"format": FORMAT_VERSION, "dbc_sha256": self.dbc_digest,
                           "bus_map": sorted(self.bus_map), "chunk_bytes": self.chunk_bytes}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def dbc_digest(dbc: tuple[str, ...] | None) -> str:
    """SHA-256 over the DBC files' bytes (the bundled set when ``dbc`` is None)."""
    from vehicle_io.dbc import expand_paths

    h = hashlib.sha256()
    for path in expand_paths(list(dbc) if dbc else None):
        h.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work (picklable: it travels to a Dask worker)."""

    path: str
    kind: str
    start: int
    end: int
    index: int
    count: int
    van: str
    file_key: str
    size: int
    mtime_ns: int
    out: str
    settings: Settings
    settings_digest: str

    @property
    def key(self) -> str:
        return f"{self.file_key}-{self.index:05d}"

    def identity(self) -> dict[str, Any]:
        """What a marker must match for this chunk to count as done."""
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "start": self.start,
                "end": self.end, "index": self.index, "count": self.count, "van": self.van,
                "settings": self.settings_digest}


@dataclass
class FileProblem:
    """A file (or its van id) that could not be planned at all."""

    path: str
    reason: str


@dataclass
class Plan:
    tasks: list[ChunkTask] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, directories (searched recursively) and globs -> the readable log files, sorted."""
    found: dict[Path, Path] = {}
    for item in inputs:
        candidates: list[Path]
        if any(ch in item for ch in "*?["):
            candidates = [Path(p) for p in sorted(glob.glob(item, recursive=True))]
            if not candidates:
                raise FleetError(f"input {item!r}: expected the pattern to match files, but it matched none")
        else:
            candidates = [Path(item)]
            if not candidates[0].exists():
                raise FleetError(f"input {item!r}: expected a file, directory or glob, but it does not exist")
        for path in candidates:
            if path.is_dir():
                for sub in sorted(path.rglob("*")):
                    if sub.is_file() and suffix_of(sub) in SUFFIX_KIND and not sub.name.startswith("."):
                        found.setdefault(sub.resolve(), sub)
            elif path.is_file():
                if suffix_of(path) not in SUFFIX_KIND:
                    raise FleetError(f"input {str(path)!r}: expected a {', '.join(SUFFIX_KIND)} file, "
                                     f"but got {suffix_of(path) or 'no suffix'!r}")
                found.setdefault(path.resolve(), path)
    return sorted(found)


def van_id(path: Path, how: str) -> str:
    """The van a file belongs to: ``dirname`` (its folder), ``filename`` (its stem) or a regex
    whose first group (or group ``van``) matches in the path."""
    if how == "dirname":
        value = path.parent.name
    elif how == "filename":
        name = path.name
        value = name[: -len(suffix_of(path))] if suffix_of(path) else name
    else:
        try:
            pattern = re.compile(how)
        except re.error as err:
            raise FleetError(f"--van-id-from: expected dirname, filename or a regular expression, "
                             f"but {how!r} is not valid: {err}") from None
        m = pattern.search(str(path))
        if not m:
            raise ValueError(f"--van-id-from {how!r} does not match the path")
        value = m.group("van") if "van" in pattern.groupindex else (m.group(1) if pattern.groups else m.group(0))
    if not value or not _VAN_RE.match(value):
        raise ValueError(f"expected a van id of letters, digits, '_', '.', '-', but got {value!r}")
    return value


def file_key(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:16]


def aligned_ranges(path: Path, size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes`` that begin on line starts (a line belongs to the
    chunk it starts in)."""
    if size <= chunk_bytes:
        return [(0, size)]
    bounds = [0]
    with open(path, "rb") as handle:
        nominal = chunk_bytes
        while nominal < size:
            handle.seek(max(bounds[-1], nominal - 1))
            handle.readline()  # to the end of the line holding byte nominal-1
            pos = handle.tell()
            if pos >= size:
                break
            if pos > bounds[-1]:
                bounds.append(pos)
            nominal = pos + chunk_bytes
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def make_plan(inputs: list[str], out: Path, settings: Settings, van_from: str = "dirname") -> Plan:
    plan = Plan()
    digest = settings.digest()
    out_text = str(out.resolve())
    for path in expand_inputs(inputs):
        plan.files.append(str(path))
        try:
            van = van_id(path, van_from)
        except ValueError as err:
            if isinstance(err, FleetError):
                raise
            plan.problems.append(FileProblem(str(path), f"van id: {err}"))
            continue
        try:
            st = path.stat()
        except OSError as err:
            plan.problems.append(FileProblem(str(path), f"cannot read: {err.strerror or err}"))
            continue
        kind = SUFFIX_KIND[suffix_of(path)]
        ranges = aligned_ranges(path, st.st_size, settings.chunk_bytes) if kind == "log" else [(0, st.st_size)]
        key = file_key(path)
        for i, (start, end) in enumerate(ranges):
            plan.tasks.append(ChunkTask(str(path), kind, start, end, i, len(ranges), van, key, st.st_size,
                                        st.st_mtime_ns, out_text, settings, digest))
    return plan


# -- manifest ------------------------------------------------------------------------------------

def marker_path(out: Path, key: str) -> Path:
    return out / MANIFEST_DIR / f"{key}.json"


def read_marker(out: Path, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(marker_path(out, key).read_text())
    except (OSError, ValueError):
        return None


def marker_matches(marker: dict[str, Any] | None, task: ChunkTask) -> bool:
    return marker is not None and marker.get("identity") == task.identity()


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a hidden temp name beside ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

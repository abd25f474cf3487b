"""Incremental runs over growing logs (``perfkit logs --state FILE``), as pgBadger's incremental mode.

The state file (JSON) remembers, per log file, how far it was read: its path, device and inode,
size, the offset reached (the end of its last complete line), the lines before that offset and a
hash of its first KiB. A later run reads only what was appended since. A file that was rotated
(another inode with a different start, or a path whose first KiB changed) or truncated (smaller
than the offset) is read from the start, and a note says so; a rotated file that was renamed
(``postgresql.log`` -> ``postgresql.log.1``) is found by its device, inode and first KiB and
resumed where it was left. Compressed and syslog files cannot be resumed in the middle: they are
read whole when they changed, skipped when not.

Each run's aggregates (a :class:`perfkit.logs.stream.Scan`) are kept beside the state file, in
``<state>.runs/``, one gzip-compressed pickle per run; :func:`merged` adds up the runs of a
period (what ``perfkit logs --merge-days`` and ``perfkit report --logs STATE`` render). The run
files are pickles: read only run folders that perfkit wrote (never one from somewhere else).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perfkit.errors import BadInputError
from perfkit.logs import stream
from perfkit.logs.sources import compression, expand

MARKER = "perfkit_log_state"
VERSION = 1
HEAD_BYTES = 1024
KEEP_DAYS = 35  # runs older than this are removed from the runs folder


def is_state_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a perfkit state file (not a log)."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(64)
    except OSError:
        return False
    return re.match(rb'\s*\{\s*"' + MARKER.encode() + b'"', head) is not None


def load(path: Path) -> dict:
    """The state in ``path`` (an empty one when there is no such file)."""
    if not path.exists():
        return {MARKER: VERSION, "files": {}, "runs": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BadInputError(f"not a perfkit state file ({err})", path=path) from None
    if not isinstance(state, dict) or state.get(MARKER) != VERSION:
        raise BadInputError("not a perfkit state file (written by perfkit logs --state)", path=path)
    state.setdefault("files", {})
    state.setdefault("runs", [])
    return state


def runs_folder(path: Path) -> Path:
    return path.with_name(path.name + ".runs")


def _head_hash(path: Path, length: int) -> str:
    with open(path, "rb") as raw:
        return hashlib.sha256(raw.read(length)).hexdigest()


def _last_line_end(path: Path, size: int) -> int:
    """The offset after the last newline at or before ``size`` (0 when there is none)."""
    with open(path, "rb") as raw:
        position = size
        while position > 0:
            low = max(0, position - (1 << 16))
            raw.seek(low)
            block = raw.read(position - low)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return low + cut + 1
            position = low
    return 0


def _same_start(path: Path, known: dict) -> bool:
    length = int(known.get("head_len", 0))
    try:
        return length > 0 and _head_hash(path, length) == known.get("head")
    except OSError:
        return False


def plan(paths, state: dict) -> tuple[dict, dict, list[str]]:
    """``(resume, new file entries, notes)``: what to read of each file of ``paths`` after ``state``.

    ``resume`` is for :func:`perfkit.logs.stream.scan`: path -> (start, end, lines before start)."""
    files = state["files"]
    by_inode = {(k["device"], k["inode"]): k for k in files.values()}
    resume, entries, notes = {}, {}, []
    for path in expand(paths):
        info = path.stat()
        name = str(path.resolve())
        head_len = min(HEAD_BYTES, info.st_size)
        entry = {"path": name, "device": info.st_dev, "inode": info.st_ino, "size": info.st_size,
                 "head_len": head_len, "head": _head_hash(path, head_len), "read_at": _now().isoformat()}
        known = files.get(name)
        if known is not None and (known["device"], known["inode"]) != (info.st_dev, info.st_ino):
            moved = by_inode.get((info.st_dev, info.st_ino))
            if moved is None:
                notes.append(f"{path}: rotated since the last run (another file at this path): read from the start")
            known = moved
        elif known is None:
            known = by_inode.get((info.st_dev, info.st_ino))  # renamed by a rotation: resumed where it was
        if known is not None and (info.st_size < known["offset"] or not _same_start(path, known)):
            notes.append(f"{path}: truncated or rewritten since the last run (smaller, or its first bytes changed): "
                         "read from the start")
            known = None
        if compression(path) is not None:
            unchanged = known is not None and known["size"] == info.st_size
            entry.update(offset=info.st_size, line=0)
            if unchanged:
                resume[str(path)] = (0, 0, 0)  # nothing to read
            elif known is not None:
                notes.append(f"{path}: a compressed file that changed since the last run: read whole")
            entries[name] = entry
            continue
        start, line = (known["offset"], known["line"]) if known is not None else (0, 0)
        end = _last_line_end(path, info.st_size)
        if end < start:
            start, line = 0, 0
        resume[str(path)] = (start, end, line)
        with open(path, "rb") as raw:  # the lines up to the new offset: those before it, and the new ones
            lines = stream._count_newlines(raw, end, (start, line))
        entry.update(offset=end, line=lines)
        entries[name] = entry
    return resume, entries, notes


def _now() -> datetime:
    return datetime.now(UTC)


def save_run(path: Path, state: dict, scanned: stream.Scan, entries: dict, notes: list[str]) -> Path:
    """Keep ``scanned`` as a run of ``state`` and write the state (runs older than KEEP_DAYS go)."""
    folder = runs_folder(path)
    folder.mkdir(parents=True, exist_ok=True)
    now = _now()
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{os.getpid()}.pkl.gz"
    temporary = folder / (name + ".tmp")
    with gzip.open(temporary, "wb", compresslevel=3) as out:
        pickle.dump(scanned, out, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, folder / name)
    runs = [r for r in state["runs"] if datetime.fromisoformat(r["at"]) >= now - timedelta(days=KEEP_DAYS)]
    for old in state["runs"]:
        if old not in runs:
            (folder / old["file"]).unlink(missing_ok=True)
    runs.append({"file": name, "at": now.isoformat(), "entries": int(scanned.report.entries),
                 "executions": int(scanned.executions), "notes": notes})
    state["files"].update(entries)
    state["runs"] = runs
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state, indent=1))
    os.replace(temporary, path)
    return folder / name


def merged(path: Path, days: float | None = None, *, until: datetime | None = None) -> stream.Scan:
    """The stored runs of the state file ``path`` (those of the last ``days`` before ``until``, or all)
    added up into one Scan.

    Raises
    ------
    BadInputError
        Not a state file, or a run file that cannot be read.
    """
    state = load(Path(path))
    folder = runs_folder(Path(path))
    until = until or _now()
    total = stream.Scan()
    kept = 0
    for run in state["runs"]:
        at = datetime.fromisoformat(run["at"])
        if days is not None and not (until - timedelta(days=days) <= at <= until):
            continue
        try:
            with gzip.open(folder / run["file"], "rb") as raw:
                part = pickle.load(raw)  # noqa: S301 - perfkit's own run files, beside its state file
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError) as err:
            raise BadInputError(f"cannot read the stored run {run['file']} ({err})", path=folder) from None
        total.merge(part)
        kept += 1
    total.notes.append(f"{kept} stored run(s) of {path} merged"
                       + (f" (the last {days:g} days)" if days is not None else ""))
    return total

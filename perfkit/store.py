"""The snapshot store: pg_stat_statements snapshots as typed Parquet in a hive layout.

``<root>/server=<id>/date=<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.ffffffZ>-<tag>.parquet``: one file per
snapshot when written, one file per server and day after ``perfkit store compact``.

Every file is written with one declared Arrow schema, :data:`SNAPSHOT_SCHEMA` (microsecond UTC
timestamps, 64-bit integers for the counters that are integers, nullable), whatever the server
version and whatever pandas is installed, so DuckDB, Spark and Trino read every file with the
same column types.

The root is a local folder or any URI :func:`pyarrow.fs.FileSystem.from_uri` opens
(``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///...``; S3-compatible stores with
``?endpoint_override=host:port&scheme=http`` or the usual AWS environment variables).

The commit protocol (docs/README-store.md):

- save: every snapshot gets a new, unique key (capture time to the microsecond plus a random
  tag). On a local disk it is written to a temporary name, fsynced and renamed (atomic). On an
  object store it is written straight to its key: one object upload is atomic there (a reader
  sees the whole object or none), and rename is not (a copy then a delete), so none is used.
- compact: a day's files are rewritten into one new file whose footer lists the snapshots it
  holds (``perfkit.snapshots``: the manifest travels inside the file, committed with it); only
  then are the files it read deleted. A reader through :class:`SnapshotStore` skips a file whose
  snapshot a compacted file already holds, so there is no moment with a snapshot missing or
  counted twice; a snapshot written while a compaction runs is not among the files it read, so
  it is never deleted. A raw reader (DuckDB over the glob) can see the rows of a day twice in the
  moment between the compacted file's commit and the deletes: every row carries its
  ``snapshot_id`` to tell (the docs give the query).

Other datasets (plan fingerprints, ...) live under ``<root>/_datasets/<name>/`` in the same
layout: :meth:`SnapshotStore.save_dataset`, :meth:`SnapshotStore.read_dataset`,
:meth:`SnapshotStore.list_dataset`, :meth:`SnapshotStore.compact` with ``dataset=``. The leading
underscore keeps them out of a hive discovery of the root (pyarrow, Spark and Trino skip it).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from perfkit.db import sanitize_server_id
from perfkit.errors import BadInputError

DEFAULT_ROOT = Path("data/snapshots")
SNAPSHOTS = "snapshots"  # the dataset name of the snapshots themselves (at the root)
DATASETS_DIR = "_datasets"
_STAMP = r"\d{8}T\d{6}\.\d{6}Z"
_FILE = re.compile(rf"^(?P<stamp>{_STAMP})-(?P<tag>[0-9a-f]+)\.parquet$")
_COMPACTED = re.compile(rf"^compacted-(?P<stamp>{_STAMP})-(?P<tag>[0-9a-f]+)\.parquet$")
# temporary names of a local write: .<name>.<uuid4 hex>.tmp (fileio.atomic_path's too)
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STALE_TEMPORARY_S = 3600.0
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
MANIFEST_KEY = b"perfkit.snapshots"
SCHEMA_KEY = b"perfkit.schema"
SCHEMA_VERSION = "1"

TIMESTAMP = pa.timestamp("us", tz="UTC")

# The declared schema of a stored snapshot. The partition columns (server, date) are in the path.
SNAPSHOT_SCHEMA = pa.schema([
    pa.field("queryid", pa.int64()),
    pa.field("datname", pa.string()),
    pa.field("rolname", pa.string()),
    pa.field("toplevel", pa.bool_()),
    pa.field("query", pa.string()),
    pa.field("calls", pa.int64()),
    pa.field("total_exec_ms", pa.float64()),
    pa.field("mean_exec_ms", pa.float64()),
    pa.field("min_exec_ms", pa.float64()),
    pa.field("max_exec_ms", pa.float64()),
    pa.field("stddev_exec_ms", pa.float64()),
    pa.field("total_plan_ms", pa.float64()),
    pa.field("rows", pa.int64()),
    pa.field("shared_blks_hit", pa.int64()),
    pa.field("shared_blks_read", pa.int64()),
    pa.field("shared_blks_dirtied", pa.int64()),
    pa.field("shared_blks_written", pa.int64()),
    pa.field("temp_blks_read", pa.int64()),
    pa.field("temp_blks_written", pa.int64()),
    pa.field("blk_read_ms", pa.float64()),
    pa.field("blk_write_ms", pa.float64()),
    pa.field("wal_bytes", pa.int64()),
    pa.field("captured_at", TIMESTAMP),
    pa.field("stats_since", TIMESTAMP),  # PG 17+
    pa.field("stats_reset", TIMESTAMP),  # pg_stat_statements_info, PG 14+ and readable
    pa.field("dealloc", pa.int64()),  # pg_stat_statements_info, PG 14+ and readable
    pa.field("snapshot_id", pa.string()),  # the key of the file it was saved as
])
PARTITION_COLUMNS = ("server", "date")

# what SnapshotStore.load gives back: the dtypes statements.snapshot() makes
_FLOAT_ON_LOAD = ("rows", "shared_blks_hit", "shared_blks_read", "shared_blks_dirtied", "shared_blks_written",
                  "temp_blks_read", "temp_blks_written", "wal_bytes")


def default_root() -> str | Path:
    """``$PERFKIT_STORE`` (a folder or a URI), else ``data/snapshots`` under ``$PERFKIT_HOME`` or the
    working folder."""
    value = os.environ.get("PERFKIT_STORE", "")
    if value:
        return value if "://" in value else Path(value)
    from perfkit.paths import snapshots_dir

    return snapshots_dir()


# how far back --since may reach (pandas timestamps end about 292 years from 1970)
_LONGEST_SINCE = pd.Timedelta(days=100 * 365)


def parse_since(text: str) -> pd.Timedelta:
    """``7d``, ``12h``, ``2w``, ``30m``, ``90s`` as a Timedelta (for ``--since``)."""
    match = _SINCE.match(str(text))
    if not match:
        raise BadInputError(f"--since must look like 7d, 12h, 2w, 30m or 90s, not {text!r}")
    value, unit = float(match.group(1)), match.group(2).lower()
    factor = {"s": "s", "sec": "s", "m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}[unit]
    try:
        since = pd.Timedelta(value, unit=factor)
    except (OverflowError, ValueError):  # pandas' OutOfBoundsTimedelta is a ValueError
        since = None
    if since is None or since > _LONGEST_SINCE:
        raise BadInputError(f"--since {text} is too far back (at most {_LONGEST_SINCE.days // 365} years)")
    return since


# -- typed tables ---------------------------------------------------------------------------
def _column(values, field: pa.Field) -> pa.Array:
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array([None if pd.isna(v) else v for v in values], from_pandas=True)
    if array.type == field.type:
        return array
    if pa.types.is_timestamp(field.type):
        if pa.types.is_string(array.type) or pa.types.is_null(array.type) or pa.types.is_large_string(array.type):
            array = pa.array(pd.to_datetime(pd.Series(values), utc=True, errors="coerce"), from_pandas=True)
        # a naive timestamp is taken as UTC; nanoseconds (pandas 2.x) are truncated to microseconds
        return array.cast(field.type, safe=False)
    if pa.types.is_integer(field.type) and pa.types.is_floating(array.type):
        return array.cast(field.type, safe=False) if _whole(array) else array.cast(field.type)
    return array.cast(field.type)


def _whole(array: pa.Array) -> bool:
    import pyarrow.compute as pc

    valid = pc.drop_null(array)
    if pc.any(pc.is_nan(valid)).as_py():
        return False
    return bool(pc.all(pc.equal(valid, pc.floor(valid))).as_py() if len(valid) else True)


def to_table(frame: pd.DataFrame, schema: pa.Schema | None = SNAPSHOT_SCHEMA) -> pa.Table:
    """``frame`` as an Arrow table with ``schema``'s columns and types first (a missing column
    all nulls), then its other columns (timestamps made µs UTC); partition columns dropped."""
    columns, fields = [], []
    named = set(schema.names) if schema is not None else set()
    for field in schema or []:
        if field.name in frame.columns:
            try:
                columns.append(_column(frame[field.name], field))
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as err:
                reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
                raise BadInputError(f"column {field.name!r} does not fit the store's type {field.type} ({reason})") from None
        else:
            columns.append(pa.nulls(len(frame), field.type))
        fields.append(field)
    for name in frame.columns:
        if name in named or name in PARTITION_COLUMNS:
            continue
        array = pa.array(frame[name], from_pandas=True)
        if pa.types.is_timestamp(array.type):
            array = array.cast(TIMESTAMP, safe=False)
        elif pa.types.is_null(array.type):
            array = array.cast(pa.string())
        columns.append(array)
        fields.append(pa.field(str(name), array.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """A table read back (perhaps written by an older perfkit) in ``schema``'s types."""
    if schema is None:
        return table
    columns, fields = [], []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type, safe=False))
        else:
            columns.append(pa.nulls(len(table), field.type))
        fields.append(field)
    for name in table.column_names:
        if name not in schema.names and name not in PARTITION_COLUMNS:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _snapshot_frame(table: pa.Table) -> pd.DataFrame:
    """A stored snapshot as the DataFrame statements.snapshot() makes (its dtypes)."""
    frame = table.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
    for column in _FLOAT_ON_LOAD + ("total_exec_ms",):
        if column in frame:
            frame[column] = frame[column].astype("float64")
    if "queryid" in frame:
        frame["queryid"] = frame["queryid"].astype("Int64")
    if "dealloc" in frame:
        frame["dealloc"] = frame["dealloc"].astype("Int64")
    if "calls" in frame and not frame["calls"].isna().any():
        frame["calls"] = frame["calls"].astype("int64")
    return frame


def _read_file(fs: pafs.FileSystem, path: str, filters=None) -> pa.Table:
    """One Parquet file (no dataset discovery: one open, one read)."""
    with fs.open_input_file(path) as handle:
        table = pq.ParquetFile(handle).read(use_threads=False)
    if filters:
        import pyarrow.compute as pc

        (column, _, value), = filters
        table = table.filter(pc.equal(table.column(column), pa.scalar(value, pa.string())))
    return table


# -- where things are -------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredSnapshot:
    """One snapshot in the store (``path`` is ``<file>#<snapshot_id>`` in a compacted file)."""

    server: str
    captured_at: pd.Timestamp
    path: Path | str
    snapshot_id: str = ""


@dataclass(frozen=True)
class _Entry:
    server: str
    date: str
    name: str
    rel: str  # path below the dataset's folder
    mtime: float | None


def _scrub_uri(uri: str) -> str:
    """The URI without its query (which may hold an access key) and without a password."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class SnapshotStore:
    """Save, list, load and compact snapshots (and other datasets) under ``root``.

    Parameters
    ----------
    root:
        A folder or a pyarrow filesystem URI (``s3://bucket/prefix``, ``gs://...``); default
        ``$PERFKIT_STORE`` or ``data/snapshots``.
    """

    def __init__(self, root: str | Path | None = None):
        given = default_root() if root is None else root
        text = str(given)
        if "://" in text and not text.startswith("file://"):
            try:
                self.fs, base = pafs.FileSystem.from_uri(text)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as err:
                reason = (str(err).splitlines() or [type(err).__name__])[0]
                reason = re.sub(r"\?[^\s'\"]*", "", reason.replace(text, _scrub_uri(text)))[:200]  # keys stay hidden
                raise BadInputError(f"--store {_scrub_uri(text)} is not a store location pyarrow can open ({reason})") from None
            self.local = False
            self.base = base.rstrip("/")
            self.root: str | Path = _scrub_uri(text)
        else:
            path = Path(urlsplit(text).path) if text.startswith("file://") else Path(given)
            self.fs = pafs.LocalFileSystem()
            self.local = True
            self.base = os.path.abspath(path)
            self.root = path

    # -- paths -------------------------------------------------------------------------------
    def _folder(self, dataset: str) -> str:
        if dataset == SNAPSHOTS:
            return self.base
        if not _DATASET_NAME.match(dataset):
            raise BadInputError(f"dataset name {dataset!r}: use lower-case letters, digits and _")
        return posixpath.join(self.base, DATASETS_DIR, dataset) if not self.local else os.path.join(self.base, DATASETS_DIR, dataset)

    def _shown(self, dataset: str, rel: str) -> Path | str:
        """What a caller sees for a file: a Path under a local root, a URI otherwise."""
        prefix = "" if dataset == SNAPSHOTS else f"{DATASETS_DIR}/{dataset}/"
        if self.local:
            return Path(self.root) / (prefix + rel)
        return f"{self.root}/{prefix}{rel}"

    def _resolve(self, path: str | Path) -> tuple[pafs.FileSystem, str]:
        text = str(path)
        if not self.local and text.startswith(str(self.root) + "/"):
            return self.fs, self.base + text[len(str(self.root)):]
        if "://" in text and not text.startswith("file://"):
            fs, inner = pafs.FileSystem.from_uri(text)
            return fs, inner
        if text.startswith("file://"):
            text = urlsplit(text).path
        return pafs.LocalFileSystem(), os.path.abspath(text)

    # -- writing -------------------------------------------------------------------------------
    def _commit(self, folder: str, name: str, table: pa.Table) -> None:
        """Write ``table`` as ``folder/name``: whole or not at all (see the module's protocol)."""
        final = f"{folder}/{name}"
        if not self.local:  # an object store has no folders to make
            with self.fs.open_output_stream(final) as sink:
                pq.write_table(table, sink, compression="zstd")
            return
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open_output_stream(tmp) as sink:
                pq.write_table(table, sink, compression="zstd")
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.fs.move(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _write(self, dataset: str, frame: pd.DataFrame, server: str, captured: pd.Timestamp,
               schema: pa.Schema | None) -> Path | str:
        name = sanitize_server_id(server)
        captured = pd.Timestamp(captured)
        captured = captured.tz_convert("UTC") if captured.tzinfo else captured.tz_localize("UTC")
        stem = f"{captured:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"
        rel_dir = f"server={name}/date={captured:%Y-%m-%d}"
        table = to_table(frame.assign(snapshot_id=stem), schema if schema is not None else None)
        metadata = {SCHEMA_KEY: SCHEMA_VERSION.encode(),
                    MANIFEST_KEY: json.dumps([{"id": stem, "captured_at": captured.isoformat()}]).encode()}
        table = table.replace_schema_metadata(metadata)
        folder = f"{self._folder(dataset)}/{rel_dir}"
        self._commit(folder, f"{stem}.parquet", table)
        if self.local:
            remove_stale_temporaries(folder)
        return self._shown(dataset, f"{rel_dir}/{stem}.parquet")

    def save(self, snapshot: pd.DataFrame, server: str | None = None) -> Path | str:
        """Write ``snapshot`` as a new file with :data:`SNAPSHOT_SCHEMA`; returns its path.

        The file name holds the capture time to the microsecond and a random tag, so two
        writers never pick the same name; a reader never sees a partial file. On a local disk,
        temporary files that killed writers left in the folder more than an hour ago are removed.
        """
        if snapshot.empty and "captured_at" not in snapshot.columns:
            raise BadInputError("cannot store a snapshot without a captured_at column")
        name = server or (str(snapshot["server"].iloc[0]) if "server" in snapshot.columns and len(snapshot) else None)
        if not name:
            raise BadInputError("the snapshot has no server name: pass server=")
        captured = snapshot["captured_at"].max() if len(snapshot) else pd.Timestamp.now(tz="UTC")
        return self._write(SNAPSHOTS, snapshot, name, captured, SNAPSHOT_SCHEMA)

    def save_dataset(self, dataset: str, frame: pd.DataFrame, *, server: str,
                     captured_at: pd.Timestamp | None = None, schema: pa.Schema | None = None) -> Path | str:
        """Write ``frame`` as one new file of the named dataset (``<root>/_datasets/<dataset>/
        server=<server>/date=<day>/``), typed by ``schema`` when given, with the same commit
        protocol, listing and compaction as the snapshots; returns its path."""
        if dataset == SNAPSHOTS:
            return self.save(frame, server)
        captured = captured_at if captured_at is not None else pd.Timestamp.now(tz="UTC")
        if schema is not None and "snapshot_id" not in schema.names:
            schema = schema.append(pa.field("snapshot_id", pa.string()))
        return self._write(dataset, frame, server, captured, schema)

    # -- listing -------------------------------------------------------------------------------
    def _entries(self, dataset: str, server: str | None = None) -> list[_Entry]:
        top = self._folder(dataset)
        where = f"{top}/server={sanitize_server_id(server)}" if server else top
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(where, recursive=True, allow_not_found=True))
        except (OSError, pa.ArrowException) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise BadInputError(f"cannot list the store {self.root} ({reason})") from None
        entries = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(top):].lstrip("/")
            parts = rel.split("/")
            if len(parts) != 3 or not parts[0].startswith("server=") or not parts[1].startswith("date="):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else None
            entries.append(_Entry(parts[0][7:], parts[1][5:], parts[2], rel, mtime))
        return entries

    def _manifest(self, dataset: str, entry: _Entry) -> list[dict]:
        path = f"{self._folder(dataset)}/{entry.rel}"
        try:
            with self.fs.open_input_file(path) as handle:
                metadata = pq.read_schema(handle).metadata or {}
        except (OSError, pa.ArrowException):
            return []  # deleted meanwhile by another compaction, or damaged: its snapshots are elsewhere
        try:
            return list(json.loads(metadata.get(MANIFEST_KEY, b"[]")))
        except ValueError:
            return []

    def _manifests(self, dataset: str, entries: list[_Entry]) -> dict[str, list[dict]]:
        """The manifests of compacted files (immutable: read once per store object, in parallel
        on an object store, where each read is a round trip)."""
        cache = self.__dict__.setdefault("_manifest_cache", {})
        missing = [e for e in entries if (dataset, e.rel) not in cache]
        if len(missing) > 1 and not self.local:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                found = list(pool.map(lambda e: self._manifest(dataset, e), missing))
        else:
            found = [self._manifest(dataset, e) for e in missing]
        for entry, items in zip(missing, found, strict=True):
            if items:  # an empty one (deleted meanwhile) is asked again next time
                cache[(dataset, entry.rel)] = items
        return {e.rel: cache.get((dataset, e.rel), []) for e in entries}

    def _catalog(self, dataset: str, server: str | None = None) -> list[dict]:
        """One row per live snapshot: server, date, id, captured_at, rel (file), compacted."""
        entries = self._entries(dataset, server)
        held: dict[str, dict] = {}
        compacted = sorted((e for e in entries if _COMPACTED.match(e.name)), key=lambda e: e.name, reverse=True)
        manifests = self._manifests(dataset, compacted)
        for entry in compacted:  # the newest compaction of a snapshot wins
            for item in manifests[entry.rel]:
                held.setdefault(item["id"], {"server": entry.server, "date": entry.date, "id": item["id"],
                                             "captured_at": pd.Timestamp(item["captured_at"]).tz_convert("UTC"),
                                             "rel": entry.rel, "compacted": True})
        rows = list(held.values())
        for entry in entries:
            match = _FILE.match(entry.name)
            if not match:
                continue
            stem = entry.name[: -len(".parquet")]
            if stem in held:  # already in a compacted file: this one is about to be deleted
                continue
            stamp = pd.Timestamp(match.group("stamp").replace("Z", ""), tz="UTC")
            rows.append({"server": entry.server, "date": entry.date, "id": stem, "captured_at": stamp,
                         "rel": entry.rel, "compacted": False})
        return rows

    def _listing(self, dataset: str, server: str | None) -> pd.DataFrame:
        rows = []
        for row in self._catalog(dataset, server):
            shown = self._shown(dataset, row["rel"])
            if row["compacted"]:
                shown = (Path(f"{shown}#{row['id']}") if self.local else f"{shown}#{row['id']}")
            rows.append({"server": row["server"], "captured_at": row["captured_at"], "path": shown,
                         "snapshot_id": row["id"]})
        frame = pd.DataFrame(rows, columns=["server", "captured_at", "path", "snapshot_id"])
        return frame.sort_values(["captured_at", "server", "snapshot_id"], kind="stable").reset_index(drop=True)

    def servers(self) -> list[str]:
        return sorted({e.server for e in self._entries(SNAPSHOTS)})

    def list(self, server: str | None = None) -> pd.DataFrame:
        """Every stored snapshot: ``server``, ``captured_at``, ``path``, ``snapshot_id``, oldest first."""
        return self._listing(SNAPSHOTS, server)

    def list_dataset(self, dataset: str, server: str | None = None) -> pd.DataFrame:
        """Every write of the named dataset, as :meth:`list` lists snapshots."""
        return self._listing(dataset, server)

    # -- reading -------------------------------------------------------------------------------
    def _read(self, path: str | Path, schema: pa.Schema | None) -> pa.Table:
        text = str(path)
        file, _, wanted = text.partition("#")
        fs, inner = self._resolve(file)
        filters = [("snapshot_id", "=", wanted)] if wanted else None
        return _conform(_read_file(fs, inner, filters), schema)

    def load(self, path: str | Path | StoredSnapshot) -> pd.DataFrame:
        """One stored snapshot as the DataFrame that was saved (``server`` restored from the path)."""
        if isinstance(path, StoredSnapshot):
            path = path.path
        from perfkit import secrets as scrubbing

        try:
            try:
                table = self._read(path, SNAPSHOT_SCHEMA)
            except FileNotFoundError:
                moved = self._compacted_path(path)
                if moved is None:
                    raise
                table = self._read(moved, SNAPSHOT_SCHEMA)
            frame = _snapshot_frame(table)
            if "query" in frame:  # a snapshot stored by a perfkit that did not scrub statement text yet
                frame["query"] = scrubbing.scrub_statements(frame["query"])
        except Exception as err:  # noqa: BLE001 - a damaged file raises whatever pyarrow meets first
            reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise BadInputError(f"not a readable snapshot ({reason})", path=path) from None
        parts = str(path).partition("#")[0].replace("\\", "/").split("/")
        frame["server"] = parts[-3].split("=", 1)[-1] if len(parts) >= 3 else ""
        return frame

    def _compacted_path(self, path: str | Path) -> str | None:
        """Where the snapshot once saved as ``path`` is now, if a compaction moved it."""
        text = str(path).replace("\\", "/")
        if "#" in text:
            return None
        parts = text.split("/")
        if len(parts) < 3 or not _FILE.match(parts[-1]) or not parts[-3].startswith("server="):
            return None
        stem = parts[-1][: -len(".parquet")]
        for row in self._catalog(SNAPSHOTS, parts[-3][7:]):
            if row["id"] == stem and row["compacted"]:
                return f"{self._shown(SNAPSHOTS, row['rel'])}#{stem}"
        return None

    def read_dataset(self, dataset: str, server: str | None = None, *, schema: pa.Schema | None = None) -> pd.DataFrame:
        """Every live row of the named dataset (each write once, compacted or not), with its
        ``server`` and ``date``; ``schema`` casts the columns (e.g. the one it was saved with)."""
        tables = []
        by_file: dict[str, list[str]] = {}
        for row in self._catalog(dataset, server):
            by_file.setdefault(row["rel"], []).append(row["id"])
        import pyarrow.compute as pc

        for rel, ids in sorted(by_file.items()):
            parts = rel.split("/")
            try:
                table = _read_file(self.fs, f"{self._folder(dataset)}/{rel}")
            except FileNotFoundError:
                continue
            if "snapshot_id" in table.column_names:
                table = table.filter(pc.is_in(table.column("snapshot_id"), pa.array(ids)))
            table = _conform(table, schema)
            table = table.append_column("server", pa.array([parts[0][7:]] * len(table), pa.string()))
            table = table.append_column("date", pa.array([parts[1][5:]] * len(table), pa.string()))
            tables.append(table)
        if not tables:
            return pd.DataFrame()
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()

    # -- compaction ------------------------------------------------------------------------------
    def compact(self, server: str | None = None, date: str | None = None, *, dataset: str = SNAPSHOTS,
                before: str | None = None) -> list[dict]:
        """Rewrite each server's day into one file; returns one dict per day looked at.

        ``date`` (``YYYY-MM-DD``) picks one day; otherwise every day before ``before`` (default
        today, UTC: a day still being written is left alone). Safe beside writers and other
        compactions: see the module's commit protocol.
        """
        for value, flag in ((date, "--date"), (before, "--before")):
            if value is not None and not _DATE.match(str(value)):
                raise BadInputError(f"{flag} must be a day like 2026-11-30, not {value!r}")
        cutoff = before or f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d}"
        days: dict[tuple[str, str], list[_Entry]] = {}
        for entry in self._entries(dataset, server):
            if date is not None and entry.date != date:
                continue
            if date is None and entry.date >= cutoff:
                continue
            if _FILE.match(entry.name) or _COMPACTED.match(entry.name):
                days.setdefault((entry.server, entry.date), []).append(entry)
        schema = SNAPSHOT_SCHEMA if dataset == SNAPSHOTS else None
        results = []
        for (name, day), entries in sorted(days.items()):
            results.append(self._compact_day(dataset, name, day, entries, schema))
        return results

    def _compact_day(self, dataset: str, server: str, day: str, entries: list[_Entry], schema) -> dict:
        import pyarrow.compute as pc

        result = {"server": server, "date": day, "files_before": len(entries), "files_after": len(entries),
                  "snapshots": 0, "rows": 0, "path": None}
        if len(entries) < 2:
            result["snapshots"] = len(entries)
            return result
        folder = self._folder(dataset)
        tables, manifest, seen, read = [], [], set(), []
        # compacted files first, newest first, so a snapshot held twice is taken once
        ordered = sorted(entries, key=lambda e: (not _COMPACTED.match(e.name), e.name), reverse=False)
        ordered = [e for e in ordered if _COMPACTED.match(e.name)][::-1] + [e for e in ordered if _FILE.match(e.name)]
        for entry in ordered:
            try:
                table = _read_file(self.fs, f"{folder}/{entry.rel}")
                metadata = table.schema.metadata or {}
            except FileNotFoundError:
                continue  # compacted and deleted by another compaction meanwhile: held there
            except (OSError, pa.ArrowException):
                continue  # damaged: left in place for someone to look at
            try:
                items = list(json.loads(metadata.get(MANIFEST_KEY, b"[]")))
            except ValueError:
                items = []
            if not items and _FILE.match(entry.name):
                stem = entry.name[: -len(".parquet")]
                stamp = pd.Timestamp(_FILE.match(entry.name).group("stamp").replace("Z", ""), tz="UTC")
                items = [{"id": stem, "captured_at": stamp.isoformat()}]
            table = table.replace_schema_metadata(None)
            if "snapshot_id" not in table.column_names and len(items) == 1:
                table = table.append_column("snapshot_id", pa.array([items[0]["id"]] * len(table), pa.string()))
            fresh = [item for item in items if item["id"] not in seen]
            if len(fresh) < len(items):
                table = table.filter(pc.is_in(table.column("snapshot_id"), pa.array([i["id"] for i in fresh], pa.string())))
            seen.update(item["id"] for item in fresh)
            manifest.extend(fresh)
            tables.append(_conform(table, schema))
            read.append(entry)
        if len(read) < 2:
            result["snapshots"] = len(manifest)
            return result
        combined = pa.concat_tables(tables, promote_options="permissive")
        if "captured_at" in combined.column_names:
            combined = combined.sort_by([("captured_at", "ascending"), ("snapshot_id", "ascending")])
        manifest.sort(key=lambda item: (item["captured_at"], item["id"]))
        combined = combined.replace_schema_metadata({SCHEMA_KEY: SCHEMA_VERSION.encode(),
                                                     MANIFEST_KEY: json.dumps(manifest).encode()})
        now = pd.Timestamp.now(tz="UTC")
        name = f"compacted-{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.parquet"
        rel_dir = f"server={server}/date={day}"
        self._commit(f"{folder}/{rel_dir}", name, combined)
        for entry in read:  # only what this compaction read: a file written meanwhile stays
            try:
                self.fs.delete_file(f"{folder}/{entry.rel}")
            except FileNotFoundError:
                pass
        result.update(files_after=len(entries) - len(read) + 1, snapshots=len(manifest), rows=combined.num_rows,
                      path=str(self._shown(dataset, f"{rel_dir}/{name}")))
        return result

    # -- lookups -------------------------------------------------------------------------------
    def _pick_server(self, server: str | None) -> str:
        if server:
            return sanitize_server_id(server)
        names = self.servers()
        if not names:
            raise BadInputError(f"no snapshots stored in {self.root}: run `perfkit snapshot --dsn ...` first")
        if len(names) > 1:
            raise BadInputError(f"{self.root} holds snapshots of several servers ({', '.join(names)}): choose one with --server")
        return names[0]

    @staticmethod
    def _stored(row) -> StoredSnapshot:
        return StoredSnapshot(row["server"], row["captured_at"], row["path"], row["snapshot_id"])

    def latest(self, server: str | None = None) -> StoredSnapshot:
        """The newest snapshot of ``server``."""
        name = self._pick_server(server)
        listing = self.list(name)
        if listing.empty:
            raise BadInputError(f"no snapshots of server {name!r} in {self.root}")
        return self._stored(listing.iloc[-1])

    def nearest(self, when: pd.Timestamp, server: str | None = None, *, before: pd.Timestamp | None = None) -> StoredSnapshot | None:
        """The snapshot of ``server`` captured nearest to ``when`` (strictly before ``before`` if given)."""
        name = self._pick_server(server)
        listing = self.list(name)
        if before is not None:
            listing = listing[listing["captured_at"] < before]
        if listing.empty:
            return None
        when = pd.Timestamp(when)
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        distance = (listing["captured_at"] - when).abs()
        return self._stored(listing.loc[distance.idxmin()])

    def find(self, ref: str, server: str | None = None) -> StoredSnapshot:
        """The stored snapshot ``ref`` names: ``latest``, its path, its id (the file name without
        ``.parquet``, as ``perfkit snapshot --list`` shows it) or the start of its capture time in any
        spelling (``20261123T2111``, ``2026-11-23 21:11:52``); bad input when none or several match."""
        text = str(ref).strip()
        if text == "latest":
            return self.latest(server)
        if text.endswith(".parquet") and Path(text).is_file():
            path = Path(text)
            match = _FILE.match(path.name)
            when = pd.Timestamp(match.group("stamp").replace("Z", ""), tz="UTC") if match else pd.NaT
            return StoredSnapshot(path.parent.parent.name.split("=", 1)[-1], when, path)
        listing = self.list(self._pick_server(server))
        ids = listing["snapshot_id"].astype(str)
        digits = re.sub(r"\D", "", text)
        if text in set(ids):
            hits = listing[ids == text]
        elif len(digits) >= 8:
            stamps = ids.map(lambda name: re.sub(r"\D", "", name.split("-")[0]))
            hits = listing[stamps.str.startswith(digits)]
        else:
            hits = listing.iloc[0:0]
        if len(hits) != 1:
            shown = ", ".join(ids.tail(5)) or "none"
            raise BadInputError(f"{'no' if hits.empty else 'more than one'} stored snapshot matches {text!r} in "
                                f"{self.root} (latest ids: {shown}; `perfkit snapshot --list` shows them all)")
        return self._stored(hits.iloc[0])

    def baseline(self, since: str | pd.Timedelta = "7d", server: str | None = None, *, now: pd.Timestamp | None = None) -> StoredSnapshot | None:
        """The snapshot nearest to ``since`` before ``now`` (default: the latest snapshot's time)."""
        delta = parse_since(since) if isinstance(since, str) else pd.Timedelta(since)
        if now is None:
            now = self.latest(server).captured_at
        return self.nearest(now - delta, server, before=now)


def remove_stale_temporaries(folder: str | Path, *, older_than: float = STALE_TEMPORARY_S) -> list[Path]:
    """Remove the temporary files of local writers that were killed before their rename.

    Only the temporary names (``.<name>.<32 hex>.tmp``) last modified more than ``older_than``
    seconds ago: a writer at work now keeps its file. Returns what was removed; a file that
    cannot be looked at or removed is left alone.
    """
    removed = []
    cutoff = time.time() - older_than
    fs = pafs.LocalFileSystem()
    try:
        infos = fs.get_file_info(pafs.FileSelector(os.path.abspath(folder), allow_not_found=True))
    except (OSError, pa.ArrowException):
        return removed
    for info in infos:
        if not _TEMPORARY.match(info.base_name) or info.type != pafs.FileType.File:
            continue
        try:
            if info.mtime is not None and info.mtime.timestamp() < cutoff:
                fs.delete_file(info.path)
                removed.append(Path(folder) / info.base_name)
        except (OSError, pa.ArrowException):
            continue
    return removed

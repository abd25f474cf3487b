"""The snapshot store: pg_stat_statements snapshots as Parquet in a hive layout.

``data/snapshots/server=<id>/date=<YYYY-MM-DD>/<time>.parquet``, written atomically.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perfkit.db import sanitize_server_id
from perfkit.errors import BadInputError
from perfkit.fileio import atomic_path

DEFAULT_ROOT = Path("data/snapshots")
_FILE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)-(?P<tag>[0-9a-f]+)\.parquet$")
# fileio.atomic_path's temporary names: .<name>.<uuid4 hex>.tmp
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
STALE_TEMPORARY_S = 3600.0
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)


def default_root() -> Path:
    """``$PERFKIT_STORE``, else ``data/snapshots`` under ``$PERFKIT_HOME`` or the working folder."""
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


def remove_stale_temporaries(folder: str | Path, *, older_than: float = STALE_TEMPORARY_S) -> list[Path]:
    """Remove the temporary files of writers that were killed before their rename.

    Only ``atomic_path``'s names (``.<name>.<32 hex>.tmp``) last modified more than
    ``older_than`` seconds ago: a writer at work now keeps its file. Returns what was removed;
    a file that cannot be looked at or removed is left alone.
    """
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


@dataclass(frozen=True)
class StoredSnapshot:
    """One snapshot file in the store."""

    server: str
    captured_at: pd.Timestamp
    path: Path


class SnapshotStore:
    """Save, list and load snapshots under ``root``.

    Parameters
    ----------
    root:
        The store folder; default ``$PERFKIT_STORE`` or ``data/snapshots``.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    # -- writing ---------------------------------------------------------------------------
    def save(self, snapshot: pd.DataFrame, server: str | None = None) -> Path:
        """Write ``snapshot`` atomically (temporary file + rename); returns its path.

        The file name holds the capture time to the microsecond and a random tag, so two
        writers never pick the same name; a reader never sees a partial file. Temporary files
        that killed writers left in the folder more than an hour ago are removed.
        """
        if snapshot.empty and "captured_at" not in snapshot.columns:
            raise BadInputError("cannot store a snapshot without a captured_at column")
        name = server or (str(snapshot["server"].iloc[0]) if "server" in snapshot.columns and len(snapshot) else None)
        if not name:
            raise BadInputError("the snapshot has no server name: pass server=")
        name = sanitize_server_id(name)
        captured = snapshot["captured_at"].max() if len(snapshot) else pd.Timestamp.now(tz="UTC")
        captured = pd.Timestamp(captured).tz_convert("UTC") if pd.Timestamp(captured).tzinfo else pd.Timestamp(captured).tz_localize("UTC")
        folder = self.root / f"server={name}" / f"date={captured:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{captured:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.parquet"
        # the partition columns live in the path, not in the file (DuckDB/Spark/Trino read it as hive)
        table = pa.Table.from_pandas(snapshot.drop(columns=[c for c in ("server", "date") if c in snapshot.columns]), preserve_index=False)
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        remove_stale_temporaries(folder)
        return final

    # -- reading ---------------------------------------------------------------------------
    def servers(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name.split("=", 1)[1] for p in self.root.glob("server=*") if p.is_dir())

    def list(self, server: str | None = None) -> pd.DataFrame:
        """Every stored snapshot: ``server``, ``captured_at``, ``path``, oldest first."""
        rows = []
        if self.root.exists():
            pattern = f"server={sanitize_server_id(server)}" if server else "server=*"
            for path in self.root.glob(f"{pattern}/date=*/*.parquet"):
                match = _FILE.match(path.name)
                if not match:
                    continue
                stamp = pd.Timestamp(match.group("stamp").replace("Z", ""), tz="UTC")
                rows.append({"server": path.parent.parent.name.split("=", 1)[1], "captured_at": stamp, "path": path})
        frame = pd.DataFrame(rows, columns=["server", "captured_at", "path"])
        return frame.sort_values(["captured_at", "server"], kind="stable").reset_index(drop=True)

    def load(self, path: str | Path) -> pd.DataFrame:
        """One stored snapshot as the DataFrame that was saved (``server`` restored from the path)."""
        path = Path(path)
        from perfkit import secrets

        try:
            frame = pq.read_table(path).to_pandas()
            if "query" in frame:  # a snapshot stored by a perfkit that did not scrub statement text yet
                frame["query"] = secrets.scrub_statements(frame["query"])
        except Exception as err:  # noqa: BLE001 - a damaged file raises whatever pyarrow meets first
            reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise BadInputError(f"not a readable snapshot ({reason})", path=path) from None
        frame["server"] = path.parent.parent.name.split("=", 1)[-1]
        return frame

    def _pick_server(self, server: str | None) -> str:
        if server:
            return sanitize_server_id(server)
        names = self.servers()
        if not names:
            raise BadInputError(f"no snapshots stored in {self.root}: run `perfkit snapshot --dsn ...` first")
        if len(names) > 1:
            raise BadInputError(f"{self.root} holds snapshots of several servers ({', '.join(names)}): choose one with --server")
        return names[0]

    def latest(self, server: str | None = None) -> StoredSnapshot:
        """The newest snapshot of ``server``."""
        name = self._pick_server(server)
        listing = self.list(name)
        if listing.empty:
            raise BadInputError(f"no snapshots of server {name!r} in {self.root}")
        row = listing.iloc[-1]
        return StoredSnapshot(row["server"], row["captured_at"], Path(row["path"]))

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
        row = listing.loc[distance.idxmin()]
        return StoredSnapshot(row["server"], row["captured_at"], Path(row["path"]))

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
        ids = listing["path"].map(lambda p: Path(p).stem)
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
        row = hits.iloc[0]
        return StoredSnapshot(row["server"], row["captured_at"], Path(row["path"]))

    def baseline(self, since: str | pd.Timedelta = "7d", server: str | None = None, *, now: pd.Timestamp | None = None) -> StoredSnapshot | None:
        """The snapshot nearest to ``since`` before ``now`` (default: the latest snapshot's time)."""
        delta = parse_since(since) if isinstance(since, str) else pd.Timedelta(since)
        if now is None:
            now = self.latest(server).captured_at
        return self.nearest(now - delta, server, before=now)

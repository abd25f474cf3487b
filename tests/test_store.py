"""perfkit.store: hive-layout Parquet, atomic concurrent writes, nearest-to-7-days lookups."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from perfkit import statements
from perfkit.errors import BadInputError
from perfkit.store import SnapshotStore, parse_since

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_snapshot(sandbox):
    from perfkit import db

    engine = db.connect(sandbox.dsn)
    snap = statements.snapshot(engine, server="shop-primary")
    engine.dispose()
    return snap


def test_save_and_load_round_trip(tmp_path, real_snapshot):
    store = SnapshotStore(tmp_path)
    path = store.save(real_snapshot)
    captured = real_snapshot["captured_at"].max()
    assert path.parent == tmp_path / "server=shop-primary" / f"date={captured:%Y-%m-%d}"
    loaded = store.load(path)
    pd.testing.assert_frame_equal(
        loaded[statements.SNAPSHOT_COLUMNS].reset_index(drop=True),
        real_snapshot[statements.SNAPSHOT_COLUMNS].reset_index(drop=True),
        check_dtype=False,
    )
    assert not list(tmp_path.rglob("*.tmp"))


def test_store_is_a_hive_dataset(tmp_path, real_snapshot):
    store = SnapshotStore(tmp_path)
    store.save(real_snapshot)
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    frame = table.to_pandas()
    assert set(frame["server"]) == {"shop-primary"}
    assert len(frame) == len(real_snapshot)


# concurrent writers (10 processes, the same instant, beside compactions): tests/test_store_typed.py


def test_nearest_and_baseline(tmp_path, real_snapshot):
    store = SnapshotStore(tmp_path)
    now = pd.Timestamp("2026-11-23 06:00", tz="UTC")
    for days in (0, 6, 8, 14):
        snap = real_snapshot.assign(captured_at=now - pd.Timedelta(days=days, hours=days % 5))
        store.save(snap)
    latest = store.latest()
    assert latest.captured_at == now
    base = store.baseline("7d")
    assert base.captured_at == now - pd.Timedelta(days=6, hours=1)
    base2 = store.baseline("2w")
    assert base2.captured_at == now - pd.Timedelta(days=14, hours=4)
    assert store.nearest(now, before=now - pd.Timedelta(days=20)) is None


def test_parse_since():
    assert parse_since("7d") == pd.Timedelta(days=7)
    assert parse_since("12h") == pd.Timedelta(hours=12)
    assert parse_since("2w") == pd.Timedelta(weeks=2)
    with pytest.raises(BadInputError, match="--since"):
        parse_since("last week")


def test_empty_store_and_several_servers(tmp_path, real_snapshot):
    store = SnapshotStore(tmp_path)
    with pytest.raises(BadInputError, match="no snapshots stored"):
        store.latest()
    store.save(real_snapshot)
    store.save(real_snapshot.assign(server="replica"))
    with pytest.raises(BadInputError, match="--server"):
        store.latest()
    assert store.latest("replica").server == "replica"


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "server=x" / "date=2026-01-01" / "20260101T000000.000000Z-abcd.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    with pytest.raises(BadInputError, match=str(bad)):
        SnapshotStore(tmp_path).load(bad)


KILLED_WRITER = """
import os, sys
from perfkit.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"PAR1 half a snapshot")
    os.kill(os.getpid(), 9)  # killed before the rename
"""


def killed_writer(target) -> Path:
    """A real writer killed mid-write: it leaves its temporary file beside ``target``."""
    import os
    import subprocess
    import sys

    before = set(target.parent.glob(".*.tmp"))
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == -9
    (left,) = set(target.parent.glob(".*.tmp")) - before
    return left


def test_save_removes_stale_temporary_files_of_killed_writers(tmp_path, real_snapshot):
    import os
    import time

    store = SnapshotStore(tmp_path)
    first = store.save(real_snapshot)
    folder = first.parent
    stale = killed_writer(folder / "20260101T000000.000000Z-dead.parquet")
    fresh = killed_writer(folder / "20260101T000001.000000Z-busy.parquet")  # as if still being written
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    other = folder / "notes.tmp"  # not a perfkit temporary name: never touched
    other.write_text("x")
    os.utime(other, (hour_ago, hour_ago))
    second = store.save(real_snapshot)
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    assert len(store.list()) == 2 and store.latest().path in (first, second)
    pd.testing.assert_frame_equal(store.load(second)[statements.SNAPSHOT_COLUMNS],
                                  store.load(first)[statements.SNAPSHOT_COLUMNS], check_dtype=False)

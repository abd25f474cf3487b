"""The typed store: one Arrow schema whatever the server gives, compaction beside concurrent
writers, DuckDB over the store (the queries of docs/README-store.md), and the same store on a
real S3-compatible server (moto's standalone server on 127.0.0.1)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from perfkit import cli, db, statements
from perfkit.store import SNAPSHOT_SCHEMA, SnapshotStore

ROOT = Path(__file__).resolve().parent.parent
DAY = pd.Timestamp("2026-11-20 08:00:00", tz="UTC")


@pytest.fixture(scope="module")
def small_snapshot(sandbox):
    engine = db.connect(sandbox.dsn)
    snap = statements.snapshot(engine, server="typed")
    engine.dispose()
    return snap.head(20).reset_index(drop=True)


# -- one schema whatever the server version or privileges -------------------------------------
@pytest.fixture()
def reader(sandbox, marker):
    """A login role with pg_read_all_stats; its DSN. pg_stat_statements_info unreadable to it
    until the test grants it back."""
    role, password = f"reader_{marker}", "Rd-" + marker
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT pg_read_all_stats TO {role}")
        conn.execute("REVOKE SELECT ON pg_stat_statements_info FROM PUBLIC")
    try:
        yield role, sandbox.dsn_for("perfkit", role, password)
    finally:
        with sandbox.admin_connect(autocommit=True) as conn:
            conn.execute("GRANT SELECT ON pg_stat_statements_info TO PUBLIC")
            conn.execute(f"REVOKE SELECT ON pg_stat_statements_info FROM {role}")
            conn.execute(f"DROP ROLE {role}")


def duck_types(path) -> dict[str, str]:
    rows = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    return {name: kind for name, kind, *_ in rows}


def test_info_unreadable_or_readable_same_types_in_duckdb(sandbox, reader, tmp_path):
    role, dsn = reader
    store = SnapshotStore(tmp_path)
    engine = db.connect(dsn)
    hidden = statements.snapshot(engine, server="a")  # pg_stat_statements_info: permission denied
    assert hidden["stats_reset"].isna().all() and hidden["dealloc"].isna().all()
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON pg_stat_statements_info TO {role}")
    shown = statements.snapshot(engine, server="b")
    engine.dispose()
    assert shown["stats_reset"].notna().all() and shown["dealloc"].notna().all()
    # what pandas 2.x gives for the same columns: naive nanoseconds, float counters
    legacy = hidden.assign(stats_reset=pd.Series(pd.NaT, index=hidden.index, dtype="datetime64[ns]"),
                           captured_at=hidden["captured_at"].dt.tz_localize(None).astype("datetime64[ns]"),
                           dealloc=float("nan"), calls=hidden["calls"].astype("float64"))
    paths = [store.save(hidden), store.save(shown), store.save(legacy, server="c")]
    schemas = [pq.read_schema(p) for p in paths]
    for schema in schemas:
        assert schema.remove_metadata() == SNAPSHOT_SCHEMA
    types = [duck_types(p) for p in paths]
    assert types[0] == types[1] == types[2]
    assert types[0]["stats_reset"] == types[0]["captured_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types[0]["dealloc"] == types[0]["calls"] == types[0]["rows"] == "BIGINT"
    # the whole store in one read: hive partitions, UTC kept, each server's reset as stored
    frame = duckdb.sql(f"SELECT server, max(stats_reset) AS reset, max(dealloc) AS dealloc, "
                       f"count(*) AS n FROM read_parquet('{tmp_path}/server=*/date=*/*.parquet', "
                       "hive_partitioning = true) GROUP BY server ORDER BY server").df()
    assert frame["server"].tolist() == ["a", "b", "c"]
    assert frame["reset"].isna().tolist() == [True, False, True]
    assert frame.at[1, "reset"] == shown["stats_reset"].iloc[0]
    assert frame.at[1, "dealloc"] == int(shown["dealloc"].iloc[0])
    # loaded back: the dtypes statements.snapshot() gives
    loaded = store.load(paths[1])
    assert loaded["dealloc"].dtype == "Int64" and str(loaded["stats_reset"].dt.tz) == "UTC"
    assert loaded["calls"].dtype == "int64" and loaded["rows"].dtype == "float64"


# -- compaction beside 10 writer processes -------------------------------------------------------
def _when(worker: int, i: int) -> pd.Timestamp:
    """The first snapshot of every writer at the same microsecond (their keys must still differ)."""
    return DAY if i == 0 else DAY + pd.Timedelta(microseconds=worker * 1000 + i)


def _writer(args):
    root, snapshot, worker, count, flag, env = args
    os.environ.update(env)  # the forkserver may have started before the S3 credentials were set
    store = SnapshotStore(root)
    written = []
    for i in range(count):
        if i == count // 2:  # the second half only once a compaction has run: they overlap
            deadline = time.monotonic() + 120
            while not os.path.exists(flag) and time.monotonic() < deadline:
                time.sleep(0.01)
        snap = snapshot.assign(captured_at=_when(worker, i), calls=worker * 1000 + i)
        written.append(str(store.save(snap)).rsplit("/", 1)[-1][: -len(".parquet")])
    return written


def _compact_beside_writers(root: str, snapshot: pd.DataFrame, count: int, flag: Path):
    """10 writer processes save ``count`` snapshots each into one day while this process
    compacts the day again and again; returns the store, the snapshot ids written, and the
    number of compactions that rewrote files."""
    context = mp.get_context("forkserver")  # forked from a clean server with perfkit.store imported
    context.set_forkserver_preload(["perfkit.store"])
    store = SnapshotStore(root)
    counts = []

    def compactor(result):  # two of them, racing each other as well as the writers
        mine = SnapshotStore(root)
        while not result.ready():
            done = sum(1 for day in mine.compact(date=f"{DAY:%Y-%m-%d}") if day["path"])
            counts.append(done)
            if done:
                flag.touch()
            time.sleep(0.02)

    with context.Pool(10) as pool:
        result = pool.map_async(_writer, [(root, snapshot, w, count, str(flag), dict(os.environ)) for w in range(10)])
        threads = [threading.Thread(target=compactor, args=(result,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        ids = sum(result.get(), [])
    rounds = sum(counts) + sum(1 for day in store.compact(date=f"{DAY:%Y-%m-%d}") if day["path"])
    return store, ids, rounds


def _check_nothing_lost(store, ids, snapshot, count):
    assert len(ids) == len(set(ids)) == 10 * count
    listing = store.list("typed")
    assert sorted(listing["snapshot_id"]) == sorted(ids)
    for row in listing.itertuples():
        loaded = store.load(row.path)
        worker, i = divmod(int(loaded["calls"].iloc[0]), 1000)
        assert len(loaded) == len(snapshot) and set(loaded["calls"]) == {worker * 1000 + i}
        assert loaded["captured_at"].iloc[0] == _when(worker, i)


def test_compact_under_ten_concurrent_writers_loses_nothing(tmp_path, small_snapshot, capsys):
    store, ids, rounds = _compact_beside_writers(str(tmp_path / "store"), small_snapshot, 2, tmp_path / "go")
    assert rounds >= 2  # compactions really ran while the writers wrote
    _check_nothing_lost(store, ids, small_snapshot, 2)
    tmp_path = tmp_path / "store"
    day = tmp_path / "server=typed" / f"date={DAY:%Y-%m-%d}"
    (only,) = os.listdir(day)
    assert only.startswith("compacted-")
    count = duckdb.sql(f"SELECT count(*), count(DISTINCT snapshot_id) FROM read_parquet('{day}/*.parquet')").fetchall()[0]
    assert count == (20 * len(small_snapshot), 20)
    # a later snapshot of the same day, then the command line compacts the day again
    store.save(small_snapshot.assign(captured_at=DAY + pd.Timedelta(hours=1)))
    assert cli.main(["store", "compact", "--store", str(tmp_path), "--date", f"{DAY:%Y-%m-%d}", "--json"]) == 0
    (day_result,) = json.loads(capsys.readouterr().out)["days"]
    assert day_result["files_before"] == 2 and day_result["files_after"] == 1 and day_result["snapshots"] == 21
    assert len(store.list()) == 21 and len(os.listdir(day)) == 1


def test_compaction_leaves_today_and_reads_back_as_saved(tmp_path, small_snapshot):
    store = SnapshotStore(tmp_path)
    now = pd.Timestamp.now(tz="UTC")
    first = store.save(small_snapshot.assign(captured_at=now))
    store.save(small_snapshot.assign(captured_at=now + pd.Timedelta(seconds=1)))
    assert all(day["path"] is None for day in store.compact())  # today is still being written
    assert store.compact(date=f"{now:%Y-%m-%d}")[0]["files_after"] == 1
    latest = store.latest("typed")
    assert "#" in str(latest.path)
    before = store.load(first)  # the path save returned still loads, from the compacted file
    pd.testing.assert_frame_equal(before.drop(columns="snapshot_id"),
                                  store.load(latest).drop(columns="snapshot_id").assign(captured_at=before["captured_at"]))


# -- the documented DuckDB queries ------------------------------------------------------------------
def test_documented_duckdb_queries_run_over_a_store(tmp_path, small_snapshot, monkeypatch):
    store = SnapshotStore(tmp_path / "data" / "snapshots")
    for server in ("db-a", "db-b"):
        for days in (14, 7, 0):
            store.save(small_snapshot.assign(captured_at=DAY - pd.Timedelta(days=days),
                                             calls=small_snapshot["calls"] * (15 - days)), server=server)
    store.compact(server="db-a", date=f"{DAY:%Y-%m-%d}")
    text = (ROOT / "docs" / "README-store.md").read_text()
    blocks = re.findall(r"```sql duckdb\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()
    results = []
    for block in blocks:
        relation = con.sql(block)
        results.append(relation.df() if relation is not None else None)
    counts = results[2]
    assert counts.set_index("server")["snapshots"].to_dict() == {"db-a": 3, "db-b": 3}
    week = results[-1]
    assert set(week["server"]) == {"db-a", "db-b"}
    assert (week["calls"] > 0).all()


# -- the same store on S3 (moto's standalone server) --------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_root(tmp_path_factory):
    """``s3://perfkit/store?...`` on a moto server started on 127.0.0.1 for this module."""
    port = _free_port()
    server = Path(sys.executable).parent / "moto_server"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-500:]}") from None
                time.sleep(0.1)
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir("perfkit")
        yield f"s3://perfkit/store?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        proc.terminate()
        proc.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_s3_save_list_baseline_load_compact(s3_root, small_snapshot):
    store = SnapshotStore(s3_root)
    assert store.root == "s3://perfkit/store" and not store.local
    saved = [store.save(small_snapshot.assign(captured_at=DAY - pd.Timedelta(days=d, minutes=m)), server="s3db")
             for d in (8, 0) for m in (0, 5)]
    assert all(str(p).startswith("s3://perfkit/store/server=s3db/date=") for p in saved)
    listing = store.list()
    assert len(listing) == 4 and store.servers() == ["s3db"]
    assert store.latest().captured_at == DAY
    assert store.baseline("7d").captured_at == DAY - pd.Timedelta(days=8)
    pd.testing.assert_frame_equal(store.load(saved[1])[statements.SNAPSHOT_COLUMNS],
                                  store.load(listing["path"].iloc[0])[statements.SNAPSHOT_COLUMNS])
    days = [day for day in store.compact("s3db") if day["path"]]
    assert [(d["files_before"], d["files_after"]) for d in days] == [(2, 1), (2, 1)]
    assert sorted(store.list()["snapshot_id"]) == sorted(listing["snapshot_id"])
    assert store.baseline("7d").captured_at == DAY - pd.Timedelta(days=8)
    keys = SnapshotStore(s3_root).fs.get_file_info(pafs.FileSelector("perfkit/store/server=s3db", recursive=True))
    assert sorted(k.base_name.split("-")[0] for k in keys if k.type == pafs.FileType.File) == ["compacted", "compacted"]
    assert pq.read_schema(store.fs.open_input_file(keys[-1].path)).remove_metadata() == SNAPSHOT_SCHEMA


def test_s3_snapshot_and_diff_from_the_command_line(s3_root, sandbox, capsys):
    root = s3_root.replace("/store?", "/cli?")
    for _ in range(2):
        assert cli.main(["snapshot", "--dsn", sandbox.dsn, "--store", root, "--server", "cli", "--json"]) == 0
        saved = json.loads(capsys.readouterr().out)
        assert saved["path"].startswith("s3://perfkit/cli/server=cli/") and saved["statements"] > 0
    assert cli.main(["diff", "--store", root, "--server", "cli", "--since", "1h", "--json"]) == 0
    shown = capsys.readouterr()
    assert "s3://perfkit/cli/server=cli/" in shown.out and "secret" not in shown.out + shown.err
    assert "s3:/perfkit" not in shown.out.replace("s3://", "")  # a URI is never made a local path
    assert cli.main(["store", "compact", "--store", root, "--date", f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d}"]) == 0
    assert "2 files -> 1" in capsys.readouterr().out
    assert len(SnapshotStore(root).list()) == 2


def test_s3_compact_under_ten_concurrent_writers_loses_nothing(s3_root, small_snapshot, tmp_path):
    root = s3_root.replace("/store?", "/busy?")
    store, ids, rounds = _compact_beside_writers(root, small_snapshot, 2, tmp_path / "go")
    assert rounds >= 2
    _check_nothing_lost(store, ids, small_snapshot, 2)
    keys = store.fs.get_file_info(pafs.FileSelector("perfkit/busy", recursive=True))
    assert [k.base_name.split("-")[0] for k in keys if k.type == pafs.FileType.File] == ["compacted"]


def test_a_bad_store_uri_is_one_line(tmp_path):
    from perfkit.errors import BadInputError

    with pytest.raises(BadInputError, match="not a store location") as err:
        SnapshotStore("nosuchscheme://bucket/x?secret_key=hunter2")
    assert "hunter2" not in str(err.value) and "\n" not in str(err.value)
    bad = pd.DataFrame({"queryid": [1], "calls": ["many"], "captured_at": [DAY], "server": ["x"]})
    with pytest.raises(BadInputError, match="column 'calls' does not fit the store's type int64"):
        SnapshotStore(tmp_path).save(bad)
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_named_dataset_beside_the_snapshots(tmp_path, small_snapshot):
    """What plan fingerprints (or any other dataset) use: typed writes, listing, reading, compaction."""
    store = SnapshotStore(tmp_path)
    store.save(small_snapshot.assign(captured_at=DAY))
    schema = pa.schema([pa.field("fingerprint", pa.string()), pa.field("cost", pa.float64()),
                        pa.field("captured_at", pa.timestamp("us", tz="UTC"))])
    for minute in range(3):
        frame = pd.DataFrame({"fingerprint": [f"f{minute}", "g"], "cost": [1.5, 2.0 + minute],
                              "captured_at": DAY.tz_localize(None) + pd.Timedelta(minutes=minute)})
        path = store.save_dataset("plans", frame, server="typed", captured_at=DAY + pd.Timedelta(minutes=minute),
                                  schema=schema)
        assert str(path).startswith(str(tmp_path / "_datasets" / "plans" / "server=typed"))
    assert len(store.list_dataset("plans")) == 3 and len(store.list()) == 1  # neither sees the other
    assert store.compact(date=f"{DAY:%Y-%m-%d}", dataset="plans")[0]["files_after"] == 1
    rows = store.read_dataset("plans", schema=schema)
    assert len(rows) == 6 and set(rows["server"]) == {"typed"} and str(rows["captured_at"].dt.tz) == "UTC"
    assert len(store.list_dataset("plans")) == 3
    # a hive discovery of the root (pyarrow, Spark, Trino) sees the snapshots only
    import pyarrow.dataset as ds

    assert ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table().num_rows == len(small_snapshot)
    from perfkit.errors import BadInputError

    with pytest.raises(BadInputError, match="dataset name"):
        store.save_dataset("../x", frame, server="typed")


def test_s3_plan_history_is_kept_in_the_object_store(s3_root):
    from perfkit import plans
    from perfkit.plans.history import PlanHistory, fingerprint, record_plans

    fixtures = Path(__file__).parent / "fixtures" / "plans"
    root = s3_root.replace("/store?", "/plans?")
    week1, week2 = pd.Timestamp("2026-03-02", tz="UTC"), pd.Timestamp("2026-03-09", tz="UTC")
    captured = []
    for name, mean in (("seq_scan.json", 100.0), ("seq_scan_after_index.json", 150.0)):
        plan = plans.parse_file(fixtures / name)
        plan.extra.update(queryid=7, mean_ms=mean)
        captured.append(plan)
    store = SnapshotStore(root)
    assert record_plans(store, "s3db", [("q", captured[0])], captured_at=week1)[0] == []
    changed, comparisons = record_plans(store, "s3db", [("q", captured[1])], captured_at=week2)
    assert [(f["kind"], f["severity"]) for f in changed] == [("plan_changed", "warning")]  # slower
    history = PlanHistory(SnapshotStore(root)).load("s3db")
    assert list(history["fingerprint"]) == [fingerprint(p) for p in captured]
    listing = SnapshotStore(root).list_dataset("plan_history", "s3db")
    assert len(listing) == 2 and all(str(p).startswith("s3://perfkit/plans/_datasets/plan_history/server=s3db/")
                                     for p in listing["path"])

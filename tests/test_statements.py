"""perfkit.statements against a real pg_stat_statements: counts, diffs, resets, versions."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest

from perfkit import db, statements
from perfkit.errors import BadInputError, ExtensionMissing
from perfkit.sandbox import Sandbox

# pg_stat_statements view columns per extension version, from the PostgreSQL documentation
# ("pg_stat_statements" chapter of each release's manual).
V17_BASE = ["userid", "dbid", "queryid", "query", "calls", "rows",
            "shared_blks_hit", "shared_blks_read", "shared_blks_dirtied", "shared_blks_written",
            "local_blks_hit", "local_blks_read", "local_blks_dirtied", "local_blks_written",
            "temp_blks_read", "temp_blks_written"]
PG12 = V17_BASE + ["total_time", "min_time", "max_time", "mean_time", "stddev_time", "blk_read_time", "blk_write_time"]
PG13 = V17_BASE + ["plans", "total_plan_time", "min_plan_time", "max_plan_time", "mean_plan_time", "stddev_plan_time",
                   "total_exec_time", "min_exec_time", "max_exec_time", "mean_exec_time", "stddev_exec_time",
                   "blk_read_time", "blk_write_time", "wal_records", "wal_fpi", "wal_bytes"]
PG14 = PG13 + ["toplevel"]
PG15 = PG14 + ["temp_blk_read_time", "temp_blk_write_time", "jit_functions", "jit_generation_time",
               "jit_inlining_count", "jit_inlining_time", "jit_optimization_count", "jit_optimization_time",
               "jit_emission_count", "jit_emission_time"]
PG16 = PG15
PG17 = [c for c in PG16 if c not in ("blk_read_time", "blk_write_time")] + [
    "shared_blk_read_time", "shared_blk_write_time", "local_blk_read_time", "local_blk_write_time",
    "jit_deform_count", "jit_deform_time", "stats_since", "minmax_stats_since"]
PG18 = PG17 + ["parallel_workers_to_launch", "parallel_workers_launched", "wal_buffers_full"]


@pytest.mark.parametrize(
    "columns, expect",
    [
        (PG12, {"total_exec_ms": '"total_time"', "total_plan_ms": "NULL", "toplevel": "NULL", "wal_bytes": "NULL",
                "blk_read_ms": '"blk_read_time"'}),
        (PG13, {"total_exec_ms": '"total_exec_time"', "total_plan_ms": '"total_plan_time"', "toplevel": "NULL"}),
        (PG14, {"toplevel": '"toplevel"', "mean_exec_ms": '"mean_exec_time"'}),
        (PG15, {"blk_read_ms": '"blk_read_time"', "stats_since": "NULL"}),
        (PG16, {"wal_bytes": '"wal_bytes"'}),
        (PG17, {"blk_read_ms": '"shared_blk_read_time"', "blk_write_ms": '"shared_blk_write_time"', "stats_since": '"stats_since"'}),
        (PG18, {"stddev_exec_ms": '"stddev_exec_time"', "min_exec_ms": '"min_exec_time"'}),
    ],
    ids=["pg12", "pg13", "pg14", "pg15", "pg16", "pg17", "pg18"],
)
def test_version_mapping(columns, expect):
    chosen = statements.select_list(columns)
    for column, source in expect.items():
        assert chosen[column].endswith(source), (column, chosen[column])
    # every contract counter is read from some column on every version from 13 on
    if "total_exec_time" in columns:
        assert all(chosen[c] != "NULL" for c in statements.COUNTERS)


def test_snapshot_has_contract_columns_and_utc(engine):
    snap = statements.snapshot(engine)
    assert list(snap.columns[: len(statements.SNAPSHOT_COLUMNS)]) == statements.SNAPSHOT_COLUMNS
    assert str(snap["captured_at"].dt.tz) == "UTC"
    assert snap.attrs["server_version_num"] >= 120000
    assert snap["server"].nunique() == 1


def test_calls_counted_exactly_and_diff_shows_the_interval(engine, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int primary key, v text)")
    admin.execute(f"INSERT INTO {marker} SELECT g, 'x' FROM generate_series(1, 100) g")
    lookup = f"SELECT v FROM {marker} WHERE id = %s"
    for i in range(7):
        admin.execute(lookup, (i + 1,))
    before = statements.snapshot(engine)
    row = statements.find(before, f"FROM {marker} WHERE id")
    assert len(row) == 1 and int(row["calls"].iloc[0]) == 7
    assert row["rows"].iloc[0] == 7
    for i in range(11):
        admin.execute(lookup, (i + 1,))
    after = statements.snapshot(engine)
    changes = statements.diff(before, after)
    mine = statements.find(changes, f"FROM {marker} WHERE id").iloc[0]
    assert mine["calls"] == 11
    assert mine["status"] == "changed"
    assert mine["rows"] == 11
    full = statements.find(after, f"FROM {marker} WHERE id").iloc[0]
    prev = row.iloc[0]
    assert mine["total_exec_ms"] == pytest.approx(full["total_exec_ms"] - prev["total_exec_ms"])
    assert mine["mean_exec_ms"] == pytest.approx(mine["total_exec_ms"] / 11)
    assert mine["stddev_exec_ms"] >= 0
    assert mine["prev_mean_exec_ms"] == pytest.approx(prev["mean_exec_ms"])
    # no negative work anywhere
    numeric = changes[statements.COUNTERS].astype("float64")
    assert (numeric.fillna(0) >= 0).all().all()
    assert not changes.attrs["stats_reset"]


def test_new_and_evicted_statements(engine, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    before = statements.snapshot(engine)
    for _ in range(3):
        admin.execute(f"SELECT count(*) FROM {marker}")
    after = statements.snapshot(engine)
    changes = statements.diff(before, after)
    new = statements.find(changes, f"count(*) FROM {marker}")
    assert new["status"].tolist() == ["new"] and new["calls"].tolist() == [3]
    # an entry that pg_stat_statements evicted is in `before` only
    gone = after[~after["query"].str.contains(f"count(*) FROM {marker}", regex=False)]
    evicted = statements.diff(after, gone)
    row = statements.find(evicted, f"count(*) FROM {marker}")
    assert row["status"].tolist() == ["evicted"]
    assert row["total_exec_ms"].isna().all()
    assert row["queryid"].notna().all()


def test_reset_between_snapshots_is_reported_never_negative():
    with Sandbox() as sb:
        engine = db.connect(sb.dsn)
        with sb.admin_connect() as conn:
            conn.execute("CREATE TABLE r (id int)")
            for _ in range(9):
                conn.execute("SELECT count(*) FROM r")
            before = statements.snapshot(engine)
            conn.execute("SELECT pg_stat_statements_reset()")  # the test resets; perfkit never does
            for _ in range(2):
                conn.execute("SELECT count(*) FROM r")
            after = statements.snapshot(engine)
        engine.dispose()
    changes = statements.diff(before, after)
    assert changes.attrs["stats_reset"] is True
    assert "stats_reset" in changes.attrs["reset_evidence"]
    row = statements.find(changes, "count(*) FROM r").iloc[0]
    assert row["status"] == "reset"
    assert row["calls"] == 2
    numeric = changes[statements.COUNTERS].astype("float64")
    assert (numeric.fillna(0) >= 0).all().all()


def test_reset_detected_from_counters_without_info(engine, admin, marker):
    """PG 12/13 have no pg_stat_statements_info: counters going down reveal a reset."""
    admin.execute(f"CREATE TABLE {marker} (id int)")
    for _ in range(4):
        admin.execute(f"SELECT count(*) FROM {marker}")
    before = statements.snapshot(engine).assign(stats_reset=pd.NaT)
    after = before.copy()
    after["calls"] = (after["calls"] // 2).clip(lower=0)
    after["total_exec_ms"] = after["total_exec_ms"] / 2
    after["captured_at"] = after["captured_at"] + pd.Timedelta(hours=1)
    changes = statements.diff(before, after)
    assert changes.attrs["stats_reset"] is True
    assert (changes["status"] == "reset").all()
    assert (changes["calls"].fillna(0) >= 0).all()


def test_stats_since_marks_recreated_entries():
    """PG 17+: an entry re-created between snapshots (stats_since moved) restarts its counters."""
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    base = {"datname": "shop", "rolname": "app", "toplevel": True, "query": "SELECT 1", "mean_exec_ms": 1.0,
            "min_exec_ms": 1.0, "max_exec_ms": 1.0, "stddev_exec_ms": 0.0, "server": "s"}
    counters = {c: 10.0 for c in statements.COUNTERS}
    before = pd.DataFrame([{**base, **counters, "queryid": 1, "captured_at": t0, "stats_since": t0 - pd.Timedelta(days=1)}])
    after = pd.DataFrame([{**base, **counters, "calls": 12.0, "total_exec_ms": 12.0, "queryid": 1,
                           "captured_at": t0 + pd.Timedelta(days=7), "stats_since": t0 + pd.Timedelta(days=3)}])
    row = statements.diff(before, after).iloc[0]
    assert row["status"] == "reset" and row["calls"] == 12


def test_top_orders_and_bad_by(engine, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    admin.execute(f"SELECT pg_sleep(0.05) FROM {marker} RIGHT JOIN (SELECT 1) x ON true")
    snap = statements.snapshot(engine)
    for by, column in statements.TOP_ORDERS.items():
        ranked = statements.top(snap, by=by, n=5)
        assert len(ranked) <= 5
        assert ranked[column].is_monotonic_decreasing
    assert not statements.top(snap, n=500)["query"].str.startswith("/* perfkit */").any()
    assert statements.top(snap, n=500, include_perfkit=True)["query"].str.startswith("/* perfkit */").any()
    with pytest.raises(BadInputError, match="--by must be one of"):
        statements.top(snap, by="slowest")


def test_database_without_extension(sandbox, admin, marker):
    admin.execute(f"CREATE DATABASE {marker}")
    engine = db.connect(sandbox.dsn_for(marker))
    with pytest.raises(ExtensionMissing, match="CREATE EXTENSION pg_stat_statements"):
        statements.snapshot(engine)
    engine.dispose()


def test_extension_not_preloaded():
    with Sandbox(settings={"shared_preload_libraries": "''"}) as sb:
        engine = db.connect(sb.dsn)
        with pytest.raises(ExtensionMissing, match="shared_preload_libraries"):
            statements.snapshot(engine)
        engine.dispose()


def test_hidden_query_text_without_pg_read_all_stats(sandbox, admin, marker):
    admin.execute(f"CREATE ROLE {marker} LOGIN PASSWORD 'pw'")
    engine = db.connect(sandbox.dsn_for(sandbox.database, marker, "pw"))
    snap = statements.snapshot(engine)
    assert snap.attrs["hidden_queries"] > 0
    visible = snap[snap["query"] != statements.HIDDEN_QUERY]
    assert len(visible) > 0  # its own statements stay readable
    engine.dispose()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with psycopg.connect(sandbox.dsn_for(sandbox.database, marker, "pw")) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")


def test_what_perfkit_prepares_to_explain_or_time_is_its_own():
    import pandas as pd

    from perfkit.statements.assess import noise

    frame = pd.DataFrame({"query": ["PREPARE perfkit_verify_fe8cbbe9 AS SELECT tenant_id FROM orders",
                                    "prepare perfkit_aa31997ada17 AS SELECT id FROM invoices WHERE order_id = $1",
                                    "PREPARE app_stmt AS SELECT 1", "SELECT perfkit_x FROM t"],
                          "calls": [3, 3, 3, 3]})
    assert list(statements.own_statements(frame)) == [True, True, False, False]
    assert list(noise(frame))[:2] == ["perfkit", "perfkit"] and noise(frame).iloc[2] != "perfkit"

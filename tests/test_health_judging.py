"""Judging as data: every health check's pure rows -> findings function, row by row (no database).

Each case: (check, evidence rows, thresholds, expected [(kind, severity)], expected fix action).
Rows start from a typical catalog row (the helpers below) and change only what the case is about.
"""

from __future__ import annotations

import pandas as pd
import pytest

from perfkit import health, sql
from perfkit.findings import finding

GB, MB = 1024**3, 1024**2
DAY = 86400.0


def index(**over) -> dict:
    row = dict(schema="public", table="orders", index="orders_a_idx", oid=10, method="btree", nkeys=1,
               columns=[2], column_names=["a"], opclasses=[1978], collations=[0], options=[0], expressions="",
               predicate="", is_unique=False, is_primary=False, is_valid=True, is_ready=True, backs_constraint=False,
               building=False, idx_scan=0, size_bytes=8 * MB, definition="CREATE INDEX orders_a_idx ON public.orders USING btree (a)")
    row.update(over)
    return row


def age(seconds=30 * DAY, since_reset=True):
    return [{"seconds": seconds, "since_reset": since_reset}]


def table(**over) -> dict:
    row = dict(schema="public", table="orders", seq_scan=0, seq_tup_read=0, idx_scan=100, n_live_tup=50_000,
               n_dead_tup=0, n_mod_since_analyze=0, reltuples=50_000.0, relpages=500, relnatts=4, size_bytes=4 * MB,
               block_size=8192, fillfactor=100, since_vacuum_s=3600.0, since_analyze_s=3600.0, autovacuum="on",
               vacuum_threshold=50.0, vacuum_scale_factor=0.2, analyze_threshold=50.0, analyze_scale_factor=0.1,
               heap_hit=1_000_000, heap_read=0, idx_hit=1_000_000, idx_read=0)
    row.update(over)
    return row


def database(**over) -> list[dict]:
    row = dict(database="shop", blks_hit=1_000_000, blks_read=0, temp_files=0, temp_bytes=0, since_reset_s=None,
               since_start_s=30 * DAY, server_address=None)
    row.update(over)
    return [row]


def workload(schema="public", table_="orders", **uses) -> list[dict]:
    return [dict(schema=schema, table=table_, column=column, usage=usage, position=i, descending=False, queryid=1,
                 query="SELECT ...", calls=30, total_exec_ms=900.0)
            for i, (column, usage) in enumerate(uses.items())]


def tenant_row(**over) -> dict:
    row = dict(schema="public", table="orders", column="tenant_id", estimated_rows=20_000, live_rows=20_000,
               seq_scan=30, seq_tup_read=600_000, idx_scan=0, leads_an_index=False)
    row.update(over)
    return row


def fk(**over) -> dict:
    row = dict(schema="public", table="items", constraint_name="items_order_id_fkey", fk_attnums=[2],
               columns=["order_id"], referenced="orders", estimated_rows=5000, live_rows=5000)
    row.update(over)
    return row


def sequence(**over) -> dict:
    row = dict(schema="public", sequence="orders_id_seq", last_value=100, min_value=1, max_value=2**63 - 1,
               increment_by=1, sequence_type="bigint", table_schema="public", table_name="orders", column_name="id",
               column_type="integer")
    row.update(over)
    return row


def settings(**over) -> dict:
    values = {"work_mem": 4 * MB, "max_connections": 100, "block_size": 8192, "shared_buffers": 128 * MB,
              "effective_cache_size": 4 * GB, "random_page_cost": 4.0, "seq_page_cost": 1.0, "autovacuum": "on",
              "autovacuum_vacuum_scale_factor": 0.2, "autovacuum_analyze_scale_factor": 0.1, "track_counts": "on",
              "superuser_reserved_connections": 3, "autovacuum_freeze_max_age": 200_000_000}
    values.update(over)
    out = {}
    for name, value in values.items():
        number = float(value) if not isinstance(value, str) else float("nan")
        out[name] = {"value": value if isinstance(value, str) else str(value), "number": number, "source": "default"}
    return out


def memory(total=None):
    return [{"bytes": total, "words": "16.0 GB of memory (as given)" if total else "the machine's memory is unknown"}]


def backend(**over) -> dict:
    row = dict(pid=101, usename="app", datname="shop", application_name="web", state="idle", backend_type="client backend",
               wait_event_type=None, wait_event=None, idle_s=1.0, xact_s=None, running_s=1.0, xmin_age=None,
               query="SELECT 1", is_self=False)
    row.update(over)
    return row


def lock(**over) -> dict:
    row = dict(pid=201, usename="app", datname="shop", application_name="web", query="UPDATE t SET v = 1",
               waiting_s=30.0, lock="transactionid (ShareLock)", relations="public.t", blocker_pid=200,
               blocker_user="app", blocker_state="idle in transaction", blocker_xact_s=90.0, blocker_query="UPDATE t")
    row.update(over)
    return row


def sessions(*rows, max_connections=100):
    return {"activity": list(rows) or pd.DataFrame(columns=list(backend())),
            "settings": [{"max_connections": max_connections, "superuser_reserved_connections": 3}]}


def statement(**over) -> dict:
    row = dict(queryid=1, query="SELECT * FROM events ORDER BY payload", calls=4, total_exec_ms=800.0, mean_exec_ms=200.0,
               rows=100, shared_blks_hit=10, shared_blks_read=0, temp_blks_written=0)
    row.update(over)
    return row


NO_STATEMENTS = pd.DataFrame(columns=list(statement()))
W, C, INFO = "warning", "critical", "info"

INDEX_SCAN = "Index Scan using invoices_tenant_idx on invoices  (cost=0.29..274.00 rows=200 width=16)"


def tenant_plans(largest: str, typical: str, generic: str) -> dict:
    from perfkit import plans
    from perfkit.health.tenants import Tenants

    return {"queryid": 7, "query": "SELECT id FROM invoices WHERE tenant_id = $1", "calls": 10, "mean_exec_ms": 5.0,
            "schema": "public", "table": "invoices",
            "tenants": Tenants("tenant_id", "1", 42_000.0, "100", 200.0, 60_000.0),
            "plans": {"largest": plans.parse(largest), "typical": plans.parse(typical), "generic": plans.parse(generic)}}


CASES = [
    # -- indexes -----------------------------------------------------------------------------
    ("unused_indexes", {"indexes": [index()], "stats_age": age()}, {}, [("unused_index", W)], "drop_index"),
    ("unused_indexes", {"indexes": [index()], "stats_age": age(2 * DAY)}, {}, [("unused_index", INFO)], "drop_index"),
    ("unused_indexes", {"indexes": [index(idx_scan=5)], "stats_age": age()}, {}, [], None),
    ("unused_indexes", {"indexes": [index(idx_scan=5)], "stats_age": age()}, {"max_scans": 5}, [("unused_index", W)], "drop_index"),
    ("unused_indexes", {"indexes": [index(size_bytes=100)], "stats_age": age()}, {}, [], None),
    ("unused_indexes", {"indexes": [index(is_unique=True)], "stats_age": age()}, {}, [], None),
    ("unused_indexes", {"indexes": [index(backs_constraint=True)], "stats_age": age()}, {}, [], None),
    ("unused_indexes", {"indexes": [index(is_valid=False)], "stats_age": age()}, {}, [], None),
    ("duplicate_indexes", {"indexes": [index(), index(index="orders_a_again", oid=11)]}, {},
     [("duplicate_index", W)], "drop_index"),
    ("duplicate_indexes", {"indexes": [index(), index(index="orders_a_b", oid=11, nkeys=2, columns=[2, 3],
                                                     column_names=["a", "b"], opclasses=[1978, 1978],
                                                     collations=[0, 0], options=[0, 0])]}, {},
     [("duplicate_index", W)], "drop_index"),
    ("duplicate_indexes", {"indexes": [index(is_unique=True), index(index="orders_a_b", oid=11, nkeys=2, columns=[2, 3],
                                                                    column_names=["a", "b"], opclasses=[1978, 1978],
                                                                    collations=[0, 0], options=[0, 0])]}, {}, [], None),
    ("duplicate_indexes", {"indexes": [index(), index(index="orders_b", oid=11, columns=[3], column_names=["b"])]}, {}, [], None),
    ("duplicate_indexes", {"indexes": [index(), index(index="orders_a_part", oid=11, predicate="(a > 0)")]}, {}, [], None),
    ("duplicate_indexes", {"indexes": [index(), index(index="orders_a_again", oid=11)]}, {"min_size_bytes": GB}, [], None),
    ("missing_fk_indexes", {"foreign_keys": [fk()]}, {}, [("missing_fk_index", W)], "create_index"),
    ("missing_fk_indexes", {"foreign_keys": [fk(estimated_rows=10, live_rows=10)]}, {}, [], None),
    ("missing_fk_indexes", {"foreign_keys": [fk(estimated_rows=10, live_rows=10)]}, {"min_rows": 0},
     [("missing_fk_index", W)], "create_index"),
    ("invalid_indexes", {"indexes": [index(is_valid=False)]}, {}, [("invalid_index", W)], "reindex"),
    ("invalid_indexes", {"indexes": [index(is_valid=False, building=True)]}, {}, [], None),
    ("invalid_indexes", {"indexes": [index()]}, {}, [], None),
    # -- tables ------------------------------------------------------------------------------
    ("seq_scan_large_tables", {"tables": [table(seq_scan=50, seq_tup_read=2_500_000, idx_scan=0)],
                               "workload": workload(tenant_id="equality", created_at="sort")}, {},
     [("seq_scan_large_table", W)], "create_index"),
    ("seq_scan_large_tables", {"tables": [table(seq_scan=50, seq_tup_read=2_500_000, idx_scan=0)], "workload": None}, {},
     [("seq_scan_large_table", W)], None),
    ("seq_scan_large_tables", {"tables": [table(seq_scan=50, idx_scan=51)], "workload": None}, {}, [], None),
    ("seq_scan_large_tables", {"tables": [table(seq_scan=50, idx_scan=51)], "workload": None}, {"min_seq_share": 0.0},
     [("seq_scan_large_table", W)], None),
    ("seq_scan_large_tables", {"tables": [table(seq_scan=9, idx_scan=0)], "workload": None}, {}, [], None),
    ("seq_scan_large_tables", {"tables": [table(seq_scan=50, idx_scan=0, n_live_tup=9_999)], "workload": None}, {}, [], None),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row()], "workload": workload(tenant_id="equality")}, {},
     [("missing_tenant_index", W)], "create_index"),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row(leads_an_index=True)], "workload": None}, {}, [], None),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row(estimated_rows=10, live_rows=10)], "workload": None}, {}, [], None),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row(column="org_id")], "workload": None}, {}, [], None),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row(column="org_id")], "workload": None},
     {"tenant_columns": ("org_id",)}, [("missing_tenant_index", W)], "create_index"),
    ("low_cache_hit", {"tables": [table(heap_hit=9_000, heap_read=2_000, idx_hit=0, seq_scan=50, seq_tup_read=2_500_000)],
                       "database": database()}, {}, [("low_cache_hit", W)], None),
    # a busy well-indexed table missing the cache: the server's memory, not the table (issue 18)
    ("low_cache_hit", {"tables": [table(heap_hit=9_000, heap_read=2_000, idx_hit=0)], "database": database()}, {}, [], None),
    ("low_cache_hit", {"tables": [table(heap_hit=9_000, heap_read=2_000, idx_hit=0, size_bytes=64 * MB)],
                       "database": database(), "settings": [{"shared_buffers": 16 * MB}]}, {}, [("low_cache_hit", W)], None),
    # a tenant table no statement filters on the tenant, or never read sequentially: nothing (issue 18)
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row()], "workload": workload(status="equality")}, {}, [], None),
    ("missing_tenant_indexes", {"tenant_tables": [tenant_row(seq_scan=0)], "workload": workload(tenant_id="equality")},
     {}, [], None),
    ("low_cache_hit", {"tables": [table(heap_hit=900, heap_read=200, idx_hit=0)], "database": database()}, {}, [], None),
    ("low_cache_hit", {"tables": [table()], "database": database(blks_hit=90_000, blks_read=10_000)}, {},
     [("low_cache_hit", W)], None),
    ("low_cache_hit", {"tables": [table()], "database": database()}, {}, [], None),
    # -- maintenance -------------------------------------------------------------------------
    ("table_bloat", {"tables": [table(n_live_tup=5000, n_dead_tup=5000)], "widths": []}, {}, [("table_bloat", W)], "vacuum"),
    ("table_bloat", {"tables": [table(n_live_tup=50_000, n_dead_tup=2000)], "widths": []}, {}, [], None),
    ("table_bloat", {"tables": [table(n_live_tup=500, n_dead_tup=500)], "widths": []}, {}, [], None),
    ("table_bloat", {"tables": [table(reltuples=1000.0, relpages=100_000, n_live_tup=1000)],
                     "widths": [{"schema": "public", "table": "orders", "row_width": 40.0, "has_nulls": False,
                                 "analyzed_columns": 4}]}, {}, [("table_bloat", W)], "vacuum_full"),
    ("table_bloat", {"tables": [table(reltuples=1000.0, relpages=100_000, n_live_tup=1000)],
                     "widths": [{"schema": "public", "table": "orders", "row_width": 40.0, "has_nulls": False,
                                 "analyzed_columns": 4}]}, {"min_bloat_bytes": 10 * GB}, [], None),
    ("vacuum_overdue", {"tables": [table(n_dead_tup=30_000)]}, {}, [("vacuum_overdue", W)], "vacuum"),
    ("vacuum_overdue", {"tables": [table(n_dead_tup=15_000)]}, {}, [], None),
    ("vacuum_overdue", {"tables": [table(n_dead_tup=15_000, autovacuum="false")]}, {}, [("vacuum_overdue", W)], "vacuum"),
    ("vacuum_overdue", {"tables": [table(n_dead_tup=15_000)]}, {"overdue_factor": 1.0}, [("vacuum_overdue", W)], "vacuum"),
    ("analyze_overdue", {"tables": [table(n_mod_since_analyze=20_000)]}, {}, [("analyze_overdue", W)], "analyze"),
    ("analyze_overdue", {"tables": [table(n_mod_since_analyze=5_000)]}, {}, [], None),
    ("analyze_overdue", {"tables": [table(n_mod_since_analyze=20_000)]}, {"min_modifications": 10**6}, [], None),
    ("sequence_exhaustion", {"sequences": [sequence(last_value=2_000_000_000)]}, {},
     [("sequence_exhaustion", C)], "alter_column_type"),
    ("sequence_exhaustion", {"sequences": [sequence(last_value=1_700_000_000)]}, {},
     [("sequence_exhaustion", W)], "alter_column_type"),
    ("sequence_exhaustion", {"sequences": [sequence(last_value=1_000_000_000)]}, {}, [], None),
    ("sequence_exhaustion", {"sequences": [sequence(last_value=2**62 * 1.9, column_type="bigint")]}, {},
     [("sequence_exhaustion", C)], "alter_sequence"),
    ("xid_wraparound", {"databases": [{"database": "shop", "xid_age": 1_700_000_000, "mxid_age": 5}],
                        "tables": [{"schema": "public", "table": "orders", "xid_age": 1_200_000_000}],
                        "settings": [{"autovacuum_freeze_max_age": 2e8}]}, {},
     [("xid_wraparound", C), ("xid_wraparound", W)], "vacuum"),
    ("xid_wraparound", {"databases": [{"database": "shop", "xid_age": 1_000, "mxid_age": 5}],
                        "tables": [{"schema": "public", "table": "orders", "xid_age": 1_000}],
                        "settings": [{"autovacuum_freeze_max_age": 2e8}]}, {}, [], None),
    ("xid_wraparound", {"databases": [{"database": "shop", "xid_age": 1_000, "mxid_age": 5}],
                        "tables": [{"schema": "public", "table": t, "xid_age": 1_000} for t in "abc"],
                        "settings": [{"autovacuum_freeze_max_age": 2e8}]}, {"warning_share": 0.0, "limit": 2},
     [("xid_wraparound", W)] * 3, "vacuum"),
    # -- sessions ----------------------------------------------------------------------------
    ("connection_saturation", sessions(*[backend(pid=i) for i in range(75)]), {}, [("connection_saturation", W)], None),
    ("connection_saturation", sessions(*[backend(pid=i) for i in range(85)]), {}, [("connection_saturation", C)], None),
    ("connection_saturation", sessions(*[backend(pid=i) for i in range(50)]), {}, [], None),
    ("pool_sizing", {**sessions(backend()), "database": database(server_address="10.0.0.5")},
     {"app_instances": 4, "pool_size": 30}, [("pool_oversized", C)], None),
    ("pool_sizing", {**sessions(*[backend(pid=i) for i in range(60)]), "database": database()}, {"cores": 4}, [("pool_oversized", W)], None),
    ("pool_sizing", {**sessions(*[backend(pid=i) for i in range(60)]), "database": database(server_address="10.0.0.5")},
     {}, [], None),  # cores unknown: only the configured pools against max_connections could be judged
    ("pool_sizing", {**sessions(backend()), "database": database()}, {"cores": 8, "app_instances": 2, "pool_size": 10}, [], None),
    # PostgreSQL 16's reserved_connections leave fewer slots: 4 x 22 = 88 fits 97, not 87
    ("pool_sizing", {**sessions(backend()), "database": database(server_address="10.0.0.5")},
     {"app_instances": 4, "pool_size": 22}, [], None),
    ("pool_sizing", {"activity": [backend()], "database": database(server_address="10.0.0.5"),
                     "settings": [{"max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 10}]},
     {"app_instances": 4, "pool_size": 22}, [("pool_oversized", C)], None),
    ("connection_saturation", sessions(*[backend(pid=i, backend_type="autovacuum worker") for i in range(90)]), {}, [], None),
    ("idle_in_transaction", sessions(backend(state="idle in transaction", idle_s=120.0, xact_s=130.0)), {},
     [("idle_in_transaction", W)], "terminate_backend"),
    ("idle_in_transaction", sessions(backend(state="idle in transaction", idle_s=900.0, xact_s=900.0, xmin_age=40)), {},
     [("idle_in_transaction", C)], "terminate_backend"),
    ("idle_in_transaction", sessions(backend(state="idle in transaction", idle_s=30.0, xact_s=30.0)), {}, [], None),
    ("idle_in_transaction", sessions(backend(state="idle", idle_s=900.0)), {}, [], None),
    ("idle_in_transaction", sessions(backend(state="idle in transaction", idle_s=900.0, xact_s=900.0, is_self=True)), {}, [], None),
    ("long_running_queries", sessions(backend(state="active", running_s=120.0)), {}, [("long_running_query", W)], "cancel_backend"),
    ("long_running_queries", sessions(backend(state="active", running_s=700.0, wait_event_type="Lock", wait_event="tuple")),
     {}, [("long_running_query", C)], "cancel_backend"),
    ("long_running_queries", sessions(backend(state="active", running_s=10.0)), {}, [], None),
    ("long_running_queries", sessions(backend(state="active", running_s=10.0)), {"min_seconds": 5}, [("long_running_query", W)],
     "cancel_backend"),
    ("lock_waits", {"lock_waits": [lock()]}, {}, [("lock_wait", W)], "terminate_backend"),
    ("lock_waits", {"lock_waits": [lock(waiting_s=61.0)]}, {}, [("lock_wait", C)], "terminate_backend"),
    ("lock_waits", {"lock_waits": [lock(waiting_s=2.0)]}, {}, [], None),
    ("lock_waits", {"lock_waits": [lock(waiting_s=None)]}, {}, [], None),
    # -- settings ----------------------------------------------------------------------------
    ("work_mem", {"settings": settings(), "database": database(temp_files=10, temp_bytes=200 * MB), "memory": memory(64 * GB),
                  "statements": [statement(temp_blks_written=10_000)]}, {}, [("setting_work_mem", W)], "alter_system"),
    ("work_mem", {"settings": settings(max_connections=1000), "database": database(temp_bytes=200 * MB),
                  "memory": memory(16 * GB), "statements": [statement(temp_blks_written=100_000, calls=1)]}, {},
     [("setting_work_mem", W)], "set"),
    ("work_mem", {"settings": settings(), "database": database(temp_bytes=10 * MB), "memory": memory(64 * GB),
                  "statements": NO_STATEMENTS}, {}, [], None),
    ("work_mem", {"settings": settings(), "database": database(), "memory": memory(256 * MB), "statements": NO_STATEMENTS},
     {}, [("setting_work_mem", W)], None),
    ("shared_buffers", {"settings": settings(), "database": database(), "memory": memory(8 * GB)}, {},
     [("setting_shared_buffers", W)], "alter_system"),
    ("shared_buffers", {"settings": settings(), "database": database(), "memory": memory(512 * MB)}, {}, [], None),
    ("shared_buffers", {"settings": settings(), "database": database(), "memory": memory(256 * MB)}, {},
     [("setting_shared_buffers", INFO)], None),
    ("shared_buffers", {"settings": settings(), "database": database(), "memory": memory(None)}, {},
     [("setting_shared_buffers", INFO)], None),
    ("shared_buffers", {"settings": settings(shared_buffers=GB), "database": database(), "memory": memory(None)}, {}, [], None),
    ("effective_cache_size", {"settings": settings(), "database": database(), "memory": memory(16 * GB)}, {},
     [("setting_effective_cache_size", INFO)], "alter_system"),
    ("effective_cache_size", {"settings": settings(), "database": database(), "memory": memory(8 * GB)}, {}, [], None),
    ("effective_cache_size", {"settings": settings(effective_cache_size=64 * MB), "database": database(),
                              "memory": memory(None)}, {}, [("setting_effective_cache_size", W)], "alter_system"),
    ("random_page_cost", {"settings": settings(), "database": database()}, {}, [("setting_random_page_cost", INFO)], "alter_system"),
    ("random_page_cost", {"settings": settings(random_page_cost=1.1), "database": database()}, {}, [], None),
    ("random_page_cost", {"settings": settings(), "database": database(blks_hit=900, blks_read=100)}, {}, [], None),
    ("autovacuum", {"settings": settings(autovacuum="off"), "tables": [table()]}, {}, [("setting_autovacuum", C)], "alter_system"),
    ("autovacuum", {"settings": settings(), "tables": [table(reltuples=5e6)]}, {},
     [("setting_autovacuum_vacuum_scale_factor", INFO), ("setting_autovacuum_analyze_scale_factor", INFO)], "alter_table"),
    ("autovacuum", {"settings": settings(), "tables": [table(reltuples=5e6, vacuum_scale_factor=0.01,
                                                             analyze_scale_factor=0.01)]}, {}, [], None),
    ("autovacuum", {"settings": settings(), "tables": [table()]}, {}, [], None),
    ("max_connections", {"settings": settings(), "activity": [backend(pid=i) for i in range(120)]}, {},
     [("setting_max_connections", W)], None),
    ("max_connections", {"settings": settings(), "activity": [backend(pid=i, state="active") for i in range(10)]}, {}, [], None),
    ("max_connections", {"settings": settings(max_connections=800), "activity": [backend()]}, {},
     [("setting_max_connections", INFO)], None),
    ("large_offset", {"statements": [statement(query="SELECT * FROM orders WHERE tenant_id = $1 ORDER BY created_at DESC "
                                               "LIMIT $2 OFFSET $3", calls=40, total_exec_ms=8000.0, mean_exec_ms=200.0)],
                      "columns": {("public", "orders"): frozenset({"tenant_id", "created_at"})}, "indexes": []},
     {}, [("large_offset", INFO)], "create_index"),
    ("large_offset", {"statements": [statement(query="SELECT * FROM orders ORDER BY created_at LIMIT 10 OFFSET 5000",
                                               calls=40, mean_exec_ms=90.0)],
                      "columns": {("public", "orders"): frozenset({"created_at"})}, "indexes": []},
     {}, [("large_offset", W)], "create_index"),
    ("large_offset", {"statements": [statement(query="SELECT * FROM orders ORDER BY created_at LIMIT 10 OFFSET 20",
                                               calls=40, mean_exec_ms=90.0)],
                      "columns": {("public", "orders"): frozenset({"created_at"})}, "indexes": []}, {}, [], None),
    ("large_offset", {"statements": [statement(query="SELECT * FROM orders ORDER BY created_at LIMIT 10 OFFSET 5000",
                                               calls=40, mean_exec_ms=20.0)],
                      "columns": {("public", "orders"): frozenset({"created_at"})}, "indexes": []}, {}, [], None),
    ("large_offset", {"statements": [statement(calls=40)], "columns": {}, "indexes": []}, {}, [], None),
    ("tenant_plans", {"plans": [tenant_plans("Seq Scan on invoices  (cost=0.00..2836.00 rows=42000 width=16)",
                                             INDEX_SCAN, INDEX_SCAN)], "notes": []}, {}, [("tenant_plan_skew", W)], "set"),
    ("tenant_plans", {"plans": [tenant_plans(INDEX_SCAN, INDEX_SCAN, INDEX_SCAN)], "notes": []}, {}, [], None),
    ("tenant_plans", {"plans": [], "notes": ["queryid 7: no representative value for $2 (status)"]}, {},
     [("tenant_plans_not_compared", INFO)], None),
]

BY_NAME = {c.name: c for c in health.CHECKS}


def _id(case) -> str:
    name, _, thresholds, expected, _ = case
    return f"{name}-{'+'.join(k + ':' + s for k, s in expected) or 'none'}-{','.join(thresholds) or 'defaults'}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_judging(case):
    name, evidence, thresholds, expected, action = case
    check = BY_NAME[name]
    found = check.judge_rows(evidence, **thresholds)
    assert sorted((f["kind"], f["severity"]) for f in found) == sorted(expected)
    for row in found:
        assert row["check"] == name and row["area"] == check.area
        assert set(row) >= {"kind", "severity", "subject", "evidence", "recommendation", "sql", "fix"}
        if row["sql"]:  # SQL only ever rendered from a fix object
            assert isinstance(row["fix"], sql.Fix) and row["sql"] == row["fix"].sql
    if action is not None:
        assert found and {f["fix"].action for f in found if f["fix"] is not None} == {action}
    elif found:
        assert all(f["fix"] is None for f in found)


def test_every_check_has_firing_and_quiet_cases():
    fired = {c[0] for c in CASES if c[3]}
    quiet = {c[0] for c in CASES if not c[3]}
    assert set(BY_NAME) == fired, set(BY_NAME) - fired
    assert set(BY_NAME) == quiet, set(BY_NAME) - quiet


def test_areas_come_from_the_check_modules():
    assert health.AREAS == ("indexes", "tables", "maintenance", "sessions", "settings", "queries", "tenants")
    assert BY_NAME["vacuum_overdue"].area == "maintenance" and BY_NAME["lock_waits"].area == "sessions"
    assert health.area_for_kind("setting_autovacuum_vacuum_scale_factor") == "settings"
    assert health.area_for_kind("sequence_exhaustion") == "maintenance"


def test_drop_fixes_name_the_table_and_the_dropped_keys():
    found = BY_NAME["unused_indexes"].judge_rows({"indexes": [index(nkeys=2, columns=[2, 3], column_names=["a", "b"],
                                                                   options=[0, 1])], "stats_age": age()})
    fix = found[0]["fix"]
    assert fix.table == "orders" and fix.key_columns == ("a", "b") and fix.columns[1].descending
    assert fix.sql == "DROP INDEX CONCURRENTLY public.orders_a_idx;"
    settings_fix = BY_NAME["shared_buffers"].judge_rows(
        {"settings": settings(), "database": database(), "memory": memory(8 * GB)})[0]["fix"]
    assert settings_fix.restart and "restart" in settings_fix.sql and "pg_reload_conf" not in settings_fix.sql


def test_health_facts_count_by_area():
    rows = [finding("vacuum_overdue", "warning", "t", "e", "r", area="maintenance"),
            finding("lock_wait", "critical", "p", "e", "r", area="sessions")]
    facts = health.health_facts(pd.DataFrame(rows), target="x")
    assert facts["counts"] == {"critical": 1, "warning": 1, "info": 0}
    assert facts["by_area"]["sessions"]["critical"] == 1 and facts["by_area"]["maintenance"]["warning"] == 1

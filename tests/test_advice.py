"""perfkit.advice: columns read by pglast, index advice checked with hypopg, and recommend() merging fixes."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from perfkit import advice, db, health, statements
from perfkit.errors import BadInputError
from perfkit.findings import finding
from perfkit.health.predicates import column_uses

# (statement, expected (table, column, usage) in order): the cases are data
COLUMN_CASES = [
    (
        "SELECT * FROM orders WHERE tenant_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3",
        [("orders", "tenant_id", "equality"), ("orders", "status", "equality"), ("orders", "created_at", "sort")],
    ),
    (
        "SELECT o.id FROM s.orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > $1",
        [("customers", "id", "join"), ("orders", "customer_id", "join"), ("orders", "created_at", "range")],
    ),
    ("UPDATE invoices SET paid = true WHERE company_id = $1 AND id IN ($2, $3)",
     [("invoices", "company_id", "equality"), ("invoices", "id", "equality")]),
    ("DELETE FROM sessions WHERE expires_at BETWEEN $1 AND $2", [("sessions", "expires_at", "range")]),
    (
        "SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.a_id = a.id AND b.kind = $1) AND a.deleted_at IS NULL",
        [("b", "a_id", "join"), ("a", "id", "join"), ("b", "kind", "equality"), ("a", "deleted_at", "equality")],
    ),
    ("WITH recent AS (SELECT * FROM logs WHERE ts >= $1) SELECT * FROM recent WHERE recent.level = $2",
     [("logs", "ts", "range")]),
    ("SELECT * FROM t WHERE lower(email) = $1 OR x = $2", []),  # OR and expressions: no single index
    ("SELECT * FROM t WHERE", []),  # truncated text does not parse
    ("VACUUM t", []),
]


@pytest.mark.parametrize("sql, expected", COLUMN_CASES)
def test_column_uses(sql, expected):
    assert [(u.table, u.column, u.usage) for u in column_uses(sql)] == expected


def test_unqualified_column_with_two_tables_is_ambiguous_until_the_catalog_decides():
    uses = column_uses("SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE sku = $1")
    sku = [u for u in uses if u.column == "sku"]
    assert {u.table for u in sku} == {"orders", "items"} and all(u.ambiguous for u in sku)
    from perfkit.health.predicates import resolve_uses

    resolved = resolve_uses(sku, {("public", "orders"): {"id"}, ("public", "items"): {"order_id", "sku"}})
    assert [(schema, table) for schema, table, _ in resolved] == [("public", "items")]


@pytest.fixture(scope="module")
def shop(sandbox):
    """A tenant table with a costly per-tenant statement, a served statement and a tiny table."""
    schema = "ha_" + uuid.uuid4().hex[:8]
    with sandbox.admin_connect() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(
            f"CREATE TABLE {schema}.orders (id bigserial PRIMARY KEY, tenant_id int NOT NULL, status text, "
            "created_at timestamptz NOT NULL DEFAULT now(), total numeric)"
        )
        admin.execute(
            f"INSERT INTO {schema}.orders (tenant_id, status, created_at, total) SELECT g % 50, "
            "(ARRAY['new','paid','shipped'])[1 + g % 3], now() - g * interval '1 min', g FROM generate_series(1, 30000) g"
        )
        admin.execute(f"CREATE TABLE {schema}.colors (id int PRIMARY KEY, name text)")
        admin.execute(f"INSERT INTO {schema}.colors SELECT g, 'c' || g FROM generate_series(1, 5) g")
        admin.execute(f"ANALYZE {schema}.orders, {schema}.colors")
        for i in range(40):
            admin.execute(
                f"SELECT id, total FROM {schema}.orders WHERE status = %s AND tenant_id = %s "
                "ORDER BY created_at DESC LIMIT 20",
                ("paid", i % 50),
            )
            admin.execute(f"SELECT * FROM {schema}.orders WHERE id = %s", (i + 1,))  # served by the primary key
            admin.execute(f"SELECT * FROM {schema}.colors WHERE name = %s", (f"c{i % 5}",))  # 5 rows: no index pays
        admin.execute("SELECT pg_stat_force_next_flush()")
        yield schema
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def mine(findings, schema):
    return findings[findings["subject"].str.startswith(schema + ".")]


def test_index_advice_tenant_first_and_verified_with_hypopg(engine, shop, sandbox):
    assert sandbox.hypopg, "the sandbox should have hypopg (postgresql-15-hypopg)"
    found = mine(advice.index_advice(engine, top_n=200), shop)
    assert list(found["subject"]) == [f"{shop}.orders (tenant_id, status, created_at DESC)"]
    row = found.iloc[0]
    assert row["kind"] == "index_advice" and row["severity"] == "warning"
    assert row["sql"] == (
        f"CREATE INDEX CONCURRENTLY orders_tenant_id_status_created_at_idx ON {shop}.orders (tenant_id, status, created_at DESC);"
    )
    assert row["cost_after"] <= row["cost_before"] / 2
    assert f"from {row['cost_before']:,.1f} to {row['cost_after']:,.1f}" in row["evidence"]
    assert row["benefit_ms"] > 0 and "40 calls" in row["evidence"]
    with db.session(engine) as conn:  # hypopg left nothing behind in the session
        assert db.scalar(conn, "SELECT count(*) FROM hypopg_list_indexes") == 0


def test_index_advice_thresholds(engine, shop):
    # the 5-row table's index cannot halve the cost: kept only when any cut (even none) is enough
    tiny = f"{shop}.colors (name)"
    assert tiny not in set(advice.index_advice(engine, top_n=200)["subject"])
    # even with no cut asked for, an index that saves nothing is not proposed: it is rejected, with why
    loose = advice.index_advice(engine, top_n=200, min_cost_reduction=0.0)
    assert tiny not in set(loose["subject"])
    assert tiny in set(loose.attrs["rejected"]["subject"])
    # without hypopg the proposals are kept, unverified
    unverified = mine(advice.index_advice(engine, top_n=200, use_hypopg=False), shop)
    assert {tiny, f"{shop}.orders (tenant_id, status, created_at)"} <= set(unverified["subject"])
    assert set(unverified["severity"]) == {"info"} and unverified["evidence"].str.contains("not verified").all()
    assert mine(advice.index_advice(engine, top_n=200, min_total_ms=10**9), shop).empty
    # the statement filters on status first: only the tenant rule puts tenant_id ahead of it
    no_tenant = mine(advice.index_advice(engine, top_n=200, tenant_columns=()), shop)
    assert set(no_tenant["subject"]) == {f"{shop}.orders (status, tenant_id, created_at DESC)"}


def test_index_advice_from_a_statement_snapshot(engine, shop):
    snap = statements.snapshot(engine)
    found = mine(advice.index_advice(engine, statements=snap, top_n=200), shop)
    assert list(found["subject"]) == [f"{shop}.orders (tenant_id, status, created_at DESC)"]


def test_whatif_of_a_parameterized_delete_runs_nothing(engine, shop):
    from perfkit.plans import capture

    assert advice.is_plannable(f"DELETE FROM {shop}.orders WHERE tenant_id = $1")
    assert not advice.is_plannable(f"INSERT INTO {shop}.orders DEFAULT VALUES") and not advice.is_plannable("VACUUM")
    tried = capture.whatif(engine, f"DELETE FROM {shop}.orders WHERE tenant_id = $1",
                           f"CREATE INDEX CONCURRENTLY ON {shop}.orders (tenant_id)")
    assert tried.cost_before > 0 and tried.used and tried.cost_after < tried.cost_before
    assert db.scalar(engine, f"SELECT count(*) FROM {shop}.orders") == 30000
    assert db.scalar(engine, "SELECT count(*) FROM hypopg_list_indexes") == 0


def test_recommend_merges_health_advice_and_plan_findings_into_one_index(engine, shop):
    checks = health.check(engine, checks=[health.tables.missing_tenant_indexes, health.tables.seq_scan_large_tables])
    checks = mine(checks, shop)
    assert {"missing_tenant_index", "seq_scan_large_table"} <= set(checks["kind"])
    plan = [
        finding(
            "seq_scan",
            "warning",
            "SELECT id, total FROM orders WHERE status = $1 ...",
            "Seq Scan on orders removed 29,400 rows by filter",
            "Index orders (tenant_id).",
            f"CREATE INDEX ON {shop}.orders (tenant_id);",
        )
    ]
    merged = advice.recommend(health=checks, statements=statements.snapshot(engine), plan_findings=plan,
                              engine=engine, top_n=200)
    on_orders = merged[merged["sql"].str.contains(f"ON {shop}.orders", regex=False)]
    assert len(on_orders) == 1
    row = on_orders.iloc[0]
    assert row["kind"] == "index_advice" and row["subject"] == f"{shop}.orders (tenant_id, status, created_at DESC)"
    assert set(row["sources"]) == {"index_advice", "missing_tenant_index", "seq_scan_large_table", "seq_scan"}
    assert "also missing_tenant_index" in row["evidence"] and "also seq_scan:" in row["evidence"]


def test_recommend_merges_drops_and_maintenance_and_ranks():
    rows = [
        finding("unused_index", "info", "s.a_idx", "0 scans", "Drop it.", "DROP INDEX CONCURRENTLY s.a_idx;"),
        finding("duplicate_index", "warning", "s.a_idx", "prefix of s.ab_idx", "Drop it.", "DROP INDEX CONCURRENTLY s.a_idx;"),
        finding("table_bloat", "warning", "s.t", "50 % dead", "Vacuum.", "VACUUM (VERBOSE, ANALYZE) s.t;"),
        finding("vacuum_overdue", "warning", "s.t", "5x trigger", "Vacuum.",
                "ALTER TABLE s.t RESET (autovacuum_enabled);\nVACUUM (VERBOSE, ANALYZE) s.t;"),
        finding("analyze_overdue", "warning", "s.t", "stale", "Analyze.", "ANALYZE s.t;"),
        finding("index_advice", "warning", "s.t (a, b)", "cuts 90 %", "Create.", "CREATE INDEX CONCURRENTLY t_a_b_idx ON s.t (a, b);", 500.0),
        finding("index_advice", "warning", "s.t (a, c)", "cuts 80 %", "Create.", "CREATE INDEX CONCURRENTLY t_a_c_idx ON s.t (a, c);", 900.0),
        finding("connection_saturation", "critical", "connections", "85 %", "Pool."),
        finding("connection_saturation", "critical", "connections", "85 %", "Pool."),
    ]
    merged = advice.recommend(health=rows)
    assert list(merged["kind"]) == [
        "connection_saturation", "index_advice", "index_advice", "duplicate_index", "vacuum_overdue",
    ]
    drop = merged[merged["kind"] == "duplicate_index"].iloc[0]
    assert drop["sources"] == ["duplicate_index", "unused_index"] and drop["severity"] == "warning"
    vacuum = merged[merged["kind"] == "vacuum_overdue"].iloc[0]
    assert vacuum["sources"] == ["analyze_overdue", "table_bloat", "vacuum_overdue"]
    assert "RESET (autovacuum_enabled)" in vacuum["sql"]
    # two different wider indexes are two advices, ranked by benefit
    assert list(merged.loc[merged["kind"] == "index_advice", "benefit_ms"]) == [900.0, 500.0]


def test_recommend_bad_input():
    with pytest.raises(BadInputError, match="needs engine"):
        advice.recommend(statements=pd.DataFrame({"query": ["SELECT 1"], "total_exec_ms": [1.0]}))
    with pytest.raises(BadInputError, match="no 'kind' column"):
        advice.recommend(health=pd.DataFrame({"x": [1]}))

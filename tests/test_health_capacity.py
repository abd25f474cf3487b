"""The settings the field guides size by hand, on a real sandbox database: connection pools from the
server's cores, large-OFFSET pagination, the index-usage list and autovacuum per table."""

from __future__ import annotations

import re

import pytest

from perfkit import db, health, sections
from perfkit.health import queries


@pytest.fixture(scope="module")
def capacity_db(sandbox, new_database) -> str:
    """A database whose workload pages through a tenant's orders with OFFSET (no index for it), plus
    the same list paged by key and a table above the autovacuum table's size floor."""
    name = "capacity_checks"
    with new_database(name) as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, tenant_id int NOT NULL, created_at timestamptz NOT NULL,"
                     " total numeric, note text)")
        conn.execute("INSERT INTO orders SELECT g, 1 + g % 5, now() - g * interval '1 second', g, repeat('x', 200)"
                     " FROM generate_series(1, 60000) g")  # ~16 MB: above the 10 MB floor of the autovacuum table
        conn.execute("ANALYZE orders")
        for page in range(12):
            conn.execute("SELECT id, total FROM orders WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 20 OFFSET %s",
                         (1, 5000 + page * 20))
            conn.execute("SELECT id, total FROM orders WHERE tenant_id = %s AND created_at < now() "
                         "ORDER BY created_at DESC LIMIT 20", (2,))
            conn.execute("SELECT id FROM orders WHERE id = %s", (page + 1,))
    return sandbox.dsn_for(name)


def test_offset_of_reads_the_outermost_select():
    assert queries.offset_of("SELECT * FROM t ORDER BY a LIMIT $1 OFFSET $2") == "$2"
    assert queries.offset_of("SELECT * FROM t ORDER BY a LIMIT 10 OFFSET 1000") == "1000"
    assert queries.offset_of("SELECT * FROM t WHERE a = $1 ORDER BY a LIMIT 10") is None
    assert queries.offset_of("SELECT * FROM (SELECT * FROM t OFFSET 5) s") is None  # not the page itself
    assert queries.offset_of("not sql at all") is None


def test_large_offset_proposes_keyset_pagination_with_its_index(capacity_db):
    engine = db.connect(capacity_db)
    try:
        found = health.check(engine, checks=[queries.large_offset], min_mean_ms=0)
    finally:
        engine.dispose()
    assert list(found["kind"]) == ["large_offset"]  # the keyset page and the key lookup are quiet
    row = found.iloc[0]
    assert row["severity"] == "info" and "OFFSET $" in row["evidence"] and "on orders" in row["evidence"]
    assert "hides the offsets" in row["evidence"]  # pg_stat_statements keeps the offset as $n
    assert "12 calls" in row["evidence"]
    assert "Paginate by key" in row["recommendation"]
    assert row["sql"] == "CREATE INDEX CONCURRENTLY orders_tenant_id_created_at_idx ON public.orders (tenant_id, created_at DESC);"
    assert row["fix"].action == "create_index" and row["area"] == "queries"


def test_large_offset_is_quiet_below_its_mean_time(capacity_db):
    engine = db.connect(capacity_db)
    try:
        found = health.check(engine, checks=[queries.large_offset])  # 50 ms by default: these are fast
    finally:
        engine.dispose()
    assert found.empty


def test_pool_sizing_from_the_cores_and_the_apps_pools(capacity_db):
    engine = db.connect(capacity_db)
    try:
        result = health.assess(engine, cores=2, spindles=1, app_instances=4, pool_size=40)
    finally:
        engine.dispose()
    pool = result.tables["pool_sizing"].iloc[0]
    assert pool["formula"] == "(2 cores × 2) + 1 spindle = 5" and pool["optimal_active"] == 5
    with db.connect(capacity_db).connect() as conn:
        limit = int(db.query(conn, "SELECT current_setting('max_connections')::int AS n").iloc[0]["n"])
    assert pool["configured"] == 160 and pool["max_connections"] == limit
    oversized = result.findings[result.findings["kind"] == "pool_oversized"].iloc[0]
    # 160 connections against the sandbox's max_connections (less the reserved ones)
    expected = "critical" if 160 > pool["available"] else "warning"
    assert oversized["severity"] == expected and "4 app instances × pool size 40 = 160" in oversized["evidence"]
    assert "PgBouncer" in oversized["recommendation"]


def test_pool_sizing_is_quiet_for_pools_the_server_can_take(capacity_db):
    engine = db.connect(capacity_db)
    try:
        found = health.check(engine, checks=[health.sessions.pool_sizing], cores=8, app_instances=2, pool_size=10)
    finally:
        engine.dispose()
    assert found.empty


def test_index_usage_and_autovacuum_tables(capacity_db):
    engine = db.connect(capacity_db)
    try:
        result = health.assess(engine)
    finally:
        engine.dispose()
    usage = result.tables["index_usage"]
    pkey = usage[usage["index"] == "orders_pkey"].iloc[0]
    assert pkey["idx_scan"] >= 12 and pkey["idx_tup_fetch"] >= 12 and pkey["idx_tup_read"] >= 12
    assert 0 < pkey["scan_share"] <= 1
    vacuum = result.tables["autovacuum"].set_index("table")
    assert "orders" in vacuum.index
    orders = vacuum.loc["orders"]
    assert orders["rows"] == 60000 and orders["vacuum_waits_for"] == round(50 + 0.2 * 60000)
    assert not orders["per_table"]
    pool = result.tables["pool_sizing"].iloc[0]
    assert pool["cores_from"].endswith("(this machine's: the server is local)")  # the sandbox listens on 127.0.0.1
    # the notebook section shows all three
    blocks = sections.health_usage_blocks(result)
    text = " ".join(b for b in blocks if isinstance(b, str))
    assert "**Connection pools.**" in text and "**Index usage**" in text and "**Autovacuum per table**" in text


@pytest.fixture(scope="module")
def skewed_db(sandbox, new_database) -> str:
    """Invoices of 200 tenants where tenant 1 holds 70 % of the rows: its list wants a sequential scan,
    the others' an index scan on (tenant_id)."""
    name = "tenant_skew"
    with new_database(name) as conn:
        conn.execute("CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id int NOT NULL, status text NOT NULL,"
                     " total numeric, note text)")
        conn.execute("INSERT INTO invoices SELECT g, CASE WHEN g % 10 < 7 THEN 1 ELSE 2 + g % 199 END,"
                     " CASE WHEN g % 10 = 0 THEN 'open' ELSE 'paid' END, g, repeat('x', 200)"
                     " FROM generate_series(1, 60000) g")
        conn.execute("CREATE INDEX invoices_tenant_idx ON invoices (tenant_id)")
        conn.execute("ANALYZE invoices")
        for tenant in (1, 7, 9, 11):
            conn.execute("SELECT id, total FROM invoices WHERE tenant_id = %s AND status = %s", (tenant, "paid"))
    return sandbox.dsn_for(name)


def test_the_largest_tenant_gets_another_plan(skewed_db):
    from perfkit.health import tenants

    engine = db.connect(skewed_db)
    try:
        found = health.check(engine, checks=[tenants.tenant_plans])
    finally:
        engine.dispose()
    skew = found[found["kind"] == "tenant_plan_skew"]
    assert len(skew) == 1, found[["kind", "evidence"]].to_string()
    row = skew.iloc[0]
    assert row["tenant"] == "1" and row["typical_tenant"] != "1"
    assert re.search(r"tenant_id = 1 \(≈ 4[0-4],\d{3} rows, (6[89]|7[0-2]) % of invoices\)", row["evidence"])
    assert row["largest_plan"].startswith("Seq Scan on invoices")
    assert "invoices_tenant_idx" in row["typical_plan"]
    assert row["largest_plan"] in row["evidence"] and row["typical_plan"] in row["evidence"]
    assert "force_custom_plan" in row["sql"] and "partial index" in row["recommendation"]


def test_parameter_columns_and_tenant_statistics():
    from perfkit.health import tenants

    text = "SELECT * FROM o WHERE o.tenant_id = $1 AND $2 = status ORDER BY created_at LIMIT $3 OFFSET $4"
    assert tenants.parameter_columns(text) == {1: "tenant_id", 2: "status", 3: "limit", 4: "offset"}
    assert tenants.parameter_columns("not sql") is None
    stats = {"column": "tenant_id", "mcv": "{1,5}", "mcf": [0.5, 0.01], "histogram": "{2,30,90}", "n_distinct": 100.0,
             "reltuples": 10000.0}
    t = tenants.tenants_of(stats)
    assert (t.largest, t.largest_rows, t.typical) == ("1", 5000.0, "30")
    assert round(t.typical_rows) == round(0.49 / 98 * 10000)

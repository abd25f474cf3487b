"""The settings the field guides size by hand, on a real sandbox database: connection pools from the
server's cores, large-OFFSET pagination, the index-usage list and autovacuum per table."""

from __future__ import annotations

import pytest

from perfkit import db, health, sections
from perfkit.health import queries


@pytest.fixture(scope="module")
def capacity_db(sandbox) -> str:
    """A database whose workload pages through a tenant's orders with OFFSET (no index for it), plus
    the same list paged by key and a table above the autovacuum table's size floor."""
    name = "capacity_checks"
    with sandbox.admin_connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    with sandbox.admin_connect(name, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
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
    assert row["severity"] == "warning" and "OFFSET $" in row["evidence"] and "on orders" in row["evidence"]
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

"""Benchmark: ``perfkit.health.check`` on a schema with many tables and indexes vs its bare catalog SQL in psql.

Prints the median seconds of each and their ratio (the cost of perfkit's sessions, DataFrames and wording).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from perfkit import db, health
from perfkit.health import indexes, sessions, settings, tables
from perfkit.sandbox import Sandbox

TABLES = 300
RUNS = 5

# the catalog queries the checks run, with their default thresholds
BARE_QUERIES = [
    (indexes.STATS_AGE_SQL, {}),
    (indexes.UNUSED_INDEXES_SQL, {"max_scans": 0, "min_size_bytes": 1024 * 1024}),
    (indexes.INDEX_DEFINITIONS_SQL, {}),
    (indexes.MISSING_FK_INDEXES_SQL, {}),
    (indexes.INVALID_INDEXES_SQL, {}),
    (tables.SEQ_SCAN_TABLES_SQL, {"min_rows": 10_000, "min_seq_scans": 10, "min_seq_share": 0.5}),
    (tables.TENANT_TABLES_SQL, {"tenant_columns": list(health.TENANT_COLUMNS)}),
    (tables.TABLE_BLOAT_SQL, {"min_dead_tuples": 1000, "min_bloat_bytes": 100 * 1024 * 1024}),
    (tables.MAINTENANCE_SQL, {"min_changes": 1000}),
    (tables.MAINTENANCE_SQL, {"min_changes": 1000}),
    (tables.TABLE_CACHE_SQL, {"min_blocks": 10_000}),
    (tables.DATABASE_CACHE_SQL, {}),
    (tables.SEQUENCES_SQL, {}),
    (tables.DATABASE_XID_SQL, {}),
    (tables.TABLE_XID_SQL, {"min_age": 2**30, "limit": 10}),
    (sessions.CONNECTIONS_SQL, {}),
    (sessions.IDLE_IN_TRANSACTION_SQL, {"min_seconds": 60.0}),
    (sessions.LONG_RUNNING_SQL, {"min_seconds": 60.0}),
    (sessions.LOCK_WAITS_SQL, {}),
    (settings.DATABASE_TEMP_SQL, {}),
    (settings.LARGE_TABLES_SQL, {"option": "autovacuum_vacuum_scale_factor", "min_rows": 1_000_000, "limit": 20}),
    (settings.LARGE_TABLES_SQL, {"option": "autovacuum_analyze_scale_factor", "min_rows": 1_000_000, "limit": 20}),
    (settings.CONNECTION_STATES_SQL, {}),
]


def literal(sql: str, params: dict) -> str:
    """The query with its binds rendered as SQL literals (for psql)."""
    clause = sa.text(sql)
    binds = []
    for name, value in params.items():
        kind = postgresql.ARRAY(sa.Text) if isinstance(value, list) else None
        binds.append(sa.bindparam(name, value, type_=kind) if kind is not None else sa.bindparam(name, value))
    clause = clause.bindparams(*binds)
    compiled = str(clause.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return compiled.replace("%%", "%")  # undo the driver's pyformat escaping: psql sends it as is


def build_schema(sb: Sandbox) -> None:
    with sb.admin_connect() as admin:
        admin.execute("CREATE SCHEMA IF NOT EXISTS bench")
        admin.execute("CREATE TABLE bench.tenants (id int PRIMARY KEY)")
        admin.execute("INSERT INTO bench.tenants SELECT generate_series(1, 100)")
        for i in range(TABLES):
            admin.execute(
                f"CREATE TABLE bench.t{i} (id bigserial PRIMARY KEY, tenant_id int REFERENCES bench.tenants(id), "
                "a int, b int, c text, created_at timestamptz DEFAULT now())"
            )
            admin.execute(f"INSERT INTO bench.t{i} (tenant_id, a, b, c) SELECT 1 + g % 100, g % 7, g, 'x' FROM generate_series(1, 200) g")
            admin.execute(f"CREATE INDEX ON bench.t{i} (a)")
            admin.execute(f"CREATE INDEX ON bench.t{i} (a, b)")
            if i % 2:
                admin.execute(f"CREATE INDEX ON bench.t{i} (tenant_id, created_at)")
        admin.execute("ANALYZE")


def main() -> int:
    with Sandbox() as sb:
        build_schema(sb)
        engine = db.connect(sb.dsn)
        health.check(engine)  # warm up: connections in the pool, catalog caches
        perfkit_times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            findings = health.check(engine)
            perfkit_times.append(time.perf_counter() - started)
        engine.dispose()

        script = ";\n".join(literal(sql, params) for sql, params in BARE_QUERIES) + ";\n"
        psql = [str(sb.bindir / "psql"), "-X", "-q", "-d", sb.dsn, "-o", "/dev/null"]
        subprocess.run(psql, input=script, text=True, check=True)
        psql_times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            subprocess.run(psql, input=script, text=True, check=True)
            psql_times.append(time.perf_counter() - started)

    ours, bare = statistics.median(perfkit_times), statistics.median(psql_times)
    print(f"schema: {TABLES} tables, {TABLES * 3 + TABLES // 2} indexes, {TABLES} foreign keys")
    kinds = ", ".join(f"{kind} {count}" for kind, count in findings["kind"].value_counts().items())
    print(f"perfkit.health.check ({len(health.CHECKS)} checks, {len(findings)} findings: {kinds}): median {ours:.3f} s of {RUNS}")
    print(f"bare catalog queries ({len(BARE_QUERIES)}) through one psql session: median {bare:.3f} s of {RUNS}")
    print(f"ratio perfkit / psql: {ours / bare:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

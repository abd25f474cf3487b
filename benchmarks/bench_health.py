"""Benchmark: ``perfkit.health.assess`` on a schema with many tables and indexes vs its bare catalog SQL in psql.

Prints the pg_stat_statements reads of one run (expect 1: the per-run context reads each piece
of evidence once), the median seconds of ``assess`` (checks + merged advice), of ``check``
(the checks alone) and of the bare SQL of every check's reads back to back in one psql session
(the context's reads and the pg_stat_statements snapshot), and their ratios.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from perfkit import db, health, statements
from perfkit.health import context, indexes, maintenance, sessions, tables
from perfkit.sandbox import Sandbox

TABLES = 300
RUNS = 5

# every read the checks' context sends (each once per run), with its parameters
BARE_QUERIES = [
    (context.DATABASE_SQL, {}),
    (context.INDEXES_SQL, {}),
    (context.TABLES_SQL, {}),
    (context.TABLE_COLUMNS_SQL, {}),
    (context.SETTINGS_SQL, {"names": list(context.SETTING_NAMES)}),
    (context.ACTIVITY_SQL, {}),
    (context.STATS_PRIVILEGE_SQL, {}),
    (indexes.MISSING_FK_INDEXES_SQL, {}),
    (tables.TENANT_TABLES_SQL, {"tenant_columns": list(health.TENANT_COLUMNS)}),
    (maintenance.ROW_WIDTHS_SQL, {}),
    (maintenance.SEQUENCES_SQL, {}),
    (maintenance.DATABASE_XID_SQL, {}),
    (maintenance.TABLE_XID_SQL, {}),
    (sessions.LOCK_WAITS_SQL, {}),
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


def statement_reads(fn) -> int:
    """How many pg_stat_statements reads ``fn()`` sends (counted on perfkit.db.query)."""
    sent = []
    real = db.query

    def counting(engine_or_conn, sql, params=None):
        sent.append(sql)
        return real(engine_or_conn, sql, params)

    db.query = counting
    try:
        fn()
    finally:
        db.query = real
    return sum("pg_stat_statements s" in sql for sql in sent)


def timed(fn) -> list[float]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    with Sandbox() as sb:
        build_schema(sb)
        engine = db.connect(sb.dsn)
        started = time.perf_counter()
        health.assess(engine)  # warm up: connections in the pool, catalog caches, the statement parse cache
        cold = time.perf_counter() - started
        reads = statement_reads(lambda: health.assess(engine))
        result = health.assess(engine)
        assess_times = timed(lambda: health.assess(engine))
        check_times = timed(lambda: health.check(engine))
        with db.session(engine) as conn:
            schema, _ = statements._extension(conn)
            available = db.query(conn, statements.VIEW_COLUMNS_SQL, {"schema": schema})["attname"].tolist()
        engine.dispose()

        queries = [*BARE_QUERIES, (statements.snapshot_sql(schema, available), {})]
        script = ";\n".join(literal(sql, params) for sql, params in queries) + ";\n"
        psql = [str(sb.bindir / "psql"), "-X", "-q", "-d", sb.dsn, "-o", "/dev/null"]
        subprocess.run(psql, input=script, text=True, check=True)
        psql_times = timed(lambda: subprocess.run(psql, input=script, text=True, check=True))

    assessed, checked, bare = (statistics.median(t) for t in (assess_times, check_times, psql_times))
    findings = result.findings
    print(f"schema: {TABLES} tables, {TABLES * 3 + TABLES // 2} indexes, {TABLES} foreign keys")
    print(f"pg_stat_statements reads per health.assess run: {reads}")
    kinds = ", ".join(f"{kind} {count}" for kind, count in findings["kind"].value_counts().items())
    print(f"health.assess ({len(health.CHECKS)} checks, {len(findings)} findings: {kinds}; "
          f"{len(result.tables['recommendations'])} recommendations): median {assessed:.3f} s of {RUNS}")
    print(f"health.check (the checks alone): median {checked:.3f} s of {RUNS}")
    print(f"bare SQL of every check's reads ({len(queries)} queries) through one psql session: median {bare:.3f} s of {RUNS}")
    print(f"ratio assess / psql: {assessed / bare:.2f}x; check / psql: {checked / bare:.2f}x")
    print(f"the first assess of the process (connections, catalog caches and statement parses cold): {cold:.3f} s, "
          f"{cold / bare:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Workload evidence for the checks: pg_stat_statements rows and the columns they filter on.

``statement_stats(conn)`` is the one place that reads pg_stat_statements (swap for perfkit.statements).
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from perfkit import db
from perfkit.errors import PerfkitError
from perfkit.health.common import quote_ident
from perfkit.health.predicates import column_uses, resolve_uses

STATEMENT_COLUMNS = [
    "queryid",
    "query",
    "calls",
    "total_exec_ms",
    "mean_exec_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "temp_blks_written",
]

PG_STAT_STATEMENTS_SCHEMA_SQL = """
SELECT n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""

# {schema} is the extension's schema, quoted; times are renamed to the DESIGN.md contract
STATEMENTS_SQL = """
SELECT s.queryid, s.query, s.calls, s.{total} AS total_exec_ms, s.{mean} AS mean_exec_ms,
       s.rows, s.shared_blks_hit, s.shared_blks_read, s.temp_blks_written
FROM {schema}.pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query IS NOT NULL AND s.query <> '<insufficient privilege>'
ORDER BY s.{total} DESC
LIMIT :limit
"""

STATEMENTS_AGE_SQL = """
SELECT extract(epoch FROM now() - stats_reset) AS seconds FROM {schema}.pg_stat_statements_info
"""

TABLE_COLUMNS_SQL = """
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""


def empty_statements() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in STATEMENT_COLUMNS})


def statement_stats(conn, *, limit: int = 500) -> pd.DataFrame:
    """The most time-consuming statements of the current database from pg_stat_statements.

    Parameters
    ----------
    conn:
        A perfkit connection or engine.
    limit:
        How many statements, by total execution time.

    Returns
    -------
    pandas.DataFrame
        Columns ``STATEMENT_COLUMNS`` (times in ms); empty when the extension is not
        created in this database or not loaded (shared_preload_libraries).
    """
    schema = db.scalar(conn, PG_STAT_STATEMENTS_SCHEMA_SQL)
    if schema is None:
        return empty_statements()
    version = int(db.scalar(conn, "SELECT current_setting('server_version_num')::int"))
    total, mean = ("total_exec_time", "mean_exec_time") if version >= 130000 else ("total_time", "mean_time")
    sql = STATEMENTS_SQL.format(schema=quote_ident(schema), total=total, mean=mean)
    if _in_transaction(conn):
        # pg_stat_statements raises when it is created but not preloaded; keep the
        # caller's transaction usable by trying inside a savepoint
        with conn.begin_nested() as savepoint:
            try:
                return db.query(conn, sql, {"limit": limit})
            except PerfkitError as err:
                if "shared_preload_libraries" not in str(err):
                    raise
                savepoint.rollback()
                return empty_statements()
    return db.query(conn, sql, {"limit": limit})


def _in_transaction(conn) -> bool:
    return hasattr(conn, "begin_nested")


def statements_age_seconds(conn) -> float | None:
    """Seconds since pg_stat_statements was last reset (PostgreSQL 14+), else None."""
    schema = db.scalar(conn, PG_STAT_STATEMENTS_SCHEMA_SQL)
    version = int(db.scalar(conn, "SELECT current_setting('server_version_num')::int"))
    if schema is None or version < 140000:
        return None
    value = db.scalar(conn, STATEMENTS_AGE_SQL.format(schema=quote_ident(schema)))
    return None if value is None else float(value)


def table_columns(conn) -> dict[tuple[str, str], frozenset[str]]:
    """``{(schema, table): {column, ...}}`` for every user table the role can see."""
    frame = db.query(conn, TABLE_COLUMNS_SQL)
    grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in frame.itertuples(index=False):
        grouped[(row.schema, row.table)].add(row.column)
    return {key: frozenset(value) for key, value in grouped.items()}


def column_workload(statements: pd.DataFrame, columns_by_table) -> pd.DataFrame:
    """One row per (statement, table, column, usage): how the workload uses each column.

    Columns: ``schema``, ``table``, ``column``, ``usage``, ``position``, ``descending``,
    ``queryid``, ``query``, ``calls``, ``total_exec_ms``.
    """
    rows = []
    for stmt in statements.itertuples(index=False):
        for schema, table, use in resolve_uses(column_uses(str(stmt.query)), columns_by_table):
            rows.append(
                {
                    "schema": schema,
                    "table": table,
                    "column": use.column,
                    "usage": use.usage,
                    "position": use.position,
                    "descending": use.descending,
                    "queryid": stmt.queryid,
                    "query": stmt.query,
                    "calls": stmt.calls,
                    "total_exec_ms": float(stmt.total_exec_ms),
                }
            )
    columns = ["schema", "table", "column", "usage", "position", "descending", "queryid", "query", "calls", "total_exec_ms"]
    return pd.DataFrame(rows, columns=columns)


def filtered_columns_text(workload: pd.DataFrame, schema: str, table: str, *, limit: int = 5) -> str:
    """``tenant_id (equality, 3 statements, 1,234 ms), status (...)`` for one table, or ``""``."""
    mine = workload[(workload["schema"] == schema) & (workload["table"] == table)]
    mine = mine[mine["usage"] != "join"]
    if mine.empty:
        return ""
    grouped = (
        mine.drop_duplicates(["queryid", "column", "usage"])
        .groupby(["column", "usage"], as_index=False)
        .agg(statements=("queryid", "nunique"), total_exec_ms=("total_exec_ms", "sum"))
        .sort_values("total_exec_ms", ascending=False)
        .head(limit)
    )
    parts = [
        f"{row.column} ({row.usage}, {row.statements} statement{'s' if row.statements != 1 else ''}, "
        f"{row.total_exec_ms:,.0f} ms total)"
        for row in grouped.itertuples(index=False)
    ]
    return ", ".join(parts)


def proposed_index_columns(
    uses: pd.DataFrame,
    tenant_columns=(),
    *,
    max_columns: int = 4,
) -> list[str]:
    """The column order of an index serving one statement's uses of one table.

    Equality columns first (the tenant column leading them when the statement filters on
    it), then the sort columns, then one range column (the "equality, sort, range" rule for
    btree indexes). Join columns count only when the statement filters the table on
    nothing else. ``uses`` holds :func:`column_workload` rows of one statement and table.
    """
    ordered = uses.sort_values("position")

    def by_usage(usage: str) -> list[str]:
        return list(dict.fromkeys(ordered.loc[ordered["usage"] == usage, "column"]))

    equality, sort, range_ = by_usage("equality"), by_usage("sort"), by_usage("range")
    if not (equality or sort or range_):
        equality = by_usage("join")
    tenant = [c for c in equality if c in tenant_columns][:1]
    columns = tenant + [c for c in equality if c not in tenant]
    columns += [c for c in sort if c not in columns]
    columns += [c for c in range_ if c not in columns][:1]
    return columns[:max_columns]

"""Workload evidence for the checks: pg_stat_statements rows and the columns they filter on.

``statement_stats(conn)`` reads perfkit.statements.snapshot for the current database, top first.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from sqlalchemy.engine import Engine

from perfkit import db, statements
from perfkit.errors import ExtensionMissing, PermissionDenied
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

TABLE_COLUMNS_SQL = """
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
"""


def empty_statements() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in STATEMENT_COLUMNS})


def statement_stats(conn, *, limit: int = 500) -> pd.DataFrame:
    """The most time-consuming statements of the current database (perfkit.statements.snapshot).

    Parameters
    ----------
    conn:
        A perfkit connection or engine.
    limit:
        How many statements, by total execution time.

    Returns
    -------
    pandas.DataFrame
        Columns ``STATEMENT_COLUMNS`` (times in ms) plus ``stats_reset`` when the server
        records it; perfkit's own statements and hidden texts left out. Empty when
        pg_stat_statements is missing or hides every statement from this role.
    """
    engine = conn if isinstance(conn, Engine) else conn.engine
    try:
        snap = statements.snapshot(engine, server="health")
    except (ExtensionMissing, PermissionDenied):
        return empty_statements()
    database = db.scalar(conn, "SELECT current_database()")
    keep = (snap["datname"] == database) & ~statements.own_statements(snap) & (snap["query"] != statements.HIDDEN_QUERY)
    columns = STATEMENT_COLUMNS + [c for c in ("stats_reset",) if c in snap.columns]
    top = snap.loc[keep, columns].sort_values("total_exec_ms", ascending=False).head(limit)
    return top.reset_index(drop=True)


def statements_age_seconds(stats: pd.DataFrame) -> float | None:
    """Seconds since pg_stat_statements was reset, from ``statement_stats`` rows (None if unknown)."""
    if "stats_reset" not in stats.columns or stats["stats_reset"].dropna().empty:
        return None
    reset = pd.Timestamp(stats["stats_reset"].dropna().max())
    return max((pd.Timestamp.now(tz="UTC") - reset).total_seconds(), 0.0)


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

"""Index checks: unused, duplicate and prefix-covered, missing foreign-key and invalid indexes.

Each check reads the catalog (pg_index, pg_stat_user_indexes, pg_constraint) and returns findings.
"""

from __future__ import annotations

from perfkit import db
from perfkit.findings import finding
from perfkit.health.common import (
    create_index_sql,
    drop_index_sql,
    duration_text,
    number,
    qualified,
    size_text,
)

STATS_AGE_SQL = """
SELECT extract(epoch FROM now() - d.stats_reset) AS since_reset_s,
       extract(epoch FROM now() - pg_postmaster_start_time()) AS since_start_s
FROM pg_stat_database d WHERE d.datname = current_database()
"""


def stats_age(conn) -> tuple[float, str]:
    """How long usage counters have been collected: ``(seconds, words)``.

    Without a recorded reset the counters are at least as old as the server's start
    (PostgreSQL 15 keeps them across clean restarts), so that start is a lower bound.
    """
    row = db.query(conn, STATS_AGE_SQL).iloc[0]
    if row["since_reset_s"] is not None and row["since_reset_s"] == row["since_reset_s"]:
        seconds = float(row["since_reset_s"])
        return seconds, f"statistics collected for {duration_text(seconds)} (since the last reset)"
    seconds = float(row["since_start_s"])
    return seconds, f"statistics collected for at least {duration_text(seconds)} (since the server started)"


UNUSED_INDEXES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index,
       s.idx_scan, pg_relation_size(s.indexrelid) AS size_bytes,
       pg_get_indexdef(s.indexrelid) AS definition
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan <= :max_scans
  AND s.schemaname NOT LIKE 'pg_temp%'
  AND i.indisvalid
  AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
  AND pg_relation_size(s.indexrelid) >= :min_size_bytes
ORDER BY size_bytes DESC, schema, index
"""


def unused_indexes(conn, *, max_scans: int = 0, min_size_bytes: int = 1024 * 1024, min_stats_days: float = 7.0) -> list[dict]:
    """Indexes scanned at most ``max_scans`` times since statistics were reset.

    Unique, primary-key and constraint-backing indexes are never reported: they enforce
    something even when no query reads them.

    Parameters
    ----------
    max_scans:
        Scans at or below this count mean unused (default 0).
    min_size_bytes:
        Ignore indexes smaller than this (default 1 MB): they cost little to keep.
    min_stats_days:
        With fewer days of statistics the finding is ``info`` rather than ``warning``:
        a monthly job may not have run yet.
    """
    seconds, collected = stats_age(conn)
    severity = "warning" if seconds >= min_stats_days * 86400 else "info"
    rows = db.query(conn, UNUSED_INDEXES_SQL, {"max_scans": max_scans, "min_size_bytes": min_size_bytes})
    found = []
    for row in rows.itertuples(index=False):
        caution = "" if severity == "warning" else f"; fewer than {min_stats_days:g} days of statistics, so confirm before dropping"
        found.append(
            finding(
                "unused_index",
                severity,
                qualified(row.schema, row.index),
                f"{number(row.idx_scan)} index scans, {size_text(row.size_bytes)} on {row.table}; {collected}{caution}",
                "Drop it (check replicas first: their scans are not counted here); every write to "
                f"{row.table} pays to maintain it.",
                drop_index_sql(row.schema, row.index),
                table=qualified(row.schema, row.table),
                size_bytes=int(row.size_bytes),
            )
        )
    return found


INDEX_DEFINITIONS_SQL = """
SELECT n.nspname AS schema, t.relname AS table, ic.relname AS index, i.indexrelid::bigint AS oid,
       am.amname AS method, i.indnkeyatts AS nkeys,
       string_to_array(i.indkey::text, ' ')::int[] AS columns,
       string_to_array(i.indclass::text, ' ')::oid[] AS opclasses,
       string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
       string_to_array(i.indoption::text, ' ')::int[] AS options,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS expressions,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
       i.indisunique AS is_unique, i.indisprimary AS is_primary,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS backs_constraint,
       pg_relation_size(i.indexrelid) AS size_bytes,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, t.relname, i.indexrelid
"""


def _keep_rank(index) -> tuple:
    # of two indexes with the same columns, keep the one enforcing the most (then the oldest)
    return (index.is_primary, index.backs_constraint, index.is_unique, -index.oid)


def _covered_by(small, big) -> str | None:
    """``"duplicate"`` / ``"prefix"`` when ``big`` makes ``small`` redundant, else None."""
    if small.method != big.method or small.predicate != big.predicate or small.expressions != big.expressions:
        return None
    same = (
        list(small.columns) == list(big.columns)
        and small.nkeys == big.nkeys
        and list(small.opclasses) == list(big.opclasses)
        and list(small.collations) == list(big.collations)
        and list(small.options) == list(big.options)
    )
    if same:
        return "duplicate" if _keep_rank(small) < _keep_rank(big) else None
    n = small.nkeys
    prefix = (
        small.method == "btree"
        and not small.is_unique
        and len(small.columns) == n  # no INCLUDE columns to lose
        and n < big.nkeys
        and list(small.columns) == list(big.columns[:n])
        and list(small.opclasses) == list(big.opclasses[:n])
        and list(small.collations) == list(big.collations[:n])
        and list(small.options) == list(big.options[:n])
    )
    return "prefix" if prefix else None


def duplicate_indexes(conn, *, min_size_bytes: int = 0) -> list[dict]:
    """Indexes another index of the same table makes redundant.

    Two kinds: the same columns (and access method, operator classes, order, predicate and
    expressions) twice, and a btree index whose columns are a left prefix of another's.
    Of two identical indexes the one enforcing less (not primary / unique / constraint,
    then the newer) is reported; a unique index is never reported as a prefix.

    Parameters
    ----------
    min_size_bytes:
        Ignore redundant indexes smaller than this (default 0: report all).
    """
    indexes = db.query(conn, INDEX_DEFINITIONS_SQL)
    found = []
    for (_schema, _table), group in indexes.groupby(["schema", "table"], sort=False):
        members = list(group.itertuples(index=False))
        for small in members:
            if small.size_bytes < min_size_bytes or small.is_primary:
                continue
            for big in members:
                if big.oid == small.oid:
                    continue
                how = _covered_by(small, big)
                if how is None:
                    continue
                what = "has the same definition as" if how == "duplicate" else "is a left prefix of"
                constraint = (
                    " It backs a constraint: drop the constraint or re-point it before the index."
                    if small.backs_constraint
                    else ""
                )
                found.append(
                    finding(
                        "duplicate_index",
                        "warning",
                        qualified(small.schema, small.index),
                        f"{small.index} ({small.definition.split(' USING ', 1)[-1]}) {what} "
                        f"{big.index} ({big.definition.split(' USING ', 1)[-1]}); "
                        f"{size_text(small.size_bytes)} kept up to date on every write for nothing",
                        f"Drop {small.index}: {big.index} serves the same lookups.{constraint}",
                        drop_index_sql(small.schema, small.index),
                        table=qualified(small.schema, small.table),
                        covered_by=qualified(big.schema, big.index),
                        size_bytes=int(small.size_bytes),
                    )
                )
                break
    return found


MISSING_FK_INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS table, c.conname AS constraint_name,
       c.conkey::int[] AS fk_attnums,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[] AS columns,
       c.confrelid::regclass::text AS referenced,
       greatest(t.reltuples, 0)::bigint AS estimated_rows,
       coalesce(s.n_live_tup, 0) AS live_rows
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = t.oid
WHERE c.contype = 'f'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
        AND i.indnkeyatts >= cardinality(c.conkey)
        AND (string_to_array(i.indkey::text, ' ')::int[])[1:cardinality(c.conkey)] @> c.conkey::int[]
        AND (string_to_array(i.indkey::text, ' ')::int[])[1:cardinality(c.conkey)] <@ c.conkey::int[])
ORDER BY greatest(t.reltuples, coalesce(s.n_live_tup, 0)) DESC, n.nspname, t.relname, c.conname
"""


def missing_fk_indexes(conn, *, min_rows: int = 1000) -> list[dict]:
    """Foreign keys whose referencing columns lead no index.

    Without one, every DELETE or key UPDATE on the referenced table scans the referencing
    table (under a lock), and joins from parent to children cannot use an index.

    Parameters
    ----------
    min_rows:
        Ignore referencing tables with fewer rows (live or estimated) than this.
    """
    rows = db.query(conn, MISSING_FK_INDEXES_SQL)
    found = []
    for row in rows.itertuples(index=False):
        table_rows = max(int(row.estimated_rows), int(row.live_rows))
        if table_rows < min_rows:
            continue
        columns = list(row.columns)
        found.append(
            finding(
                "missing_fk_index",
                "warning",
                qualified(row.schema, row.table),
                f"foreign key {row.constraint_name} ({', '.join(columns)}) references {row.referenced}, "
                f"and no index on {row.table} ({number(table_rows)} rows) starts with "
                f"{'that column' if len(columns) == 1 else 'those columns'}: each delete or key update "
                f"on {row.referenced} scans {row.table}",
                f"Index {row.table} ({', '.join(columns)}).",
                create_index_sql(row.schema, row.table, columns),
                table=qualified(row.schema, row.table),
                columns=columns,
            )
        )
    return found


INVALID_INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS table, ic.relname AS index, i.indisready AS is_ready,
       pg_relation_size(i.indexrelid) AS size_bytes, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
ORDER BY n.nspname, ic.relname
"""


def invalid_indexes(conn) -> list[dict]:
    """Indexes left invalid by a failed ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX``).

    The planner never uses them, yet writes still maintain them once they are ready.
    Builds still in progress (pg_stat_progress_create_index) are not reported.
    """
    rows = db.query(conn, INVALID_INDEXES_SQL)
    found = []
    for row in rows.itertuples(index=False):
        upkeep = "still maintained on every write" if row.is_ready else "not yet maintained"
        found.append(
            finding(
                "invalid_index",
                "warning",
                qualified(row.schema, row.index),
                f"invalid index on {row.table} ({size_text(row.size_bytes)}), never used by the planner, "
                f"{upkeep}: left by a failed CREATE INDEX CONCURRENTLY or REINDEX",
                "Drop it, then create it again (CONCURRENTLY) after fixing why the build failed "
                f"(e.g. duplicate keys for a unique index): {row.definition}",
                drop_index_sql(row.schema, row.index),
                table=qualified(row.schema, row.table),
            )
        )
    return found

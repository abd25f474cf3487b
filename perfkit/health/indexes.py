"""Index checks: unused, duplicate and prefix-covered, missing foreign-key and invalid indexes.

Each check is an SQL read of the run's context (the index definitions, read once for all of
them) and a pure judging of its rows; ``index_fix(row)`` is an existing index as a Fix.
"""

from __future__ import annotations

from perfkit import sql
from perfkit.findings import finding
from perfkit.health.common import duration_text, is_missing, number, size_text
from perfkit.health.context import DATABASE_SQL, INDEXES_SQL, Check


def collected_words(seconds: float, since_reset: bool) -> str:
    if since_reset:
        return f"statistics collected for {duration_text(seconds)} (since the last reset)"
    return f"statistics collected for at least {duration_text(seconds)} (since the server started)"


def key_columns(row) -> list[sql.IndexColumn]:
    """The key columns of an index row (INDEXES_SQL) with their order and expressions."""
    names = list(row.column_names or [])
    attnums = list(row.columns or [])
    options = list(row.options or [])
    keys = []
    for position in range(int(row.nkeys)):
        option = int(options[position]) if position < len(options) else 0
        name = names[position] if position < len(names) else "?"
        expression = position < len(attnums) and int(attnums[position]) == 0
        if not expression and name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('""', '"')
        keys.append(sql.IndexColumn(name, descending=bool(option & 1), expression=expression))
    return keys


def index_fix(row) -> sql.Fix:
    """An existing index (an INDEXES_SQL row) as the ``create_index`` Fix that would build it."""
    include = [str(n).strip('"') for n in list(row.column_names or [])[int(row.nkeys):]]
    return sql.create_index(row.schema, row.table, key_columns(row), include=include,
                            where=row.predicate or None, method=row.method, name=row.index)


def _drop(row) -> sql.Fix:
    return sql.drop_index(row.schema, row.index, table=row.table, columns=key_columns(row))


def read_indexes(ctx) -> dict:
    return {"indexes": ctx.indexes()}


def read_indexes_and_age(ctx) -> dict:
    seconds, since_reset = ctx.stats_age()
    return {"indexes": ctx.indexes(), "stats_age": [{"seconds": seconds, "since_reset": since_reset}]}


def judge_unused_indexes(evidence, *, max_scans: int = 0, min_size_bytes: int = 1024 * 1024,
                         min_stats_days: float = 7.0) -> list[dict]:
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
    age = evidence["stats_age"].iloc[0]
    seconds = float(age["seconds"])
    collected = collected_words(seconds, bool(age["since_reset"]))
    severity = "warning" if seconds >= min_stats_days * 86400 else "info"
    rows = evidence["indexes"]
    if rows.empty:
        return []
    keep = (rows["is_valid"].astype(bool) & ~rows["is_unique"].astype(bool) & ~rows["is_primary"].astype(bool)
            & ~rows["backs_constraint"].astype(bool) & rows["idx_scan"].notna())
    rows = rows[keep]
    rows = rows[(rows["idx_scan"].astype(float) <= max_scans) & (rows["size_bytes"].astype(float) >= min_size_bytes)]
    rows = rows.sort_values(["size_bytes", "schema", "index"], ascending=[False, True, True])
    found = []
    caution = "" if severity == "warning" else f"; fewer than {min_stats_days:g} days of statistics, so confirm before dropping"
    for row in rows.itertuples(index=False):
        found.append(
            finding(
                "unused_index",
                severity,
                sql.qualified(row.schema, row.index),
                f"{number(row.idx_scan)} index scans, {size_text(row.size_bytes)} on {row.table}; {collected}{caution}",
                "Drop it (check replicas first: their scans are not counted here); every write to "
                f"{row.table} pays to maintain it.",
                fix=_drop(row),
                table=sql.qualified(row.schema, row.table),
                size_bytes=int(row.size_bytes),
            )
        )
    return found


def _keep_rank(index) -> tuple:
    # of two indexes with the same columns, keep the one enforcing the most (then the oldest)
    return (bool(index.is_primary), bool(index.backs_constraint), bool(index.is_unique), -int(index.oid))


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
    n = int(small.nkeys)
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


def judge_duplicate_indexes(evidence, *, min_size_bytes: int = 0) -> list[dict]:
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
    indexes = evidence["indexes"]
    if indexes.empty:
        return []
    indexes = indexes[indexes["is_valid"].astype(bool)]
    by_table: dict[tuple, list] = {}
    for row in indexes.itertuples(index=False):  # one pass: a groupby per table costs more than the judging
        by_table.setdefault((row.schema, row.table), []).append(row)
    found = []
    for members in by_table.values():
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
                        sql.qualified(small.schema, small.index),
                        f"{small.index} ({small.definition.split(' USING ', 1)[-1]}) {what} "
                        f"{big.index} ({big.definition.split(' USING ', 1)[-1]}); "
                        f"{size_text(small.size_bytes)} kept up to date on every write for nothing",
                        f"Drop {small.index}: {big.index} serves the same lookups.{constraint}",
                        fix=_drop(small),
                        table=sql.qualified(small.schema, small.table),
                        covered_by=sql.qualified(big.schema, big.index),
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


def read_fk(ctx) -> dict:
    return {"foreign_keys": ctx.query("foreign_keys", MISSING_FK_INDEXES_SQL)}


def judge_missing_fk_indexes(evidence, *, min_rows: int = 1000) -> list[dict]:
    """Foreign keys whose referencing columns lead no index.

    Without one, every DELETE or key UPDATE on the referenced table scans the referencing
    table (under a lock), and joins from parent to children cannot use an index.

    Parameters
    ----------
    min_rows:
        Ignore referencing tables with fewer rows (live or estimated) than this.
    """
    found = []
    for row in evidence["foreign_keys"].itertuples(index=False):
        table_rows = max(int(row.estimated_rows), int(row.live_rows))
        if table_rows < min_rows:
            continue
        columns = list(row.columns)
        found.append(
            finding(
                "missing_fk_index",
                "warning",
                sql.qualified(row.schema, row.table),
                f"foreign key {row.constraint_name} ({', '.join(columns)}) references {row.referenced}, "
                f"and no index on {row.table} ({number(table_rows)} rows) starts with "
                f"{'that column' if len(columns) == 1 else 'those columns'}: each delete or key update "
                f"on {row.referenced} scans {row.table}",
                f"Index {row.table} ({', '.join(columns)}).",
                fix=sql.create_index(row.schema, row.table, columns),
                table=sql.qualified(row.schema, row.table),
                columns=columns,
            )
        )
    return found


def judge_invalid_indexes(evidence) -> list[dict]:
    """Indexes left invalid by a failed ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX``).

    The planner never uses them, yet writes still maintain them once they are ready.
    Builds still in progress (pg_stat_progress_create_index) are not reported.
    """
    rows = evidence["indexes"]
    if rows.empty:
        return []
    rows = rows[~rows["is_valid"].astype(bool) & ~rows["building"].astype(bool)].sort_values(["schema", "index"])
    found = []
    for row in rows.itertuples(index=False):
        upkeep = "still maintained on every write" if row.is_ready else "not yet maintained"
        found.append(
            finding(
                "invalid_index",
                "warning",
                sql.qualified(row.schema, row.index),
                f"invalid index on {row.table} ({size_text(row.size_bytes)}), never used by the planner, "
                f"{upkeep}: left by a failed CREATE INDEX CONCURRENTLY or REINDEX",
                "Fix why the build failed (e.g. duplicate keys for a unique index), then rebuild it "
                f"(or drop it if nothing needs it): {row.definition}",
                fix=sql.reindex(row.schema, row.index, table=row.table, columns=key_columns(row)),
                table=sql.qualified(row.schema, row.table),
            )
        )
    return found


def existing_indexes(ctx) -> list[sql.Fix]:
    """The valid indexes of the database as ``create_index`` Fix objects (what advice must not propose again)."""
    rows = ctx.indexes()
    return [index_fix(row) for row in rows.itertuples(index=False) if row.is_valid and not is_missing(row.oid)]


unused_indexes = Check("unused_indexes", read_indexes_and_age, judge_unused_indexes, ("unused_index",),
                       (INDEXES_SQL, DATABASE_SQL))
duplicate_indexes = Check("duplicate_indexes", read_indexes, judge_duplicate_indexes, ("duplicate_index",), (INDEXES_SQL,))
missing_fk_indexes = Check("missing_fk_indexes", read_fk, judge_missing_fk_indexes, ("missing_fk_index",),
                           (MISSING_FK_INDEXES_SQL,))
invalid_indexes = Check("invalid_indexes", read_indexes, judge_invalid_indexes, ("invalid_index",), (INDEXES_SQL,))

CHECKS = (unused_indexes, duplicate_indexes, missing_fk_indexes, invalid_indexes)

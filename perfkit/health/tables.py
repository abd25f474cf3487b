"""Table checks: sequential scans, tenant indexes, bloat, vacuum and analyze, cache hits, limits.

Each check reads pg_stat_user_tables, pg_statio_*, pg_class, pg_sequences or pg_database.
"""

from __future__ import annotations

import math

from perfkit import db
from perfkit.findings import finding
from perfkit.health.common import (
    TENANT_COLUMNS,
    create_index_sql,
    duration_text,
    number,
    qualified,
    share_text,
    size_text,
)
from perfkit.health.workload import (
    column_workload,
    filtered_columns_text,
    proposed_index_columns,
    statement_stats,
    table_columns,
)

SEQ_SCAN_TABLES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.seq_scan, s.seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup, pg_table_size(s.relid) AS size_bytes
FROM pg_stat_user_tables s
WHERE s.n_live_tup >= :min_rows
  AND s.schemaname NOT LIKE 'pg_temp%'
  AND s.seq_scan >= :min_seq_scans
  AND s.seq_scan::float8 / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0) >= :min_seq_share
ORDER BY s.seq_tup_read DESC
"""


def _workload(conn, statements_limit: int):
    statements = statement_stats(conn, limit=statements_limit)
    return column_workload(statements, table_columns(conn)) if len(statements) else None


def _best_proposal(workload, schema: str, table: str, tenant_columns) -> list[str]:
    """Index columns for the costliest statement filtering ``schema.table``, or []."""
    if workload is None or workload.empty:
        return []
    mine = workload[(workload["schema"] == schema) & (workload["table"] == table)]
    for _queryid, uses in sorted(mine.groupby("queryid"), key=lambda item: -item[1]["total_exec_ms"].iloc[0]):
        columns = proposed_index_columns(uses, tenant_columns)
        if columns:
            return columns
    return []


def seq_scan_large_tables(
    conn,
    *,
    min_rows: int = 10_000,
    min_seq_scans: int = 10,
    min_seq_share: float = 0.5,
    tenant_columns=TENANT_COLUMNS,
    statements_limit: int = 200,
) -> list[dict]:
    """Tables of at least ``min_rows`` rows read mostly by sequential scans.

    The evidence names the columns the statements of pg_stat_statements filter this table
    on, and the SQL proposes an index on them (tenant column first) when there are some.

    Parameters
    ----------
    min_rows:
        Smaller tables are cheap to scan (default 10,000 live rows).
    min_seq_scans:
        At least this many sequential scans since the statistics reset.
    min_seq_share:
        Sequential scans as a share of all scans of the table (default 0.5: they dominate).
    """
    rows = db.query(
        conn,
        SEQ_SCAN_TABLES_SQL,
        {"min_rows": min_rows, "min_seq_scans": min_seq_scans, "min_seq_share": min_seq_share},
    )
    if rows.empty:
        return []
    workload = _workload(conn, statements_limit)
    found = []
    for row in rows.itertuples(index=False):
        per_scan = row.seq_tup_read / max(row.seq_scan, 1)
        filters = filtered_columns_text(workload, row.schema, row.table) if workload is not None else ""
        columns = _best_proposal(workload, row.schema, row.table, tenant_columns)
        evidence = (
            f"{number(row.seq_scan)} sequential scans ({share_text(row.seq_scan / (row.seq_scan + row.idx_scan))} "
            f"of scans) read {number(row.seq_tup_read)} rows, {number(per_scan)} per scan, of a "
            f"{number(row.n_live_tup)}-row table ({size_text(row.size_bytes)}); {number(row.idx_scan)} index scans"
        )
        evidence += f"; statements filter it on {filters}" if filters else "; no statement in pg_stat_statements shows its filters"
        recommendation = (
            f"Index the columns the statements filter on ({', '.join(columns)}), then confirm with EXPLAIN."
            if columns
            else "Find the statements scanning it (perfkit top, EXPLAIN) and index what they filter on."
        )
        found.append(
            finding(
                "seq_scan_large_table",
                "warning",
                qualified(row.schema, row.table),
                evidence,
                recommendation,
                create_index_sql(row.schema, row.table, columns) if columns else "",
                table=qualified(row.schema, row.table),
                columns=columns,
            )
        )
    return found


TENANT_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
       greatest(c.reltuples, 0)::bigint AS estimated_rows, coalesce(s.n_live_tup, 0) AS live_rows,
       coalesce(s.seq_scan, 0) AS seq_scan, coalesce(s.seq_tup_read, 0) AS seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan,
       EXISTS (SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL
                 AND i.indkey[0] = a.attnum) AS leads_an_index
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND a.attname = ANY(:tenant_columns)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, c.relname, a.attnum
"""


def missing_tenant_indexes(
    conn,
    *,
    tenant_columns=TENANT_COLUMNS,
    min_rows: int = 1000,
    statements_limit: int = 200,
) -> list[dict]:
    """Tables with a tenant column (``tenant_id``, ``company_id``, ...) that no index leads with.

    In a multi-tenant app nearly every statement filters on the tenant: without an index
    starting with that column, each one reads the rows of every tenant.

    Parameters
    ----------
    tenant_columns:
        The column names that hold the tenant.
    min_rows:
        Ignore tables with fewer rows (live or estimated) than this.
    """
    rows = db.query(conn, TENANT_TABLES_SQL, {"tenant_columns": list(tenant_columns)})
    if rows.empty:
        return []
    rows["rows"] = rows[["estimated_rows", "live_rows"]].max(axis=1)
    led = rows.groupby(["schema", "table"])["leads_an_index"].transform("any")
    candidates = rows[~led & (rows["rows"] >= min_rows)]
    if candidates.empty:
        return []
    workload = _workload(conn, statements_limit)
    found = []
    for (schema, table), group in candidates.groupby(["schema", "table"], sort=False):
        first = group.iloc[0]
        column = first["column"]
        tenant_uses = None
        if workload is not None and not workload.empty:
            tenant_uses = workload[
                (workload["schema"] == schema)
                & (workload["table"] == table)
                & (workload["column"].isin(group["column"]))
                & (workload["usage"] == "equality")
            ].drop_duplicates("queryid")
            if not tenant_uses.empty:
                column = tenant_uses["column"].iloc[0]
        evidence = (
            f"{table} has tenant column {column} and {number(first['rows'])} rows, but no index starts with "
            f"{'any of ' + ', '.join(group['column']) if len(group) > 1 else column}; "
            f"{number(first['seq_scan'])} sequential scans read {number(first['seq_tup_read'])} rows"
        )
        if tenant_uses is not None and not tenant_uses.empty:
            evidence += (
                f"; {len(tenant_uses)} statement{'s' if len(tenant_uses) != 1 else ''} filter on {column}: "
                f"{number(tenant_uses['calls'].sum())} calls, {tenant_uses['total_exec_ms'].sum():,.0f} ms in total"
            )
        found.append(
            finding(
                "missing_tenant_index",
                "warning",
                qualified(schema, table),
                evidence,
                f"Create an index leading with {column} (add the columns the statements also filter or sort on "
                "after it); every per-tenant query reads all tenants' rows until then.",
                create_index_sql(schema, table, [column]),
                table=qualified(schema, table),
                columns=[column],
            )
        )
    return found


TABLE_BLOAT_SQL = """
WITH widths AS (
    SELECT st.schemaname, st.tablename,
           sum((1 - st.null_frac) * st.avg_width) AS row_width,
           bool_or(st.null_frac > 0) AS has_nulls, count(*) AS analyzed_columns
    FROM pg_stats st WHERE NOT st.inherited
    GROUP BY st.schemaname, st.tablename)
SELECT s.schemaname AS schema, s.relname AS table, s.n_live_tup, s.n_dead_tup,
       c.relpages, greatest(c.reltuples, 0) AS reltuples, c.relnatts,
       current_setting('block_size')::int AS block_size,
       coalesce((SELECT o.option_value::int FROM pg_options_to_table(c.reloptions) o
                 WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
       w.row_width, w.has_nulls, w.analyzed_columns,
       pg_table_size(s.relid) AS size_bytes
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN widths w ON w.schemaname = s.schemaname AND w.tablename = s.relname
WHERE (s.n_dead_tup >= :min_dead_tuples OR c.relpages * current_setting('block_size')::bigint >= :min_bloat_bytes)
  AND s.schemaname NOT LIKE 'pg_temp%'
"""

PAGE_HEADER = 24
TUPLE_HEADER = 23
ITEM_POINTER = 4


def estimated_bloat_bytes(row) -> float | None:
    """Bytes of a table beyond what its rows need (from pg_stats widths), or None when unknown.

    Each row costs its header, a null bitmap, its average width (aligned to 8 bytes) and a
    line pointer; pages hold ``fillfactor`` % of their usable space.
    """
    if row.row_width is None or row.row_width != row.row_width or not row.relpages:
        return None
    null_bitmap = math.ceil(row.relnatts / 8) if row.has_nulls else 0
    tuple_bytes = 8 * math.ceil((TUPLE_HEADER + null_bitmap + float(row.row_width)) / 8) + ITEM_POINTER
    usable = (row.block_size - PAGE_HEADER) * row.fillfactor / 100
    expected_pages = math.ceil(float(row.reltuples) * tuple_bytes / usable) if row.reltuples else 0
    return max(row.relpages - expected_pages, 0) * row.block_size


def table_bloat(
    conn,
    *,
    min_dead_share: float = 0.10,
    min_dead_tuples: int = 1000,
    min_bloat_share: float = 0.5,
    min_bloat_bytes: int = 100 * 1024 * 1024,
) -> list[dict]:
    """Tables carrying many dead rows, or much more space than their live rows need.

    Parameters
    ----------
    min_dead_share:
        Dead rows as a share of all rows (default 0.10).
    min_dead_tuples:
        And at least this many dead rows.
    min_bloat_share, min_bloat_bytes:
        Or estimated wasted space (from pg_stats average widths) of at least this share of
        the table and this many bytes (default 50 % and 100 MB).
    """
    rows = db.query(conn, TABLE_BLOAT_SQL, {"min_dead_tuples": min_dead_tuples, "min_bloat_bytes": min_bloat_bytes})
    found = []
    for row in rows.itertuples(index=False):
        total = row.n_live_tup + row.n_dead_tup
        dead_share = row.n_dead_tup / total if total else 0.0
        bloat = estimated_bloat_bytes(row)
        table_bytes = row.relpages * row.block_size
        bloat_share = bloat / table_bytes if bloat is not None and table_bytes else 0.0
        dead = dead_share >= min_dead_share and row.n_dead_tup >= min_dead_tuples
        bloated = bloat is not None and bloat_share >= min_bloat_share and bloat >= min_bloat_bytes
        if not (dead or bloated):
            continue
        estimate = (
            f"estimated {size_text(bloat)} ({share_text(bloat_share)}) beyond what the live rows need"
            if bloat is not None
            else "no width statistics to estimate wasted space (never analyzed, or no SELECT privilege)"
        )
        evidence = (
            f"{number(row.n_dead_tup)} dead rows of {number(total)} ({share_text(dead_share)}); "
            f"{size_text(row.size_bytes)} on disk, {estimate}"
        )
        if dead:
            recommendation = (
                "VACUUM it to make the dead rows' space reusable, and find why autovacuum has not "
                "(see vacuum_overdue; long transactions holding back the xmin horizon also prevent it)."
            )
            sql = f"VACUUM (VERBOSE, ANALYZE) {qualified(row.schema, row.table)};"
        else:
            recommendation = (
                "The space is reusable but not returned: rebuild the table with pg_repack online, or "
                "VACUUM FULL in a maintenance window (it takes an ACCESS EXCLUSIVE lock)."
            )
            sql = f"VACUUM FULL {qualified(row.schema, row.table)};  -- locks the table: prefer pg_repack"
        found.append(
            finding(
                "table_bloat",
                "warning",
                qualified(row.schema, row.table),
                evidence,
                recommendation,
                sql,
                table=qualified(row.schema, row.table),
                dead_share=dead_share,
                bloat_bytes=bloat,
            )
        )
    return found


MAINTENANCE_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       greatest(c.reltuples, 0) AS reltuples,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum)) AS since_vacuum_s,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze)) AS since_analyze_s,
       coalesce(o.opts ->> 'autovacuum_enabled', current_setting('autovacuum')) AS autovacuum,
       coalesce((o.opts ->> 'autovacuum_vacuum_threshold')::float8,
                current_setting('autovacuum_vacuum_threshold')::float8) AS vacuum_threshold,
       coalesce((o.opts ->> 'autovacuum_vacuum_scale_factor')::float8,
                current_setting('autovacuum_vacuum_scale_factor')::float8) AS vacuum_scale_factor,
       coalesce((o.opts ->> 'autovacuum_analyze_threshold')::float8,
                current_setting('autovacuum_analyze_threshold')::float8) AS analyze_threshold,
       coalesce((o.opts ->> 'autovacuum_analyze_scale_factor')::float8,
                current_setting('autovacuum_analyze_scale_factor')::float8) AS analyze_scale_factor
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN LATERAL (SELECT jsonb_object_agg(t.option_name, t.option_value) AS opts
                   FROM pg_options_to_table(c.reloptions) t) o ON true
WHERE (s.n_dead_tup >= :min_changes OR s.n_mod_since_analyze >= :min_changes)
  AND s.schemaname NOT LIKE 'pg_temp%'
"""

_OFF = {"off", "false", "no", "0", "f", "n"}


def _maintenance_rows(conn, min_changes: int):
    rows = db.query(conn, MAINTENANCE_SQL, {"min_changes": min_changes})
    rows["autovacuum_on"] = ~rows["autovacuum"].astype(str).str.lower().isin(_OFF)
    return rows


def _since(seconds, what: str) -> str:
    if seconds is None or seconds != seconds:
        return f"never {what}"
    return f"last {what} {duration_text(float(seconds))} ago"


def vacuum_overdue(conn, *, overdue_factor: float = 2.0, min_dead_tuples: int = 1000) -> list[dict]:
    """Tables whose dead rows are past the point where autovacuum should have vacuumed them.

    Autovacuum vacuums a table once its dead rows exceed ``autovacuum_vacuum_threshold +
    autovacuum_vacuum_scale_factor * rows`` (per-table settings win). A table is overdue at
    ``overdue_factor`` times that trigger, or past the trigger at all with autovacuum off.

    Parameters
    ----------
    overdue_factor:
        How far past the trigger counts as overdue when autovacuum is on (default 2).
    min_dead_tuples:
        Ignore tables with fewer dead rows.
    """
    rows = _maintenance_rows(conn, min_dead_tuples)
    found = []
    for row in rows.itertuples(index=False):
        trigger = row.vacuum_threshold + row.vacuum_scale_factor * float(row.reltuples)
        limit = trigger * (overdue_factor if row.autovacuum_on else 1.0)
        if row.n_dead_tup < max(min_dead_tuples, limit):
            continue
        disabled = "" if row.autovacuum_on else "; autovacuum is off for this table"
        found.append(
            finding(
                "vacuum_overdue",
                "warning",
                qualified(row.schema, row.table),
                f"{number(row.n_dead_tup)} dead rows, {row.n_dead_tup / max(trigger, 1):,.1f}x the autovacuum "
                f"trigger of {number(trigger)} ({row.vacuum_threshold:g} + {row.vacuum_scale_factor:g} x "
                f"{number(row.reltuples)} rows); {_since(row.since_vacuum_s, 'vacuumed')}{disabled}",
                (
                    "Turn autovacuum back on for it and vacuum it now."
                    if not row.autovacuum_on
                    else "Vacuum it now; then make autovacuum keep up (lower its scale factor for this "
                    "table, raise autovacuum_vacuum_cost_limit, and look for long transactions)."
                ),
                (f"ALTER TABLE {qualified(row.schema, row.table)} RESET (autovacuum_enabled);\n" if not row.autovacuum_on else "")
                + f"VACUUM (VERBOSE, ANALYZE) {qualified(row.schema, row.table)};",
                table=qualified(row.schema, row.table),
            )
        )
    return found


def analyze_overdue(conn, *, overdue_factor: float = 2.0, min_modifications: int = 1000) -> list[dict]:
    """Tables changed well past autovacuum's analyze trigger since their last analyze.

    Stale statistics give the planner wrong row counts, and so wrong plans. The trigger is
    ``autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * rows``.

    Parameters
    ----------
    overdue_factor:
        How far past the trigger counts as overdue when autovacuum is on (default 2).
    min_modifications:
        Ignore tables with fewer rows changed since the last analyze.
    """
    rows = _maintenance_rows(conn, min_modifications)
    found = []
    for row in rows.itertuples(index=False):
        trigger = row.analyze_threshold + row.analyze_scale_factor * float(row.reltuples)
        limit = trigger * (overdue_factor if row.autovacuum_on else 1.0)
        if row.n_mod_since_analyze < max(min_modifications, limit):
            continue
        disabled = "" if row.autovacuum_on else "; autovacuum (and so autoanalyze) is off for this table"
        found.append(
            finding(
                "analyze_overdue",
                "warning",
                qualified(row.schema, row.table),
                f"{number(row.n_mod_since_analyze)} rows changed since the last analyze, "
                f"{row.n_mod_since_analyze / max(trigger, 1):,.1f}x the autoanalyze trigger of {number(trigger)}; "
                f"{_since(row.since_analyze_s, 'analyzed')}{disabled}",
                "Analyze it so the planner sees today's row counts and value distributions.",
                f"ANALYZE {qualified(row.schema, row.table)};",
                table=qualified(row.schema, row.table),
            )
        )
    return found


TABLE_CACHE_SQL = """
SELECT schemaname AS schema, relname AS table,
       coalesce(heap_blks_hit, 0) AS heap_hit, coalesce(heap_blks_read, 0) AS heap_read,
       coalesce(idx_blks_hit, 0) AS idx_hit, coalesce(idx_blks_read, 0) AS idx_read
FROM pg_statio_user_tables
WHERE coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0)
    + coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0) >= :min_blocks
  AND schemaname NOT LIKE 'pg_temp%'
"""

DATABASE_CACHE_SQL = """
SELECT datname AS database, blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()
"""


def _ratio(hit, read) -> float | None:
    total = hit + read
    return hit / total if total else None


def low_cache_hit(conn, *, min_hit_ratio: float = 0.99, min_blocks: int = 10_000) -> list[dict]:
    """Tables (heap and indexes together) and the database served too often from disk.

    A web app's working set should live in shared_buffers: below 99 % hits, reads wait on
    the disk (or the OS cache).

    Parameters
    ----------
    min_hit_ratio:
        Hits as a share of block accesses (default 0.99).
    min_blocks:
        Ignore tables (and the database) with fewer block accesses than this.
    """
    found = []
    tables = db.query(conn, TABLE_CACHE_SQL, {"min_blocks": min_blocks})
    for row in tables.itertuples(index=False):
        ratio = _ratio(row.heap_hit + row.idx_hit, row.heap_read + row.idx_read)
        if ratio is None or ratio >= min_hit_ratio:
            continue
        heap = _ratio(row.heap_hit, row.heap_read)
        index = _ratio(row.idx_hit, row.idx_read)
        found.append(
            finding(
                "low_cache_hit",
                "warning",
                qualified(row.schema, row.table),
                f"cache hit ratio {share_text(ratio)} (below {share_text(min_hit_ratio)}): heap "
                f"{share_text(heap) if heap is not None else 'n/a'} of {number(row.heap_hit + row.heap_read)} block "
                f"reads, indexes {share_text(index) if index is not None else 'n/a'} of "
                f"{number(row.idx_hit + row.idx_read)}",
                "Its working set does not fit in shared_buffers: cut what is read (indexes for its "
                "sequential scans, less bloat) or give the server more memory / shared_buffers.",
                table=qualified(row.schema, row.table),
                hit_ratio=ratio,
            )
        )
    database = db.query(conn, DATABASE_CACHE_SQL).iloc[0]
    hit, read = int(database["blks_hit"]), int(database["blks_read"])
    ratio = _ratio(hit, read)
    if ratio is not None and hit + read >= min_blocks and ratio < min_hit_ratio:
        found.append(
            finding(
                "low_cache_hit",
                "warning",
                f"database {database['database']}",
                f"cache hit ratio {share_text(ratio)} over {number(hit + read)} block reads "
                f"(below {share_text(min_hit_ratio)})",
                "The working set does not fit in shared_buffers: see the tables above and "
                "setting_shared_buffers.",
                hit_ratio=ratio,
            )
        )
    return found


SEQUENCES_SQL = """
SELECT s.schemaname AS schema, s.sequencename AS sequence, s.last_value, s.min_value, s.max_value,
       s.increment_by, s.data_type::text AS sequence_type,
       col.table_name, col.column_name, col.column_type
FROM pg_sequences s
LEFT JOIN LATERAL (
    SELECT d.refobjid::regclass::text AS table_name, a.attname AS column_name,
           format_type(a.atttypid, a.atttypmod) AS column_type
    FROM pg_depend d
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
    LIMIT 1) col ON true
WHERE s.last_value IS NOT NULL
"""

TYPE_LIMITS = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def sequence_exhaustion(conn, *, warning_share: float = 0.75, critical_share: float = 0.9) -> list[dict]:
    """Sequences that have used most of their range, or of the column they feed.

    A ``serial`` column is ``integer``: its bigint sequence runs out at 2,147,483,647,
    after which every insert fails.

    Parameters
    ----------
    warning_share, critical_share:
        Used share of the range for a warning (default 0.75) and for critical (0.9).
    """
    rows = db.query(conn, SEQUENCES_SQL)
    found = []
    for row in rows.itertuples(index=False):
        low, high = int(row.min_value), int(row.max_value)
        bound_by = f"the sequence's {row.sequence_type} range"
        if row.column_type in TYPE_LIMITS:
            type_low, type_high = TYPE_LIMITS[row.column_type]
            if type_high < high:
                high, bound_by = type_high, f"{row.column_type} column {row.table_name}.{row.column_name}"
            low = max(low, type_low)
        last = int(row.last_value)
        ascending = int(row.increment_by) > 0
        used = (last - low) / max(high - low, 1) if ascending else (high - last) / max(high - low, 1)
        if used < warning_share:
            continue
        remaining = high - last if ascending else last - low
        severity = "critical" if used >= critical_share else "warning"
        target = f" (feeds {row.table_name}.{row.column_name})" if row.table_name else ""
        sql = (
            f"ALTER TABLE {row.table_name} ALTER COLUMN {row.column_name} TYPE bigint;  -- rewrites the table"
            if row.column_type in ("smallint", "integer")
            else f"ALTER SEQUENCE {qualified(row.schema, row.sequence)} AS bigint;"
        )
        found.append(
            finding(
                "sequence_exhaustion",
                severity,
                qualified(row.schema, row.sequence),
                f"last value {number(last)} has used {share_text(used)} of {bound_by}{target}; "
                f"{number(remaining)} values left",
                "Move the column (and sequence) to bigint before inserts start failing; on a large "
                "table plan the rewrite (new column, backfill, swap).",
                sql,
                used_share=used,
            )
        )
    return found


DATABASE_XID_SQL = """
SELECT datname AS database, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS mxid_age
FROM pg_database WHERE datallowconn
ORDER BY age(datfrozenxid) DESC
"""

TABLE_XID_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0)) AS xid_age
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm') AND c.relfrozenxid <> '0'::xid
  AND greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0)) >= :min_age
ORDER BY xid_age DESC
LIMIT :limit
"""

# the transaction-ID space is 2^31 in each direction; PostgreSQL stops accepting writes
# shortly before a table's oldest unfrozen ID is that old
XID_LIMIT = 2**31


def xid_wraparound(conn, *, warning_share: float = 0.5, critical_share: float = 0.75, limit: int = 10) -> list[dict]:
    """Databases and tables whose oldest unfrozen transaction ID nears wraparound.

    Parameters
    ----------
    warning_share, critical_share:
        Age as a share of the 2^31 limit for a warning (default 0.5, ~1.07 billion) and
        for critical (0.75).
    limit:
        Report at most this many tables of the current database (oldest first).
    """
    found = []
    freeze_max = db.scalar(conn, "SELECT current_setting('autovacuum_freeze_max_age')::bigint")

    def severity_of(age: int) -> str:
        return "critical" if age >= critical_share * XID_LIMIT else "warning"

    databases = db.query(conn, DATABASE_XID_SQL)
    for row in databases.itertuples(index=False):
        age = int(row.xid_age)
        if age < warning_share * XID_LIMIT:
            continue
        found.append(
            finding(
                "xid_wraparound",
                severity_of(age),
                f"database {row.database}",
                f"oldest unfrozen transaction ID is {number(age)} transactions old, {share_text(age / XID_LIMIT)} "
                f"of the 2^31 wraparound limit (anti-wraparound vacuums start at autovacuum_freeze_max_age "
                f"{number(freeze_max)}); multixact age {number(row.mxid_age)}",
                "Find what stops freezing (long transactions, abandoned replication slots or prepared "
                "transactions) and VACUUM (FREEZE) the oldest tables before the server stops writes.",
            )
        )
    tables = db.query(conn, TABLE_XID_SQL, {"min_age": int(warning_share * XID_LIMIT), "limit": limit})
    for row in tables.itertuples(index=False):
        age = int(row.xid_age)
        found.append(
            finding(
                "xid_wraparound",
                severity_of(age),
                qualified(row.schema, row.table),
                f"relfrozenxid is {number(age)} transactions old, {share_text(age / XID_LIMIT)} of the 2^31 limit",
                "Vacuum it with FREEZE (it cannot be skipped as it nears the limit).",
                f"VACUUM (FREEZE, VERBOSE) {qualified(row.schema, row.table)};",
                table=qualified(row.schema, row.table),
            )
        )
    return found

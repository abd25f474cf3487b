"""Table checks: large tables read by sequential scans, tenant tables without a tenant index, cache hits.

Each check judges rows the run's context read once (table statistics, the column workload of
pg_stat_statements, pg_stat_database); the judging functions touch no database.
"""

from __future__ import annotations

from perfkit import sql
from perfkit.errors import PerfkitError
from perfkit.findings import finding
from perfkit.health.common import TENANT_COLUMNS, is_missing, number, share_text, size_text
from perfkit.health.context import DATABASE_SQL, TABLE_COLUMNS_SQL, TABLES_SQL, Check
from perfkit.health.workload import filtered_columns_text, proposed_index_columns


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


def read_tables_and_workload(ctx) -> dict:
    tables = ctx.tables()
    workload = ctx.column_workload() if len(tables) else None
    return {"tables": tables, "workload": workload}


def judge_seq_scan_large_tables(
    evidence,
    *,
    min_rows: int = 10_000,
    min_seq_scans: int = 10,
    min_seq_share: float = 0.5,
    tenant_columns=TENANT_COLUMNS,
) -> list[dict]:
    """Tables of at least ``min_rows`` rows read mostly by sequential scans.

    The evidence names the columns the statements of pg_stat_statements filter this table
    on, and the fix proposes an index on them (tenant column first) when there are some.

    Parameters
    ----------
    min_rows:
        Smaller tables are cheap to scan (default 10,000 live rows).
    min_seq_scans:
        At least this many sequential scans since the statistics reset.
    min_seq_share:
        Sequential scans as a share of all scans of the table (default 0.5: they dominate).
    """
    rows = evidence["tables"]
    if rows.empty:
        return []
    seq, idx = rows["seq_scan"].fillna(0).astype(float), rows["idx_scan"].fillna(0).astype(float)
    share = seq / (seq + idx).where(seq + idx > 0)
    rows = rows[(rows["n_live_tup"].astype(float) >= min_rows) & (seq >= min_seq_scans) & (share >= min_seq_share)]
    rows = rows.sort_values("seq_tup_read", ascending=False)
    workload = evidence.get("workload")
    found = []
    for row in rows.itertuples(index=False):
        per_scan = row.seq_tup_read / max(row.seq_scan, 1)
        filters = filtered_columns_text(workload, row.schema, row.table) if workload is not None and len(workload) else ""
        columns = _best_proposal(workload, row.schema, row.table, tenant_columns)
        evidence_text = (
            f"{number(row.seq_scan)} sequential scans ({share_text(row.seq_scan / (row.seq_scan + row.idx_scan))} "
            f"of scans) read {number(row.seq_tup_read)} rows, {number(per_scan)} per scan, of a "
            f"{number(row.n_live_tup)}-row table ({size_text(row.size_bytes)}); {number(row.idx_scan)} index scans"
        )
        evidence_text += f"; statements filter it on {filters}" if filters else "; no statement in pg_stat_statements shows its filters"
        recommendation = (
            f"Index the columns the statements filter on ({', '.join(columns)}), then confirm with EXPLAIN."
            if columns
            else "Find the statements scanning it (perfkit top, EXPLAIN) and index what they filter on."
        )
        found.append(
            finding(
                "seq_scan_large_table",
                "warning",
                sql.qualified(row.schema, row.table),
                evidence_text,
                recommendation,
                fix=sql.create_index(row.schema, row.table, columns) if columns else None,
                table=sql.qualified(row.schema, row.table),
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


def read_tenant_tables(ctx, *, tenant_columns=TENANT_COLUMNS) -> dict:
    columns = tuple(tenant_columns)
    rows = ctx.query(("tenant_tables", columns), TENANT_TABLES_SQL, {"tenant_columns": list(columns)})
    return {"tenant_tables": rows, "workload": ctx.column_workload() if len(rows) else None}


def judge_missing_tenant_indexes(evidence, *, tenant_columns=TENANT_COLUMNS, min_rows: int = 1000) -> list[dict]:
    """Tables with a tenant column (``tenant_id``, ``company_id``, ...) that no index leads with.

    In a multi-tenant app nearly every statement filters on the tenant: without an index
    starting with that column, each one reads the rows of every tenant. Only tables that are
    read by sequential scans count, and, when the workload (pg_stat_statements) is known, only
    tables some statement filters on the tenant column: elsewhere the index would only cost
    the table's writes.

    Parameters
    ----------
    tenant_columns:
        The column names that hold the tenant.
    min_rows:
        Ignore tables with fewer rows (live or estimated) than this.
    """
    rows = evidence["tenant_tables"]
    if rows.empty:
        return []
    rows = rows[rows["column"].isin(list(tenant_columns))].copy()
    if rows.empty:
        return []
    rows["rows"] = rows[["estimated_rows", "live_rows"]].astype(float).max(axis=1)
    led = rows.groupby(["schema", "table"])["leads_an_index"].transform("any")
    candidates = rows[~led.astype(bool) & (rows["rows"] >= min_rows) & (rows["seq_scan"].astype(float) > 0)]
    workload = evidence.get("workload")
    known = workload is not None and not workload.empty
    found = []
    for (schema, table), group in candidates.groupby(["schema", "table"], sort=False):
        first = group.iloc[0]
        column = first["column"]
        tenant_uses = None
        if known:
            tenant_uses = workload[
                (workload["schema"] == schema)
                & (workload["table"] == table)
                & (workload["column"].isin(group["column"]))
                & (workload["usage"] == "equality")
            ].drop_duplicates("queryid")
            if tenant_uses.empty:
                continue  # no statement filters on the tenant: the index would only cost writes
            column = tenant_uses["column"].iloc[0]
        text = (
            f"{table} has tenant column {column} and {number(first['rows'])} rows, but no index starts with "
            f"{'any of ' + ', '.join(group['column']) if len(group) > 1 else column}; "
            f"{number(first['seq_scan'])} sequential scans read {number(first['seq_tup_read'])} rows"
        )
        if tenant_uses is not None and not tenant_uses.empty:
            text += (
                f"; {len(tenant_uses)} statement{'s' if len(tenant_uses) != 1 else ''} filter on {column}: "
                f"{number(tenant_uses['calls'].sum())} calls, {tenant_uses['total_exec_ms'].sum():,.0f} ms in total"
            )
        found.append(
            finding(
                "missing_tenant_index",
                "warning",
                sql.qualified(schema, table),
                text,
                f"Create an index leading with {column} (add the columns the statements also filter or sort on "
                "after it); every per-tenant query reads all tenants' rows until then.",
                fix=sql.create_index(schema, table, [column]),
                table=sql.qualified(schema, table),
                columns=[column],
            )
        )
    return found


def _ratio(hit, read) -> float | None:
    total = hit + read
    return hit / total if total else None


def read_cache(ctx) -> dict:
    try:
        buffers = ctx.settings().get("shared_buffers", {}).get("number")
    except PerfkitError:
        buffers = None
    return {"tables": ctx.tables(), "database": [dict(ctx.database())], "settings": [{"shared_buffers": buffers}]}


def own_cache_pattern(row, shared_buffers: float | None) -> str:
    """Why the table's own use explains its cache misses (``""`` when it does not).

    Sequential scans reading more rows than its index scans fetch, many dead rows, or a table
    larger than shared_buffers: those are the table's to fix. A busy, well-indexed table missing
    the cache is the server's memory (setting_shared_buffers, the database finding), not the table's.
    """
    live, dead = float(row.n_live_tup or 0), float(row.n_dead_tup or 0)
    seq_read, idx_scans = float(row.seq_tup_read or 0), float(row.idx_scan or 0)
    if row.seq_scan and seq_read > max(idx_scans, live):
        return (f"{number(row.seq_scan)} sequential scans read {number(seq_read)} rows "
                f"(against {number(idx_scans)} index scans)")
    if live + dead and dead / (live + dead) >= 0.2:
        return f"{share_text(dead / (live + dead))} of its rows are dead"
    if shared_buffers and float(row.size_bytes or 0) > shared_buffers:
        return f"it is larger ({size_text(row.size_bytes)}) than shared_buffers ({size_text(shared_buffers)})"
    return ""


def judge_low_cache_hit(evidence, *, min_hit_ratio: float = 0.99, min_blocks: int = 10_000) -> list[dict]:
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
    settings = evidence.get("settings")
    buffers = None
    if settings is not None and len(settings) and "shared_buffers" in settings.columns:
        value = settings["shared_buffers"].iloc[0]
        buffers = None if is_missing(value) else float(value)
    for row in evidence["tables"].itertuples(index=False):
        hit, read = int(row.heap_hit + row.idx_hit), int(row.heap_read + row.idx_read)
        ratio = _ratio(hit, read)
        if hit + read < min_blocks or ratio is None or ratio >= min_hit_ratio:
            continue
        why = own_cache_pattern(row, buffers)
        if not why:
            continue  # its misses are the server's memory: the database finding and setting_shared_buffers
        heap = _ratio(row.heap_hit, row.heap_read)
        index = _ratio(row.idx_hit, row.idx_read)
        found.append(
            finding(
                "low_cache_hit",
                "warning",
                sql.qualified(row.schema, row.table),
                f"cache hit ratio {share_text(ratio)} (below {share_text(min_hit_ratio)}): heap "
                f"{share_text(heap) if heap is not None else 'n/a'} of {number(row.heap_hit + row.heap_read)} block "
                f"reads, indexes {share_text(index) if index is not None else 'n/a'} of "
                f"{number(row.idx_hit + row.idx_read)}; {why}",
                "Its working set does not fit in shared_buffers: cut what is read (indexes for its "
                "sequential scans, less bloat) or give the server more memory / shared_buffers.",
                table=sql.qualified(row.schema, row.table),
                hit_ratio=ratio,
            )
        )
    database = evidence["database"].iloc[0]
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


seq_scan_large_tables = Check("seq_scan_large_tables", read_tables_and_workload, judge_seq_scan_large_tables,
                              ("seq_scan_large_table",), (TABLES_SQL, TABLE_COLUMNS_SQL))
missing_tenant_indexes = Check("missing_tenant_indexes", read_tenant_tables, judge_missing_tenant_indexes,
                               ("missing_tenant_index",), (TENANT_TABLES_SQL,))
low_cache_hit = Check("low_cache_hit", read_cache, judge_low_cache_hit, ("low_cache_hit",), (TABLES_SQL, DATABASE_SQL))

CHECKS = (seq_scan_large_tables, missing_tenant_indexes, low_cache_hit)

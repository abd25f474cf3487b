"""Where the database's space and cache go: the largest tables and indexes with their estimated
bloat, and the cache hit ratio per table and for the database (from the run's Context, read once).

``space(ctx)`` and ``cache(ctx)`` return the frames the health Assessment keeps as ``tables["space"]``
and ``tables["cache"]`` (what the health charts draw); they judge nothing.
"""

from __future__ import annotations

import math

import pandas as pd

from perfkit import sql
from perfkit.health.maintenance import ROW_WIDTHS_SQL, estimated_bloat_bytes

# average width of each analyzed column (pg_stats), for the btree estimate
COLUMN_WIDTHS_SQL = """
SELECT schemaname AS schema, tablename AS table, attname AS column, avg_width
FROM pg_stats WHERE NOT inherited AND schemaname NOT IN ('pg_catalog', 'information_schema')
"""
INDEX_TUPLE_HEADER = 8   # IndexTupleData
LINE_POINTER = 4
PAGE_HEADER = 24
BTREE_SPECIAL = 16       # BTPageOpaqueData
BTREE_FILLFACTOR = 90    # leaf pages' default fill


def btree_bloat_bytes(size_bytes: float, tuples: float, key_width: float | None, block_size: int) -> float | None:
    """Bytes of a btree index beyond what its entries need (leaf pages filled to 90 %, one
    metapage), or None when a key width is unknown: each entry costs its header, its keys'
    average width aligned to 8 bytes and a line pointer."""
    if key_width is None or key_width != key_width or size_bytes != size_bytes:
        return None
    entry = INDEX_TUPLE_HEADER + 8 * math.ceil(float(key_width) / 8) + LINE_POINTER
    usable = (block_size - PAGE_HEADER - BTREE_SPECIAL) * BTREE_FILLFACTOR / 100
    expected_pages = 1 + math.ceil(float(tuples) * entry / usable) if tuples else 1
    return max(float(size_bytes) - expected_pages * block_size, 0.0)


SPACE_COLUMNS = ["kind", "name", "table", "size_bytes", "bloat_bytes", "rows", "dead_rows"]
CACHE_COLUMNS = ["name", "hit", "read", "hit_ratio"]
DATABASE_ROW = "(whole database)"


def space(ctx, *, n: int = 12) -> pd.DataFrame:
    """The ``n`` largest tables and the ``n`` largest indexes, largest first (``SPACE_COLUMNS``):
    ``kind`` (``table``/``index``), qualified ``name`` and ``table``, ``size_bytes`` on disk,
    ``bloat_bytes`` beyond what the rows need (estimated from pg_stats widths: for tables as the
    table_bloat check does, for btree indexes on plain columns by :func:`btree_bloat_bytes`; NaN
    when never analyzed, or for other indexes), and for tables live and dead rows."""
    tables = ctx.tables()
    widths = ctx.query("row_widths", ROW_WIDTHS_SQL)
    rows = []
    if len(tables):
        merged = (tables.merge(widths, on=["schema", "table"], how="left") if len(widths)
                  else tables.assign(row_width=None, has_nulls=None, analyzed_columns=None))
        for row in merged.itertuples(index=False):
            bloat = estimated_bloat_bytes(row)
            rows.append({"kind": "table", "name": sql.qualified(row.schema, row.table),
                         "table": sql.qualified(row.schema, row.table), "size_bytes": float(row.size_bytes),
                         "bloat_bytes": math.nan if bloat is None else float(bloat),
                         "rows": float(row.n_live_tup), "dead_rows": float(row.n_dead_tup)})
    indexes = ctx.indexes()
    widths = _column_widths(ctx) if len(indexes) else {}
    tuples = {(r.schema, r.table): (float(r.reltuples), int(r.block_size)) for r in tables.itertuples(index=False)}
    for row in indexes.itertuples(index=False):
        bloat = None
        table_tuples, block_size = tuples.get((row.schema, row.table), (math.nan, 8192))
        # btree on plain columns, not partial: its entries are the table's rows, their widths known
        if row.method == "btree" and not row.expressions and not row.predicate and table_tuples == table_tuples:
            keys = [widths.get((row.schema, row.table, str(c).strip('"'))) for c in row.column_names]
            width = None if any(k is None for k in keys) else sum(keys)
            bloat = btree_bloat_bytes(float(row.size_bytes), table_tuples, width, block_size)
        rows.append({"kind": "index", "name": sql.qualified(row.schema, row.index),
                     "table": sql.qualified(row.schema, row.table), "size_bytes": float(row.size_bytes),
                     "bloat_bytes": math.nan if bloat is None else bloat, "rows": math.nan, "dead_rows": math.nan})
    frame = pd.DataFrame(rows, columns=SPACE_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.sort_values("size_bytes", ascending=False, kind="stable")
    return frame.groupby("kind", sort=False).head(n).reset_index(drop=True)


def _column_widths(ctx) -> dict[tuple[str, str, str], float]:
    frame = ctx.query("column_widths", COLUMN_WIDTHS_SQL)
    return {(r.schema, r.table, r.column): float(r.avg_width) for r in frame.itertuples(index=False)}


def cache(ctx, *, n: int = 12) -> pd.DataFrame:
    """The cache hit ratio of the database and of the ``n`` tables with the most block accesses
    (heap and indexes together), busiest first (``CACHE_COLUMNS``; the database row first, named
    ``(whole database)``); tables never read have no row."""
    database = ctx.database()
    rows = [{"name": DATABASE_ROW, "hit": float(database["blks_hit"]), "read": float(database["blks_read"])}]
    tables = ctx.tables()
    if len(tables):
        hit = tables["heap_hit"].astype(float) + tables["idx_hit"].astype(float)
        read = tables["heap_read"].astype(float) + tables["idx_read"].astype(float)
        per_table = pd.DataFrame({"name": [sql.qualified(s, t) for s, t in zip(tables["schema"], tables["table"],
                                                                                strict=True)],
                                  "hit": hit, "read": read})
        per_table = per_table[(per_table["hit"] + per_table["read"]) > 0]
        per_table = per_table.assign(total=per_table["hit"] + per_table["read"]).sort_values(
            "total", ascending=False).head(n).drop(columns="total")
        rows += per_table.to_dict(orient="records")
    frame = pd.DataFrame(rows, columns=["name", "hit", "read"])
    accesses = frame["hit"] + frame["read"]
    frame["hit_ratio"] = (frame["hit"] / accesses).where(accesses > 0)
    return frame[CACHE_COLUMNS].reset_index(drop=True)

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

SPACE_COLUMNS = ["kind", "name", "table", "size_bytes", "bloat_bytes", "rows", "dead_rows"]
CACHE_COLUMNS = ["name", "hit", "read", "hit_ratio"]
DATABASE_ROW = "(whole database)"


def space(ctx, *, n: int = 12) -> pd.DataFrame:
    """The ``n`` largest tables and the ``n`` largest indexes, largest first (``SPACE_COLUMNS``):
    ``kind`` (``table``/``index``), qualified ``name`` and ``table``, ``size_bytes`` on disk, and for
    tables the ``bloat_bytes`` beyond what the live rows need (estimated from pg_stats widths, as
    the table_bloat check does; NaN when never analyzed), live and dead rows."""
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
    for row in indexes.itertuples(index=False):
        rows.append({"kind": "index", "name": sql.qualified(row.schema, row.index),
                     "table": sql.qualified(row.schema, row.table), "size_bytes": float(row.size_bytes),
                     "bloat_bytes": math.nan, "rows": math.nan, "dead_rows": math.nan})
    frame = pd.DataFrame(rows, columns=SPACE_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.sort_values("size_bytes", ascending=False, kind="stable")
    return frame.groupby("kind", sort=False).head(n).reset_index(drop=True)


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

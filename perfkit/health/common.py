"""Small helpers shared by the health checks: identifier quoting, fix SQL, readable numbers.

Nothing here touches the database; checks call these to word their evidence and build SQL.
"""

from __future__ import annotations

import math
import re

import pandas as pd
from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

# the tenant columns multi-tenant apps key their rows on (DESIGN.md; the seeds' guides)
TENANT_COLUMNS = ("tenant_id", "company_id", "retailer_id")

_NEEDS_NO_QUOTES = re.compile(r"[a-z_][a-z0-9_$]*")
_KEYWORDS = frozenset(RESERVED_KEYWORDS) | frozenset(TYPE_FUNC_NAME_KEYWORDS) | frozenset(COL_NAME_KEYWORDS)
MAX_IDENTIFIER = 63


def quote_ident(name: str) -> str:
    """``name`` as PostgreSQL needs it written: bare when it can be, double-quoted otherwise."""
    if _NEEDS_NO_QUOTES.fullmatch(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str | None, name: str) -> str:
    """``schema.name`` with each part quoted as needed (``name`` alone without a schema)."""
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)


def index_name(table: str, columns: list[str] | tuple[str, ...]) -> str:
    """A conventional name ``table_col1_col2_idx``, cut to PostgreSQL's 63 bytes."""
    name = "_".join([table, *columns, "idx"])
    if len(name.encode()) > MAX_IDENTIFIER:
        name = name.encode()[: MAX_IDENTIFIER - 4].decode(errors="ignore").rstrip("_") + "_idx"
    return name


def create_index_sql(schema: str, table: str, columns: list[str] | tuple[str, ...], *, concurrently: bool = True) -> str:
    """``CREATE INDEX CONCURRENTLY name ON schema.table (cols);`` (printed, never executed)."""
    how = " CONCURRENTLY" if concurrently else ""
    cols = ", ".join(quote_ident(c) for c in columns)
    name = quote_ident(index_name(table, columns))
    return f"CREATE INDEX{how} {name} ON {qualified(schema, table)} ({cols});"


def drop_index_sql(schema: str, index: str) -> str:
    """``DROP INDEX CONCURRENTLY schema.index;`` (printed, never executed)."""
    return f"DROP INDEX CONCURRENTLY {qualified(schema, index)};"


def size_text(num_bytes: float | int | None) -> str:
    """``12.3 MB`` style sizes (1024-based, as pg_size_pretty)."""
    if num_bytes is None or (isinstance(num_bytes, float) and math.isnan(num_bytes)):
        return "unknown size"
    value = float(num_bytes)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"  # pragma: no cover


def duration_text(seconds: float | None) -> str:
    """``3.2 s``, ``4 min``, ``2.5 h``, ``12 days``: the unit a person would use."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "an unknown time"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:,.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.0f} days"


def share_text(share: float) -> str:
    """A 0..1 share as a percentage with the precision it deserves."""
    pct = 100.0 * float(share)
    return f"{pct:.2f} %" if pct >= 99 or pct < 1 else f"{pct:.1f} %"


def number(value) -> str:
    """``1,234,567`` for counts (``unknown`` for NULL/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return f"{int(value):,}"


def is_missing(value) -> bool:
    """True for None, NaN, pd.NA and NaT."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is not "missing"
        return False

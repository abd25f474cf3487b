"""Small helpers shared by the health checks: readable numbers and the tenant columns.

Nothing here touches the database. Identifier quoting and fix SQL live in :mod:`perfkit.sql`
(``quote_ident``, ``qualified``, ``index_name`` are re-exported here for older imports).
"""

from __future__ import annotations

import math

import pandas as pd

from perfkit import sql

# the tenant columns multi-tenant apps key their rows on (DESIGN.md; the seeds' guides), re-exported
from perfkit.parameters import TENANT_COLUMNS  # noqa: F401
from perfkit.sql import MAX_IDENTIFIER, index_name, qualified, quote_ident  # noqa: F401 - re-exported


def create_index_sql(schema: str, table: str, columns, *, concurrently: bool = True) -> str:
    """The SQL of :func:`perfkit.sql.create_index` (kept for older imports; use the Fix)."""
    return sql.create_index(schema, table, columns, concurrently=concurrently).sql


def drop_index_sql(schema: str, index: str) -> str:
    """The SQL of :func:`perfkit.sql.drop_index` (kept for older imports; use the Fix)."""
    return sql.drop_index(schema, index).sql


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

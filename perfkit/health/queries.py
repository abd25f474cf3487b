"""Statement patterns the field guides ask to rewrite: large ``OFFSET`` pagination.

``OFFSET n`` makes the server read and throw away ``n`` rows on every page: page 500 of a list
costs 500 pages. The guides (keyset pagination) replace it with a ``WHERE`` on the last row seen
and an index on the filter and sort columns, so every page is one index range scan.
"""

from __future__ import annotations

import functools

import pglast
from pglast import ast

from perfkit import sql
from perfkit.findings import finding
from perfkit.health.common import number
from perfkit.health.context import INDEXES_SQL, TABLE_COLUMNS_SQL, Check
from perfkit.health.indexes import index_fix
from perfkit.health.predicates import EQUALITY, SORT, column_uses, resolve_uses


@functools.lru_cache(maxsize=4096)
def offset_of(text: str) -> str | None:
    """The OFFSET of a statement's outermost SELECT as written (``$3``, ``1000``), else None."""
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    for raw in statements:
        node = raw.stmt
        if isinstance(node, ast.SelectStmt) and node.limitOffset is not None:
            offset = node.limitOffset
            if isinstance(offset, ast.ParamRef):
                return f"${offset.number}"
            if isinstance(offset, ast.A_Const) and offset.val is not None:
                value = getattr(offset.val, "ival", None)
                if value is not None:
                    return str(value)
            return "an expression"
    return None


def read_offsets(ctx) -> dict:
    return {"statements": ctx.statements(), "columns": ctx.table_columns(), "indexes": ctx.indexes()}


def _keyset_fix(text: str, columns_by_table, existing: list[sql.Fix]):
    """The index keyset pagination needs (equality columns, then the sort keys in their order) and
    the table, when the statement reads one table; (None, None) otherwise."""
    uses = resolve_uses(column_uses(text), columns_by_table)
    tables = {(schema, table) for schema, table, _ in uses}
    if len(tables) != 1:
        return None, None
    schema, table = next(iter(tables))
    keys: list[sql.IndexColumn] = []
    seen = set()
    for usage in (EQUALITY, SORT):
        for _, _, use in uses:
            if use.usage == usage and use.column not in seen:
                seen.add(use.column)
                keys.append(sql.IndexColumn(use.column, descending=use.descending))
    if not any(use.usage == SORT for _, _, use in uses):
        return None, (schema, table)
    fix = sql.create_index(schema, table, keys)
    if any(index.covers(fix) for index in existing):
        return None, (schema, table)
    return fix, (schema, table)


def judge_large_offset(evidence, *, min_mean_ms: float = 50.0, min_calls: int = 10, min_offset: int = 1000,
                       limit: int = 10) -> list[dict]:
    """Statements paginating with OFFSET whose mean time is high: keyset pagination instead.

    Parameters
    ----------
    min_mean_ms:
        Mean execution time from which a paginated statement is reported (default 50 ms).
    min_calls:
        Calls from which it is reported (default 10: a list people page through).
    min_offset:
        A literal OFFSET from which it is a warning (default 1,000). pg_stat_statements keeps most
        offsets as ``$n``, hiding how deep people page: those are ``info``.
    limit:
        At most this many statements, by total time.
    """
    statements = evidence["statements"]
    if statements is None or statements.empty:
        return []
    existing = [index_fix(row) for row in evidence["indexes"].itertuples(index=False) if row.is_valid] \
        if len(evidence["indexes"]) else []
    heavy = statements[(statements["mean_exec_ms"].astype(float) >= min_mean_ms)
                       & (statements["calls"].astype(float) >= min_calls)]
    found = []
    for row in heavy.sort_values("total_exec_ms", ascending=False).itertuples(index=False):
        offset = offset_of(str(row.query))
        if offset is None or (offset.isdigit() and int(offset) < min_offset):
            continue
        literal = offset.isdigit()
        fix, table = _keyset_fix(str(row.query), evidence["columns"], existing)
        where = f" on {table[1]}" if table else ""
        shown = f"OFFSET {offset}" if offset != "an expression" else "an OFFSET expression"
        advice = ("Paginate by key instead of OFFSET: remember the sort key of the last row shown and ask for "
                  "WHERE (sort key) < (last seen) ORDER BY it LIMIT n, so each page is one index range scan"
                  + (" (the index below serves it)." if fix is not None else "."))
        depth = ("every page reads and discards all the rows before it" if literal else
                 "pg_stat_statements hides the offsets used; each page reads and discards all the rows before it, "
                 "so deep pages cost the most")
        found.append(finding(
            "large_offset", "warning" if literal else "info", f"queryid {row.queryid}",
            f"pages with {shown}{where}: {number(row.calls)} calls at {row.mean_exec_ms:,.1f} ms mean; {depth}",
            advice, fix=fix, queryid=row.queryid, query=row.query,
        ))
        if len(found) >= limit:
            break
    return found


large_offset = Check("large_offset", read_offsets, judge_large_offset, ("large_offset",), (INDEXES_SQL, TABLE_COLUMNS_SQL))

CHECKS = (large_offset,)

__all__ = ["CHECKS", "judge_large_offset", "large_offset", "offset_of"]

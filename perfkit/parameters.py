"""What a statement's ``$n`` parameters stand for, read from pglast's parse tree (no database, no
perfkit.health import: the log pass uses it for the cost per tenant)."""

from __future__ import annotations

import json

from pglast.parser import ParseError, parse_sql_json

from perfkit import parsetree

# the columns that name a tenant (perfkit.health.common re-exports this)
TENANT_COLUMNS = ("tenant_id", "company_id", "retailer_id")


def parameter_columns(text: str) -> dict[int, str] | None:
    """``{parameter number: column}`` for each ``$n`` the statement compares a column with (``limit``
    and ``offset`` for its LIMIT / OFFSET), or None when the text does not parse."""
    try:
        tree = json.loads(parse_sql_json(text))
    except (ParseError, ValueError):
        return None
    found: dict[int, str] = {}
    for key, value in parsetree.items(tree):
        if key == "A_Expr" and isinstance(value, dict):
            left, right = value.get("lexpr") or {}, value.get("rexpr") or {}
            for column_side, param_side in ((left, right), (right, left)):
                ref, param = column_side.get("ColumnRef"), param_side.get("ParamRef")
                if ref and param:
                    names = [f["String"]["sval"] for f in ref.get("fields", []) if "String" in f]
                    if names:
                        found.setdefault(int(param.get("number", 0)), names[-1])
        elif key in ("limitCount", "limitOffset") and isinstance(value, dict) and "ParamRef" in value:
            found.setdefault(int(value["ParamRef"].get("number", 0)), "limit" if key == "limitCount" else "offset")
    return found


def parameter_count(text: str) -> int:
    """The highest ``$n`` of a statement (0 when it has none or does not parse)."""
    try:
        tree = json.loads(parse_sql_json(text))
    except (ParseError, ValueError):
        return 0
    numbers = [int(v.get("number", 0)) for k, v in parsetree.items(tree) if k == "ParamRef" and isinstance(v, dict)]
    return max(numbers, default=0)

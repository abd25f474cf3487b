"""What a statement's ``$n`` parameters stand for, read from pglast's parse tree (no database, no
perfkit.health import: the log pass uses it for the cost per tenant)."""

from __future__ import annotations

import json

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind
from pglast.parser import ParseError, parse_sql_json

from perfkit import parsetree

# the columns that name a tenant (perfkit.health.common re-exports this)
TENANT_COLUMNS = ("tenant_id", "company_id", "retailer_id")


def parameter_columns(text: str) -> dict[int, str] | None:
    """``{parameter number: column}`` for each ``$n`` the statement compares a column with (``limit``
    and ``offset`` for its LIMIT / OFFSET), or None when the text does not parse."""
    uses = _uses(text)
    return None if uses is None else {number: use[1] for number, use in uses.items()}


def parameter_uses(text: str) -> dict[int, tuple[str | None, str, str]]:
    """``{n: (table or alias, column, operator)}`` for each ``$n`` compared with a column (``$1::int``
    and ``IN ($1, $2)`` too), and ``(None, "limit"|"offset", "")`` for LIMIT / OFFSET parameters;
    ``{}`` when the text does not parse."""
    return _uses(text) or {}


def _param_number(node) -> int | None:
    if isinstance(node, ast.ParamRef):
        return int(node.number)
    if isinstance(node, ast.TypeCast):
        return _param_number(node.arg)
    return None


def _uses(text: str) -> dict[int, tuple[str | None, str, str]] | None:
    try:
        tree = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    found: dict[int, tuple[str | None, str, str]] = {}

    def visit(node):
        if isinstance(node, ast.SelectStmt):
            for name, word in ((node.limitCount, "limit"), (node.limitOffset, "offset")):
                number = _param_number(name)
                if number is not None:
                    found.setdefault(number, (None, word, ""))
        if isinstance(node, ast.A_Expr):
            operator = node.name[-1].sval if node.name else "="
            for column, other in ((node.lexpr, node.rexpr), (node.rexpr, node.lexpr)):
                if isinstance(column, ast.ColumnRef):
                    names = [f.sval for f in column.fields if isinstance(f, ast.String)]
                    candidates = other if isinstance(other, tuple | list) else [other]
                    for item in candidates:
                        number = _param_number(item)
                        if number is not None and names:
                            qualifier = names[-2] if len(names) >= 2 else None
                            found.setdefault(number, (qualifier, names[-1],
                                                      operator if node.kind == A_Expr_Kind.AEXPR_OP else "="))
        if isinstance(node, tuple | list):
            for item in node:
                visit(item)
        elif isinstance(node, ast.Node):
            for name in node:
                visit(getattr(node, name))

    for raw in tree:
        visit(raw.stmt)
    return found


def parameter_count(text: str) -> int:
    """The highest ``$n`` of a statement (0 when it has none or does not parse)."""
    try:
        tree = json.loads(parse_sql_json(text))
    except (ParseError, ValueError):
        return 0
    numbers = [int(v.get("number", 0)) for k, v in parsetree.items(tree) if k == "ParamRef" and isinstance(v, dict)]
    return max(numbers, default=0)

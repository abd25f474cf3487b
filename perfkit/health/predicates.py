"""Which columns a statement filters, joins and sorts on, read with pglast (PostgreSQL's parser).

``column_uses(sql)`` returns ColumnUse rows; ``resolve_uses`` ties them to catalog tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, SortByDir

EQUALITY = "equality"
RANGE = "range"
SORT = "sort"
JOIN = "join"

_RANGE_OPERATORS = {"<", ">", "<=", ">="}
_EQUALITY_KINDS = {A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY}
_RANGE_KINDS = {
    A_Expr_Kind.AEXPR_BETWEEN,
    A_Expr_Kind.AEXPR_NOT_BETWEEN,
    A_Expr_Kind.AEXPR_BETWEEN_SYM,
    A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    A_Expr_Kind.AEXPR_LIKE,
}


@dataclass(frozen=True)
class ColumnUse:
    """One column a statement uses in a way an index can serve.

    ``schema`` is None when the statement does not qualify the table; ``ambiguous`` is True
    when an unqualified column could belong to several tables of the FROM list (one
    ColumnUse per candidate is returned; the catalog decides, see :func:`resolve_uses`).
    """

    schema: str | None
    table: str
    column: str
    usage: str  # equality | range | sort | join
    position: int
    descending: bool = False
    ambiguous: bool = False


class _Scope:
    """The relations of one FROM list: alias (or bare name) -> (schema, table)."""

    def __init__(self, parent: _Scope | None = None):
        self.parent = parent
        self.relations: dict[str, tuple[str | None, str]] = {}
        self.opaque: set[str] = set()  # subqueries and functions in FROM: not tables

    def add(self, node: ast.RangeVar) -> None:
        key = node.alias.aliasname if node.alias else node.relname
        self.relations[key] = (node.schemaname, node.relname)

    def lookup(self, qualifier: str) -> list[tuple[str | None, str]]:
        scope: _Scope | None = self
        while scope is not None:
            if qualifier in scope.relations:
                return [scope.relations[qualifier]]
            if qualifier in scope.opaque:
                return []
            for (schema, table) in scope.relations.values():
                if table == qualifier and schema is not None:
                    return [(schema, table)]
            scope = scope.parent
        return []

    def candidates(self) -> list[tuple[str | None, str]]:
        return list(self.relations.values())


class _Collector:
    def __init__(self):
        self.uses: list[ColumnUse] = []

    def _emit(self, scope: _Scope, ref: ast.ColumnRef, usage: str, descending: bool = False) -> None:
        names = [f.sval for f in ref.fields if isinstance(f, ast.String)]
        if not names or len(names) != len(ref.fields):  # t.* or *
            return
        column = names[-1]
        if len(names) >= 2:
            targets = scope.lookup(names[-2])
            ambiguous = False
        else:
            targets = scope.candidates()
            ambiguous = len(targets) > 1
        for schema, table in targets:
            self.uses.append(ColumnUse(schema, table, column, usage, len(self.uses), descending, ambiguous))

    # -- statements ----------------------------------------------------------------------
    def statement(self, node, parent: _Scope | None = None) -> None:
        if isinstance(node, ast.SelectStmt):
            self.select(node, parent)
        elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
            scope = _Scope(parent)
            self.ctes(node.withClause, scope)
            scope.add(node.relation)
            for item in (getattr(node, "fromClause", None) or getattr(node, "usingClause", None) or ()):
                self.from_item(item, scope)
            self.predicate(node.whereClause, scope)
        elif isinstance(node, ast.InsertStmt) and node.selectStmt is not None:
            self.statement(node.selectStmt, parent)
        elif isinstance(node, ast.ExplainStmt):
            self.statement(node.query, parent)

    def ctes(self, with_clause, scope: _Scope) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            scope.opaque.add(cte.ctename)
            self.statement(cte.ctequery, scope)

    def select(self, node: ast.SelectStmt, parent: _Scope | None) -> None:
        if node.op is not None and node.larg is not None:  # UNION / INTERSECT / EXCEPT
            self.statement(node.larg, parent)
            self.statement(node.rarg, parent)
            return
        scope = _Scope(parent)
        self.ctes(node.withClause, scope)
        for item in node.fromClause or ():
            self.from_item(item, scope)
        self.predicate(node.whereClause, scope)
        for sort in node.sortClause or ():
            if isinstance(sort.node, ast.ColumnRef):
                self._emit(scope, sort.node, SORT, sort.sortby_dir == SortByDir.SORTBY_DESC)
        for target in node.targetList or ():  # subqueries in the select list
            self.subqueries(target.val, scope)

    def from_item(self, item, scope: _Scope) -> None:
        if isinstance(item, ast.RangeVar):
            if item.schemaname is None and item.relname in scope.opaque:
                return
            scope.add(item)
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg, scope)
            self.from_item(item.rarg, scope)
            if item.quals is not None:
                self.predicate(item.quals, scope)
            for name in item.usingClause or ():
                for schema, table in scope.candidates():
                    self.uses.append(ColumnUse(schema, table, name.sval, JOIN, len(self.uses), ambiguous=True))
        elif isinstance(item, ast.RangeSubselect):
            if item.alias is not None:
                scope.opaque.add(item.alias.aliasname)
            self.statement(item.subquery, scope)
        elif isinstance(item, ast.RangeFunction) and item.alias is not None:
            scope.opaque.add(item.alias.aliasname)

    # -- predicates ----------------------------------------------------------------------
    def predicate(self, node, scope: _Scope) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args:
                    self.predicate(arg, scope)
            else:  # OR / NOT: no single composite index serves them; look for subqueries only
                for arg in node.args:
                    self.subqueries(arg, scope)
            return
        if isinstance(node, ast.A_Expr):
            self.comparison(node, scope)
            return
        if isinstance(node, ast.NullTest) and isinstance(node.arg, ast.ColumnRef):
            self._emit(scope, node.arg, EQUALITY)
            return
        if isinstance(node, ast.SubLink):
            if isinstance(node.testexpr, ast.ColumnRef):
                self._emit(scope, node.testexpr, EQUALITY)
            self.statement(node.subselect, scope)
            return
        self.subqueries(node, scope)

    def comparison(self, node: ast.A_Expr, scope: _Scope) -> None:
        operator = node.name[-1].sval if node.name else ""
        left, right = node.lexpr, node.rexpr
        left_col = isinstance(left, ast.ColumnRef)
        right_col = isinstance(right, ast.ColumnRef)
        if node.kind == A_Expr_Kind.AEXPR_OP and left_col and right_col:
            if operator == "=":
                self._emit(scope, left, JOIN)
                self._emit(scope, right, JOIN)
            return
        if node.kind == A_Expr_Kind.AEXPR_OP:
            column = left if left_col else right if right_col else None
            if column is not None and operator == "=":
                self._emit(scope, column, EQUALITY)
            elif column is not None and operator in _RANGE_OPERATORS:
                self._emit(scope, column, RANGE)
        elif node.kind in _EQUALITY_KINDS and left_col:
            self._emit(scope, left, EQUALITY)
        elif node.kind in _RANGE_KINDS and left_col:
            self._emit(scope, left, RANGE)
        for side in (left, right):
            self.subqueries(side, scope)

    def subqueries(self, node, scope: _Scope) -> None:
        """Statements nested anywhere inside an expression (EXISTS, IN (SELECT ...), scalar)."""
        if node is None:
            return
        if isinstance(node, ast.SubLink):
            self.predicate(node, scope)
            return
        if isinstance(node, tuple | list):
            for item in node:
                self.subqueries(item, scope)
            return
        if isinstance(node, ast.Node):
            for name in node:
                self.subqueries(getattr(node, name), scope)


def column_uses(sql: str) -> list[ColumnUse]:
    """The columns ``sql`` compares with a value, joins on, or sorts by, in order of appearance.

    Parameters
    ----------
    sql:
        One or more statements, as written or as normalized by pg_stat_statements
        (``$1`` parameters are fine).

    Returns
    -------
    list of ColumnUse
        Empty when the text does not parse (a truncated statement, not SQL) or holds no
        SELECT, UPDATE, DELETE or INSERT ... SELECT.

    Examples
    --------
    >>> [(u.table, u.column, u.usage) for u in column_uses(
    ...     "SELECT * FROM orders WHERE tenant_id = $1 ORDER BY created_at DESC")]
    [('orders', 'tenant_id', 'equality'), ('orders', 'created_at', 'sort')]
    """
    return list(_column_uses(sql))


@functools.lru_cache(maxsize=4096)
def _column_uses(sql: str) -> tuple[ColumnUse, ...]:
    # one parse per statement text a process sees: the health checks and the index advice of one
    # run read the same statements, and a weekly run's notebook sections read them again
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return ()
    collector = _Collector()
    for raw in statements:
        collector.statement(raw.stmt)
    return tuple(collector.uses)


def _schemas_by_table(columns_by_table) -> dict[str, list[str]]:
    """table name -> the schemas holding one, built once per catalog mapping (cached on its id)."""
    key = id(columns_by_table)
    cached = _SCHEMAS_CACHE.get(key)
    if cached is not None and cached[0] is columns_by_table:
        return cached[1]
    by_name: dict[str, list[str]] = {}
    for schema, table in columns_by_table:
        by_name.setdefault(table, []).append(schema)
    _SCHEMAS_CACHE.clear()  # one catalog at a time
    _SCHEMAS_CACHE[key] = (columns_by_table, by_name)
    return by_name


_SCHEMAS_CACHE: dict[int, tuple] = {}


def resolve_uses(
    uses: Iterable[ColumnUse],
    columns_by_table: Mapping[tuple[str, str], set[str] | frozenset[str]],
) -> list[tuple[str, str, ColumnUse]]:
    """Tie each use to one catalog table: ``[(schema, table, use), ...]``.

    An unqualified table resolves to the only table of that name, or to ``public`` when
    several schemas hold one; otherwise it is dropped. A use whose column the table does
    not have (an ambiguous unqualified column, a column of a subquery) is dropped.
    """
    by_name = _schemas_by_table(columns_by_table)
    resolved = []
    for use in uses:
        if use.schema is not None:
            schema = use.schema
        else:
            schemas = by_name.get(use.table, [])
            if len(schemas) == 1:
                schema = schemas[0]
            elif "public" in schemas:
                schema = "public"
            else:
                continue
        columns = columns_by_table.get((schema, use.table))
        if columns is None or use.column not in columns:
            continue
        resolved.append((schema, use.table, use))
    return resolved

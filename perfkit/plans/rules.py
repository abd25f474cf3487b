"""Plan findings: one small rule per problem, thresholds as keyword arguments with defaults.

Each rule takes a :class:`~perfkit.plans.model.Plan` and returns Finding dicts; ``RULES`` lists them.
The rules loop over the plan's node rows (``Plan.rows``), without pandas; pglast is imported only
when a rule parses a condition.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from perfkit import sql
from perfkit.findings import finding, findings_frame, rank_findings

if TYPE_CHECKING:
    import pandas as pd

# --- helpers: expressions, columns, fixes, words -------------------------------------------------
_OPAQUE = re.compile(r"\((?:hashed )?SubPlan \d+\)|\(InitPlan \d+\)\.col\d+|\$\d+")
_EQUALITY_OPERATORS = {"="}
_PATTERN_OPERATORS = {"~~", "~~*", "~", "~*"}  # LIKE, ILIKE, regular expressions: B-trees rarely help


# A condition's constants do not change which columns it reads: each string and number is read
# as one placeholder, so conditions that differ only in their constants (the same subplan over
# many partitions, a query repeated with other values) are parsed and walked once. Quoted names
# are kept as they are; a condition with a backslash (an E'' string) is left alone.
# (a number not inside a name, PostgreSQL's names may hold any non-ASCII character: ``a€1``; nor ``1.5.2``)
_CONSTANT = re.compile(r"(\"(?:[^\"]|\"\")*\")|'(?:[^']|'')*'|(?<![\w.\u0080-\U0010ffff])\d+(?:\.\d+)?"
                       r"(?![\w.\u0080-\U0010ffff])")


def _constant_free(match: re.Match) -> str:
    if match.group(1):
        return match.group(1)
    return "''" if match.group(0)[0] == "'" else "0"


@functools.lru_cache(maxsize=8192)
def _without_constants(expression: str) -> str:
    if "\\" in expression or not any(c.isdigit() or c == "'" for c in expression):
        return expression
    return _CONSTANT.sub(_constant_free, expression)


@functools.lru_cache(maxsize=4096)
def _parse_expression(sql: str) -> dict | None:
    # not at import: only a plan with conditions needs PostgreSQL's parser
    from pglast.parser import ParseError, parse_sql_json

    try:
        return json.loads(parse_sql_json(sql))
    except (ParseError, ValueError, RecursionError):
        return None


# The simplest conditions, read without PostgreSQL's parser (importing pglast is most of what
# ``perfkit plan FILE`` would spend on a small plan): comparisons of a bare lower-case name (not a
# keyword; ``qualifier.name``, ``(name)::type`` allowed) with another or with a placeholder
# constant (``0``, ``''``, ``NULL``, ``''::type``), alone or joined with AND. What they give is
# the tree pglast gives, as far as the walkers below read it (A_Expr, ColumnRef, TypeCast in the
# same order); anything else is parsed by pglast.
_SIMPLE_NAME = r"[a-z_][a-z0-9_]{0,62}"  # longer names are cut by the parser
_SIMPLE_TYPE = (r"(?:text|integer|bigint|smallint|numeric|date|boolean|uuid|real|name|oid|bpchar|json|jsonb|"
                r"character varying|double precision|timestamp without time zone|timestamp with time zone)")
_SIMPLE_OPERAND = re.compile(
    rf"(?:(?P<paren>\()?(?:(?P<qual>{_SIMPLE_NAME})\.)?(?P<col>{_SIMPLE_NAME})(?(paren)\))|(?P<const>0|''|NULL))"
    rf"(?:::(?P<type>{_SIMPLE_TYPE}))?"
)
_SIMPLE_OPERATORS = {"=", "<>", "<", ">", "<=", ">=", "~~", "~~*", "!~~", "!~~*", "~", "~*", "!~", "!~*"}


def _simple_operand(text: str) -> dict | None:
    match = _SIMPLE_OPERAND.fullmatch(text)
    if match is None:
        return None
    if match["const"] is not None:
        node: dict = {"A_Const": {}}
    else:
        names = [match["qual"], match["col"]] if match["qual"] else [match["col"]]
        if any(name in sql.KEYWORDS for name in names):
            return None
        node = {"ColumnRef": {"fields": [{"String": {"sval": name}} for name in names]}}
    if match["type"] is not None:
        node = {"TypeCast": {"arg": node, "typeName": {}}}
    return node


def _unwrapped(text: str) -> str:
    """``text`` without the parentheses wrapped around all of it (``((a = 0))`` -> ``a = 0``)."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for position, char in enumerate(text):
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0 and position < len(text) - 1:
                    return text  # the first parenthesis closes before the end: not a wrap
        text = text[1:-1]
    return text


def _top_level_and(text: str) -> list[str]:
    """``text`` cut at each `` AND `` outside parentheses."""
    parts, depth, start = [], 0, 0
    for position, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == " " and depth == 0 and text.startswith(" AND ", position):
            parts.append(text[start:position])
            start = position + 5
    parts.append(text[start:])
    return parts


def _simple_where(condition: str) -> dict | None:
    """The where tree of a simple condition (see above), or None to ask pglast."""
    if len(condition) > 2000 or "\\" in condition:
        return None
    comparisons: list[dict] = []
    pending = [condition]
    while pending:
        part = _unwrapped(pending.pop())
        if part.count("(") != part.count(")"):
            return None
        pieces = _top_level_and(part)
        if len(pieces) > 1:
            pending.extend(reversed(pieces))  # AND inside AND: the same walk, left to right
            continue
        words = part.split(" ")
        for at in range(1, len(words) - 1):  # the operator: a word of its own between operands
            operator = words[at]
            if operator in _SIMPLE_OPERATORS:
                left = _simple_operand(" ".join(words[:at]))
                right = _simple_operand(" ".join(words[at + 1:]))
                if left is None or right is None:
                    return None
                comparisons.append({"A_Expr": {"kind": "AEXPR_OP", "name": [{"String": {"sval": operator}}],
                                               "lexpr": left, "rexpr": right}})
                break
        else:
            return None
    if len(comparisons) == 1:
        return comparisons[0]
    return {"BoolExpr": {"boolop": "AND_EXPR", "args": comparisons}}


_SIMPLE_SORT_KEY = re.compile(
    rf"(?:(?P<qual>{_SIMPLE_NAME})\.)?(?P<col>{_SIMPLE_NAME})(?: (?:ASC|DESC))?(?: NULLS (?:FIRST|LAST))?"
)


def _simple_sort_keys(keys: str) -> list | None:
    """The sort clause of simple sort keys (``o.created_at DESC, id``) as the walkers read pglast's, or None."""
    if len(keys) > 2000:
        return None
    clause = []
    for key in keys.split(", "):
        match = _SIMPLE_SORT_KEY.fullmatch(key)
        if match is None:
            return None
        names = [match["qual"], match["col"]] if match["qual"] else [match["col"]]
        if any(name in sql.KEYWORDS for name in names):
            return None
        clause.append({"SortBy": {"node": {"ColumnRef": {"fields": [{"String": {"sval": name}} for name in names]}}}})
    return clause


def _where_tree(cleaned: str):
    """The where clause of ``SELECT 1 WHERE cleaned`` as pglast's JSON tree (None when it does not parse)."""
    tree = _simple_where(cleaned)
    if tree is not None:
        return tree
    parsed = _parse_expression(f"SELECT 1 WHERE {cleaned}")
    if parsed is None:
        return None
    statements = parsed.get("stmts") or [{}]
    return statements[0].get("stmt", {}).get("SelectStmt", {}).get("whereClause")


def _column_ref(node: dict) -> tuple[str | None, str] | None:
    """(qualifier, column) of a ColumnRef (through casts), or None."""
    if "TypeCast" in node:
        return _column_ref(node["TypeCast"].get("arg", {}))
    ref = node.get("ColumnRef")
    if not ref:
        return None
    fields = ref.get("fields", [])
    if not fields or "String" not in fields[-1]:
        return None
    qualifier = fields[-2].get("String", {}).get("sval") if len(fields) >= 2 else None
    return qualifier, fields[-1]["String"].get("sval")


def expression_columns(expression: str, *, clause: str = "where", table: Iterable[str] | None = None) -> list[str]:
    """Column names an EXPLAIN condition or sort key reads, equality columns first.

    The expression is parsed with PostgreSQL's own parser (pglast); parameters and subplan
    references are replaced by NULL first. Returns ``[]`` when it cannot be parsed.

    Parameters
    ----------
    expression:
        A ``Filter``/``Index Cond`` text such as ``((tenant_id = 7) AND (created_at > now()))``,
        or a sort key list such as ``o.created_at DESC, id``.
    clause:
        ``"where"`` for a condition, ``"order"`` for sort keys (kept in their order).
    table:
        The node's relation name and alias: columns qualified with another name (the other side
        of a join, ``o.customer_id`` in ``(id = o.customer_id)``) are left out.
    """
    return list(_expression_columns(_without_constants(expression) if expression else expression, clause,
                                    tuple(sorted(table or ()))))


@functools.lru_cache(maxsize=8192)
def _expression_columns(expression: str, clause: str, table: tuple) -> tuple:
    names = set(table or [])

    def wanted(ref: tuple[str | None, str] | None) -> str | None:
        if ref is None:
            return None
        qualifier, column = ref
        if names and qualifier is not None and qualifier not in names:
            return None
        return column

    if not expression:
        return ()
    cleaned = _OPAQUE.sub("NULL", expression)
    if clause == "order":
        tree = _simple_sort_keys(cleaned)
        if tree is None:
            parsed = _parse_expression(f"SELECT 1 ORDER BY {cleaned}")
            if parsed is None:
                return ()
            statements = parsed.get("stmts") or [{}]
            tree = statements[0].get("stmt", {}).get("SelectStmt", {}).get("sortClause")
    else:
        tree = _where_tree(cleaned)
        if tree is None:
            return ()
    equality: list[str] = []
    others: list[str] = []
    stack: list = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if not isinstance(item, dict):
            continue
        expr = item.get("A_Expr")
        if expr is not None and clause != "order":
            operators = [n.get("String", {}).get("sval") for n in expr.get("name", [])]
            if operators and operators[-1] in _EQUALITY_OPERATORS and expr.get("kind") in ("AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_IN"):
                for side in ("lexpr", "rexpr"):
                    column = wanted(_column_ref(expr.get(side) or {}))
                    if column and column not in equality:
                        equality.append(column)
        if "ColumnRef" in item:
            column = wanted(_column_ref(item))
            if not column:
                continue
            if column not in others:
                others.append(column)
            continue
        stack.extend(reversed(list(item.values())))
    if clause == "order":
        return tuple(others)
    return tuple(equality + [c for c in others if c not in equality])


def pattern_columns(expression: str, *, table: Iterable[str] | None = None) -> list[str]:
    """Columns a condition matches with LIKE / ILIKE / a regular expression (``~~``, ``~*``...)."""
    return list(_pattern_columns(_without_constants(expression) if expression else expression,
                                 tuple(sorted(table or ()))))


@functools.lru_cache(maxsize=8192)
def _pattern_columns(expression: str, table: tuple) -> tuple:
    if not expression:
        return ()
    tree = _where_tree(_OPAQUE.sub("NULL", expression))
    names = set(table or [])
    found: list[str] = []
    stack: list = [tree] if tree else []
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            expr = item.get("A_Expr")
            if expr is not None:
                operators = [n.get("String", {}).get("sval") for n in expr.get("name", [])]
                if operators and operators[-1] in _PATTERN_OPERATORS or expr.get("kind") in ("AEXPR_LIKE", "AEXPR_ILIKE"):
                    ref = _column_ref(expr.get("lexpr") or {})
                    if ref and (not names or ref[0] is None or ref[0] in names) and ref[1] not in found:
                        found.append(ref[1])
            stack.extend(item.values())
    return tuple(found)


def index_advice(row: Mapping, condition: str, extra_columns: Iterable[str] = ()) -> tuple[str, sql.Fix | None]:
    """(where to index in words, the index to create as a :class:`perfkit.sql.Fix`, or None).

    B-tree columns come from equality then other comparisons (then ``extra_columns``, e.g. a
    sort key); columns only matched with LIKE/ILIKE/regex get a trigram GIN index instead.
    The fix is on the node's schema when the plan names it (EXPLAIN VERBOSE), else schema None.
    """
    condition = _without_constants(condition) if isinstance(condition, str) and condition else condition
    return _index_advice(row.get("relation"), _schema(row), tuple(_names(row)), condition, tuple(extra_columns))


@functools.lru_cache(maxsize=4096)
def _index_advice(relation, schema, table: tuple, condition: str, extra_columns: tuple) -> tuple[str, sql.Fix | None]:
    columns = expression_columns(condition, table=table)
    patterns = set(pattern_columns(condition, table=table))
    btree = [c for c in columns if c not in patterns]
    btree += [c for c in extra_columns if c not in btree and c not in patterns]
    if btree:
        return f"{relation} ({', '.join(btree)})", index_fix({"relation": relation, "detail": {"Schema": schema}}, btree)
    if patterns and relation:
        column = sorted(patterns)[0]
        return (f"{relation} ({column}) with a trigram GIN index (LIKE/regex patterns cannot use a B-tree)",
                sql.trigram_index(schema, relation, column))
    return f"{relation} (the filter columns)", None


@functools.lru_cache(maxsize=4096)
def _fix(kind: str, *args) -> sql.Fix:
    """``sql.<kind>(*args)``, one object per distinct fix (a fix is frozen; its SQL renders once)."""
    return getattr(sql, kind)(*args)


@functools.lru_cache(maxsize=64)
def _work_mem_fix(setting: str) -> sql.Fix:
    return sql.set_local(work_mem=setting)


def index_fix(row: Mapping, columns: Iterable[str]) -> sql.Fix | None:
    """The ``create_index`` fix on a node's relation for ``columns`` (None without either)."""
    columns = list(dict.fromkeys(c for c in columns if c))
    relation = row.get("relation")
    if not columns or not relation:
        return None
    return sql.create_index(_schema(row), relation, columns)


def index_sql(row: Mapping, columns: Iterable[str]) -> str:
    """``CREATE INDEX CONCURRENTLY ... ON table (columns);`` for a node's relation, or ``""``."""
    fix = index_fix(row, columns)
    return fix.sql if fix else ""


def _schema(row: Mapping) -> str | None:
    schema = (row.get("detail") or {}).get("Schema") if isinstance(row.get("detail"), dict) else None
    return schema or None


def _names(row: Mapping) -> list[str]:
    """The relation name and alias of a node (to keep only its own columns)."""
    return [n for n in (row.get("relation"), row.get("alias")) if isinstance(n, str) and n]


def _subject(row: Mapping) -> str:
    return str(row["label"])


def _rows(value: float) -> str:
    """A count of rows, or "an unknown number of" when the plan does not have it (no ANALYZE)."""
    return "an unknown number of" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.0f}"


def _ms(value: float) -> str:
    """A time, or what is missing when the plan has none (no ANALYZE, or TIMING OFF)."""
    if value is None or math.isnan(value):
        return "a time the plan does not record (no ANALYZE, or TIMING OFF)"
    return f"{value:,.1f} ms"


def _share_words(row: Mapping) -> str:
    if math.isnan(row["pct_total"]):
        return ""
    return f", {row['pct_total']:.0f} % of the plan's time"


def _detail(row: Mapping, key: str, default=None):
    detail = row.get("detail")
    return detail.get(key, default) if isinstance(detail, dict) else default


class _Index:
    """Plain-Python views of a plan's nodes for the rules (row dicts, parents, children)."""

    def __init__(self, rows: list[dict], children: list[list[int]] | None = None):
        self.rows: list[dict] = rows
        self.ran: list[dict] | None = None  # the rows of the nodes that ran, when first asked for
        self.ran_by_type: dict[str, list[dict]] = {}  # ... by node type
        if children is not None:  # found by the parser (build_plan): parent_id is an int or None
            self.parent: list[int | None] = [row["parent_id"] for row in rows]
            self.children: list[list[int]] = children
            return
        self.parent = [None] * len(rows)
        self.children = [[] for _ in rows]
        for position, row in enumerate(rows):
            parent = row["parent_id"]
            if parent is not None and parent == parent:  # NaN != NaN
                self.parent[position] = int(parent)
                self.children[int(parent)].append(position)


def _index(plan) -> _Index:
    rows = plan.rows
    cached = plan.__dict__.get("_rule_index")
    if cached is None or cached.rows is not rows:
        known = plan.__dict__.get("_row_children")
        children = known[1] if known is not None and known[0] is rows and len(known[1]) == len(rows) else None
        cached = plan.__dict__["_rule_index"] = _Index(rows, children)
    return cached


def _ran_rows(plan, types: Iterable[str] | None = None) -> list[dict]:
    """The rows of the nodes that ran (EXPLAIN ANALYZE, not "never executed"), of ``types`` if given."""
    index = _index(plan)
    if index.ran is None:
        index.ran = [row for row in index.rows if row["loops"] > 0]  # NaN > 0 is False
        for row in index.ran:
            index.ran_by_type.setdefault(row["node_type"], []).append(row)
    if types is None:
        return index.ran
    found = [row for kind in dict.fromkeys(types) for row in index.ran_by_type.get(kind, ())]
    return sorted(found, key=lambda row: row["node_id"]) if len(set(types)) > 1 else found


def _ancestors(plan, node_id: int) -> list[dict]:
    index = _index(plan)
    out = []
    current = index.parent[node_id]
    while current is not None:
        out.append(index.rows[current])
        current = index.parent[current]
    return out


def _sort_columns_above(plan, row: Mapping) -> list[str]:
    """The sort key columns of a Sort directly above a scan (through Gather/Limit/Materialize)."""
    for ancestor in _ancestors(plan, int(row["node_id"])):
        kind = ancestor["node_type"]
        if kind in ("Sort", "Incremental Sort"):
            keys = _detail(ancestor, "Sort Key") or []
            text = ", ".join(keys) if isinstance(keys, list) else str(keys)
            return expression_columns(text, clause="order", table=_names(row))
        if kind not in ("Gather", "Gather Merge", "Limit", "Materialize", "Result"):
            return []
    return []


def _work_mem_for(kb: float) -> str:
    """A work_mem setting that would hold ``kb`` kilobytes of spilled data in memory (x2, power of 2)."""
    mb = max(4, 2 ** math.ceil(math.log2(max(kb * 2 / 1024, 1))))
    return f"{mb}MB" if mb < 1024 else f"{mb // 1024}GB"


# --- the rules ------------------------------------------------------------------------------------
def seq_scan_large_table(plan, *, min_rows: int = 100_000, max_kept_share: float = 0.1) -> list[dict]:
    """A sequential scan reads a large table to keep few of its rows.

    Anti-pattern::

        Seq Scan on orders (actual rows=2,000 loops=1)
          Filter: (tenant_id = 7)
          Rows Removed by Filter: 998,000

    Fix: an index on the filter columns (equality columns first, then the sort key above), so
    PostgreSQL reads only the matching rows:
    ``CREATE INDEX CONCURRENTLY orders_tenant_id_created_at_idx ON orders (tenant_id, created_at);``

    Parameters
    ----------
    min_rows:
        Rows read (kept + removed by the filter, all loops) from which a table counts as large.
    max_kept_share:
        Report when the filter keeps at most this share of the rows read.
    """
    out = []
    for row in _ran_rows(plan, ("Seq Scan",)):
        removed = 0.0 if math.isnan(row["rows_removed_by_filter"]) else row["rows_removed_by_filter"]
        read = row["actual_rows"] + removed
        filter_text = _detail(row, "Filter")
        if read < min_rows or not filter_text or read == 0:
            continue
        kept = row["actual_rows"] / read
        if kept > max_kept_share:
            continue
        target, fix = index_advice(row, filter_text, _sort_columns_above(plan, row))
        severity = "critical" if not math.isnan(row["pct_total"]) and row["pct_total"] >= 50 else "warning"
        benefit = None if math.isnan(row["self_ms"]) else row["self_ms"] * (1 - kept)
        out.append(finding(
            "seq_scan_large_table", severity, _subject(row),
            f"read {_rows(read)} rows to keep {_rows(row['actual_rows'])} ({100 * kept:.1f} %) "
            f"in {_ms(row['self_ms'])}{_share_words(row)}; filter {filter_text}",
            f"Add an index on {target} so the filter reads only the matching rows.",
            fix=fix, benefit_ms=benefit, node_id=int(row["node_id"]),
        ))
    return out


_CONDITION_KEYS = ("Index Cond", "Recheck Cond", "Filter", "Join Filter", "Hash Cond", "Merge Cond")


def row_misestimate(plan, *, grades: tuple[float, float, float] = (10, 100, 1000), min_rows: float = 100) -> list[dict]:
    """The planner's row estimate is off by 10x, 100x or 1000x where the error starts.

    Anti-pattern::

        Seq Scan on orders (cost=... rows=1 ...) (actual ... rows=1000 loops=1)
          Filter: ((region_id = 7) AND (zone_id = 7))     -- correlated columns

    Fix: fresh statistics (``ANALYZE orders;``), and for correlated columns extended statistics:
    ``CREATE STATISTICS orders_region_id_zone_id_stats (dependencies, ndistinct, mcv) ON region_id,
    zone_id FROM orders; ANALYZE orders;``

    Nodes that only inherit an error from a child, and over-estimates under a Limit (which stops
    early on purpose), are not reported.

    Parameters
    ----------
    grades:
        Factors for info, warning and critical.
    min_rows:
        Ignore nodes where both the estimate and the actual rows per loop are below this.
    """
    out = []
    index = _index(plan)
    ratios: list[float] = []
    directions: list[int] = []
    candidates: list[dict] = []
    nan, lowest = math.nan, grades[0]
    for row in index.rows:
        loops = row["loops"]
        actual = row["actual_rows"] / loops if loops > 0 else nan  # per loop; NaN unless it ran
        estimate = row["plan_rows"]
        if actual != actual or estimate != estimate:  # NaN
            ratio = high = nan
        else:  # (max and min as comparisons: the same values, without the calls)
            high, low = (actual, estimate) if actual >= estimate else (estimate, actual)
            ratio = high / (low if low >= 1.0 else 1.0)
        ratios.append(ratio)
        directions.append(1 if actual > estimate else -1)
        if ratio >= lowest and high >= min_rows:
            candidates.append(row)
    for row in candidates:
        node_id = int(row["node_id"])
        ratio, direction = ratios[node_id], directions[node_id]
        if direction < 0 and any(a["node_type"] == "Limit" for a in _ancestors(plan, node_id)):
            continue
        inherited = any(
            index.rows[child]["parent_relationship"] != "InitPlan"
            and directions[child] == direction
            and not math.isnan(ratios[child])
            and ratios[child] * 2 >= ratio
            for child in index.children[node_id]
        )
        if inherited:
            continue
        per_loop = row["actual_rows"] / row["loops"]
        severity = "critical" if ratio >= grades[2] else "warning" if ratio >= grades[1] else "info"
        grade = next(g for g in reversed(grades) if ratio >= g)
        words = "under" if direction > 0 else "over"
        # every condition on the node: correlated columns sit in the index condition as often as the filter
        detail = row.get("detail")
        detail = detail if isinstance(detail, dict) else {}  # (what _detail reads, without a call per key)
        conditions = [c for k in _CONDITION_KEYS if (c := detail.get(k))]
        condition = " AND ".join(dict.fromkeys(conditions))
        columns = list(dict.fromkeys(c for text in dict.fromkeys(conditions)
                                     for c in expression_columns(text, table=_names(row))))
        relation = row["relation"]
        if relation and len(columns) >= 2:
            fix = _fix("create_statistics", _schema(row), relation, tuple(columns))  # then ANALYZE
            advice = (
                f"The columns {', '.join(columns)} are probably correlated: create extended statistics "
                "on them and ANALYZE, so the planner stops multiplying their selectivities."
            )
        elif relation:
            fix = _fix("analyze", _schema(row), relation)
            advice = f"Refresh the statistics of {relation} (ANALYZE; raise the column's statistics target if it persists)."
        else:
            fix = None
            advice = "Check the estimates of this node's inputs and join columns (ANALYZE, extended statistics)."
        out.append(finding(
            "row_misestimate", severity, _subject(row),
            f"expected {_rows(row['plan_rows'])} rows per loop, got {_rows(per_loop)} "
            f"({ratio:,.0f}x {words}-estimate, grade {grade:g}x)"
            + (f"; condition {condition}" if condition else ""),
            advice, fix=fix, node_id=int(row["node_id"]),
        ))
    return out


def sort_spill(plan, *, min_kb: float = 0) -> list[dict]:
    """A sort does not fit in work_mem and spills to temporary files.

    Anti-pattern::

        Sort (actual ...)
          Sort Key: note
          Sort Method: external merge  Disk: 6040kB

    Fix: more memory for this query (``SET work_mem = '16MB';``) or an index that returns rows in
    the sort order, so no sort is needed.

    Parameters
    ----------
    min_kb:
        Ignore spills smaller than this many kB.
    """
    out = []
    for row in _ran_rows(plan, ("Sort", "Incremental Sort")):
        method = str(_detail(row, "Sort Method", "") or "")
        space_type = _detail(row, "Sort Space Type")
        disk_kb = float(_detail(row, "Sort Space Used", 0) or 0) if space_type == "Disk" else 0.0
        for group_key in ("Full-sort Groups", "Pre-sorted Groups"):
            group = _detail(row, group_key)
            if isinstance(group, dict) and isinstance(group.get("Sort Space Disk"), dict):
                disk_kb = max(disk_kb, float(group["Sort Space Disk"].get("Peak Sort Space Used", 0) or 0))
                method = method or ", ".join(group.get("Sort Methods Used", []))
            elif isinstance(group, str) and "Disk" in group:
                disk_kb = max(disk_kb, float((re.search(r"Disk:\s*(\d+)kB", group) or re.search(r"(\d+)kB", group)).group(1)))
        for worker in _detail(row, "Workers", []) or []:
            if isinstance(worker, dict) and worker.get("Sort Space Type") == "Disk":
                disk_kb = max(disk_kb, float(worker.get("Sort Space Used", 0) or 0))
        spilled = space_type == "Disk" or "external" in method or disk_kb > 0
        if not spilled or disk_kb < min_kb:
            continue
        setting = _work_mem_for(disk_kb) if disk_kb else "64MB"
        current = plan.settings.get("work_mem")
        keys = _detail(row, "Sort Key") or []
        keys_text = ", ".join(keys) if isinstance(keys, list) else str(keys)
        out.append(finding(
            "sort_spill", "warning", _subject(row),
            f"{method or 'external'} sort wrote {_rows(disk_kb)} kB to disk"
            + (f" (work_mem = {current})" if current else "")
            + (f"; sort key {keys_text}" if keys_text else "")
            + f"; {_ms(row['self_ms'])}{_share_words(row)}",
            f"Give this query more memory (work_mem {setting}, set per transaction or per role rather "
            "than server-wide), or add an index that returns the rows already in the sort order.",
            fix=_work_mem_fix(setting), node_id=int(row["node_id"]),
        ))
    return out


def hash_spill(plan) -> list[dict]:
    """A hash join's hash table or a HashAggregate does not fit in memory and spills to disk.

    Anti-pattern::

        Hash (actual ...)
          Buckets: 65536  Batches: 16  Memory Usage: 65kB        -- Batches > 1
        HashAggregate (actual ...)
          Batches: 369  Memory Usage: 137kB  Disk Usage: 12016kB

    Fix: more memory for the hash (``SET work_mem = '64MB';`` or raise ``hash_mem_multiplier``),
    or a smaller build side (filter earlier, select fewer columns).
    """
    out = []
    for row in _ran_rows(plan, ("Hash", "Aggregate")):
        detail = row["detail"] if isinstance(row["detail"], dict) else {}
        if row["node_type"] == "Hash":
            batches = _as_number(detail.get("Hash Batches"))
            original = _as_number(detail.get("Original Hash Batches"))
            if not batches or batches <= 1:
                continue
            memory = _as_number(detail.get("Peak Memory Usage")) or 0.0
            needed = memory * batches
            evidence = f"the hash table was split into {batches:,.0f} batches"
            if original and original != batches:
                evidence += f" (planned {original:,.0f})"
            evidence += f", {memory:,.0f} kB in memory per batch"
        elif row["node_type"] == "Aggregate" and detail.get("Strategy") in ("Hashed", "Mixed"):
            batches = _as_number(detail.get("HashAgg Batches")) or 0.0
            disk = _as_number(detail.get("Disk Usage")) or 0.0
            if batches <= 1 and disk <= 0:
                continue
            needed = disk or (_as_number(detail.get("Peak Memory Usage")) or 0.0) * max(batches, 1)
            evidence = f"the hash aggregate spilled in {batches:,.0f} batches, {disk:,.0f} kB on disk"
        else:
            continue
        setting = _work_mem_for(needed) if needed else "64MB"
        current = plan.settings.get("work_mem")
        out.append(finding(
            "hash_spill", "warning", _subject(row),
            evidence + (f" (work_mem = {current})" if current else "") + f"; {_ms(row['self_ms'])}{_share_words(row)}",
            f"Give the hash more memory (work_mem {setting} for this query, or a higher "
            "hash_mem_multiplier), or make the hashed side smaller.",
            fix=_work_mem_fix(setting), node_id=int(row["node_id"]),
        ))
    return out


def _as_number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def nested_loop_many_loops(plan, *, min_loops: int = 1000, min_share: float = 10.0) -> list[dict]:
    """A nested loop runs its inner side thousands of times.

    Anti-pattern::

        Nested Loop (actual rows=4000 loops=1)
          ->  Seq Scan on customers c (rows=40 estimated, 4000 actual)
          ->  Index Scan using orders_customer_id_idx on orders o (actual ... loops=4000)

    Fix: usually the outer estimate is wrong (fix it with ANALYZE or extended statistics so the
    planner picks a hash join); at least make each inner loop cheap with an index on the join
    column.

    Parameters
    ----------
    min_loops:
        Inner-side loops from which to report.
    min_share:
        Percent of the plan's time the inner side needs for a warning (below: info).
    """
    out = []
    index = _index(plan)
    root = index.rows[0]["total_ms"] if index.rows else math.nan  # plan.root_ms, read once
    for row in _ran_rows(plan, ("Nested Loop",)):
        kids = [index.rows[c] for c in index.children[int(row["node_id"])]]
        inner = [k for k in kids if k["parent_relationship"] == "Inner"]
        outer = [k for k in kids if k["parent_relationship"] == "Outer"]
        if not inner or math.isnan(inner[0]["loops"]) or inner[0]["loops"] < min_loops:
            continue
        inner_row = inner[0]
        share = 100.0 * inner_row["total_ms"] / root if root and not math.isnan(root) and not math.isnan(inner_row["total_ms"]) else math.nan
        severity = "warning" if math.isnan(share) or share >= min_share else "info"
        evidence = f"the inner side ({inner_row['label']}) ran {_rows(inner_row['loops'])} times, {_ms(inner_row['total_ms'])} in all"
        if not math.isnan(share):
            evidence += f" ({share:.0f} % of the plan)"
        advice = "Check the outer side's row estimate (ANALYZE, extended statistics) so the planner can choose a hash join"
        if outer:
            outer_row = outer[0]
            estimate = outer_row["plan_rows"]
            if not math.isnan(outer_row["loops"]) and outer_row["loops"] > 0:
                evidence += f"; the outer side was estimated at {_rows(estimate)} rows, got {_rows(outer_row['actual_rows'] / outer_row['loops'])}"
        fix = None
        if inner_row["node_type"] == "Seq Scan" and _detail(inner_row, "Filter"):
            fix = index_advice(inner_row, _detail(inner_row, "Filter"))[1]
            advice += ", and index the inner side's join columns"
        else:
            advice += ", and keep each inner loop an index lookup"
        out.append(finding(
            "nested_loop_many_loops", severity, _subject(row), evidence, advice + ".",
            fix=fix, node_id=int(row["node_id"]),
        ))
    return out


def rows_removed_by_filter(plan, *, min_rows: int = 1000, warn_share: float = 0.5, high_share: float = 0.9) -> list[dict]:
    """A node reads many rows only to throw most of them away in its Filter.

    Anti-pattern::

        Index Scan using orders_customer_id_idx on orders
          Index Cond: (customer_id = 42)
          Filter: (status = 'paid')
          Rows Removed by Filter: 9,500          -- 95 % of the rows read

    Fix: an index that covers the filter too (index condition columns first, then the filter
    columns), e.g. ``CREATE INDEX CONCURRENTLY ... ON orders (customer_id, status);``

    Parameters
    ----------
    min_rows:
        Rows read (kept + removed, all loops) from which to report.
    warn_share, high_share:
        Removed share of the rows read for an info (> 50 %) and a warning (> 90 %) finding.
    """
    out = []
    for row in _ran_rows(plan):
        if not row["rows_removed_by_filter"] > 0:  # NaN: not reported
            continue
        removed = row["rows_removed_by_filter"]
        read = row["actual_rows"] + removed
        share = removed / read if read else 0.0
        if read < min_rows or share <= warn_share:
            continue
        severity = "warning" if share > high_share else "info"
        filter_text = _detail(row, "Filter") or ""
        leading = _detail(row, "Index Cond") or _detail(row, "Recheck Cond") or ""
        parts = [part for part in (leading, filter_text) if part]
        # one condition alone as it is written: the same text the other rules parse (parsed once)
        both = parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)
        target, fix = index_advice(row, both) if row["relation"] else ("", None)
        advice = (
            f"Add an index on {target} so the filter is applied inside the index."
            if fix else "Filter earlier (an index or a more selective condition) so fewer rows are read."
        )
        out.append(finding(
            "rows_removed_by_filter", severity, _subject(row),
            f"{_rows(removed)} of {_rows(read)} rows read ({100 * share:.1f} %) were removed by the filter {filter_text}",
            advice, fix=fix, node_id=int(row["node_id"]),
        ))
    return out


def heap_fetches(plan, *, min_fetches: int = 1000, min_share: float = 0.1) -> list[dict]:
    """An index-only scan still visits the table because the visibility map is not set.

    Anti-pattern::

        Index Only Scan using events_account_id_idx on events (actual rows=50000 ...)
          Heap Fetches: 50000

    Fix: ``VACUUM (ANALYZE) events;`` (it sets the visibility map), and let autovacuum run more
    often on this table (a lower ``autovacuum_vacuum_scale_factor``).

    Parameters
    ----------
    min_fetches:
        Heap fetches (a total over all loops) from which to report.
    min_share:
        Report when heap fetches are at least this share of the rows returned.
    """
    out = []
    for row in _ran_rows(plan, ("Index Only Scan",)):
        fetches = row["heap_fetches"]
        if math.isnan(fetches) or fetches < min_fetches:
            continue
        share = fetches / row["actual_rows"] if row["actual_rows"] else 1.0
        if share < min_share:
            continue
        relation = row["relation"] or "the table"
        out.append(finding(
            "heap_fetches", "warning", _subject(row),
            f"{_rows(fetches)} heap fetches for {_rows(row['actual_rows'])} rows returned ({100 * share:.0f} %): "
            "the index-only scan had to visit the table",
            f"VACUUM {relation} to set its visibility map, and make autovacuum visit it more often.",
            fix=_fix("vacuum", _schema(row), row["relation"]) if row["relation"] else None,
            node_id=int(row["node_id"]),
        ))
    return out


def workers_not_launched(plan) -> list[dict]:
    """A parallel plan got fewer workers than it planned for.

    Anti-pattern::

        Gather (actual ...)
          Workers Planned: 2
          Workers Launched: 0       -- the leader did all the work alone

    Fix: raise ``max_parallel_workers`` / ``max_worker_processes`` (a server restart for the
    latter) or run fewer parallel queries at once; the plan's cost assumed the workers.
    """
    out = []
    for row in plan.rows:
        if row["node_type"] not in ("Gather", "Gather Merge"):
            continue
        planned, launched = row["workers_planned"], row["workers_launched"]
        if math.isnan(launched) or math.isnan(planned) or launched >= planned:
            continue
        out.append(finding(
            "workers_not_launched", "warning" if launched == 0 else "info", _subject(row),
            f"{planned:.0f} parallel workers planned, {launched:.0f} launched; "
            f"{_ms(row['total_ms'])} for this part of the plan",
            "Raise max_parallel_workers (and max_worker_processes) or run fewer parallel queries "
            "at the same time: the plan was chosen assuming the workers.",
            node_id=int(row["node_id"]),
        ))
    return out


def jit_overhead(plan, *, min_share: float = 0.1, min_ms: float = 1.0) -> list[dict]:
    """JIT compilation takes a large share of the execution time.

    Anti-pattern::

        JIT:
          Functions: 6
          Timing: Generation 1.2 ms, Inlining 20.3 ms, Optimization 60.1 ms, Emission 35.0 ms, Total 116.6 ms
        Execution Time: 130.2 ms

    Fix: for short OLTP queries turn JIT off (``SET jit = off;``) or raise ``jit_above_cost``
    (and ``jit_inline_above_cost`` / ``jit_optimize_above_cost``) so only long queries compile.

    Parameters
    ----------
    min_share:
        Share of the execution time spent in JIT from which to report (0.5 and more: warning).
    min_ms:
        Ignore JIT below this many milliseconds.
    """
    total = plan.jit.get("total_ms", math.nan) if plan.jit else math.nan
    execution = plan.execution_ms
    if math.isnan(total) or math.isnan(execution) or execution <= 0 or total < min_ms:
        return []
    share = total / execution
    if share < min_share:
        return []
    parts = ", ".join(
        f"{name} {plan.jit[key]:,.1f} ms"
        for name, key in (("generation", "generation_ms"), ("inlining", "inlining_ms"), ("optimization", "optimization_ms"), ("emission", "emission_ms"))
        if not math.isnan(plan.jit.get(key, math.nan))
    )
    return [finding(
        "jit_overhead", "warning" if share >= 0.5 else "info", "JIT compilation",
        f"JIT took {total:,.1f} ms of {execution:,.1f} ms execution ({100 * share:.0f} %) "
        f"compiling {plan.jit.get('functions', 0):.0f} functions ({parts})",
        "Turn JIT off for short queries, or raise jit_above_cost so only long-running queries compile.",
        fix=sql.set_local(jit="off"), benefit_ms=total,
    )]


def slow_planning(plan, *, min_share: float = 0.5, min_ms: float = 10.0) -> list[dict]:
    """Planning takes longer than executing.

    Anti-pattern::

        Planning Time: 180.4 ms     -- a 12-way join, or hundreds of partitions
        Execution Time: 3.1 ms

    Fix: plan once and reuse it (prepared statements / the driver's statement cache), lower
    ``join_collapse_limit`` / ``from_collapse_limit`` for huge joins, prune partitions early.

    Parameters
    ----------
    min_share:
        Share of planning in planning + execution from which to report.
    min_ms:
        Ignore planning faster than this.
    """
    planning, execution = plan.planning_ms, plan.execution_ms
    if math.isnan(planning) or planning < min_ms:
        return []
    total = planning + (0.0 if math.isnan(execution) else execution)
    share = planning / total if total else 1.0
    if share < min_share:
        return []
    return [finding(
        "slow_planning", "warning", "planning",
        f"planning took {planning:,.1f} ms, {100 * share:.0f} % of planning + execution"
        + (f" ({execution:,.1f} ms execution)" if not math.isnan(execution) else ""),
        "Reuse plans (prepared statements or the driver's statement cache); for large joins lower "
        "join_collapse_limit / from_collapse_limit; with partitions, make sure they are pruned.",
        benefit_ms=planning if share >= 0.5 else None,
    )]


def trigger_time(plan, *, min_share: float = 0.1, min_ms: float = 1.0) -> list[dict]:
    """Triggers (including foreign-key checks) take a large share of a write's time.

    Anti-pattern::

        Update on orders (actual time=40.1..40.1 rows=0 loops=1)
        Trigger orders_audit: time=310.5 calls=2000      -- outside every node
        Execution Time: 352.0 ms

    Fix: make the trigger cheaper or statement-level (transition tables), and for
    ``RI_ConstraintTrigger`` (foreign keys) index the referencing columns.

    Parameters
    ----------
    min_share:
        Share of the execution time from which a trigger is reported.
    min_ms:
        Ignore triggers faster than this.
    """
    out = []
    execution = plan.execution_ms
    for trigger in plan.trigger_rows:
        time_ms = trigger["time_ms"]
        if math.isnan(time_ms) or time_ms < min_ms:
            continue
        share = time_ms / execution if execution and not math.isnan(execution) else math.nan
        if not math.isnan(share) and share < min_share:
            continue
        if trigger["constraint"]:
            subject = f"Trigger for constraint {trigger['constraint']}"
        else:
            subject = f"Trigger {trigger['trigger'] or '?'}"
        subject += f" on {trigger['relation']}" if trigger["relation"] else ""
        foreign_key = bool(trigger["constraint"]) or str(trigger["trigger"]).startswith("RI_ConstraintTrigger")
        advice = (
            "Foreign-key checks run once per row: writes to the referencing table look up the "
            "referenced key (make sure it is the primary key or a unique index), and deletes or key "
            "updates on the referenced table scan the referencing table (index its foreign-key "
            "columns); for bulk loads, load in larger batches."
            if foreign_key else
            "Make the trigger cheaper (or statement-level with transition tables): it runs once per row."
        )
        out.append(finding(
            "trigger_time", "warning" if math.isnan(share) or share >= 0.3 else "info", subject,
            f"{time_ms:,.1f} ms in {trigger['calls']:,.0f} calls"
            + (f", {100 * share:.0f} % of the {execution:,.1f} ms execution" if not math.isnan(share) else "")
            + " (trigger time is outside every plan node)",
            advice, benefit_ms=None,
        ))
    return out


def io_bound_node(plan, *, min_share: float = 0.5, min_ms: float = 10.0) -> list[dict]:
    """Most of a node's own time is waiting for reads (``track_io_timing = on``).

    Anti-pattern::

        Seq Scan on big (actual time=0.03..900.1 rows=400 loops=1)
          Filter: (k = 7)
          Buffers: shared read=50000
          I/O Timings: shared read=700.0

    Fix: read less (the index that avoids the read, for a filtered scan), or keep the pages in
    memory (a larger ``shared_buffers``, ``pg_prewarm``) or read ahead (``effective_io_concurrency``).

    Parameters
    ----------
    min_share:
        Report when the node's own I/O read time is at least this share of its own time.
    min_ms:
        ... and at least this many milliseconds.
    """
    out = []
    for row in _ran_rows(plan):
        io_ms, own = row.get("self_io_read_ms", math.nan), row["self_ms"]
        if io_ms is None or math.isnan(io_ms):
            continue
        if math.isnan(own) or own <= 0 or io_ms < min_ms:
            continue
        share = min(io_ms / own, 1.0)
        if share < min_share:
            continue
        filter_text = _detail(row, "Filter")
        fix = None
        if row["node_type"] in ("Seq Scan", "Parallel Seq Scan") and filter_text and row["relation"]:
            target, fix = index_advice(row, filter_text, _sort_columns_above(plan, row))
            advice = f"Add an index on {target} so the scan reads only the pages it needs."
        else:
            relation = row["relation"] or "the relation"
            advice = (f"Keep {relation} in memory (a larger shared_buffers, or pg_prewarm after a restart) "
                      "or let the server read ahead (effective_io_concurrency, for bitmap heap scans).")
        severity = "warning" if not math.isnan(row["pct_total"]) and row["pct_total"] >= 20 else "info"
        out.append(finding(
            "io_bound_node", severity, _subject(row),
            f"{_ms(io_ms)} of its {_ms(own)} ({100 * share:.0f} %) waiting on reads"
            f" ({_rows(row['shared_read'])} blocks read){_share_words(row)}",
            advice, fix=fix, benefit_ms=io_ms, node_id=int(row["node_id"]),
        ))
    return out


# The registry: adding a rule means adding a function above and one line here (and a fixture row).
RULES: dict[str, Callable[..., list[dict]]] = {
    "seq_scan_large_table": seq_scan_large_table,
    "row_misestimate": row_misestimate,
    "sort_spill": sort_spill,
    "hash_spill": hash_spill,
    "nested_loop_many_loops": nested_loop_many_loops,
    "rows_removed_by_filter": rows_removed_by_filter,
    "heap_fetches": heap_fetches,
    "workers_not_launched": workers_not_launched,
    "jit_overhead": jit_overhead,
    "slow_planning": slow_planning,
    "trigger_time": trigger_time,
    "io_bound_node": io_bound_node,
}


def problem_rows(
    plan,
    rules: Iterable[str] | None = None,
    thresholds: Mapping[str, Mapping] | None = None,
) -> list[dict]:
    """Run the rules on a plan: Finding dicts most severe first, each with ``node_id`` (None for
    plan-wide findings), in the order of :func:`find_problems`'s frame; no pandas.

    Parameters are those of :func:`find_problems`.
    """
    thresholds = dict(thresholds or {})
    names = list(RULES) if rules is None else list(rules)
    unknown = [n for n in list(names) + list(thresholds) if n not in RULES]
    if unknown:
        from perfkit.errors import BadInputError

        raise BadInputError(f"unknown plan rule(s) {', '.join(sorted(set(unknown)))}; known: {', '.join(RULES)}")
    rows: list[dict] = []
    for name in names:
        rows.extend(RULES[name](plan, **dict(thresholds.get(name, {}))))
    for row in rows:
        row.setdefault("node_id", None)
    return rank_findings(rows)


def problems_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """The findings DataFrame of :func:`problem_rows` (``node_id`` as Int64)."""
    import pandas as pd

    frame = findings_frame(rows)
    if "node_id" not in frame.columns:
        frame["node_id"] = pd.Series(dtype="Int64")
    frame["node_id"] = pd.array(frame["node_id"], dtype="Int64")
    return frame


def find_problems(
    plan,
    rules: Iterable[str] | None = None,
    thresholds: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Run the rules on a plan and return a findings DataFrame (most severe first).

    Parameters
    ----------
    plan:
        A :class:`~perfkit.plans.model.Plan`.
    rules:
        Names from :data:`RULES`; all when None.
    thresholds:
        ``{rule: {argument: value}}`` overriding a rule's defaults.

    Returns
    -------
    pandas.DataFrame
        The Finding columns plus ``node_id`` (empty for plan-wide findings).
    """
    return problems_frame(problem_rows(plan, rules, thresholds))

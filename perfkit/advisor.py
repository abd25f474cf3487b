"""The workload-wide index advisor: candidates from the costliest statements, costed with hypopg on every
statement they touch, a greedy smallest set ranked by net benefit (time saved minus write cost).

``advise(engine, statements)`` returns an :class:`Advice`: ``proposals`` (index_advice findings),
``rejected`` (candidates that did not pay, and why) and ``notes`` (statements that could not be
costed, each named: one failure never drops the rest). Nothing is built: hypopg's hypothetical
indexes live in one read-only session and are reset before it goes back to the pool.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import pglast
import psycopg
from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType, SortByDir
from psycopg import sql as pgsql

from perfkit import db, sql
from perfkit.errors import BadInputError, PerfkitError
from perfkit.findings import finding, findings_frame
from perfkit.health.common import TENANT_COLUMNS, number, share_text, size_text
from perfkit.sql import Fix, IndexColumn, qualified

# what one row change costs each index of its table (the B-tree insert, its WAL, and the
# vacuum of the old entry): ~2 µs, a round figure from bulk inserts with and without an index
INDEX_WRITE_MS = 0.002
# names a tenants table goes by; a foreign key to one of them is a tenant key
TENANT_TABLES = ("tenants", "tenant", "companies", "company", "organizations", "organization", "orgs", "org",
                 "accounts", "account", "workspaces", "workspace", "retailers", "retailer")
_TENANT_NAME = re.compile(r"^(tenant|company|organization|organisation|org|workspace|retailer)_?id$", re.IGNORECASE)
# pg_stat_statements turns `interval '7 days'` into `interval $2`, which does not parse: `$2::interval` does
_TYPED_PARAM = re.compile(
    r"\b(interval|date|timestamptz|timestamp\s+with(?:out)?\s+time\s+zone|timestamp|time|numeric|"
    r"bigint|integer|int|smallint|text|boolean|uuid|jsonb|json|inet)\s+\$(\d+)", re.IGNORECASE)
# the default tenant columns as Prisma / TypeORM name them
CAMEL_TENANT_COLUMNS = ("tenantId", "companyId", "retailerId")
MAX_KEYS = 4
MAX_INCLUDE = 3
# an INCLUDE candidate is kept only when its plan cost is below this share of the same keys' without it
INCLUDE_GAIN = 0.8

FK_SQL = """
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, r.relname AS referenced
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = k.confrelid
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
WHERE k.contype = 'f' AND array_length(k.conkey, 1) = 1
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""

WRITES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.n_tup_ins, s.n_tup_upd, s.n_tup_hot_upd, s.n_tup_del,
       greatest(c.reltuples, 0) AS reltuples,
       extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time())) AS age_s
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
CROSS JOIN (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) d
"""


# -- reading a statement ---------------------------------------------------------------------------
@dataclass
class TableUse:
    """How one statement uses one table of its top-level FROM list."""

    schema: str | None
    table: str
    equality: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    partial: list[str] = field(default_factory=list)  # predicates a partial index can hold
    referenced: set[str] = field(default_factory=set)
    star: bool = False
    limit: bool = False
    sort_complete: bool = True  # every ORDER BY key is a column of this table


def costable_text(text: str) -> tuple[str, str]:
    """``(text, note)``: the statement with pg_stat_statements' unparsable ``interval $2`` (and
    ``date $1``...) forms rewritten as casts (``$2::interval``), and what was rewritten."""
    rewritten, count = _TYPED_PARAM.subn(lambda m: f"${m.group(2)}::{' '.join(m.group(1).split())}", text)
    return rewritten, (f"{count} typed parameter{'s' if count != 1 else ''} (interval $n) read as casts" if count
                       else "")


def _names(ref: ast.ColumnRef) -> list[str] | None:
    names = [f.sval for f in ref.fields if isinstance(f, ast.String)]
    return names if names and len(names) == len(ref.fields) else None


class _Reader:
    def __init__(self):
        self.by_alias: dict[str, TableUse] = {}
        self.uses: list[TableUse] = []

    def table_of(self, ref: ast.ColumnRef) -> tuple[TableUse | None, str | None]:
        names = _names(ref)
        if names is None:
            return None, None
        if len(names) >= 2:
            return self.by_alias.get(names[-2]), names[-1]
        return (self.uses[0] if len(self.uses) == 1 else None), names[-1]

    def refs(self, node) -> None:
        """Every column the statement reads, per table (an index-only scan needs them all)."""
        if isinstance(node, ast.ColumnRef):
            if any(isinstance(f, ast.A_Star) for f in node.fields):
                names = [f.sval for f in node.fields if isinstance(f, ast.String)]
                targets = [self.by_alias[names[-1]]] if names and names[-1] in self.by_alias else self.uses
                for use in targets:
                    use.star = True
                return
            use, column = self.table_of(node)
            if use is not None:
                use.referenced.add(column)
            elif column is not None and len(self.uses) > 1:
                for use in self.uses:  # unqualified with several tables: counts for each (conservative)
                    use.referenced.add(column)
            return
        if isinstance(node, tuple | list):
            for item in node:
                self.refs(item)
        elif isinstance(node, ast.Node):
            for name in node:
                self.refs(getattr(node, name))

    def from_item(self, item) -> None:
        if isinstance(item, ast.RangeVar):
            use = TableUse(item.schemaname, item.relname)
            self.uses.append(use)
            self.by_alias[item.alias.aliasname if item.alias else item.relname] = use
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg)
            self.from_item(item.rarg)

    def predicate(self, node) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args:
                    self.predicate(arg)
            return
        if isinstance(node, ast.NullTest) and isinstance(node.arg, ast.ColumnRef):
            use, column = self.table_of(node.arg)
            if use is not None:
                word = "IS NULL" if node.nulltesttype == NullTestType.IS_NULL else "IS NOT NULL"
                use.partial.append(f"{sql.quote_ident(column)} {word}")
            return
        if not isinstance(node, ast.A_Expr):
            return
        operator = node.name[-1].sval if node.name else ""
        left, right = node.lexpr, node.rexpr
        if isinstance(left, ast.ColumnRef) and isinstance(right, ast.ColumnRef):
            return  # a join condition
        column = left if isinstance(left, ast.ColumnRef) else right if isinstance(right, ast.ColumnRef) else None
        if column is None:
            return
        use, name = self.table_of(column)
        if use is None:
            return
        other = right if column is left else left
        if node.kind == A_Expr_Kind.AEXPR_OP and operator in ("<>", "!=") and isinstance(other, ast.A_Const):
            from pglast.stream import RawStream

            use.partial.append(f"{sql.quote_ident(name)} <> {RawStream()(other)}")
        elif node.kind == A_Expr_Kind.AEXPR_OP and operator == "=" or node.kind in (
                A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_OP_ANY):
            if name not in use.equality:
                use.equality.append(name)
        elif node.kind == A_Expr_Kind.AEXPR_OP and operator in ("<", ">", "<=", ">=") or node.kind in (
                A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM):
            if name not in use.range:
                use.range.append(name)


def read_statement(text: str) -> list[TableUse]:
    """The tables of one SELECT, UPDATE or DELETE's top-level FROM list and how it uses each (``[]``
    when it does not parse or is something else)."""
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return []
    if len(statements) != 1:
        return []
    node = statements[0].stmt
    reader = _Reader()
    if isinstance(node, ast.SelectStmt) and node.op is None or isinstance(node, ast.SelectStmt) and node.larg is None:
        for item in node.fromClause or ():
            reader.from_item(item)
        if not reader.uses:
            return []
        reader.predicate(node.whereClause)
        for item in node.fromClause or ():
            if isinstance(item, ast.JoinExpr):
                reader.predicate(item.quals)
        limit = node.limitCount is not None
        for use in reader.uses:
            use.limit = limit
        for sort in node.sortClause or ():
            owner, column = (reader.table_of(sort.node) if isinstance(sort.node, ast.ColumnRef) else (None, None))
            for use in reader.uses:
                if use is owner:
                    use.sort.append((column, sort.sortby_dir == SortByDir.SORTBY_DESC))
                else:
                    use.sort_complete = False
        reader.refs(node.targetList)
        reader.refs(node.whereClause)
        reader.refs(node.sortClause)
        reader.refs(node.groupClause)
        for item in node.fromClause or ():
            if isinstance(item, ast.JoinExpr):
                reader.refs(item.quals)
    elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
        reader.from_item(node.relation)
        reader.predicate(node.whereClause)
        reader.uses[0].star = True  # the heap row is needed anyway
    else:
        return []
    return reader.uses


# -- tenant key ----------------------------------------------------------------------------------
def infer_tenant_columns(conn, workload: Iterable[tuple[str, str, TableUse]] = ()) -> tuple[str, ...]:
    """The tenant key's column names: foreign keys to a tenants / companies / organizations table,
    tenant-like names in snake_case or camelCase (``tenant_id``, ``"companyId"``), and columns the
    workload filters on by equality in three or more tables under one name ending in id."""
    found: dict[str, int] = {name: 1 for name in (*TENANT_COLUMNS, *CAMEL_TENANT_COLUMNS)}
    try:
        for row in db.query(conn, FK_SQL).itertuples(index=False):
            if str(row.referenced).lower() in TENANT_TABLES:
                found[row.column] = found.get(row.column, 0) + 3
    except PerfkitError:
        pass
    tables_by_column: dict[str, set] = {}
    for schema, table, use in workload:
        for column in use.equality:
            if _TENANT_NAME.match(column):
                found[column] = found.get(column, 0) + 2
            if column.lower().endswith("id") and column.lower() != "id":
                tables_by_column.setdefault(column, set()).add((schema, table))
    for column, tables in tables_by_column.items():
        if len(tables) >= 3:
            found[column] = found.get(column, 0) + 1
    return tuple(sorted(found, key=lambda c: -found[c]))


# -- candidates ------------------------------------------------------------------------------------
@dataclass
class Statement:
    queryid: object
    text: str  # as costed (rewritten when pg_stat_statements' form does not parse)
    shown: str
    calls: float
    mean_ms: float
    total_ms: float
    params: int
    uses: list[tuple[str, str, TableUse]]
    base_cost: float | None = None
    note: str = ""


def _key(fix: Fix) -> tuple:
    return fix.key()


def candidates_for(schema: str, table: str, use: TableUse, tenant_columns: Sequence[str],
                   majority_partial: set[str], columns: frozenset[str]) -> list[Fix]:
    """The index shapes that could serve one statement's use of one table: equality columns (the
    tenant key first), then a range column or the ORDER BY keys in their direction when a LIMIT can
    stop early; a partial WHERE for the workload's majority predicates; INCLUDE for index-only."""
    partial_columns = {p.split(" ")[0].strip('"') for p in use.partial}
    equality = [c for c in use.equality if c in columns and c not in partial_columns]
    tenant = [c for c in equality if c in tenant_columns][:1]
    equality = tenant + [c for c in equality if c not in tenant]
    ranges = [c for c in use.range if c in columns and c not in equality]
    sort = [(c, d) for c, d in use.sort if c in columns and c not in equality] if use.sort_complete else []
    shapes: list[list[IndexColumn]] = []
    base = [IndexColumn(c) for c in equality]
    if sort and (use.limit or not ranges):
        directions = {d for _, d in sort}
        if len(directions) == 1 and not next(iter(directions)):
            ordered = [IndexColumn(c) for c, _ in sort]
        else:
            ordered = [IndexColumn(c, descending=d) for c, d in sort]
        shapes.append(base + ordered)
    if ranges:
        shapes.append(base + [IndexColumn(ranges[0])])
    if base and not shapes:
        shapes.append(base)
    where = " AND ".join(sorted(p for p in use.partial if p in majority_partial)) or None
    out: list[Fix] = []
    for keys in shapes:
        keys = keys[:MAX_KEYS]
        if not keys:
            continue
        names = [k.name for k in keys]
        out.append(sql.create_index(schema, table, keys))
        if where:
            out.append(sql.create_index(schema, table, keys, where=where))
        rest = sorted(use.referenced - set(names) - partial_columns) if not use.star else None
        if rest is not None and 0 < len(rest) <= MAX_INCLUDE and all(c in columns for c in rest):
            out.append(sql.create_index(schema, table, keys, include=rest, where=where))
    return out


# -- costing ---------------------------------------------------------------------------------------
class _Coster:
    """One read-only session: base costs, hypothetical indexes, each EXPLAIN in its own SAVEPOINT."""

    def __init__(self, raw: psycopg.Connection, hypopg: str):
        self.raw = raw
        self.hypopg = pgsql.Identifier(hypopg)
        self.calls = 0  # hypopg calls: creates, sizes, drops, and EXPLAINs with a hypothetical index
        self.explains = 0
        self.seconds = 0.0  # time in the server's EXPLAINs and hypopg calls: the advisor's floor

    def _savepoint(self, work, prepared: list | None = None):
        """``work()`` in its own SAVEPOINT: an error rolls back to it (the transaction stays usable for
        the next candidate) and is raised as one PerfkitError; a statement it PREPAREd is deallocated."""
        started = time.perf_counter()
        self.raw.execute("SAVEPOINT perfkit_advice")
        try:
            value = work()
        except psycopg.Error as err:
            self.raw.execute("ROLLBACK TO SAVEPOINT perfkit_advice")
            for name in prepared or ():
                try:
                    self.raw.execute("SAVEPOINT perfkit_deallocate")
                    self.raw.execute(f"DEALLOCATE {name}")
                    self.raw.execute("RELEASE SAVEPOINT perfkit_deallocate")
                except psycopg.Error:
                    self.raw.execute("ROLLBACK TO SAVEPOINT perfkit_deallocate")
            raise PerfkitError(" ".join(str(err).split())) from None
        self.raw.execute("RELEASE SAVEPOINT perfkit_advice")
        self.seconds += time.perf_counter() - started
        return value

    def cost(self, stmt: Statement) -> float:
        prepared: list[str] = []

        def run():
            if not stmt.params:
                row = self.raw.execute(f"EXPLAIN (FORMAT JSON) {stmt.text}", binary=True).fetchone()
            else:
                name = f"perfkit_{uuid.uuid4().hex[:12]}"
                self.raw.execute(f"PREPARE {name} AS {stmt.text}", binary=True)
                prepared.append(name)
                nulls = ", ".join(["NULL"] * stmt.params)
                row = self.raw.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({nulls})").fetchone()
                self.raw.execute(f"DEALLOCATE {name}")
                prepared.remove(name)
            document = row[0]
            document = document if not isinstance(document, str) else __import__("json").loads(document)
            return float(document[0]["Plan"]["Total Cost"])

        self.explains += 1
        return self._savepoint(run, prepared)

    def create(self, fix: Fix) -> tuple[int, float]:
        text = replace(fix, concurrently=False).sql.rstrip(";")
        self.calls += 2

        def run():
            oid = self.raw.execute(pgsql.SQL(db.PERFKIT_TAG + "SELECT indexrelid FROM {}.hypopg_create_index(%s)")
                                   .format(self.hypopg), (text,)).fetchone()[0]
            size = self.raw.execute(pgsql.SQL("SELECT {}.hypopg_relation_size(%s)").format(self.hypopg),
                                    (oid,)).fetchone()[0]
            return int(oid), float(size or 0)

        return self._savepoint(run)

    def drop(self, oid: int) -> None:
        self.calls += 1
        self._savepoint(lambda: self.raw.execute(pgsql.SQL("SELECT {}.hypopg_drop_index(%s)").format(self.hypopg),
                                                 (oid,)))

    def reset(self) -> None:
        try:
            self.raw.execute(pgsql.SQL("SELECT {}.hypopg_reset()").format(self.hypopg))
        except psycopg.Error:
            pass


# -- the advisor -----------------------------------------------------------------------------------
@dataclass
class Advice:
    """The advisor's result: ``proposals`` (index_advice findings, best net benefit first), ``rejected``
    (one row per candidate not proposed, with ``reason``), ``notes`` (statements not costed, and why),
    ``facts`` (``statements``, ``candidates``, ``hypopg_calls``, ``explains``, ``pairs`` (candidate,
    statement touching its table), ``all_pairs`` (every statement x every candidate), ``seconds``,
    ``server_seconds``: the time inside EXPLAIN and hypopg, the floor)."""

    proposals: pd.DataFrame
    rejected: pd.DataFrame
    notes: list[str]
    facts: dict


def _served_by_existing(fix: Fix, existing: Sequence[Fix]) -> Fix | None:
    from perfkit.advice import _plain_order

    plain = _plain_order(fix)
    for index in existing:
        if index.action != "create_index":
            continue
        if _plain_order(index).covers(plain) or _plain_order(index).key() == plain.key():
            return index
        # an existing full index with the same keys and includes serves a partial candidate too
        if fix.where and index.where is None and _plain_order(index).covers(replace(plain, where=None)):
            return index
    return None


def _redundant(chosen: Fix, existing: Sequence[Fix], protected: set[str]) -> list[Fix]:
    """Existing indexes the new one makes redundant: not unique, not a constraint's, full (or with the
    same predicate), of the same method, their keys a left prefix of the new one's keys."""
    from perfkit.advice import _plain_order

    out = []
    for index in existing:
        if index.unique or index.name in protected or index.schema != chosen.schema or index.table != chosen.table:
            continue
        if index.where != chosen.where:
            continue
        if _plain_order(chosen).covers(_plain_order(index)):
            out.append(index)
    return out


def advise(
    engine,
    statements: pd.DataFrame,
    *,
    existing: Sequence[Fix] = (),
    tenant_columns: Sequence[str] | None = None,
    top_n: int = 50,
    min_cost_reduction: float = 0.5,
    index_write_ms: float = INDEX_WRITE_MS,
    statements_age_s: float | None = None,
    protected: Iterable[str] = (),
    min_saved_ms: float = 0.05,
) -> Advice:
    """Index proposals for the workload of ``statements`` (needs hypopg in the database).

    Parameters
    ----------
    engine:
        A perfkit engine (read-only sessions: nothing is built).
    statements:
        Rows with ``queryid``, ``query``, ``calls``, ``total_exec_ms``, ``mean_exec_ms`` (a
        pg_stat_statements snapshot, or logged statements with their real text).
    existing:
        The database's indexes (``perfkit.advice.existing_indexes``): never proposed again.
    tenant_columns:
        The tenant key's columns; inferred (foreign keys, names, the workload) when None.
    top_n:
        How many statements, by total time, make the workload.
    min_cost_reduction:
        A candidate serves a statement when it cuts its plan cost by this share or more.
    index_write_ms:
        The time one row change costs each index (default :data:`INDEX_WRITE_MS`).
    statements_age_s:
        Seconds the statement counters cover (per-day figures); one day when unknown.
    protected:
        Names of indexes backing constraints (never named for dropping).
    min_saved_ms:
        And when it saves at least this much of the statement's mean time per call (default
        0.05 ms): an index-only copy of a primary key lookup saves a heap fetch nobody feels.
    """
    started = time.perf_counter()
    from perfkit.plans import capture

    schema_name = capture.hypopg_schema(engine)
    if schema_name is None:
        raise PerfkitError("hypopg is not installed in this database (CREATE EXTENSION hypopg)")
    frame = statements.copy()
    frame["total_exec_ms"] = pd.to_numeric(frame["total_exec_ms"], errors="coerce").fillna(0.0)
    frame = frame.sort_values("total_exec_ms", ascending=False).head(top_n)
    days = max((statements_age_s or 0) / 86400, 1 / 1440) if statements_age_s else 1.0
    notes: list[str] = []
    from perfkit.health.workload import table_columns

    with db.session(engine) as conn:
        catalog = table_columns(conn)
        by_name: dict[str, list[str]] = {}
        for schema, table in catalog:
            by_name.setdefault(table, []).append(schema)
        stmts: list[Statement] = []
        for row in frame.itertuples(index=False):
            shown = " ".join(str(row.query).split())
            text, rewrote = costable_text(str(row.query).strip().rstrip(";"))
            try:
                facts = capture.inspect_statement(text)
            except BadInputError as err:
                if read_statement(str(row.query)) or re.match(r"(?is)\s*(select|update|delete|with)\b", shown):
                    notes.append(f"not costed: {shown[:100]} ({err})")
                continue
            if facts.kind not in ("SelectStmt", "UpdateStmt", "DeleteStmt"):
                continue
            uses = []
            for use in read_statement(text):
                schemas = [use.schema] if use.schema else by_name.get(use.table, [])
                schema = schemas[0] if len(schemas) == 1 else "public" if "public" in schemas else None
                if schema is not None and (schema, use.table) in catalog:
                    uses.append((schema, use.table, use))
            if not uses:
                continue
            calls = float(row.calls or 0)
            mean = float(getattr(row, "mean_exec_ms", 0) or (row.total_exec_ms / calls if calls else 0))
            stmts.append(Statement(row.queryid, text, shown, calls, mean, float(row.total_exec_ms), facts.params,
                                   uses, note=rewrote))
        workload = [u for s in stmts for u in s.uses]
        tenants = tuple(tenant_columns) if tenant_columns is not None else infer_tenant_columns(conn, workload)
        writes = db.query(conn, WRITES_SQL)
    write_rows = {(r.schema, r.table): r for r in writes.itertuples(index=False)}
    if not statements_age_s and len(writes):
        # the statements' window unknown: take the table statistics' (both count since the server's reset)
        days = max(float(writes["age_s"].max() or 0) / 86400, 1 / 1440)

    # partial predicates most of a table's statements (by calls) carry
    weight: dict[tuple, float] = {}
    total: dict[tuple, float] = {}
    for s in stmts:
        for schema, table, use in s.uses:
            total[(schema, table)] = total.get((schema, table), 0) + s.calls
            for p in set(use.partial):
                weight[(schema, table, p)] = weight.get((schema, table, p), 0) + s.calls
    majority = {key: {p for (sc, t, p), w in weight.items() if (sc, t) == key and w > 0.5 * calls}
                for key, calls in total.items()}

    candidates: dict[tuple, Fix] = {}
    skipped_existing: list[dict] = []
    for s in stmts:
        for schema, table, use in s.uses:
            for fix in candidates_for(schema, table, use, tenants, majority.get((schema, table), set()),
                                      catalog[(schema, table)]):
                if fix.key() in candidates:
                    continue
                served = _served_by_existing(fix, existing)
                if served is not None:
                    skipped_existing.append({"fix": fix, "reason": f"served by the existing index {served.name}"})
                    continue
                candidates[fix.key()] = fix
    touching: dict[tuple, list[Statement]] = {}
    for s in stmts:
        for schema, table, _ in s.uses:
            if s not in touching.setdefault((schema, table), []):
                touching[(schema, table)].append(s)

    costs: dict[tuple, dict[int, float]] = {}
    sizes: dict[tuple, float] = {}
    failed: set[tuple] = set()
    with db.session(engine) as conn:
        raw = conn.connection.dbapi_connection
        raw.rollback()
        coster = _Coster(raw, schema_name)
        try:
            raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            for s in stmts:
                try:
                    s.base_cost = coster.cost(s)
                except PerfkitError as err:
                    notes.append(f"not costed: {s.shown[:100]} ({err})")
            for key, fix in candidates.items():
                mine = [s for s in touching.get((fix.schema, fix.table), []) if s.base_cost is not None]
                if not mine:
                    continue
                try:
                    oid, size = coster.create(fix)
                except PerfkitError as err:
                    notes.append(f"candidate {fix.sql} could not be made hypothetically ({err})")
                    failed.add(key)
                    continue
                sizes[key] = size
                costs[key] = {}
                try:
                    for s in mine:
                        try:
                            coster.calls += 1
                            costs[key][id(s)] = coster.cost(s)
                        except PerfkitError as err:
                            notes.append(f"{s.shown[:80]} not costed with {fix.sql} ({err})")
                finally:
                    coster.drop(oid)
        finally:
            coster.reset()
            try:
                raw.rollback()
            except psycopg.Error:
                pass

    # per-day figures
    def saved_per_day(s: Statement, cost: float) -> float:
        if not s.base_cost:
            return 0.0
        ratio = max(0.0, 1 - cost / s.base_cost)
        return ratio * s.mean_ms * s.calls / days

    def write_per_day(fix: Fix) -> tuple[float, float]:
        row = write_rows.get((fix.schema, fix.table))
        if row is None:
            return 0.0, 0.0
        age_days = max(float(row.age_s or 0) / 86400, 1 / 1440)
        changes = float(row.n_tup_ins) + float(row.n_tup_upd) - float(row.n_tup_hot_upd) + float(row.n_tup_del)
        per_day = changes / age_days
        return per_day, per_day * index_write_ms

    by_id = {id(s): s for s in stmts}
    serves: dict[tuple, dict[int, float]] = {}
    for key, per in costs.items():
        serves[key] = {sid: c for sid, c in per.items()
                       if by_id[sid].base_cost and c <= by_id[sid].base_cost * (1 - min_cost_reduction)
                       and by_id[sid].mean_ms * (1 - c / by_id[sid].base_cost) >= min_saved_ms}
    # INCLUDE (a wider, bigger index) only where the index-only scan it allows cuts the cost clearly more
    rejected_include: list[dict] = []
    for key, fix in candidates.items():
        if not fix.include or key not in serves or not serves[key]:
            continue
        sibling = replace(fix, include=()).key()
        if sibling in serves and all(c >= INCLUDE_GAIN * costs[sibling].get(sid, math.inf)
                                     for sid, c in serves[key].items()):
            serves[key] = {}
            rejected_include.append({"subject": _subject(fix), "sql": fix.sql,
                                     "reason": "its INCLUDE columns save little over the same keys without them"})
    best: dict[int, float] = {id(s): s.base_cost for s in stmts if s.base_cost is not None}
    chosen: list[tuple] = []
    rejected: list[dict] = [{"subject": _subject(r["fix"]), "sql": r["fix"].sql, "reason": r["reason"]}
                            for r in skipped_existing]
    rejected += rejected_include
    remaining = {k for k in serves if serves[k]}
    for key in set(costs) - remaining:
        if any(r["sql"] == candidates[key].sql for r in rejected_include):
            continue
        rejected.append({"subject": _subject(candidates[key]), "sql": candidates[key].sql,
                         "reason": f"cuts no statement's plan cost by {share_text(min_cost_reduction)} or more "
                                   f"(and {min_saved_ms:g} ms a call)"})

    def marginal(key) -> tuple[float, float, float]:
        gain = sum(saved_per_day(by_id[sid], c) - saved_per_day(by_id[sid], best[sid])
                   for sid, c in serves[key].items() if c < best[sid])
        write = write_per_day(candidates[key])[1]
        return gain - write, gain, write

    while remaining:
        scored = sorted(((marginal(k), -sizes.get(k, 0), k) for k in remaining), key=lambda t: (t[0][0], t[1]),
                        reverse=True)
        (net, gain, write), _, key = scored[0]
        if net <= 0 or gain <= 0:
            for (_n, g, w), _, k in scored:
                reason = (f"saves {g:,.0f} ms a day but its writes cost {w:,.0f} ms a day" if g > 0
                          else "the indexes already chosen serve its statements")
                rejected.append({"subject": _subject(candidates[k]), "sql": candidates[k].sql, "reason": reason,
                                 "saved_ms_day": g, "write_ms_day": w})
            break
        chosen.append(key)
        remaining.discard(key)
        for sid, c in serves[key].items():
            best[sid] = min(best[sid], c)

    # the proposals, each with what it serves once the whole set is in place
    rows = []
    for key in chosen:
        fix = candidates[key]
        served = []
        for sid, c in serves[key].items():
            s = by_id[sid]
            others = [costs[k].get(sid, math.inf) for k in chosen if k != key]
            if c <= min(others, default=math.inf):
                served.append((s, c))
        if not served:
            served = [(by_id[sid], c) for sid, c in serves[key].items()]
        served.sort(key=lambda t: -saved_per_day(*t))
        saved = sum(saved_per_day(s, c) for s, c in served)
        changes, write = write_per_day(fix)
        top, top_cost = served[0]
        redundant = _redundant(fix, existing, set(protected))
        statements_text = "; ".join(
            f"{_short(s.shown)} ({number(s.calls)} calls, cost {s.base_cost:,.1f} -> {c:,.1f}, "
            f"saves ~{saved_per_day(s, c):,.0f} ms/day)" for s, c in served[:5])
        more = f" and {len(served) - 5} more" if len(served) > 5 else ""
        evidence = (
            f"serves {len(served)} statement{'s' if len(served) != 1 else ''}: {statements_text}{more}; "
            f"from {top.base_cost:,.1f} to {top_cost:,.1f} on the costliest; estimated size {size_text(sizes.get(key))}; "
            f"write cost {number(changes)} row changes a day x {index_write_ms:g} ms = {write:,.0f} ms/day; "
            f"net ~{saved - write:,.0f} ms/day"
        )
        if redundant:
            evidence += "; makes redundant: " + ", ".join(qualified(r.schema, r.name) for r in redundant)
        notes_here = sorted({s.note for s, _ in served if s.note})
        if notes_here:
            evidence += f" ({'; '.join(notes_here)})"
        rows.append(finding(
            "index_advice", "warning", _subject(fix), evidence,
            "Create the index (CONCURRENTLY: no write lock), then check it with perfkit verify on a scratch copy"
            + ("; then drop the indexes it makes redundant" if redundant else "") + ".",
            benefit_ms=saved - write,
            fix=fix,
            table=qualified(fix.schema, fix.table),
            columns=[c.name for c in fix.columns],
            cost_before=top.base_cost,
            cost_after=top_cost,
            queryids=[_queryid(s.queryid) for s, _ in served],
            statements=[{"queryid": _queryid(s.queryid), "query": s.shown, "calls": s.calls,
                         "mean_ms": s.mean_ms, "cost_before": s.base_cost, "cost_after": c,
                         "saved_ms_day": saved_per_day(s, c)} for s, c in served],
            saved_ms_day=saved,
            write_ms_day=write,
            writes_per_day=changes,
            net_ms_day=saved - write,
            size_bytes=sizes.get(key),
            redundant=[qualified(r.schema, r.name) for r in redundant],
            drop_sql=[sql.drop_index(r.schema, r.name).sql for r in redundant],
        ))
    rows.sort(key=lambda r: -r["benefit_ms"])
    pairs = sum(len(touching.get((f.schema, f.table), [])) for f in candidates.values())
    facts = {"statements": len(stmts), "candidates": len(candidates), "chosen": len(chosen),
             "hypopg_calls": coster.calls, "explains": coster.explains, "pairs": pairs,
             "server_seconds": coster.seconds,
             "all_pairs": len(stmts) * len(candidates), "tenant_columns": list(tenants[:5]),
             "seconds": time.perf_counter() - started}
    return Advice(findings_frame(rows), pd.DataFrame(rejected, columns=["subject", "sql", "reason", "saved_ms_day",
                                                                        "write_ms_day"]), notes, facts)


def _queryid(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _subject(fix: Fix) -> str:
    keys = ", ".join(c.render() for c in fix.columns)
    text = f"{qualified(fix.schema, fix.table)} ({keys})"
    if fix.include:
        text += f" INCLUDE ({', '.join(sql.quote_ident(c) for c in fix.include)})"
    if fix.where:
        text += f" WHERE {fix.where}"
    return text


__all__ = ["INDEX_WRITE_MS", "Advice", "TableUse", "advise", "candidates_for", "costable_text",
           "infer_tenant_columns", "read_statement"]

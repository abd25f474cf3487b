"""Capture EXPLAIN plans from a live server safely: read-only, timed out, writes rolled back.

``explain(engine, sql)`` / ``explain_queryid(engine, id)`` return a Plan; ``whatif`` a cost comparison.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast.parser import ParseError, parse_sql_json
from psycopg import sql as pgsql

from perfkit import db, parsetree
from perfkit.errors import BadInputError, ExtensionMissing, PerfkitError
from perfkit.plans import safety
from perfkit.plans.model import Plan, build_plan

# statements EXPLAIN accepts; everything else is refused before reaching the server
_EXPLAINABLE = {"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CreateTableAsStmt", "ExecuteStmt", "DeclareCursorStmt"}
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CreateTableAsStmt"}

QUERY_BY_ID_SQL = "SELECT query FROM pg_stat_statements WHERE queryid = :id LIMIT 1"


@dataclass
class StatementFacts:
    """What PostgreSQL's parser says about one statement.

    Attributes
    ----------
    kind:
        The top statement node, e.g. ``SelectStmt``.
    writes:
        The statement changes data: INSERT/UPDATE/DELETE/MERGE, CREATE TABLE AS, SELECT INTO,
        or any of those inside a WITH clause or subquery.
    params:
        The highest ``$n`` placeholder (0 when there is none).
    """

    kind: str
    writes: bool
    params: int


def inspect_statement(sql: str) -> StatementFacts:
    """Parse ``sql`` with pglast and describe it; refuse several statements or non-explainable ones.

    Raises
    ------
    BadInputError
        Empty SQL, a syntax error, more than one statement, or a statement EXPLAIN cannot take.
    """
    if not sql or not sql.strip():
        raise BadInputError("no SQL statement given")
    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError as err:
        raise BadInputError(f"the SQL does not parse: {err}") from None
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        raise BadInputError(
            f"give exactly one SQL statement to explain, not {len(statements)}"
            if statements else "no SQL statement given (only comments?)"
        )
    stmt = statements[0].get("stmt", {})
    kind = next(iter(stmt), "")
    if kind == "ExplainStmt":
        raise BadInputError("give the statement itself, without EXPLAIN: perfkit adds the EXPLAIN options")
    if kind not in _EXPLAINABLE:
        raise BadInputError(f"EXPLAIN cannot run a {kind.removesuffix('Stmt')} statement; give a SELECT, INSERT, UPDATE, DELETE, MERGE or VALUES")
    writes = False
    params = 0
    for key, value in parsetree.items(stmt):
        if key in _WRITES:
            writes = True
        elif key == "SelectStmt" and isinstance(value, dict) and value.get("intoClause"):
            writes = True
        elif key == "ParamRef" and isinstance(value, dict):
            params = max(params, int(value.get("number", 0)))
    return StatementFacts(kind=kind, writes=writes, params=params)


def _server_version(raw: psycopg.Connection) -> int:
    return int(raw.execute(db.PERFKIT_TAG + "SELECT current_setting('server_version_num')::int").fetchone()[0])


def _options(version: int, analyze: bool, *, generic: bool = False) -> str:
    options = []
    if analyze:
        options.append("ANALYZE")
    if analyze or version >= 130000:
        options.append("BUFFERS")
    if version >= 120000:
        options.append("SETTINGS")
    if generic:
        options.append("GENERIC_PLAN")
    options.append("FORMAT JSON")
    return ", ".join(options)


@contextmanager
def _raw_connection(engine):
    """The psycopg connection under a perfkit engine session; rolled back whatever happens."""
    with db.session(engine) as conn:
        raw = conn.connection.dbapi_connection
        raw.rollback()
        try:
            yield raw
        except psycopg.Error as err:
            _quiet_rollback(raw)
            raise db.translate_error(err, target=getattr(engine, "info", {}).get("target", "")) from None
        finally:
            _quiet_rollback(raw)


def _quiet_rollback(raw: psycopg.Connection) -> None:
    try:
        raw.rollback()
    except psycopg.Error:
        pass


def _literal(value: Any, raw: psycopg.Connection) -> str:
    if value is None:
        return "NULL"
    return pgsql.Literal(value).as_string(raw)


def _document(row: Any) -> Any:
    value = row[0]
    return json.loads(value) if isinstance(value, str) else value


def explain(
    engine,
    sql: str,
    *,
    analyze: bool = False,
    params: Sequence[Any] | None = None,
    allow_writes: bool = False,
    settings: Mapping[str, str] | None = None,
    source: str = "",
) -> Plan:
    """EXPLAIN one statement on a live server, safely, and parse the result.

    Runs ``EXPLAIN ([ANALYZE,] BUFFERS, SETTINGS, FORMAT JSON)`` in the engine's read-only
    session (with its statement_timeout). A data-changing statement (INSERT/UPDATE/DELETE/MERGE,
    CREATE TABLE AS, or a WITH holding one, found with PostgreSQL's parser) is refused under
    ANALYZE unless ``allow_writes``; then it runs in a READ WRITE transaction that is always
    rolled back. Plain EXPLAIN (no ANALYZE) never executes the statement.

    Under ANALYZE, a statement that calls anything acting outside the transaction (dblink,
    postgres_fdw and foreign tables, signals, statistics resets, advisory locks, sequences,
    VOLATILE user functions, also through views: :func:`perfkit.plans.safety.side_doors`) is
    refused unless ``allow_writes``. ``plan.extra["capture_notes"]`` holds the warnings (user
    functions the planner may run; sequences advanced) and ``plan.extra["sequences_advanced"]``
    ``{sequence: values consumed}`` under ``allow_writes``.

    A statement with ``$1``-style parameters (as pg_stat_statements stores them) gets a generic
    plan: ``EXPLAIN (GENERIC_PLAN)`` on PostgreSQL 16+, else PREPARE with
    ``plan_cache_mode = force_generic_plan`` and ``EXPLAIN EXECUTE`` with NULL arguments. With
    ANALYZE, ``params`` must give a value for each parameter.

    Parameters
    ----------
    engine:
        A perfkit engine (:func:`perfkit.db.connect`).
    sql:
        Exactly one statement.
    analyze:
        Execute the statement and report actual rows and times.
    params:
        Values for ``$1``, ``$2``, ... (sent as SQL literals; the server infers the types).
    allow_writes:
        Allow EXPLAIN ANALYZE of a data-changing statement (always rolled back).
    settings:
        Settings for this transaction only (``SET LOCAL``), e.g. ``{"work_mem": "64MB"}``.
    source:
        What to record as ``Plan.source``.

    Returns
    -------
    Plan

    Raises
    ------
    BadInputError
        Several statements, a syntax error, a write or a side door without ``allow_writes``,
        missing or extra parameter values.
    ReadOnlyViolation, QueryTimeout, PermissionDenied, PerfkitError
        From the server, one line each.
    """
    facts = inspect_statement(sql)
    if analyze and facts.writes and not allow_writes:
        raise BadInputError(
            "EXPLAIN ANALYZE would execute this data-changing statement; pass allow_writes=True "
            "(--allow-writes) to run it inside a transaction that is rolled back, or explain without ANALYZE"
        )
    values = list(params) if params is not None else None
    if values is not None and facts.params == 0 and values:
        raise BadInputError(f"{len(values)} parameter value(s) given, but the statement has no $1 placeholders")
    if facts.params and values is not None and len(values) != facts.params:
        raise BadInputError(f"the statement has {facts.params} parameter(s) ($1..${facts.params}), {len(values)} value(s) given")
    if analyze and facts.params and values is None:
        raise BadInputError(
            f"EXPLAIN ANALYZE runs the statement, which needs values for its {facts.params} parameter(s) "
            f"($1..${facts.params}): pass params=[...] (--param VALUE, once per parameter)"
        )
    source = source or ("EXPLAIN ANALYZE" if analyze else "EXPLAIN")
    statement = sql.strip().rstrip(";")
    notes: list[str] = []
    advanced: dict[str, int] = {}
    with _raw_connection(engine) as raw:
        version = _server_version(raw)
        raw.rollback()
        try:
            verdict = safety.side_doors(raw, statement)
        except psycopg.Error as err:  # e.g. a schema this role may not look into
            _quiet_rollback(raw)
            if analyze and not allow_writes:
                raise BadInputError(f"EXPLAIN ANALYZE refused: perfkit could not check what the statement calls "
                                    f"({db.translate_error(err)}); pass --allow-writes if you mean it") from None
            verdict = safety.Verdict()
            notes.append(f"perfkit could not check the functions the statement calls: {db.translate_error(err)}")
        raw.rollback()
        if analyze and verdict.refused and not allow_writes:
            more = f" (and {len(verdict.refused) - 1} more)" if len(verdict.refused) > 1 else ""
            raise BadInputError(
                f"EXPLAIN ANALYZE refused: {verdict.refused[0]}{more}; a read-only transaction and its rollback "
                "cannot stop that: pass allow_writes=True (--allow-writes) if you mean it, or explain without ANALYZE"
            )
        if verdict.user_functions:
            notes.append(user_function_note(verdict.user_functions))
        before = {}
        if analyze and allow_writes:
            before = safety.sequence_values(raw, verdict.tables)
            raw.rollback()
        if analyze and facts.writes:
            _send(raw, "SET TRANSACTION READ WRITE")  # the first statement of the transaction
        for name, value in (settings or {}).items():
            raw.execute(db.PERFKIT_TAG + "SELECT set_config(%s, %s, true)", (str(name), str(value)))
        document = explain_document(raw, statement, version, analyze=analyze, count=facts.params, values=values)
        raw.rollback()
        if analyze and allow_writes:
            advanced = safety.advanced(before, safety.sequence_values(raw, verdict.tables))
            raw.rollback()
    if advanced:
        notes.append(sequences_note(advanced))
    plan = build_plan(document, source=source, fmt="json")
    plan.query = sql
    plan.extra["capture_notes"] = notes
    plan.extra["sequences_advanced"] = advanced
    return plan


def user_function_note(signatures: Sequence[str]) -> str:
    """The warning for a statement that calls user-defined IMMUTABLE/STABLE functions."""
    shown = ", ".join(signatures[:5]) + (f" and {len(signatures) - 5} more" if len(signatures) > 5 else "")
    return (f"the statement calls user-defined function(s) {shown}: PostgreSQL may run an IMMUTABLE or STABLE "
            "function while planning (constant folding, estimates), even under plain EXPLAIN; perfkit trusts "
            "the label, so a mislabelled function that writes would write")


def sequences_note(advanced: Mapping[str, int]) -> str:
    """``sequences advanced: t_id_seq +2`` (sequences are not rolled back)."""
    return "sequences advanced: " + ", ".join(f"{name} +{steps}" for name, steps in advanced.items()) + (
        " (not rolled back: sequences are outside transactions)")


def _send(raw: psycopg.Connection, text: str):
    """Run ``text`` through the extended protocol: the server refuses a second statement in it."""
    return raw.execute(text, binary=True)


def explain_document(raw: psycopg.Connection, statement: str, version: int, *, analyze: bool, count: int = 0,
                     values: Sequence[Any] | None = None) -> Any:
    """The EXPLAIN JSON document of one statement on ``raw`` (the caller owns the transaction).

    The statement text is interpolated into ``EXPLAIN (...) statement``, so it is sent through
    the extended protocol, where PostgreSQL itself refuses more than one command: even a
    caller that skipped :func:`inspect_statement` cannot smuggle ``SELECT 1; DELETE ...`` in.
    """
    if not count:
        return _document(_send(raw, f"EXPLAIN ({_options(version, analyze)}) {statement}").fetchone())
    if not analyze and values is None and version >= 160000:
        return _document(_send(raw, f"EXPLAIN ({_options(version, False, generic=True)}) {statement}").fetchone())
    return _explain_prepared(raw, statement, version, analyze, count, values)


def _explain_prepared(raw, statement: str, version: int, analyze: bool, count: int, values) -> Any:
    """PREPARE + EXPLAIN EXECUTE; generic plan (NULL arguments) when no values are given."""
    name = f"perfkit_{uuid.uuid4().hex[:12]}"
    _send(raw, f"PREPARE {name} AS {statement}")
    try:
        if values is None:
            raw.execute(db.PERFKIT_TAG + "SET LOCAL plan_cache_mode = force_generic_plan")
            arguments = ", ".join(["NULL"] * count)
        else:
            arguments = ", ".join(_literal(v, raw) for v in values)
        row = _send(raw, f"EXPLAIN ({_options(version, analyze)}) EXECUTE {name}({arguments})").fetchone()
        return _document(row)
    finally:
        _quiet_rollback(raw)  # PREPARE outlives the transaction: DEALLOCATE after the rollback
        try:
            raw.execute(f"DEALLOCATE {name}")
        except psycopg.Error:
            _quiet_rollback(raw)


def statement_for_queryid(engine, queryid: int) -> str:
    """The query text pg_stat_statements keeps for ``queryid``.

    Raises
    ------
    ExtensionMissing
        pg_stat_statements is not installed in this database.
    BadInputError
        No statement with that queryid.
    """
    try:
        frame = db.query(engine, QUERY_BY_ID_SQL, {"id": int(queryid)})
    except PerfkitError as err:
        if "pg_stat_statements" in str(err) and ("does not exist" in str(err) or "must be loaded" in str(err)):
            raise ExtensionMissing(
                "pg_stat_statements is not available in this database (CREATE EXTENSION pg_stat_statements, "
                "and shared_preload_libraries = 'pg_stat_statements')"
            ) from None
        raise
    if frame.empty:
        raise BadInputError(f"queryid {queryid} is not in pg_stat_statements (it may have been evicted or reset)")
    from perfkit import secrets

    return secrets.scrub_statement(str(frame.iat[0, 0]))  # shown and kept with the plan: never a secret


def explain_queryid(engine, queryid: int, **kwargs) -> Plan:
    """EXPLAIN the statement pg_stat_statements knows as ``queryid`` (see :func:`explain`)."""
    sql = statement_for_queryid(engine, queryid)
    kwargs.setdefault("source", f"queryid {queryid}")
    return explain(engine, sql, **kwargs)


@dataclass
class WhatIf:
    """The plan of a statement without and with a hypothetical index (hypopg).

    Attributes
    ----------
    cost_before, cost_after:
        The root's total estimated cost.
    used:
        Whether the plan with the index uses it.
    index_name:
        hypopg's name for the hypothetical index (``<13>btree_orders_tenant_id``).
    """

    create_index_sql: str
    cost_before: float
    cost_after: float
    used: bool
    index_name: str
    before: Plan = field(repr=False)
    after: Plan = field(repr=False)

    @property
    def improvement(self) -> float:
        """cost_before / cost_after (1.0 means no change)."""
        if not self.cost_after or math.isnan(self.cost_after):
            return math.nan
        return self.cost_before / self.cost_after

    def summary(self) -> str:
        """One sentence in plain words."""
        if not self.used:
            return f"The planner would not use the index ({self.create_index_sql}); estimated cost stays {self.cost_before:,.0f}."
        return (
            f"With the index the estimated cost goes from {self.cost_before:,.0f} to {self.cost_after:,.0f} "
            f"({self.improvement:,.1f}x cheaper)."
        )


def _index_statement(create_index_sql: str) -> str:
    """One CREATE INDEX statement for hypopg (CONCURRENTLY removed, it means nothing there)."""
    try:
        tree = json.loads(parse_sql_json(create_index_sql))
    except ParseError as err:
        raise BadInputError(f"the CREATE INDEX statement does not parse: {err}") from None
    statements = tree.get("stmts", [])
    if len(statements) != 1 or "IndexStmt" not in statements[0].get("stmt", {}):
        raise BadInputError("give exactly one CREATE INDEX statement")
    from pglast import parse_sql
    from pglast.stream import RawStream

    node = parse_sql(create_index_sql)[0].stmt
    node.concurrent = False
    return RawStream()(node)


HYPOPG_SQL = """
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'hypopg'
"""


def hypopg_schema(engine_or_conn) -> str | None:
    """The schema hypopg is installed in, or None when this database does not have it."""
    return db.scalar(engine_or_conn, HYPOPG_SQL)


def whatif(engine, sql: str, create_index_sql: str, *, params: Sequence[Any] | None = None,
           schema: str | None = None) -> WhatIf:
    """The estimated plan of ``sql`` before and with a hypothetical index (needs hypopg).

    Nothing is built: hypopg keeps the index in this session's memory only, and it is removed
    (``hypopg_reset()``) before the connection goes back to the pool. Plain EXPLAIN only.

    Parameters
    ----------
    engine:
        A perfkit engine.
    sql:
        The statement to plan (``$n`` parameters get a generic plan).
    create_index_sql:
        ``CREATE INDEX [CONCURRENTLY] ... ON table (columns)``.
    params:
        Optional values for ``$n`` parameters (then a custom plan for those values).
    schema:
        hypopg's schema when the caller knows it (:func:`hypopg_schema`); read otherwise.

    Raises
    ------
    ExtensionMissing
        hypopg is not installed in the database.
    """
    index_sql = _index_statement(create_index_sql)
    schema = schema or hypopg_schema(engine)
    if schema is None:
        raise ExtensionMissing("hypopg is not installed in this database (CREATE EXTENSION hypopg) — what-if indexes need it")
    hypopg = pgsql.Identifier(schema)
    before = explain(engine, sql, params=params, source="EXPLAIN (before hypothetical index)")
    with _raw_connection(engine) as raw:
        try:
            row = raw.execute(pgsql.SQL(db.PERFKIT_TAG + "SELECT indexname FROM {}.hypopg_create_index(%s)").format(hypopg),
                              (index_sql,)).fetchone()
            raw.commit()  # keep the transaction short; the index lives in the session, not the transaction
            index_name = str(row[0])
            facts_after = inspect_statement(sql)
            version = _server_version(raw)
            statement = sql.strip().rstrip(";")
            values = list(params) if params is not None else None
            document = explain_document(raw, statement, version, analyze=False, count=facts_after.params,
                                        values=values)
        finally:
            _quiet_rollback(raw)
            try:
                raw.execute(pgsql.SQL(db.PERFKIT_TAG + "SELECT {}.hypopg_reset()").format(hypopg))
                raw.rollback()
            except psycopg.Error:
                _quiet_rollback(raw)
    after = build_plan(document, source="EXPLAIN (with hypothetical index)", fmt="json")
    after.query = sql
    used = bool(after.nodes["index_name"].fillna("").eq(index_name).any()) or any(
        index_name in str(d) for d in after.nodes["detail"]
    )
    return WhatIf(
        create_index_sql=index_sql,
        cost_before=float(before.nodes["total_cost"].iat[0]),
        cost_after=float(after.nodes["total_cost"].iat[0]),
        used=used,
        index_name=index_name,
        before=before,
        after=after,
    )

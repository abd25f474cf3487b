"""Recommendations: index advice from costly statements (pglast + hypopg), and one ranked merged list.

``index_advice(engine)`` proposes indexes; ``recommend(health=..., statements=..., plan_findings=...)`` merges.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import pglast
from pglast import ast
from pglast.enums import ObjectType
from sqlalchemy.engine import Engine

from perfkit import db
from perfkit.errors import BadInputError, PerfkitError
from perfkit.findings import SEVERITY_RANK, finding, findings_frame
from perfkit.health.common import TENANT_COLUMNS, create_index_sql, number, qualified, share_text
from perfkit.health.workload import (
    column_workload,
    proposed_index_columns,
    statement_stats,
    statements_age_seconds,
    table_columns,
)

INDEX_KEYS_SQL = """
SELECT n.nspname AS schema, t.relname AS table,
       ARRAY(SELECT a.attname FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[] AS columns
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""

HYPOPG_SQL = """
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'hypopg'
"""

PLANNABLE = (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt)


def _walk(node):
    """Every pglast node under ``node`` (depth first)."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _walk(getattr(node, name))


def parameter_count(sql: str) -> int:
    """The highest ``$n`` parameter number in ``sql`` (0 when none or when it does not parse)."""
    try:
        tree = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return 0
    return max((n.number for n in _walk(tree) if isinstance(n, ast.ParamRef)), default=0)


def is_plannable(sql: str) -> bool:
    """True for one SELECT, UPDATE or DELETE (what EXPLAIN can cost without running it)."""
    try:
        tree = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return False
    return len(tree) == 1 and isinstance(tree[0].stmt, PLANNABLE)


def _raw_execute(conn, sql: str):
    """Run ``sql`` on the connection's psycopg cursor, untouched (no bind-parameter parsing)."""
    raw = conn.connection.driver_connection
    try:
        with raw.cursor() as cur:
            cur.execute(db.PERFKIT_TAG + sql)
            return cur.fetchall() if cur.description else None
    except Exception as err:  # psycopg errors become PerfkitErrors
        raise db.translate_error(err) from None


def plan_cost(conn, sql: str) -> float:
    """The planner's total cost for ``sql`` (EXPLAIN without ANALYZE: nothing runs).

    A statement normalized by pg_stat_statements (``$1`` parameters) is costed as a
    generic plan: EXPLAIN (GENERIC_PLAN) on PostgreSQL 16+, else PREPARE and
    EXPLAIN EXECUTE with NULL arguments under ``plan_cache_mode = force_generic_plan``.
    """
    params = parameter_count(sql)
    if params == 0:
        rows = _raw_execute(conn, f"EXPLAIN (FORMAT JSON) {sql}")
    elif int(db.scalar(conn, "SELECT current_setting('server_version_num')::int")) >= 160000:
        rows = _raw_execute(conn, f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {sql}")
    else:
        _raw_execute(conn, "SET LOCAL plan_cache_mode = force_generic_plan")
        _raw_execute(conn, f"PREPARE perfkit_whatif AS {sql}")
        try:
            rows = _raw_execute(conn, f"EXPLAIN (FORMAT JSON) EXECUTE perfkit_whatif({', '.join(['NULL'] * params)})")
        finally:
            _raw_execute(conn, "DEALLOCATE perfkit_whatif")
    plan = rows[0][0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return float(plan[0]["Plan"]["Total Cost"])


def whatif_cost(conn, sql: str, create_index: str, *, hypopg_schema: str = "public") -> tuple[float, float]:
    """``(cost before, cost after)`` of ``sql`` with a hypothetical index (hypopg; nothing is built).

    Parameters
    ----------
    sql:
        The statement to cost.
    create_index:
        ``CREATE INDEX ON table (columns)`` (without CONCURRENTLY).
    """
    before = plan_cost(conn, sql)
    reset = f"SELECT {qualified(hypopg_schema, 'hypopg_reset')}()"
    try:
        db.query(conn, f"SELECT * FROM {qualified(hypopg_schema, 'hypopg_create_index')}(:sql)", {"sql": create_index})
        after = plan_cost(conn, sql)
    finally:
        db.query(conn, reset)
    return before, after


def _existing_leads(conn) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    frame = db.query(conn, INDEX_KEYS_SQL)
    leads: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for row in frame.itertuples(index=False):
        leads.setdefault((row.schema, row.table), []).append(tuple(row.columns))
    return leads


def _served(columns: tuple[str, ...], existing: list[tuple[str, ...]]) -> bool:
    return any(index[: len(columns)] == columns for index in existing)


def _candidates(statements: pd.DataFrame, catalog, existing, tenant_columns) -> dict:
    """``{(schema, table, columns): [statement rows...]}`` for indexes no existing one serves."""
    candidates: dict[tuple[str, str, tuple[str, ...]], list] = {}
    workload = column_workload(statements, catalog)
    for (queryid, schema, table), uses in workload.groupby(["queryid", "schema", "table"], sort=False):
        columns = tuple(proposed_index_columns(uses, tenant_columns))
        if not columns or _served(columns, existing.get((schema, table), [])):
            continue
        statement = statements[statements["queryid"] == queryid].iloc[0]
        candidates.setdefault((schema, table, columns), []).append(statement)
    return candidates


def index_advice(
    engine_or_conn,
    *,
    statements: pd.DataFrame | None = None,
    top_n: int = 20,
    min_total_ms: float = 0.0,
    tenant_columns=TENANT_COLUMNS,
    min_cost_reduction: float = 0.5,
    use_hypopg: bool = True,
) -> pd.DataFrame:
    """Index proposals for the statements with the highest total time.

    The filtered, joined and sorted columns come from PostgreSQL's own parser (pglast); the
    column order is equality (tenant column first), sort, then range. With hypopg in the
    database each proposal is costed on a hypothetical index and kept only when it cuts the
    plan cost of its costliest statement by ``min_cost_reduction`` or more.

    Parameters
    ----------
    engine_or_conn:
        A perfkit engine or connection (read-only is fine: nothing is built or run).
    statements:
        A statement snapshot (or diff) to take the statements from; default: read
        pg_stat_statements now.
    top_n:
        How many statements, by total execution time, to consider.
    min_total_ms:
        Ignore statements with less total time.
    tenant_columns:
        Columns holding the tenant; the one a statement filters on leads the index.
    min_cost_reduction:
        The share of plan cost a hypothetical index must save (default 0.5).
    use_hypopg:
        Verify with hypopg when installed (default True).

    Returns
    -------
    pandas.DataFrame
        ``index_advice`` findings, with ``cost_before``, ``cost_after``, ``table``,
        ``columns`` and ``queryids``; ``benefit_ms`` is the statements' time per day
        (since the statistics reset, at least one day) scaled by the cost saved.
    """
    if isinstance(engine_or_conn, Engine):
        with db.session(engine_or_conn) as conn:
            return index_advice(
                conn,
                statements=statements,
                top_n=top_n,
                min_total_ms=min_total_ms,
                tenant_columns=tenant_columns,
                min_cost_reduction=min_cost_reduction,
                use_hypopg=use_hypopg,
            )
    conn = engine_or_conn
    if statements is None:
        statements = statement_stats(conn, limit=max(top_n, 1))
    else:
        statements = statements.copy()
        if "datname" in statements.columns:
            statements = statements[statements["datname"] == db.scalar(conn, "SELECT current_database()")]
    if statements.empty:
        return findings_frame([])
    statements = statements[statements["total_exec_ms"].astype(float) >= min_total_ms]
    statements = statements.sort_values("total_exec_ms", ascending=False).head(top_n)
    age = statements_age_seconds(statements)
    days = max((age or 0) / 86400, 1.0)
    per = "per day" if age is not None else "per day (statistics age unknown: counted as one day)"
    hypopg_schema = db.scalar(conn, HYPOPG_SQL) if use_hypopg else None
    candidates = _candidates(statements, table_columns(conn), _existing_leads(conn), tuple(tenant_columns))
    rows = []
    for (schema, table, columns), served in candidates.items():
        served = sorted(served, key=lambda s: -float(s["total_exec_ms"]))
        total_ms = sum(float(s["total_exec_ms"]) for s in served)
        calls = sum(int(s["calls"]) for s in served)
        top = served[0]
        usage = (
            f"{len(served)} statement{'s' if len(served) != 1 else ''} using {table} ({', '.join(columns)}) took "
            f"{total_ms:,.0f} ms in {number(calls)} calls; the costliest: {' '.join(str(top['query']).split())[:150]}"
        )
        before = after = None
        if hypopg_schema is not None and is_plannable(str(top["query"])):
            plain = create_index_sql(schema, table, columns, concurrently=False)
            try:
                before, after = whatif_cost(conn, str(top["query"]), plain, hypopg_schema=hypopg_schema)
            except PerfkitError:
                before = after = None
            if before is None or after > before * (1 - min_cost_reduction):
                continue  # hypopg is there and says (or cannot show) it does not pay
        if before is not None:
            saved = 1 - after / before if before else 0.0
            evidence = f"{usage}; a hypothetical index cuts its plan cost from {before:,.1f} to {after:,.1f} ({share_text(saved)} less)"
            severity = "warning"
            benefit = total_ms * saved / days
        else:
            reason = "hypopg is not installed" if hypopg_schema is None else "it is not a SELECT, UPDATE or DELETE"
            evidence = f"{usage}; not verified ({reason})"
            severity = "info"
            benefit = None
        rows.append(
            finding(
                "index_advice",
                severity,
                f"{qualified(schema, table)} ({', '.join(columns)})",
                evidence,
                f"Create the index (CONCURRENTLY: no write lock), then compare the statement's plan and time; "
                f"estimated saving {per} is the statements' time scaled by the cost cut.",
                create_index_sql(schema, table, columns),
                benefit,
                table=qualified(schema, table),
                columns=list(columns),
                cost_before=before,
                cost_after=after,
                queryids=[int(s["queryid"]) for s in served if pd.notna(s["queryid"])],
            )
        )
    return findings_frame(rows)


# -- merging --------------------------------------------------------------------------------


def _name(node: ast.RangeVar) -> str:
    return qualified(node.schemaname, node.relname)


def fix_target(sql: str) -> tuple | None:
    """What a finding's fix SQL acts on, so findings fixed by the same SQL can be merged.

    ``("index", table, columns)`` for CREATE INDEX, ``("drop index", name)``, ``("maintain",
    table)`` for VACUUM / ANALYZE; None for anything else (or no SQL).
    """
    if not sql:
        return None
    try:
        tree = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return None
    for raw in tree:
        stmt = raw.stmt
        if isinstance(stmt, ast.IndexStmt) and stmt.whereClause is None:
            columns = tuple(p.name for p in stmt.indexParams if isinstance(p, ast.IndexElem) and p.name)
            if len(columns) == len(stmt.indexParams):
                return ("index", _name(stmt.relation), columns)
        if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_INDEX:
            return ("drop index", ".".join(s.sval for s in stmt.objects[0]))
        if isinstance(stmt, ast.VacuumStmt) and stmt.rels:
            return ("maintain", _name(stmt.rels[0].relation))
    return None


def _as_findings(frame, name: str) -> list[dict]:
    if frame is None:
        return []
    if isinstance(frame, pd.DataFrame):
        if len(frame) and "kind" not in frame.columns:
            raise BadInputError(f"{name} has no 'kind' column: give a findings frame")
        return frame.to_dict(orient="records")
    return [dict(row) for row in frame]


def _merge(group: list[dict]) -> dict:
    """One finding for several that share a fix: the widest fix, the worst severity, all evidence."""
    ranked = sorted(
        group,
        key=lambda r: (
            -len(r["_target"][2]) if r["_target"] and r["_target"][0] == "index" else 0,
            r["kind"] != "index_advice",
            SEVERITY_RANK.get(r["severity"], 9),
            -len(str(r.get("sql", ""))),
        ),
    )
    base = dict(ranked[0])
    others = ranked[1:]
    base["severity"] = min((r["severity"] for r in group), key=lambda s: SEVERITY_RANK.get(s, 9))
    benefits = [r.get("benefit_ms") for r in group if r.get("benefit_ms") is not None and pd.notna(r.get("benefit_ms"))]
    base["benefit_ms"] = max(benefits) if benefits else None
    if others:
        base["evidence"] = str(base["evidence"]) + "".join(f" | also {r['kind']}: {r['evidence']}" for r in others)
    base["sources"] = sorted({r["kind"] for r in group})
    return base


def recommend(
    health: pd.DataFrame | Iterable[dict] | None = None,
    statements: pd.DataFrame | None = None,
    plan_findings: pd.DataFrame | Iterable[dict] | None = None,
    *,
    engine=None,
    **advice_options,
) -> pd.DataFrame:
    """One ranked list of recommendations, each fix once.

    Findings whose fix SQL creates an index on the same table are merged when one column
    list is a left prefix of the other (the wider index serves both): one index advice,
    even when ``missing_tenant_index``, ``seq_scan_large_table``, ``index_advice`` and a
    plan finding all point at it. Findings dropping the same index, or vacuuming /
    analyzing the same table, merge the same way; the rest merge on (kind, subject).

    Parameters
    ----------
    health:
        Findings of :func:`perfkit.health.check`.
    statements:
        Either ``index_advice`` findings, or a statement snapshot / diff, which is turned
        into index advice (needs ``engine``).
    plan_findings:
        Findings of the plan analysis (perfkit.plans).
    engine:
        A perfkit engine, to turn a statement snapshot into index advice.
    **advice_options:
        Passed to :func:`index_advice`.

    Returns
    -------
    pandas.DataFrame
        Findings ranked by severity then benefit, with ``sources``: the kinds merged into each.
    """
    rows = _as_findings(health, "health")
    if statements is not None and len(statements):
        if "kind" in statements.columns:
            rows += _as_findings(statements, "statements")
        elif "query" in statements.columns:
            if engine is None:
                raise BadInputError("recommend() needs engine= to turn a statement snapshot into index advice")
            rows += _as_findings(index_advice(engine, statements=statements, **advice_options), "statements")
        else:
            raise BadInputError("statements must be findings (a 'kind' column) or a statement snapshot (a 'query' column)")
    rows += _as_findings(plan_findings, "plan_findings")
    for row in rows:
        row["_target"] = fix_target(str(row.get("sql") or ""))

    groups: list[list[dict]] = []
    index_groups: dict[str, list[tuple[tuple[str, ...], list[dict]]]] = {}
    keyed: dict[tuple, list[dict]] = {}
    # widest index proposals first, so narrower ones find the group they are a prefix of
    order = sorted(rows, key=lambda r: -len(r["_target"][2]) if r["_target"] and r["_target"][0] == "index" else 0)
    for row in order:
        target = row["_target"]
        if target and target[0] == "index":
            _, table, columns = target
            for lead, members in index_groups.setdefault(table, []):
                if lead[: len(columns)] == columns:
                    members.append(row)
                    break
            else:
                members = [row]
                index_groups[table].append((columns, members))
                groups.append(members)
            continue
        key = target or (row["kind"], row["subject"])
        if key not in keyed:
            keyed[key] = []
            groups.append(keyed[key])
        keyed[key].append(row)
    merged = [_merge(group) for group in groups]
    for row in merged:
        row.pop("_target", None)
    return findings_frame(merged)


__all__ = ["assess", "fix_target", "index_advice", "parameter_count", "plan_cost", "recommend", "whatif_cost"]


# -- the assessment --------------------------------------------------------------------------
def assess(assessments: Iterable, *, engine=None, statements: pd.DataFrame | None = None,
           ideas: pd.DataFrame | None = None, n: int = 10):
    """The recommendations assessment: every other assessment's findings and index advice, each fix once.

    Parameters
    ----------
    assessments:
        :class:`perfkit.assessment.Assessment` objects (health, plans, load tests, logs, statements).
    engine, statements:
        With both: index advice for the snapshot's costliest statements (hypopg where installed).
    ideas:
        Index advice findings already made (the sample data's), instead of ``engine``.
    n:
        How many recommendations ``facts["recommendations"]`` keeps for summary.json.

    Returns
    -------
    Assessment
        ``source="advice"``; tables ``recommendations`` (ranked, with ``sources``) and
        ``index_advice``; findings: the index advice (the others are their own sections').
    """
    from perfkit.assessment import Assessment, merge_findings

    assessments = [a for a in assessments if a is not None and a.source != "advice"]
    plan_found = merge_findings(*[a.findings for a in assessments if a.source == "plans"])
    others = merge_findings(*[a.findings for a in assessments if a.source != "plans"])
    if ideas is None and engine is not None and statements is not None and len(statements):
        ideas = index_advice(engine, statements=statements)
    ideas = findings_frame(ideas)
    ranked = recommend(health=others if len(others) else None, statements=ideas if len(ideas) else None,
                       plan_findings=plan_found if len(plan_found) else None)
    keep = [c for c in ("severity", "kind", "subject", "recommendation", "sql", "benefit_ms", "sources", "fix")
            if c in ranked.columns]
    from perfkit.output import to_jsonable

    return Assessment("advice", "Recommendations", findings=ideas,
                      tables={"recommendations": ranked, "index_advice": ideas},
                      facts={"count": int(len(ranked)), "recommendations": to_jsonable(ranked[keep].head(n))})

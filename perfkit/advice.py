"""Recommendations: index advice from costly statements (pglast + hypopg), and one ranked merged list.

``index_advice(engine)`` proposes indexes; ``recommend(health=..., statements=..., plan_findings=...)`` merges
them on their fixes (:class:`perfkit.sql.Fix`): each fix once, nothing that exists or is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from perfkit import sql
from perfkit.errors import BadInputError, PerfkitError
from perfkit.findings import SEVERITY_RANK, finding, findings_frame
from perfkit.output import is_frame, is_missing
from perfkit.sql import Fix, qualified

if TYPE_CHECKING:  # pandas only where a frame is read: recommend_rows() of finding dicts needs none
    import pandas as pd

# one row per index column: keys (with order and a non-default operator class) then INCLUDE columns
INDEX_COLUMNS_SQL = """
SELECT n.nspname AS schema, t.relname AS table, ic.relname AS index, am.amname AS method,
       i.indisunique AS is_unique, i.indnkeyatts AS nkeys, k.pos,
       CASE WHEN i.indkey[k.pos - 1] <> 0 THEN a.attname::text
            ELSE pg_get_indexdef(i.indexrelid, k.pos, true) END AS column_name,
       i.indkey[k.pos - 1] = 0 AS is_expression,
       CASE WHEN k.pos <= i.indnkeyatts THEN i.indoption[k.pos - 1] ELSE 0 END AS option,
       CASE WHEN k.pos <= i.indnkeyatts AND NOT oc.opcdefault THEN oc.opcname::text END AS opclass,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
CROSS JOIN LATERAL generate_series(1, i.indnatts) AS k(pos)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.pos - 1]
LEFT JOIN pg_opclass oc ON oc.oid = i.indclass[k.pos - 1] AND k.pos <= i.indnkeyatts
WHERE i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, t.relname, ic.relname, k.pos
"""

PLANNABLE = ("SelectStmt", "UpdateStmt", "DeleteStmt")  # what EXPLAIN can cost without running it


def is_plannable(text: str) -> bool:
    """True for one SELECT, UPDATE or DELETE (PostgreSQL's parser, via perfkit.plans.capture)."""
    from perfkit.plans import capture

    try:
        return capture.inspect_statement(text).kind in PLANNABLE
    except BadInputError:
        return False


def existing_indexes(engine_or_conn) -> list[Fix]:
    """The valid indexes of the database as ``create_index`` fixes (read from pg_index).

    Each has its schema, table, name, method, key columns (expressions marked, ``DESC`` /
    ``NULLS`` and a non-default operator class kept), ``INCLUDE`` columns, the predicate of a
    partial index and ``unique``: what :func:`recommend` needs to leave out proposals an index
    already serves.
    """
    from perfkit import db

    frame = db.query(engine_or_conn, INDEX_COLUMNS_SQL)
    out: list[Fix] = []
    for (schema, table, name), rows in frame.groupby(["schema", "table", "index"], sort=False):
        first = rows.iloc[0]
        keys, include = [], []
        for row in rows.itertuples(index=False):
            if row.pos > row.nkeys:
                include.append(row.column_name)
                continue
            descending, nulls_first = bool(int(row.option) & 1), bool(int(row.option) & 2)
            nulls = "last" if descending and not nulls_first else "first" if nulls_first and not descending else None
            keys.append(sql.IndexColumn(row.column_name, descending=descending, nulls=nulls,
                                        opclass=row.opclass if isinstance(row.opclass, str) else None,
                                        expression=bool(row.is_expression)))
        predicate = first["predicate"] if isinstance(first["predicate"], str) else None
        out.append(replace(sql.create_index(schema, table, keys, include=include, where=predicate,
                                            method=first["method"], name=name), unique=bool(first["is_unique"])))
    return out


def _existing_leads(existing: Iterable[Fix]) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """``{(schema, table): [key columns...]}`` of the plain (full, column-only) indexes."""
    leads: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for index in existing:
        if index.where is None and not any(c.expression for c in index.columns):
            leads.setdefault((index.schema, index.table), []).append(index.key_columns)
    return leads


def _served(columns: tuple[str, ...], existing: list[tuple[str, ...]]) -> bool:
    return any(index[: len(columns)] == columns for index in existing)


def _candidates(statements: pd.DataFrame, catalog, existing, tenant_columns) -> dict:
    """``{(schema, table, columns): [statement rows...]}`` for indexes no existing one serves."""
    from perfkit.health.workload import column_workload, proposed_index_columns

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
    tenant_columns=None,
    min_cost_reduction: float = 0.5,
    use_hypopg: bool = True,
    existing: list[Fix] | None = None,
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
        Columns holding the tenant; the one a statement filters on leads the index. Default:
        inferred (foreign keys to a tenants table, tenant-like names, the workload).
    min_cost_reduction:
        The share of plan cost a hypothetical index must save (default 0.5).
    use_hypopg:
        Verify with hypopg when installed (default True).
    existing:
        The database's indexes (:func:`existing_indexes`), when the caller has read them already.

    Returns
    -------
    pandas.DataFrame
        ``index_advice`` findings, with ``cost_before``, ``cost_after``, ``table``,
        ``columns`` and ``queryids``; ``benefit_ms`` is the statements' time per day
        (since the statistics reset, at least one day) scaled by the cost saved.
    """
    from sqlalchemy.engine import Engine

    from perfkit import db
    from perfkit.health.common import TENANT_COLUMNS, number, share_text
    from perfkit.health.workload import statement_stats, statements_age_seconds, table_columns
    from perfkit.plans import capture

    if tenant_columns is None:
        tenant_columns = TENANT_COLUMNS
    if isinstance(engine_or_conn, Engine):
        options = dict(statements=statements, top_n=top_n, min_total_ms=min_total_ms, tenant_columns=tenant_columns,
                       min_cost_reduction=min_cost_reduction, use_hypopg=use_hypopg, existing=existing)
        with db.session(engine_or_conn) as conn:
            return index_advice(conn, **options)
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
    hypopg_schema = capture.hypopg_schema(conn) if use_hypopg else None
    existing = existing_indexes(conn) if existing is None else existing
    if hypopg_schema is not None:  # the workload-wide advisor (perfkit.advisor)
        from perfkit import advisor

        result = advisor.advise(conn.engine, statements, existing=existing, tenant_columns=tenant_columns,
                                top_n=top_n, min_cost_reduction=min_cost_reduction, statements_age_s=age)
        frame = result.proposals
        frame.attrs["notes"] = list(result.notes)
        frame.attrs["rejected"] = result.rejected
        frame.attrs["facts"] = result.facts
        return frame
    tenant_columns = TENANT_COLUMNS if tenant_columns is None else tenant_columns
    candidates = _candidates(statements, table_columns(conn), _existing_leads(existing), tuple(tenant_columns))
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
        fix = sql.create_index(schema, table, columns)
        before = after = None
        if hypopg_schema is not None and is_plannable(str(top["query"])):
            try:  # the one what-if path: perfkit.plans.capture (hypopg, a generic plan, nothing runs)
                tried = capture.whatif(conn.engine, str(top["query"]), replace(fix, concurrently=False).sql,
                                       schema=hypopg_schema)
                before, after = tried.cost_before, tried.cost_after
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
                benefit_ms=benefit,
                fix=fix,
                table=qualified(schema, table),
                columns=list(columns),
                cost_before=before,
                cost_after=after,
                queryids=[int(s["queryid"]) for s in served if not is_missing(s["queryid"])],
            )
        )
    return findings_frame(rows)


# -- merging --------------------------------------------------------------------------------
_MAINTENANCE = ("vacuum", "vacuum_full", "analyze")


def _as_findings(frame, name: str) -> list[dict]:
    if frame is None:
        return []
    if is_frame(frame):
        if len(frame) and "kind" not in frame.columns:
            raise BadInputError(f"{name} has no 'kind' column: give a findings frame")
        return frame.to_dict(orient="records")
    return [dict(row) for row in frame]


def _in_schema(fix: Fix, schema: str | None) -> Fix:
    """``fix`` (and what it requires and runs after) in ``schema`` when it names none."""
    if fix.schema or not schema or not fix.table and fix.action not in ("drop_index", "reindex"):
        return fix
    return replace(fix, schema=schema, requires=tuple(_in_schema(r, schema) for r in fix.requires),
                   then=tuple(_in_schema(t, schema) for t in fix.then))


def _schemas(fixes: Iterable[Fix]) -> dict[str, set[str]]:
    """``{table: {schemas it is named in}}`` over the fixes that name a schema."""
    known: dict[str, set[str]] = {}
    for fix in fixes:
        if fix.schema and fix.table:
            known.setdefault(fix.table, set()).add(fix.schema)
    return known


def _resolve(fix: Fix, known: dict[str, set[str]]) -> Fix:
    """A schema-less fix (a plan without VERBOSE) in the schema of the schema'd ones on its table
    when they name one schema; else it stays without one (its key takes it to be ``public``)."""
    if fix.schema or not fix.table:
        return fix
    schemas = known.get(fix.table, set())
    return _in_schema(fix, next(iter(schemas))) if len(schemas) == 1 else fix


def _plain_order(fix: Fix) -> Fix:
    """A btree index with its keys ascending: scanned either way, it serves the same lookups."""
    if fix.method != "btree":
        return fix
    return replace(fix, columns=tuple(replace(c, descending=False, nulls=None) for c in fix.columns))


def _dropped_as_index(drop: Fix, row: dict, by_name: dict[tuple, Fix]) -> Fix | None:
    """The index a drop fix removes, as a ``create_index`` fix (None when its keys are unknown).

    The table and keys come from the fix, else from the finding's ``table`` and the existing
    index of that name."""
    schema = drop.schema or sql.DEFAULT_SCHEMA
    known = by_name.get((schema, drop.name))
    table = drop.table or (known.table if known else None)
    if not table and isinstance(row.get("table"), str):
        table = sql.split_name(row["table"])[1]
    columns = drop.columns or (known.columns if known else ())
    if not table or not columns:
        return None
    method = known.method if known and not drop.columns else drop.method
    return sql.create_index(schema, table, columns, method=method, name=drop.name)


def _merge_key(row: dict) -> tuple:
    """What a non-index finding merges on: its fix's key (VACUUM and ANALYZE of one table are one
    maintenance fix, whatever comes before or after them), else its kind and subject."""
    fix = row["fix"]
    if fix is None:
        return ("finding", row["kind"], row["subject"])
    parts = (*fix.requires, fix, *fix.then)
    if fix.action in (*_MAINTENANCE, "alter_table", "reset_table") and any(p.action in _MAINTENANCE for p in parts):
        return ("maintain", fix.schema or sql.DEFAULT_SCHEMA, fix.table)
    return fix.key()


def _serves(lead: Fix, lead_row: dict, fix: Fix) -> bool:
    """``lead`` (the group's widest index) serves ``fix``: its keys extend ``fix``'s (a btree in either
    direction). A partial index the workload-wide advisor chose also takes a full proposal of the same
    keys from another finding (``missing_tenant_index``...): the advisor costed it on the statements."""
    if lead.key() == fix.key() or _plain_order(lead).covers(_plain_order(fix)):
        return True
    if lead.where and not fix.where and lead_row.get("kind") == "index_advice":
        return _plain_order(lead).covers(replace(_plain_order(fix), where=lead.where))
    return False


def _width(row: dict) -> int:
    fix = row["fix"]
    return len(fix.columns) + len(fix.include) if fix is not None and fix.action == "create_index" else 0


def _merge(group: list[dict]) -> dict:
    """One finding for several that share a fix: the widest fix, the worst severity, all evidence."""
    ranked = sorted(
        group,
        key=lambda r: (
            -_width(r),
            r["kind"] != "index_advice",
            SEVERITY_RANK.get(r["severity"], 9),
            -len(str(r.get("sql", ""))),
        ),
    )
    base = dict(ranked[0])
    others = ranked[1:]
    base["severity"] = min((r["severity"] for r in group), key=lambda s: SEVERITY_RANK.get(s, 9))
    benefits = [r.get("benefit_ms") for r in group if not is_missing(r.get("benefit_ms"))]
    base["benefit_ms"] = max(benefits) if benefits else None
    if others:
        base["evidence"] = str(base["evidence"]) + "".join(f" | also {r['kind']}: {r['evidence']}" for r in others)
    base["sources"] = sorted({r["kind"] for r in group})
    return base


def recommend(
    health=None,
    statements=None,
    plan_findings=None,
    *,
    engine=None,
    existing: Iterable[Fix] | None = None,
    **advice_options,
):
    """One ranked list of recommendations, each fix once.

    Findings are merged on their fix (:class:`perfkit.sql.Fix`; a finding that has only ``sql``
    text, saved by an older perfkit, is read back once with :func:`perfkit.sql.parse_fix`):

    - index proposals on one table merge when one is served by the other (the same keys, or a
      left prefix of the wider one): one index advice, even when ``missing_tenant_index``,
      ``seq_scan_large_table``, ``index_advice`` and a plan finding all point at it, with or
      without ``public.`` (a fix without a schema, from a plan without VERBOSE, is in the schema
      the other findings name for that table, else ``public``);
    - an index an existing one serves (``existing``: the same keys, or its leading columns) is
      never proposed, nor one the same list drops (the dropped index's keys, or a prefix of
      them: the index that is kept serves it);
    - drops of one index, and vacuums / analyzes of one table, merge; the rest merge on their
      fix's key, or on (kind, subject) without a fix.

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
        A perfkit engine, to turn a statement snapshot into index advice, and to read the
        existing indexes when ``existing`` is not given.
    existing:
        The database's indexes as ``create_index`` fixes (:func:`existing_indexes`); none when
        neither this nor ``engine`` is given.
    **advice_options:
        Passed to :func:`index_advice`.

    Returns
    -------
    pandas.DataFrame
        Findings ranked by severity then benefit, with ``sources``: the kinds merged into each,
        and ``fix``: the winning Fix.
    """
    return findings_frame(recommend_rows(health, statements, plan_findings, engine=engine, existing=existing,
                                         **advice_options))


def recommend_rows(health=None, statements=None, plan_findings=None, *, engine=None,
                   existing: Iterable[Fix] | None = None, **advice_options) -> list[dict]:
    """:func:`recommend`'s findings as dicts, one per fix, not yet ranked (``findings_frame`` of
    them is what :func:`recommend` returns); without pandas when the findings are dicts."""
    if existing is None and engine is not None:
        existing = existing_indexes(engine)
    existing = [f for f in (sql.as_fix(e) for e in existing or ()) if f is not None and f.action == "create_index"]
    rows = _as_findings(health, "health")
    if statements is not None and len(statements):
        if "kind" in statements.columns:
            rows += _as_findings(statements, "statements")
        elif "query" in statements.columns:
            if engine is None:
                raise BadInputError("recommend() needs engine= to turn a statement snapshot into index advice")
            ideas = index_advice(engine, statements=statements, existing=existing, **advice_options)
            rows += _as_findings(ideas, "statements")
        else:
            raise BadInputError("statements must be findings (a 'kind' column) or a statement snapshot (a 'query' column)")
    rows += _as_findings(plan_findings, "plan_findings")

    fixes = [sql.finding_fix(row) for row in rows]
    known = _schemas([*existing, *(f for f in fixes if f is not None)])
    for row, fix in zip(rows, fixes, strict=True):
        resolved = _resolve(fix, known) if fix is not None else None
        if resolved is not None and resolved is not fix:
            row["sql"] = resolved.sql  # now names the schema it is in
        row["fix"] = resolved
    by_name = {(e.schema, e.name): e for e in existing}
    dropped = [d for d in (_dropped_as_index(r["fix"], r, by_name) for r in rows
                           if r["fix"] is not None and r["fix"].action == "drop_index") if d is not None]
    served = [_plain_order(e) for e in existing]

    def unwanted(fix: Fix) -> bool:
        plain = _plain_order(fix)
        return any(e.covers(plain) for e in served) or any(_plain_order(d).covers(plain) for d in dropped)

    rows = [r for r in rows if r["fix"] is None or r["fix"].action != "create_index" or not unwanted(r["fix"])]

    groups: list[list[dict]] = []
    index_groups: list[tuple[Fix, list[dict]]] = []
    keyed: dict[tuple, list[dict]] = {}
    # widest index proposals first, so narrower ones find the group of an index that serves them
    for row in sorted(rows, key=lambda r: -_width(r)):
        fix = row["fix"]
        if fix is not None and fix.action == "create_index":
            for lead, members in index_groups:
                if _serves(lead, members[0], fix):
                    members.append(row)
                    break
            else:
                members = [row]
                index_groups.append((fix, members))
                groups.append(members)
            continue
        key = _merge_key(row)
        if key not in keyed:
            keyed[key] = []
            groups.append(keyed[key])
        keyed[key].append(row)
    return [_merge(group) for group in groups]


__all__ = ["assess", "existing_indexes", "index_advice", "is_plannable", "recommend", "recommend_rows"]


# -- the assessment --------------------------------------------------------------------------
def with_verified(ranked: pd.DataFrame, verified: Iterable[dict] | None) -> pd.DataFrame:
    """``ranked`` with a ``verified`` column (``verified: 41x faster on 3 statements, 12 MB, built in
    0.4 s on <server>``) for each index a ``perfkit verify`` run measured, also added to its evidence."""
    verified = list(verified or [])
    if not verified or not len(ranked) or "fix" not in ranked.columns:
        return ranked
    from perfkit.verify import verified_text

    texts = [verified_text(f, verified) if isinstance(f, Fix) and f.action == "create_index" else ""
             for f in ranked["fix"]]
    out = ranked.assign(verified=texts)
    out["evidence"] = [f"{e}; {t}" if t else e for e, t in zip(out["evidence"], texts, strict=True)]
    return out


def assess(assessments: Iterable, *, engine=None, statements: pd.DataFrame | None = None,
           ideas: pd.DataFrame | None = None, existing: list[Fix] | None = None, n: int = 10,
           verified: Iterable[dict] | None = None):
    """The recommendations assessment: every other assessment's findings and index advice, each fix once.

    Parameters
    ----------
    assessments:
        :class:`perfkit.assessment.Assessment` objects (health, plans, load tests, logs, statements).
    engine, statements:
        With both: index advice for the snapshot's costliest statements (hypopg where installed).
    ideas:
        Index advice findings already made (the sample data's), instead of ``engine``.
    existing:
        The database's indexes as ``create_index`` fixes (:func:`existing_indexes`; read once
        from ``engine`` when not given): never proposed again.
    n:
        How many recommendations ``facts["recommendations"]`` keeps for summary.json.
    verified:
        Verifications kept by ``perfkit verify`` (:func:`perfkit.verify.stored_results`): the
        recommendations they measured say so (``verified`` column and evidence).

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
    if ideas is None:  # a health assessment has made them already: one index-advice pass per run
        made = [a.tables["index_advice"] for a in assessments if a.source == "health" and "index_advice" in a.tables]
        ideas = made[0] if made else None
    if existing is None and engine is not None:
        existing = existing_indexes(engine)
    if ideas is None and engine is not None and statements is not None and len(statements):
        ideas = index_advice(engine, statements=statements, existing=existing)
    ideas = findings_frame(ideas)
    ranked = recommend(health=others if len(others) else None, statements=ideas if len(ideas) else None,
                       plan_findings=plan_found if len(plan_found) else None, existing=existing)
    ranked = with_verified(ranked, verified)
    keep = [c for c in ("severity", "kind", "subject", "recommendation", "sql", "benefit_ms", "sources", "fix",
                        "verified") if c in ranked.columns]
    from perfkit.output import to_jsonable

    return Assessment("advice", "Recommendations", findings=ideas,
                      tables={"recommendations": ranked, "index_advice": ideas},
                      facts={"count": int(len(ranked)), "recommendations": to_jsonable(ranked[keep].head(n))})

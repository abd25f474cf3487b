"""Query budgets per route, declared in the SLO file and gated in CI.

The field guides' rules of thumb — "more than 10 statements per request", "the same statement 3+
times in one request", "this pattern must use that index" — written down once::

    [budgets.routes."/api/invoices*"]
    max_statements = 10      # statements per request (transaction control not counted)
    max_db_ms = 50           # database time per request
    max_repeats = 2          # one statement shape at most this often in a request (N+1)

    [budgets.indexes]
    "invoices WHERE tenant_id AND status" = "invoices_tenant_status_idx"

Routes are judged per request from the server log (statements grouped by their request comment:
sqlcommenter ``request_id``/``traceparent``, see :func:`perfkit.nplusone.requests`); a budget is
broken when the 95th percentile of its requests is over it (the worst request is named too).
Index expectations are judged on the generic plan of every statement of the database's
pg_stat_statements (and of the log) that reads the table and filters on those columns.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perfkit.assessment import Assessment, merge_findings
from perfkit.errors import BadInputError
from perfkit.findings import finding, findings_frame

ROUTE_LIMITS = {"max_statements": "statements per request", "max_db_ms": "database ms per request",
                "max_repeats": "repeats of one statement in a request"}
_SHORT = {"max_statements": "statements", "max_db_ms": "db ms", "max_repeats": "repeats"}
ROUTE_TABLE_COLUMNS = ["route", "pattern", "requests", "statements_p95", "statements_max", "db_ms_p95", "db_ms_max",
                       "repeats_max", "max_statements", "max_db_ms", "max_repeats", "verdict"]
INDEX_TABLE_COLUMNS = ["pattern", "expected_index", "queryid", "query", "indexes_used", "verdict"]
_PATTERN = re.compile(r"^\s*(?:(?P<schema>[A-Za-z_][\w$]*)\.)?(?P<table>[A-Za-z_][\w$]*)"
                      r"(?:\s+WHERE\s+(?P<columns>.+?))?\s*$", re.I)


@dataclass(frozen=True)
class RouteBudget:
    pattern: str
    max_statements: float | None = None
    max_db_ms: float | None = None
    max_repeats: float | None = None

    def matches(self, route: str) -> bool:
        if self.pattern.startswith("re:"):
            return re.search(self.pattern[3:], route) is not None
        return fnmatch.fnmatchcase(route, self.pattern)


@dataclass(frozen=True)
class IndexExpectation:
    """Statements reading ``table`` and filtering on every one of ``columns`` must use ``index``."""

    pattern: str
    schema: str | None
    table: str
    columns: tuple[str, ...]
    index: str


@dataclass
class Budgets:
    routes: list[RouteBudget] = field(default_factory=list)
    indexes: list[IndexExpectation] = field(default_factory=list)

    def route_budget(self, route: str) -> RouteBudget | None:
        """The first budget whose pattern matches ``route``."""
        return next((b for b in self.routes if b.matches(route)), None)


def budgets_from_dict(doc: dict | None, *, path=None) -> Budgets:
    """Budgets from the SLO file's ``[budgets]`` table (empty Budgets when there is none)."""
    budgets = Budgets()
    if not doc:
        return budgets
    if not isinstance(doc, dict):
        raise BadInputError("budgets must be a table: [budgets.routes.\"/api/...\"] and [budgets.indexes]", path=path)
    unknown = set(doc) - {"routes", "indexes"}
    if unknown:
        raise BadInputError(f"unknown section(s) budgets.{', budgets.'.join(sorted(unknown))}; expected "
                            "[budgets.routes.\"PATTERN\"] and [budgets.indexes]", path=path)
    for pattern, spec in (doc.get("routes") or {}).items():
        if not isinstance(spec, dict):
            raise BadInputError(f"budgets.routes.{pattern!r} must be a table, e.g. max_statements = 10", path=path)
        wrong = set(spec) - set(ROUTE_LIMITS)
        if wrong:
            raise BadInputError(f"budgets.routes.{pattern!r}: unknown limit(s) {', '.join(sorted(wrong))}; known: "
                                f"{', '.join(ROUTE_LIMITS)}", path=path)
        limits = {}
        for name, value in spec.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BadInputError(f"budgets.routes.{pattern!r}.{name} must be a number of 0 or more", path=path)
            limits[name] = float(value)
        if not limits:
            raise BadInputError(f"budgets.routes.{pattern!r} sets no limit; known: {', '.join(ROUTE_LIMITS)}", path=path)
        budgets.routes.append(RouteBudget(pattern, **limits))
    for pattern, index in (doc.get("indexes") or {}).items():
        match = _PATTERN.match(pattern)
        if match is None or not isinstance(index, str) or not index.strip():
            raise BadInputError(f"budgets.indexes: {pattern!r} = {index!r} must read \"TABLE WHERE COLUMN AND COLUMN\" "
                                "= \"index_name\"", path=path)
        columns = tuple(c.strip().lower() for c in re.split(r"\s+AND\s+", match["columns"] or "", flags=re.I)
                        if c.strip())
        budgets.indexes.append(IndexExpectation(pattern, match["schema"], match["table"].lower(), columns,
                                                index.strip()))
    return budgets


def load_budgets(path) -> Budgets:
    """The ``[budgets]`` of an SLO file (BadInputError when the file has none)."""
    import tomllib

    from perfkit.loadtests.slo import load_targets

    load_targets(path)  # the file's other tables are checked as `perfkit loadtest --slo` would
    doc = tomllib.loads(Path(path).read_text())
    budgets = budgets_from_dict(doc.get("budgets"), path=path)
    if not budgets.routes and not budgets.indexes:
        raise BadInputError("no [budgets.routes.\"PATTERN\"] or [budgets.indexes] in the SLO file", path=path)
    return budgets


# -- per request, from the log ----------------------------------------------------------------------

def per_request(logs: pd.DataFrame) -> pd.DataFrame:
    """One row per request with a route: its statements (transaction control not counted), database
    ms, and how often its most repeated statement shape ran (and which)."""
    from perfkit.nplusone import requests

    runs = requests(logs)
    runs = runs[(runs["route"] != "") & ~runs["control"]] if len(runs) else runs
    if runs.empty:
        return pd.DataFrame(columns=["request", "route", "statements", "db_ms", "repeats", "repeated"])
    shape = runs["fingerprint"].where(runs["fingerprint"].notna(), runs["normalized"])
    runs = runs.assign(_shape=shape)
    rows = []
    for (request, route), group in runs.groupby(["request", "route"], sort=False):
        counts = group["_shape"].value_counts()
        top = counts.index[0] if len(counts) else None
        repeated = group.loc[group["_shape"] == top, "normalized"].iloc[0] if top is not None else ""
        rows.append({"request": request, "route": route, "statements": int(len(group)),
                     "db_ms": float(group["duration_ms"].fillna(0).sum()),
                     "repeats": int(counts.iloc[0]) if len(counts) else 0, "repeated": repeated})
    return pd.DataFrame(rows)


def _p95(values: pd.Series) -> float:
    return float(values.quantile(0.95, interpolation="linear")) if len(values) else float("nan")


def judge_routes(requests_table: pd.DataFrame, budgets: Budgets) -> tuple[pd.DataFrame, list[dict]]:
    """The routes' figures against their budgets (``ROUTE_TABLE_COLUMNS``) and a
    ``route_over_budget`` finding per broken limit."""
    rows, found = [], []
    if requests_table.empty:
        return pd.DataFrame(columns=ROUTE_TABLE_COLUMNS), found
    for route, group in requests_table.groupby("route", sort=True):
        budget = budgets.route_budget(str(route))
        if budget is None:
            continue
        figures = {"statements": _p95(group["statements"]), "db_ms": _p95(group["db_ms"]),
                   "repeats": float(group["repeats"].max())}
        broken = []
        for name, measured, worst_column in (("max_statements", figures["statements"], "statements"),
                                             ("max_db_ms", figures["db_ms"], "db_ms"),
                                             ("max_repeats", figures["repeats"], "repeats")):
            limit = getattr(budget, name)
            if limit is None or math.isnan(measured) or measured <= limit:
                continue
            worst = group.sort_values(worst_column, ascending=False).iloc[0]
            broken.append(name)
            what = ROUTE_LIMITS[name]
            measured_text = f"{measured:,.1f}" if name == "max_db_ms" else f"{measured:,.0f}"
            basis = "most in one request" if name == "max_repeats" else "p95 of its requests"
            evidence = (f"{what}: {measured_text} ({basis}, {len(group):,} request{'s' if len(group) != 1 else ''}) "
                        f"over the budget of {limit:g} for {budget.pattern}; worst: {worst['request']} with "
                        f"{worst[worst_column]:,.{1 if name == 'max_db_ms' else 0}f}")
            if name == "max_repeats":
                evidence += f" runs of {str(worst['repeated'])[:120]}"
            advice = {"max_statements": "Load what the route needs in fewer statements (joins, IN lists, "
                                        "eager loading), or raise the budget if the work is really needed.",
                      "max_db_ms": "Look at the route's slowest statements (perfkit logs, perfkit explain) and "
                                   "their index advice.",
                      "max_repeats": "One statement per row of a list is an N+1: fetch the rows in one "
                                     "statement (IN / ANY($1), a join, the ORM's eager loading)."}[name]
            found.append(finding("route_over_budget", "critical", str(route), evidence, advice,
                                 route=str(route), budget=name, limit=limit, measured=measured))
        rows.append({"route": route, "pattern": budget.pattern, "requests": len(group),
                     "statements_p95": figures["statements"], "statements_max": float(group["statements"].max()),
                     "db_ms_p95": figures["db_ms"], "db_ms_max": float(group["db_ms"].max()),
                     "repeats_max": figures["repeats"], "max_statements": budget.max_statements,
                     "max_db_ms": budget.max_db_ms, "max_repeats": budget.max_repeats,
                     "verdict": "over: " + ", ".join(_SHORT[b] for b in broken) if broken else "within budget"})
    return pd.DataFrame(rows, columns=ROUTE_TABLE_COLUMNS), found


# -- expected indexes, from the generic plan -------------------------------------------------------

def _matching(statements: pd.DataFrame, expectation: IndexExpectation, columns_by_table) -> pd.DataFrame:
    from perfkit.health.predicates import JOIN, column_uses, resolve_uses

    keep = []
    for row in statements.itertuples(index=False):
        uses = [(schema, table, use) for schema, table, use in resolve_uses(column_uses(str(row.query)), columns_by_table)
                if table.lower() == expectation.table and (expectation.schema is None or schema == expectation.schema)
                and use.usage != JOIN]
        filtered = {use.column.lower() for _, _, use in uses if use.usage in ("equality", "range")}
        keep.append(bool(uses) and set(expectation.columns) <= filtered)
    return statements[keep] if len(statements) else statements


def judge_indexes(engine, statements: pd.DataFrame, budgets: Budgets) -> tuple[pd.DataFrame, list[dict]]:
    """Each expected index against the generic plan of every statement its pattern covers."""
    from perfkit.errors import PerfkitError
    from perfkit.health.context import Context
    from perfkit.plans.capture import explain

    rows, found = [], []
    if not budgets.indexes:
        return pd.DataFrame(columns=INDEX_TABLE_COLUMNS), found
    columns = Context(engine).table_columns()
    for expectation in budgets.indexes:
        matching = _matching(statements, expectation, columns)
        if matching.empty:
            rows.append({"pattern": expectation.pattern, "expected_index": expectation.index, "queryid": None,
                         "query": "", "indexes_used": [], "verdict": "no statement matches"})
            continue
        for st in matching.itertuples(index=False):
            try:
                plan = explain(engine, str(st.query), source=f"queryid {st.queryid} (generic plan)")
            except PerfkitError as err:
                rows.append({"pattern": expectation.pattern, "expected_index": expectation.index,
                             "queryid": st.queryid, "query": st.query, "indexes_used": [],
                             "verdict": f"not checked: {err}"})
                continue
            used = sorted({str(i) for i in plan.nodes["index_name"].dropna() if str(i)})
            ok = expectation.index in used
            rows.append({"pattern": expectation.pattern, "expected_index": expectation.index, "queryid": st.queryid,
                         "query": st.query, "indexes_used": used, "verdict": "uses it" if ok else "does not use it"})
            if not ok:
                scans = ", ".join(f"{r.node_type} on {r.relation}" for r in plan.nodes.itertuples(index=False)
                                  if r.relation) or "no scan"
                found.append(finding(
                    "missing_expected_index", "critical", f"queryid {st.queryid}",
                    f"the budget says {expectation.pattern} uses {expectation.index}; its generic plan "
                    f"{'uses ' + ', '.join(used) if used else 'uses no index'} ({scans})",
                    f"Check that {expectation.index} exists and is valid, and that the statement's filter still "
                    "matches its leading columns; perfkit explain --queryid shows the plan.",
                    queryid=st.queryid, query=st.query, expected_index=expectation.index,
                ))
    return pd.DataFrame(rows, columns=INDEX_TABLE_COLUMNS), found


def assess(budgets: Budgets, *, logs: pd.DataFrame | None = None, engine=None,
           statements: pd.DataFrame | None = None) -> Assessment:
    """The budgets judged: ``tables["routes"]`` (from the log's requests) and ``tables["indexes"]``
    (from the generic plans of ``statements``, default the database's pg_stat_statements), with
    ``route_over_budget`` and ``missing_expected_index`` findings (critical: a CI gate)."""
    tables, found, notes = {}, [], []
    if budgets.routes:
        if logs is None:
            notes.append("route budgets need the server log (--logs): not judged")
        else:
            table, route_found = judge_routes(per_request(logs), budgets)
            tables["routes"] = table
            found += route_found
            unmatched = [b.pattern for b in budgets.routes if b.pattern not in set(table["pattern"])]
            if unmatched:
                notes.append(f"no request in the log for the budget(s) {', '.join(unmatched)}")
    if budgets.indexes:
        if engine is None:
            notes.append("index expectations need the database (--dsn): not checked")
        else:
            if statements is None:
                from perfkit import db
                from perfkit import statements as pgss

                snap = pgss.snapshot(engine)
                database = db.query(engine, "SELECT current_database() AS d")["d"].iloc[0]
                statements = snap[~pgss.own_statements(snap) & (snap["datname"] == database)
                                  & (snap["query"] != pgss.HIDDEN_QUERY)]
            table, index_found = judge_indexes(engine, statements, budgets)
            tables["indexes"] = table
            found += index_found
    over = int(sum(1 for f in found))
    facts = {"over_budget": over, "routes_judged": int(len(tables.get("routes", []))),
             "indexes_checked": int(len(tables.get("indexes", [])))}
    return Assessment("budgets", "Query budgets", findings=merge_findings(findings_frame(found)),
                      tables=tables, facts=facts, notes=notes)


__all__ = ["Budgets", "IndexExpectation", "RouteBudget", "assess", "budgets_from_dict", "judge_indexes",
           "judge_routes", "load_budgets", "per_request"]

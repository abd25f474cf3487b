"""Per-tenant plans: a statement whose plan for the largest tenant differs from a typical one's.

In a multi-tenant table one big tenant can hold a third of the rows while most hold a few
hundred. The planner then wants a sequential scan for the big tenant and an index scan for the
others; a prepared statement that settles on one generic plan runs the wrong one for somebody
(the small tenants' index scan looping over the big tenant's rows, or the big tenant's scan for
everyone). This check takes the costliest statements that filter on the tenant column, picks the
largest and a typical tenant from ``pg_stats`` (never a scan of the table), and EXPLAINs the
statement (no ANALYZE: nothing runs) for each and as the generic plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from perfkit import db, sql
from perfkit.errors import BadInputError, PerfkitError
from perfkit.findings import finding
from perfkit.health.common import TENANT_COLUMNS, number
from perfkit.health.context import TABLE_COLUMNS_SQL, Check
from perfkit.health.predicates import EQUALITY, column_uses, resolve_uses
from perfkit.parameters import parameter_columns, parameter_count

STATS_SQL = """
SELECT DISTINCT ON (s.attname) s.schemaname AS schema, s.tablename AS table, s.attname AS column, s.n_distinct,
       s.most_common_vals::text AS mcv, s.most_common_freqs AS mcf, s.histogram_bounds::text AS histogram,
       greatest(c.reltuples, 0) AS reltuples
FROM pg_stats s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE s.schemaname = :schema AND s.tablename = :table AND s.attname = ANY(:columns)
ORDER BY s.attname, s.inherited  -- a parent of inheritance children has two rows: its own first
"""


def _array(text) -> list[str]:
    """The elements of a PostgreSQL array literal as text (``{1,2,"a b"}``)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    body = str(text)[1:-1]
    out, current, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    if body:
        out.append("".join(current))
    return out


@dataclass(frozen=True)
class Tenants:
    """The largest and a typical tenant of a table, from its statistics."""

    column: str
    largest: str
    largest_rows: float
    typical: str
    typical_rows: float
    table_rows: float


def tenants_of(stats: pd.Series) -> Tenants | None:
    """The largest tenant (the most common value) and a typical one (a value of the histogram's
    middle, which is no common value; else the least common of the common values)."""
    values, freqs = _array(stats["mcv"]), list(stats["mcf"] or [])
    if not values or len(values) != len(freqs):
        return None
    rows = float(stats["reltuples"])
    n_distinct = float(stats["n_distinct"])
    distinct = n_distinct if n_distinct > 0 else -n_distinct * rows
    top = max(range(len(freqs)), key=lambda i: freqs[i])
    histogram = _array(stats["histogram"])
    if histogram and distinct > len(values):
        typical = histogram[len(histogram) // 2]
        typical_share = max(0.0, 1.0 - sum(freqs)) / (distinct - len(values))
    else:
        low = min(range(len(freqs)), key=lambda i: freqs[i])
        if low == top:
            return None
        typical, typical_share = values[low], freqs[low]
    return Tenants(stats["column"], values[top], freqs[top] * rows, typical, typical_share * rows, rows)


def shape(plan) -> tuple[tuple[str, str, str], ...]:
    """A plan's shape: node types with their relations and indexes, depth first (no costs)."""
    nodes = plan.nodes
    return tuple((str(r.node_type), str(r.relation or ""), str(r.index_name or ""))
                 for r in nodes.itertuples(index=False))


def describe(plan) -> str:
    """``Seq Scan on orders`` / ``Bitmap Heap Scan on orders, Bitmap Index Scan using orders_tenant_idx``,
    then the plan's estimated total cost."""
    parts = []
    for r in plan.nodes.itertuples(index=False):
        if not r.relation and not r.index_name:
            continue
        using = f" using {r.index_name}" if r.index_name else ""
        parts.append(f"{r.node_type}{using}" + (f" on {r.relation}" if r.relation else ""))
    cost = plan.nodes["total_cost"].iloc[0] if "total_cost" in plan.nodes and len(plan.nodes) else None
    text = ", ".join(dict.fromkeys(parts)) or str(plan.nodes["node_type"].iloc[0])
    return text + (f" (cost {cost:,.0f})" if cost is not None and not pd.isna(cost) else "")


def read_tenant_plans(ctx, *, tenant_columns: tuple[str, ...] = TENANT_COLUMNS, top_n: int = 20,
                      min_rows: int = 1000, skew_factor: float = 10.0) -> dict:
    """EXPLAIN each of the costliest tenant-filtered statements for the largest tenant, a typical
    one and as the generic plan (no ANALYZE). ``plans`` holds one row per statement compared;
    ``notes`` the statements that could not be (a parameter with no representative value)."""
    from perfkit.plans.capture import explain

    statements = ctx.statements().head(top_n)
    columns = ctx.table_columns()
    wanted = {c.lower() for c in tenant_columns}
    rows, notes = [], []
    stats_cache: dict[tuple[str, str], pd.DataFrame] = {}
    for st in statements.itertuples(index=False):
        text = str(st.query)
        params = parameter_columns(text)
        if not params:
            continue
        uses = [(schema, table, use) for schema, table, use in resolve_uses(column_uses(text), columns)
                if use.usage == EQUALITY]
        tenant_uses = [(schema, table, use.column) for schema, table, use in uses if use.column.lower() in wanted]
        tenant_params = [n for n, column in params.items() if column.lower() in wanted]
        if not tenant_uses or len(tenant_params) != 1:
            continue
        schema, table, tenant_column = tenant_uses[0]
        key = (schema, table)
        if key not in stats_cache:
            needed = sorted({c for c in params.values() if c not in ("limit", "offset")} | {tenant_column})
            with ctx.session() as conn:
                stats_cache[key] = db.query(conn, STATS_SQL, {"schema": schema, "table": table, "columns": needed})
        stats = stats_cache[key].set_index("column") if len(stats_cache[key]) else pd.DataFrame()
        if tenant_column not in stats.index:
            continue
        tenant_stats = stats.loc[tenant_column].copy()
        tenant_stats["column"] = tenant_column
        tenants = tenants_of(tenant_stats)
        if tenants is None or tenants.largest_rows < min_rows or tenants.largest_rows < skew_factor * max(
                tenants.typical_rows, 1.0):
            continue
        count = parameter_count(text)
        values: dict[str, list] = {"largest": [], "typical": []}
        missing = None
        for number_ in range(1, count + 1):
            column = params.get(number_)
            if number_ == tenant_params[0]:
                values["largest"].append(tenants.largest)
                values["typical"].append(tenants.typical)
                continue
            if column == "limit":
                value = "50"
            elif column == "offset":
                value = "0"
            elif column in stats.index and _array(stats.loc[column]["mcv"]):
                value = _array(stats.loc[column]["mcv"])[0]
            elif column in stats.index and _array(stats.loc[column]["histogram"]):
                bounds = _array(stats.loc[column]["histogram"])
                value = bounds[len(bounds) // 2]
            else:
                missing = f"${number_}" + (f" ({column})" if column else "")
                break
            values["largest"].append(value)
            values["typical"].append(value)
        if missing:
            notes.append(f"queryid {st.queryid}: no representative value for {missing}; its tenant plans "
                         "were not compared")
            continue
        try:
            plans = {which: explain(ctx.engine, text, params=values[which], source=f"queryid {st.queryid} ({which})")
                     for which in ("largest", "typical")}
            plans["generic"] = explain(ctx.engine, text, source=f"queryid {st.queryid} (generic)")
        except (BadInputError, PerfkitError) as err:
            notes.append(f"queryid {st.queryid}: its tenant plans could not be captured ({err})")
            continue
        rows.append({"queryid": st.queryid, "query": text, "calls": st.calls, "mean_exec_ms": st.mean_exec_ms,
                     "schema": schema, "table": table, "tenants": tenants, "plans": plans})
    return {"plans": rows, "notes": notes}


def judge_tenant_plans(evidence, **_unused) -> list[dict]:
    """A ``tenant_plan_skew`` finding for each statement whose largest tenant's plan differs in shape
    from a typical tenant's, naming both tenants, both plans and which one the generic plan is."""
    found = []
    rows = evidence["plans"]
    rows = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else list(rows)
    notes = evidence.get("notes")
    if isinstance(notes, pd.DataFrame):
        notes = list(notes.iloc[:, 0]) if len(notes.columns) else []
    notes = list(notes) if notes is not None else []
    if notes:
        found.append(finding(
            "tenant_plans_not_compared", "info", "tenant plans",
            f"{len(notes)} tenant-filtered statement{'s' if len(notes) != 1 else ''} could not be compared: "
            + "; ".join(notes[:3]) + ("; ..." if len(notes) > 3 else ""),
            "Compare them by hand: perfkit explain --sql '...' --param VALUE for the largest tenant and a typical one.",
        ))
    for row in rows:
        plans, t = row["plans"], row["tenants"]
        largest, typical, generic = (shape(plans[k]) for k in ("largest", "typical", "generic"))
        if largest == typical:
            continue
        share = t.largest_rows / t.table_rows if t.table_rows else float("nan")
        if generic == typical:
            generic_words = ("the generic plan is the typical tenant's: a prepared statement that settles on it "
                             f"runs it for {t.column} = {t.largest} too")
        elif generic == largest:
            generic_words = ("the generic plan is the largest tenant's: a prepared statement that settles on it "
                             "runs it for every small tenant")
        else:
            generic_words = f"the generic plan is a third one: {describe(plans['generic'])}"
        found.append(finding(
            "tenant_plan_skew", "warning", f"queryid {row['queryid']}",
            f"{t.column} = {t.largest} (≈ {number(round(t.largest_rows))} rows, {share * 100:.0f} % of {row['table']}) "
            f"gets {describe(plans['largest'])}; a typical tenant ({t.column} = {t.typical}, "
            f"≈ {number(round(t.typical_rows))} rows) gets {describe(plans['typical'])}; {generic_words}",
            f"Let each tenant get its own plan: plan_cache_mode = force_custom_plan for this statement's sessions "
            f"(or its role), a partial index for the large tenant (WHERE {t.column} = {t.largest}), or give the "
            f"largest tenants partitions of their own.",
            fix=sql.set_local(plan_cache_mode="force_custom_plan"),
            queryid=row["queryid"], query=row["query"], tenant=t.largest, typical_tenant=t.typical,
            largest_plan=describe(plans["largest"]), typical_plan=describe(plans["typical"]),
            generic_plan=describe(plans["generic"]),
        ))
    return found


tenant_plans = Check("tenant_plans", read_tenant_plans, judge_tenant_plans, ("tenant_plan_skew", "tenant_plans_not_compared"),
                     (TABLE_COLUMNS_SQL, STATS_SQL))

CHECKS = (tenant_plans,)

__all__ = ["CHECKS", "Tenants", "describe", "judge_tenant_plans", "parameter_columns", "shape", "tenant_plans",
           "tenants_of"]

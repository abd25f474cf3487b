"""Cost per tenant, from the server log: database time and calls per tenant key, the noisy tenants.

A statement's tenant is the value bound to its tenant column's parameter (``WHERE tenant_id = $1``
with ``DETAIL: parameters: $1 = '7'``, as PostgreSQL logs statements an application binds on the
server: psycopg 3, node-postgres, JDBC), or a ``tenant``/``tenant_id`` tag in its request comment.
Statements with neither are counted as "no tenant".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from perfkit.findings import finding, findings_frame
from perfkit.parameters import TENANT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

TENANT_COLUMNS_OUT = ["tenant", "calls", "db_ms", "share", "mean_ms", "statements", "from"]
NO_TENANT = "(no tenant)"
_PARAMETER = re.compile(r"\$(\d+)\s*=\s*('(?:[^']|'')*'|NULL)")
_TAG_KEYS = ("tenant", "tenant_id", "tenantid", "org", "org_id", "company_id")


def parameters(text) -> dict[int, str | None]:
    """``{1: '7', 2: None}`` from a logged ``parameters: $1 = '7', $2 = NULL`` detail."""
    if not isinstance(text, str) or "$" not in text:
        return {}
    out: dict[int, str | None] = {}
    for number, value in _PARAMETER.findall(text):
        out[int(number)] = None if value == "NULL" else value[1:-1].replace("''", "'")
    return out


def tenant_of(statement: str, bound: str, columns: tuple[str, ...], cache: dict) -> tuple[str | None, str]:
    """The tenant an execution worked for and how it is known (``parameter`` or ``request comment``)."""
    from perfkit.nplusone import request_tags
    from perfkit.parameters import parameter_columns

    if statement not in cache:
        params = parameter_columns(statement) or {}
        wanted = {c.lower() for c in columns}
        numbers = [n for n, column in params.items() if column.lower() in wanted]
        tags = request_tags(statement) if "/*" in statement else {}
        tag = next((tags[k] for k in _TAG_KEYS if tags.get(k)), None)
        cache[statement] = (numbers[0] if len(numbers) == 1 else None, tag)
    number, tag = cache[statement]
    if number is not None:
        value = parameters(bound).get(number)
        if value is not None:
            return value, "parameter"
    if tag:
        return tag, "request comment"
    return None, ""


def per_tenant(logs: pd.DataFrame, *, tenant_columns: tuple[str, ...] = TENANT_COLUMNS) -> pd.DataFrame:
    """Database time and calls per tenant key (``TENANT_COLUMNS_OUT``), costliest first; ``share`` of
    the time of the executions whose tenant is known."""
    import pandas as pd

    from perfkit.logs.analysis import executions

    runs = executions(logs)
    if runs.empty:
        return pd.DataFrame(columns=TENANT_COLUMNS_OUT)
    cache: dict = {}
    found = [tenant_of(str(s), b, tuple(tenant_columns), cache)
             for s, b in zip(runs["statement"], runs.get("parameters", pd.Series([""] * len(runs))), strict=True)]
    runs = runs.assign(tenant=[t if t is not None else NO_TENANT for t, _ in found], _from=[w for _, w in found])
    shape = runs["fingerprint"].where(runs["fingerprint"].notna(), runs["normalized"])
    grouped = runs.assign(_shape=shape).groupby("tenant", sort=False)
    table = pd.DataFrame({
        "calls": grouped.size(),
        "db_ms": grouped["duration_ms"].sum(min_count=1).fillna(0.0),
        "statements": grouped["_shape"].nunique(),
        "from": grouped["_from"].agg(lambda v: ", ".join(sorted({x for x in v if x})) or ""),
    }).reset_index()
    known = table[table["tenant"] != NO_TENANT]
    total = float(known["db_ms"].sum())
    table["share"] = table["db_ms"] / total if total else float("nan")
    table.loc[table["tenant"] == NO_TENANT, "share"] = float("nan")
    table["mean_ms"] = table["db_ms"] / table["calls"]
    table = table.sort_values(["db_ms", "calls"], ascending=False, kind="stable")
    return table[TENANT_COLUMNS_OUT].reset_index(drop=True)


def noisy_tenants(table: pd.DataFrame, *, min_share: float = 0.2, factor: float = 3.0,
                  min_tenants: int = 3) -> pd.DataFrame:
    """``noisy_tenant`` findings: a tenant taking ``min_share`` of the database time and ``factor``
    times its fair share (1 / tenants), with at least ``min_tenants`` tenants in the log."""
    known = table[table["tenant"] != NO_TENANT]
    if len(known) < min_tenants:
        return findings_frame(None)
    fair = 1.0 / len(known)
    rows = []
    for r in known.itertuples(index=False):
        if r.share >= min_share and r.share >= factor * fair:
            rows.append(finding(
                "noisy_tenant", "warning", f"tenant {r.tenant}",
                f"{r.share * 100:.0f} % of the logged database time ({r.db_ms:,.0f} ms in {r.calls:,} statements, "
                f"{r.mean_ms:,.2f} ms each) of {len(known):,} tenants: {r.share / fair:,.1f}x a fair share",
                "Look at this tenant's plans (perfkit health's tenant_plans: the largest tenant often needs its "
                "own plan, a partial index or a partition of its own), and at what it runs so often; a per-tenant "
                "rate limit or queue protects the others meanwhile.",
                tenant=r.tenant, share=float(r.share),
            ))
    return findings_frame(rows)


__all__ = ["NO_TENANT", "TENANT_COLUMNS_OUT", "noisy_tenants", "parameters", "per_tenant", "tenant_of"]

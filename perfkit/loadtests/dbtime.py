"""From a load test to the SQL behind it: database time per route.

``route_db_time(run, changes)`` joins a load-test run with what pg_stat_statements recorded over
the run's window (``perfkit.statements.diff`` of the snapshots that bracket it): per route, the
requests and latency the tool measured, the statements and database time behind them, and the
share of the route's latency that is database time. A statement belongs to a route by the
request comment in its text (sqlcommenter ``route=``, Rails marginalia ``controller#action``);
statements without one are attributed to the run as a whole, by the window ("the window" in
``attributed_by``), never guessed into a route.

pg_stat_statements keeps one text per statement, the first one seen: a statement several routes
run carries the comment of whichever ran it first. Routes that share statements are therefore
told apart by the server log (``perfkit logs``), which has every execution's comment.
"""

from __future__ import annotations

import pandas as pd

from perfkit.findings import finding, findings_frame
from perfkit.loadtests.frames import ALL

ROUTE_COLUMNS = ["endpoint", "requests", "mean_ms", "p95_ms", "db_calls", "db_ms", "db_ms_per_request",
                 "statements_per_request", "db_share", "attributed_by", "top_statements"]
UNTAGGED = "(no route comment)"
OTHER_ROUTES = "(routes not in the load test)"


def all_requests_of(by_endpoint: pd.DataFrame, summary: pd.DataFrame):
    return by_endpoint.loc[ALL, "requests"] if ALL in by_endpoint.index else summary["requests"].sum()


def window(run) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """When the run started and ended (UTC): from its samples, else its history, else None."""
    for frame in (getattr(run, "samples", None), getattr(run, "history", None)):
        if frame is not None and len(frame) and "ts" in frame and frame["ts"].notna().any():
            ts = pd.to_datetime(frame["ts"], utc=True)
            return ts.min(), ts.max()
    return None


def statement_routes(queries: pd.Series) -> pd.Series:
    """The route each statement text's request comment names ("" for none)."""
    from perfkit.nplusone import _route_of, request_tags

    cache: dict[str, str] = {}

    def route(text) -> str:
        text = str(text)
        if text not in cache:
            cache[text] = _route_of(request_tags(text)) if "/*" in text or "--" in text else ""
        return cache[text]

    return queries.map(route)


def _endpoint_for(route: str, endpoints: list[str]) -> str | None:
    """The load-test endpoint a route names: the same name, its URL's path, or ``METHOD route``."""
    from perfkit.loadtests.slo import _path_of

    if route in endpoints:
        return route
    for endpoint in endpoints:
        path = _path_of(endpoint)
        bare = path.split(" ", 1)[-1] if path else None
        if bare == route or endpoint.split(" ", 1)[-1] == route:
            return endpoint
    return None


def route_db_time(run, changes: pd.DataFrame, *, top: int = 3) -> pd.DataFrame:
    """Per endpoint of ``run``: requests, mean and p95 latency, database calls and time over the
    run's window, per request, and the share of the mean latency that is database time.

    Parameters
    ----------
    run:
        A LoadTestRun.
    changes:
        ``perfkit.statements.diff`` of the snapshots taken before and after the run (perfkit's
        own statements are left out here).
    top:
        How many of each route's costliest statements to name.

    Returns
    -------
    pandas.DataFrame
        ``ROUTE_COLUMNS``, one row per endpoint whose statements carry its route, a row for the
        statements without a route comment when there are any, and ``ALL`` (every statement of
        the window over every request). ``attributed_by``: ``route comment`` or ``the window``.
    """
    from perfkit import statements

    work = changes[~statements.own_statements(changes)] if len(changes) else changes
    work = work[pd.to_numeric(work["calls"], errors="coerce").fillna(0) > 0] if len(work) else work
    summary = run.summary.assign(endpoint=run.summary["endpoint"].astype(str))
    by_endpoint = summary.set_index("endpoint")
    endpoints = [e for e in by_endpoint.index if e != ALL]
    routes = statement_routes(work["query"]) if len(work) else pd.Series(dtype=str)
    owner = routes.map(lambda r: _endpoint_for(r, endpoints) if r else None) if len(work) else routes
    rows = []

    def row(name: str, part: pd.DataFrame, requests, attributed: str) -> dict:
        calls = float(pd.to_numeric(part["calls"], errors="coerce").sum()) if len(part) else 0.0
        ms = float(pd.to_numeric(part["total_exec_ms"], errors="coerce").sum()) if len(part) else 0.0
        figures = by_endpoint.loc[name] if name in by_endpoint.index else None
        n = float(requests) if requests is not None and not pd.isna(requests) and requests else float("nan")
        mean = float(figures["mean_ms"]) if figures is not None else float("nan")
        costly = part.sort_values("total_exec_ms", ascending=False).head(top) if len(part) else part
        return {
            "endpoint": name, "requests": n, "mean_ms": mean,
            "p95_ms": float(figures["p95_ms"]) if figures is not None else float("nan"),
            "db_calls": calls, "db_ms": ms, "db_ms_per_request": ms / n, "statements_per_request": calls / n,
            "db_share": (ms / n) / mean if mean and not pd.isna(mean) else float("nan"),
            "attributed_by": attributed,
            "top_statements": [{"queryid": q.queryid, "query": statements.strip_leading_comments(q.query),
                                "calls": float(q.calls), "total_exec_ms": float(q.total_exec_ms)}
                               for q in costly.itertuples(index=False)],
        }

    for endpoint in endpoints:
        mine = work[owner == endpoint] if len(work) else work
        if len(mine):
            rows.append(row(endpoint, mine, by_endpoint.loc[endpoint, "requests"], "route comment"))
    tagged_elsewhere = work[owner.isna() & (routes != "")] if len(work) else work
    if len(tagged_elsewhere):
        rows.append(row(OTHER_ROUTES, tagged_elsewhere, all_requests_of(by_endpoint, summary), "route comment"))
    untagged = work[owner.isna() & (routes == "")] if len(work) else work
    if len(untagged):  # BEGIN, COMMIT, SET...: no comment can name their route, and they cost next to nothing
        from perfkit.nplusone import CONTROL_COMMANDS

        words = untagged["query"].astype(str).str.strip().str.split(n=1).str[0].str.upper().str.rstrip(";")
        untagged = untagged[~words.isin(CONTROL_COMMANDS)]
    all_requests = all_requests_of(by_endpoint, summary)
    if len(untagged):
        rows.append(row(UNTAGGED, untagged, all_requests, "the window"))
    rows.append(row(ALL, work, all_requests, "the window"))
    return pd.DataFrame(rows, columns=ROUTE_COLUMNS)


def route_findings(table: pd.DataFrame, *, min_share: float = 0.5, min_requests: int = 10) -> pd.DataFrame:
    """``db_bound_route`` for routes whose database time is most of their latency."""
    found = []
    for r in table.to_dict(orient="records"):
        if r["endpoint"] in (ALL, UNTAGGED, OTHER_ROUTES) or r["attributed_by"] != "route comment":
            continue
        if pd.isna(r["db_share"]) or r["db_share"] < min_share or not r["requests"] or r["requests"] < min_requests:
            continue
        first = r["top_statements"][0] if r["top_statements"] else None
        statement = f"; the costliest: {first['query'][:120]} ({first['total_exec_ms']:,.0f} ms in all)" if first else ""
        found.append(finding(
            "db_bound_route", "critical" if r["db_share"] >= 0.9 else "warning", r["endpoint"],
            f"{r['db_ms_per_request']:,.1f} ms of the route's {r['mean_ms']:,.1f} ms mean latency is database time "
            f"({min(r['db_share'], 1) * 100:.0f} %), {r['statements_per_request']:,.1f} statements per request over "
            f"{int(r['requests']):,} requests{statement}",
            "Start with this route's statements: their plans (perfkit explain --queryid N) and the index advice; "
            "fewer statements per request (an N+1 joined into one query) if there are many.",
            queryid=first["queryid"] if first else None, route=r["endpoint"],
        ))
    return findings_frame(found)


def route_notes(table: pd.DataFrame) -> list[str]:
    """What the table says about the run as a whole ("the database is not your bottleneck")."""
    notes = []
    total = table[table["endpoint"] == ALL]
    if len(total):
        t = total.iloc[0]
        if not pd.isna(t["db_share"]):
            if t["db_share"] < 0.2:
                notes.append(f"database time is {t['db_share'] * 100:.0f} % of the mean latency "
                             f"({t['db_ms_per_request']:,.2f} of {t['mean_ms']:,.1f} ms per request): the database "
                             "is not the bottleneck of this run; look at the app, the network and the pool waits")
            else:
                notes.append(f"database time is {min(t['db_share'], 1) * 100:.0f} % of the mean latency "
                             f"({t['db_ms_per_request']:,.2f} of {t['mean_ms']:,.1f} ms per request)")
    other = table[table["endpoint"] == OTHER_ROUTES]
    if len(other):
        o = other.iloc[0]
        notes.append(f"{o['db_calls']:,.0f} statement calls ({o['db_ms']:,.0f} ms) carry the route comment of a route the "
                     "load test did not request (other traffic in the window, or a name the test spells differently)")
    untagged = table[table["endpoint"] == UNTAGGED]
    if len(untagged):
        u = untagged.iloc[0]
        notes.append(f"{u['db_calls']:,.0f} statement calls ({u['db_ms']:,.0f} ms) carry no route comment: they are "
                     "counted for the whole run (ALL), not for a route; sqlcommenter comments would tell them apart")
    return notes


__all__ = ["ROUTE_COLUMNS", "UNTAGGED", "route_db_time", "route_findings", "route_notes", "statement_routes", "window"]


def bracketing(store, start: pd.Timestamp, end: pd.Timestamp, server: str | None = None, *,
               max_gap_s: float | None = None):
    """The stored snapshots that bracket a run: the last one at or before ``start`` and the first
    one at or after ``end``, loaded (before, after).

    Raises
    ------
    BadInputError
        When the store has no snapshot on one side of the window (it says which, and how to get one).
    """
    from perfkit.errors import BadInputError

    listing = store.list(server)
    name = server or (str(listing["server"].iloc[0]) if len(listing) and "server" in listing else "")
    captured = pd.to_datetime(listing["captured_at"], utc=True) if len(listing) else pd.Series(dtype="datetime64[ns, UTC]")
    before = listing[captured <= start]
    after = listing[captured >= end]
    window_text = f"{start:%Y-%m-%d %H:%M:%S} – {end:%H:%M:%S} UTC"
    if before.empty or after.empty:
        side = "before its start" if before.empty else "after its end"
        raise BadInputError(
            f"no snapshot of {name or 'the server'} {side} in {store.root} (the run: {window_text}): take one with "
            "`perfkit snapshot` before and after the test, or let perfkit run it: --run \"COMMAND\"")
    first, last = before.iloc[-1], after.iloc[0]
    # work outside the run between a snapshot and the run would be charged to its requests
    slack = max_gap_s if max_gap_s is not None else max(600.0, (end - start).total_seconds())
    gaps = {"before its start": (start - pd.Timestamp(first["captured_at"])).total_seconds(),
            "after its end": (pd.Timestamp(last["captured_at"]) - end).total_seconds()}
    for side, gap in gaps.items():
        if gap > slack:
            raise BadInputError(
                f"the nearest snapshot {side} was taken {gap / 60:,.0f} min away from the run ({window_text}); "
                f"the database work of that time would be charged to the run: take snapshots just before and after "
                "the test (`perfkit snapshot`), or use --run \"COMMAND\"")
    return store.load(first["path"]), store.load(last["path"])


def with_db_time(assessment, before: pd.DataFrame, after: pd.DataFrame, *, how: str):
    """The load-test Assessment with the database time per route of its latest run: ``tables["routes"]``,
    ``db_bound_route`` findings, notes, and ``facts["db_time"]`` (how the snapshots were taken)."""
    from perfkit import statements
    from perfkit.assessment import merge_findings

    run = assessment.data["runs"][-1]
    changes = statements.diff(before, after)
    table = route_db_time(run, changes)
    assessment.tables["routes"] = table
    source = assessment.facts["per_file"][-1]["source"]
    found = route_findings(table)
    if len(found):
        found = found.assign(source=source)
    assessment.findings = merge_findings(assessment.findings, found)
    assessment.notes = list(assessment.notes) + route_notes(table)
    total = table[table["endpoint"] == ALL].iloc[0]
    assessment.facts["db_time"] = {
        "snapshots": how, "run": source,
        "from": str(before["captured_at"].iloc[0]) if len(before) and "captured_at" in before else None,
        "to": str(after["captured_at"].iloc[0]) if len(after) and "captured_at" in after else None,
        "db_ms_per_request": None if pd.isna(total["db_ms_per_request"]) else float(total["db_ms_per_request"]),
        "db_share": None if pd.isna(total["db_share"]) else float(total["db_share"]),
    }
    return assessment

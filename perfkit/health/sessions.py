"""Session checks: connection saturation, pool sizing, idle-in-transaction sessions, long statements,
lock waits.

Each check judges pg_stat_activity rows (read once per run by the context) and pg_locks; all
need pg_read_all_stats to see other roles, which the read checks first.
"""

from __future__ import annotations

import pandas as pd

from perfkit import sql
from perfkit.findings import finding
from perfkit.health.common import duration_text, is_missing, number, share_text
from perfkit.health.context import (
    ACTIVITY_SQL,
    DATABASE_SQL,
    SETTINGS_SQL,
    STATS_PRIVILEGE_SQL,
    Check,
    cores_of,
)


def require_stats_privilege(ctx, what: str) -> None:
    """Raise PermissionDenied unless the role sees every session (see Context.require_stats_privilege)."""
    from perfkit.health.context import Context

    (ctx if isinstance(ctx, Context) else Context(ctx)).require_stats_privilege(what)


def _who(row) -> str:
    app = f", {row.application_name}" if row.application_name else ""
    return f"pid {row.pid} ({row.usename}@{row.datname}{app})"


def _statement(text, limit: int = 120) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _activity(what: str):
    def read(ctx) -> dict:
        ctx.require_stats_privilege(what)
        settings = ctx.settings()
        return {"activity": ctx.activity(), "settings": [{
            "max_connections": settings["max_connections"]["number"],
            "superuser_reserved_connections": settings["superuser_reserved_connections"]["number"]}]}
    return read


def judge_connection_saturation(evidence, *, warning_share: float = 0.7, critical_share: float = 0.8) -> list[dict]:
    """Client connections in use as a share of max_connections, by state.

    Parameters
    ----------
    warning_share, critical_share:
        Shares of ``max_connections`` for a warning (default 0.7) and critical (0.8).
    """
    activity = evidence["activity"]
    clients = activity[activity["backend_type"] == "client backend"] if len(activity) else activity
    by_state = clients.groupby("state").size().sort_values(ascending=False) if len(clients) else None
    settings = evidence["settings"].iloc[0]
    max_connections = int(settings["max_connections"])
    reserved = int(settings["superuser_reserved_connections"])
    used = int(len(clients))
    share = used / max_connections
    if share < warning_share or by_state is None:
        return []
    states = ", ".join(f"{state} {number(count)}" for state, count in by_state.items())
    idle = int(by_state.get("idle", 0))
    return [
        finding(
            "connection_saturation",
            "critical" if share >= critical_share else "warning",
            "connections",
            f"{number(used)} of max_connections {number(max_connections)} in use ({share_text(share)}; "
            f"{number(reserved)} more are reserved for superusers): {states}",
            (
                "Put a transaction-mode pooler (PgBouncer) between the app and the server and size the "
                f"app pools down: {number(idle)} connections sit idle, each holding server memory."
                if idle
                else "Add a transaction-mode pooler (PgBouncer) and size the app pools to the cores, "
                "not to the request concurrency."
            ),
            connections=used,
            max_connections=max_connections,
        )
    ]


def judge_idle_in_transaction(evidence, *, min_seconds: float = 60.0, critical_seconds: float = 600.0) -> list[dict]:
    """Sessions sitting inside an open transaction, doing nothing, for at least ``min_seconds``.

    They hold their locks and stop vacuum from removing rows dead since they began.

    Parameters
    ----------
    min_seconds:
        Idle at least this long (default 60 s).
    critical_seconds:
        Critical from this long (default 10 min).
    """
    rows = evidence["activity"]
    if len(rows):
        rows = rows[rows["state"].isin(["idle in transaction", "idle in transaction (aborted)"])
                    & ~rows["is_self"].astype(bool) & (rows["idle_s"].astype(float) >= float(min_seconds))]
        rows = rows.sort_values("idle_s", ascending=False)
    found = []
    for row in rows.itertuples(index=False):
        idle = float(row.idle_s)
        holds = "" if is_missing(row.xmin_age) else f"; holds back vacuum by {number(row.xmin_age)} transactions"
        found.append(
            finding(
                "idle_in_transaction",
                "critical" if idle >= critical_seconds else "warning",
                _who(row),
                f"{row.state} for {duration_text(idle)} (transaction open {duration_text(float(row.xact_s))}){holds}; "
                f"last statement: {_statement(row.query)}",
                "Fix the code path that leaves the transaction open (commit or roll back before slow work), "
                "and set idle_in_transaction_session_timeout so the server ends such sessions.",
                fix=sql.end_backend(int(row.pid)),
                pid=int(row.pid),
            )
        )
    return found


def judge_long_running_queries(evidence, *, min_seconds: float = 60.0, critical_seconds: float = 600.0) -> list[dict]:
    """Statements running for at least ``min_seconds``.

    Parameters
    ----------
    min_seconds:
        Running at least this long (default 60 s).
    critical_seconds:
        Critical from this long (default 10 min).
    """
    rows = evidence["activity"]
    if len(rows):
        rows = rows[(rows["state"] == "active") & (rows["backend_type"] == "client backend")
                    & ~rows["is_self"].astype(bool) & (rows["running_s"].astype(float) >= float(min_seconds))]
        rows = rows.sort_values("running_s", ascending=False)
    found = []
    for row in rows.itertuples(index=False):
        running = float(row.running_s)
        waiting = f", waiting on {row.wait_event_type}/{row.wait_event}" if row.wait_event_type else ""
        found.append(
            finding(
                "long_running_query",
                "critical" if running >= critical_seconds else "warning",
                _who(row),
                f"running for {duration_text(running)}{waiting}: {_statement(row.query)}",
                "EXPLAIN it (perfkit explain) and give the app a statement_timeout; cancel it if it "
                "should not be running.",
                fix=sql.end_backend(int(row.pid), terminate=False),
                pid=int(row.pid),
            )
        )
    return found


LOCK_WAITS_SQL = """
SELECT w.pid, w.usename, w.datname, w.application_name, w.query,
       extract(epoch FROM now() - coalesce(
           (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted),
           w.query_start)) AS waiting_s,
       (SELECT l.locktype || coalesce(' on ' || l.relation::regclass::text, '') || ' (' || l.mode || ')'
        FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted LIMIT 1) AS lock,
       (SELECT string_agg(DISTINCT r.relation::regclass::text, ', ')
        FROM pg_locks r WHERE r.pid = w.pid AND r.relation IS NOT NULL AND r.locktype IN ('tuple', 'relation')
          AND r.relation NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace))
        AS relations,
       b.pid AS blocker_pid, b.usename AS blocker_user, b.state AS blocker_state,
       extract(epoch FROM now() - b.xact_start) AS blocker_xact_s, b.query AS blocker_query
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid)
JOIN pg_stat_activity b ON b.pid = blocking.pid
WHERE w.pid <> pg_backend_pid()
ORDER BY waiting_s DESC NULLS LAST
"""


def read_lock_waits(ctx) -> dict:
    ctx.require_stats_privilege("the lock-wait check")
    return {"lock_waits": ctx.query("lock_waits", LOCK_WAITS_SQL)}


def judge_lock_waits(evidence, *, min_seconds: float = 5.0, critical_seconds: float = 60.0) -> list[dict]:
    """Sessions waiting for a lock, with who blocks them (pg_blocking_pids).

    Parameters
    ----------
    min_seconds:
        Waiting at least this long (default 5 s).
    critical_seconds:
        Critical from this long (default 60 s).
    """
    rows = evidence["lock_waits"]
    if rows.empty:
        return []
    found = []
    for pid, group in rows.groupby("pid", sort=False):
        first = group.iloc[0]
        waiting = 0.0 if is_missing(first["waiting_s"]) else float(first["waiting_s"])
        if waiting < min_seconds:
            continue
        blockers = "; ".join(
            f"pid {int(b.blocker_pid)} ({b.blocker_user}, {b.blocker_state}, transaction open "
            f"{'n/a' if is_missing(b.blocker_xact_s) else duration_text(float(b.blocker_xact_s))}): "
            f"{_statement(b.blocker_query, 80)}"
            for b in group.itertuples(index=False)
        )
        on = f" on {first['relations']}" if first["relations"] else ""
        found.append(
            finding(
                "lock_wait",
                "critical" if waiting >= critical_seconds else "warning",
                _who(next(group.itertuples(index=False))),
                f"waiting {duration_text(waiting)} for a {first['lock'] or 'lock'}{on}, blocked by {blockers}; "
                f"waiting statement: {_statement(first['query'])}",
                "Shorten the blocking transaction (no slow work or user input inside it); give writers a "
                "lock_timeout; end the blocker if it is abandoned.",
                fix=_terminate_blockers(group["blocker_pid"].unique()),
                pid=int(pid),
                blocked_by=[int(b) for b in group["blocker_pid"].unique()],
            )
        )
    return found


def read_pool_sizing(ctx) -> dict:
    ctx.require_stats_privilege("the pool sizing")
    settings = ctx.settings()
    return {"activity": ctx.activity(), "database": [ctx.database().to_dict()], "settings": [{
        "max_connections": settings["max_connections"]["number"],
        "superuser_reserved_connections": settings["superuser_reserved_connections"]["number"],
        # PostgreSQL 16+ reserves more slots for pg_use_reserved_connections roles; 0 before
        "reserved_connections": settings.get("reserved_connections", {}).get("number", 0)}]}


def pool_figures(evidence, *, cores: int = 0, spindles: int = 1, app_instances: int = 0, pool_size: int = 0) -> dict:
    """The pool-sizing figures: the server's cores, the formula's active connections
    ``(cores × 2) + spindles``, max_connections less the reserved ones, what is open now and, when
    given, the app's pools (``app_instances × pool_size``)."""
    settings = evidence["settings"].iloc[0]
    database = evidence["database"].iloc[0] if len(evidence["database"]) else {}
    max_connections = int(settings["max_connections"])
    extra = settings.get("reserved_connections", 0)
    reserved = int(settings["superuser_reserved_connections"]) + (0 if pd.isna(extra) else int(extra))
    activity = evidence["activity"]
    clients = activity[activity["backend_type"] == "client backend"] if len(activity) else activity
    count, source = cores_of(database.get("server_address") if len(database) else None, cores or None)
    optimal = count * 2 + int(spindles) if count else None
    return {
        "cores": count, "cores_from": source, "spindles": int(spindles),
        "formula": (f"({count} cores × 2) + {int(spindles)} spindle{'s' if spindles != 1 else ''} = {optimal}"
                    if optimal else "(cores × 2) + spindles: cores unknown"),
        "optimal_active": optimal, "max_connections": max_connections, "reserved": reserved,
        "available": max_connections - reserved, "open": int(len(clients)),
        "active": int((clients["state"] == "active").sum()) if len(clients) else 0,
        "idle": int((clients["state"] == "idle").sum()) if len(clients) else 0,
        "app_instances": int(app_instances), "pool_size": int(pool_size),
        "configured": int(app_instances) * int(pool_size) if app_instances and pool_size else None,
    }


def judge_pool_sizing(evidence, *, cores: int = 0, spindles: int = 1, app_instances: int = 0, pool_size: int = 0,
                      oversize_factor: float = 4.0) -> list[dict]:
    """The app's connection pools against what the server can work through at once.

    The guides' formula: about ``(cores × 2) + spindles`` connections keep a server busy; more
    active ones queue for the CPU inside the server, where a pool would have queued them cheaply.

    Parameters
    ----------
    cores:
        The server's CPU cores (default: this machine's when the server is local, else unknown).
    spindles:
        Disks that seek independently (1 for SSD / cloud volumes).
    app_instances, pool_size:
        The app's instances and the pool size of each, when known: their product must fit
        max_connections less the superuser-reserved ones.
    oversize_factor:
        Open (or configured) connections beyond this many times the formula are reported.
    """
    f = pool_figures(evidence, cores=cores, spindles=spindles, app_instances=app_instances, pool_size=pool_size)
    found = []
    configured, optimal, available = f["configured"], f["optimal_active"], f["available"]
    per_instance = max(1, available // f["app_instances"]) if f["app_instances"] else None
    if configured is not None and configured > available:
        found.append(finding(
            "pool_oversized", "critical", "connection pools",
            f"{f['app_instances']} app instances × pool size {f['pool_size']} = {number(configured)} connections, "
            f"more than the {number(available)} max_connections leaves for clients "
            f"({f['max_connections']} less {f['reserved']} reserved): under load the app gets "
            "\"too many clients already\"",
            f"Size each pool to at most {per_instance} (better toward {optimal or 'the formula'}"
            f"{' in all' if optimal else ''}), or put a transaction-mode pooler (PgBouncer) in front with "
            f"{optimal or 'a few dozen'} server connections.",
            **f,
        ))
    elif optimal and max(configured or 0, f["open"]) > oversize_factor * optimal:
        what = (f"{f['app_instances']} app instances × pool size {f['pool_size']} = {number(configured)} connections"
                if configured and configured >= f["open"] else f"{number(f['open'])} client connections open")
        found.append(finding(
            "pool_oversized", "warning", "connection pools",
            f"{what} for a server that keeps busy with {f['formula']} active ones ({f['cores_from']}); "
            f"{number(f['active'])} are active now, {number(f['idle'])} idle",
            f"Size the pools toward {optimal} connections in all (each instance "
            f"{max(1, optimal // max(f['app_instances'], 1))}), or keep the app's pools and put PgBouncer in "
            f"transaction mode in front with default_pool_size = {optimal}: requests then wait in the pool, "
            "not for the CPU inside the server.",
            **f,
        ))
    return found


def _terminate_blockers(pids) -> sql.Fix:
    fixes = [sql.end_backend(int(pid), comment="the blocker") for pid in pids]
    first, *rest = fixes
    return sql.Fix(first.action, settings=first.settings, comment=first.comment, then=tuple(rest))


connection_saturation = Check("connection_saturation", _activity("the connection count"), judge_connection_saturation,
                              ("connection_saturation",), (STATS_PRIVILEGE_SQL, ACTIVITY_SQL, SETTINGS_SQL))
idle_in_transaction = Check("idle_in_transaction", _activity("the idle-in-transaction check"), judge_idle_in_transaction,
                            ("idle_in_transaction",), (STATS_PRIVILEGE_SQL, ACTIVITY_SQL))
long_running_queries = Check("long_running_queries", _activity("the long-running statement check"),
                             judge_long_running_queries, ("long_running_query",), (STATS_PRIVILEGE_SQL, ACTIVITY_SQL))
lock_waits = Check("lock_waits", read_lock_waits, judge_lock_waits, ("lock_wait",), (STATS_PRIVILEGE_SQL, LOCK_WAITS_SQL))

pool_sizing = Check("pool_sizing", read_pool_sizing, judge_pool_sizing, ("pool_oversized",),
                    (STATS_PRIVILEGE_SQL, ACTIVITY_SQL, SETTINGS_SQL, DATABASE_SQL))

CHECKS = (connection_saturation, pool_sizing, idle_in_transaction, long_running_queries, lock_waits)

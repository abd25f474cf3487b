"""Session checks: connection saturation, idle-in-transaction sessions, long statements, lock waits.

Each check reads pg_stat_activity (and pg_locks); all need pg_read_all_stats to see other roles.
"""

from __future__ import annotations

from perfkit import db
from perfkit.errors import PermissionDenied
from perfkit.findings import finding
from perfkit.health.common import duration_text, is_missing, number, share_text

STATS_PRIVILEGE_SQL = """
SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats
"""


def require_stats_privilege(conn, what: str) -> None:
    """Raise PermissionDenied unless the role sees every session (superuser or pg_read_all_stats).

    Without it pg_stat_activity hides other roles' states and statements, and a check would
    report a healthy server it cannot see.
    """
    if not bool(db.scalar(conn, STATS_PRIVILEGE_SQL)):
        user = db.scalar(conn, "SELECT current_user")
        raise PermissionDenied(
            f"role {user} cannot see other roles' sessions, so {what} would be incomplete: "
            f"GRANT pg_read_all_stats (or pg_monitor) TO {user}"
        )


def _who(row) -> str:
    app = f", {row.application_name}" if row.application_name else ""
    return f"pid {row.pid} ({row.usename}@{row.datname}{app})"


def _statement(text, limit: int = 120) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


CONNECTIONS_SQL = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS connections
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1 ORDER BY 2 DESC
"""


def connection_saturation(conn, *, warning_share: float = 0.7, critical_share: float = 0.8) -> list[dict]:
    """Client connections in use as a share of max_connections, by state.

    Parameters
    ----------
    warning_share, critical_share:
        Shares of ``max_connections`` for a warning (default 0.7) and critical (0.8).
    """
    require_stats_privilege(conn, "the connection count")
    by_state = db.query(conn, CONNECTIONS_SQL)
    max_connections = int(db.scalar(conn, "SELECT current_setting('max_connections')::int"))
    reserved = int(db.scalar(conn, "SELECT current_setting('superuser_reserved_connections')::int"))
    used = int(by_state["connections"].sum())
    share = used / max_connections
    if share < warning_share:
        return []
    states = ", ".join(f"{row.state} {number(row.connections)}" for row in by_state.itertuples(index=False))
    idle = int(by_state.loc[by_state["state"] == "idle", "connections"].sum())
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


IDLE_IN_TRANSACTION_SQL = """
SELECT pid, usename, datname, application_name, state,
       extract(epoch FROM now() - state_change) AS idle_s,
       extract(epoch FROM now() - xact_start) AS xact_s,
       age(backend_xmin) AS xmin_age, query
FROM pg_stat_activity
WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND pid <> pg_backend_pid()
  AND now() - state_change >= make_interval(secs => :min_seconds)
ORDER BY state_change
"""


def idle_in_transaction(conn, *, min_seconds: float = 60.0, critical_seconds: float = 600.0) -> list[dict]:
    """Sessions sitting inside an open transaction, doing nothing, for at least ``min_seconds``.

    They hold their locks and stop vacuum from removing rows dead since they began.

    Parameters
    ----------
    min_seconds:
        Idle at least this long (default 60 s).
    critical_seconds:
        Critical from this long (default 10 min).
    """
    require_stats_privilege(conn, "the idle-in-transaction check")
    rows = db.query(conn, IDLE_IN_TRANSACTION_SQL, {"min_seconds": float(min_seconds)})
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
                f"SELECT pg_terminate_backend({row.pid});",
                pid=int(row.pid),
            )
        )
    return found


LONG_RUNNING_SQL = """
SELECT pid, usename, datname, application_name, wait_event_type, wait_event,
       extract(epoch FROM now() - query_start) AS running_s, query
FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND now() - query_start >= make_interval(secs => :min_seconds)
ORDER BY query_start
"""


def long_running_queries(conn, *, min_seconds: float = 60.0, critical_seconds: float = 600.0) -> list[dict]:
    """Statements running for at least ``min_seconds``.

    Parameters
    ----------
    min_seconds:
        Running at least this long (default 60 s).
    critical_seconds:
        Critical from this long (default 10 min).
    """
    require_stats_privilege(conn, "the long-running statement check")
    rows = db.query(conn, LONG_RUNNING_SQL, {"min_seconds": float(min_seconds)})
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
                f"SELECT pg_cancel_backend({row.pid});",
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


def lock_waits(conn, *, min_seconds: float = 5.0, critical_seconds: float = 60.0) -> list[dict]:
    """Sessions waiting for a lock, with who blocks them (pg_blocking_pids).

    Parameters
    ----------
    min_seconds:
        Waiting at least this long (default 5 s).
    critical_seconds:
        Critical from this long (default 60 s).
    """
    require_stats_privilege(conn, "the lock-wait check")
    rows = db.query(conn, LOCK_WAITS_SQL)
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
                "\n".join(f"SELECT pg_terminate_backend({int(b)});  -- the blocker" for b in group["blocker_pid"].unique()),
                pid=int(pid),
                blocked_by=[int(b) for b in group["blocker_pid"].unique()],
            )
        )
    return found

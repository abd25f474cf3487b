"""N+1 detection: one statement shape run once per row of another, per web request.

``from_logs(logs)`` groups logged statements by request; ``from_statements(snapshot)`` works from
pg_stat_statements alone. Both return ``n_plus_one`` findings (perfkit.findings).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pglast import ast, enums, parse_sql
from pglast import parser as pg
from pglast.stream import RawStream

from perfkit.errors import BadInputError
from perfkit.findings import finding, findings_frame

if TYPE_CHECKING:
    import pandas as pd

# statements that manage the session or transaction: never part of a request's count
CONTROL_COMMANDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "SET",
     "RESET", "SHOW", "DISCARD", "DEALLOCATE", "PREPARE", "LISTEN", "UNLISTEN"}
)
_TRANSACTION_END = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})
_REQUEST_ID_KEYS = ("request_id", "requestid", "request-id", "x-request-id", "req_id")
REQUEST_COLUMNS = ["request", "route", "request_id", "grouped_by"]
SNAPSHOT_COLUMNS = ("queryid", "query", "calls", "total_exec_ms", "mean_exec_ms", "rows")
# extra columns of the findings, present also when there is no finding
LOG_FINDING_COLUMNS = (
    "pattern", "route", "fingerprint", "statement", "repeats", "statements", "requests",
    "example_request", "after", "grouped_by", "confidence",
)
STATEMENT_FINDING_COLUMNS = (
    "pattern", "queryid", "list_queryid", "calls", "list_calls", "list_rows", "ratio",
    "calls_per_request", "statement", "confidence",
)


def _with_columns(rows: list[dict], columns) -> pd.DataFrame:
    import pandas as pd
    frame = findings_frame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame


# -- request comments (sqlcommenter, marginalia) ------------------------------------------------

def request_tags(statement: str) -> dict[str, str]:
    """The key/value tags of the request comments in ``statement``.

    Reads sqlcommenter comments (``/*route='%2Fapi%2Finvoices',request_id='a1'*/``: keys and
    values URL-encoded, values in single quotes with ``\\'`` escapes) and Rails marginalia
    comments (``/*application:Shop,controller:invoices,action:index*/``). Comments are found
    with PostgreSQL's own lexer (pglast), so comment-like text inside string literals is not
    read. Returns ``{}`` when there is none.
    """
    if not statement or "/*" not in statement:
        return {}
    return dict(_tags(statement))


@lru_cache(maxsize=100_000)
def _tags(statement: str) -> tuple[tuple[str, str], ...]:
    try:
        tokens = pg.scan(statement)
    except pg.ParseError:
        return ()
    data = statement.encode("utf-8")
    found: dict[str, str] = {}
    for token in tokens:
        if token.name != "C_COMMENT":
            continue
        body = data[token.start + 2: token.end - 1].decode("utf-8", "replace").strip()
        found.update(_comment_pairs(body))
    return tuple(found.items())


def _comment_pairs(body: str) -> dict[str, str]:
    """``key='value'`` (sqlcommenter) or ``key:value`` (marginalia) pairs; {} when it is neither."""
    pairs: dict[str, str] = {}
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i] in " ,":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and body[j] not in "=:,'":
            j += 1
        if j >= n or body[j] not in "=:":
            return {}
        key = unquote(body[i:j].strip())
        if not key:
            return {}
        if body[j] == "=":
            if j + 1 >= n or body[j + 1] != "'":
                return {}
            k = j + 2
            value = []
            while k < n and body[k] != "'":
                if body[k] == "\\" and k + 1 < n:
                    k += 1
                value.append(body[k])
                k += 1
            if k >= n:
                return {}
            pairs[key] = unquote("".join(value))
            i = k + 1
        else:
            k = j + 1
            while k < n and body[k] != ",":
                k += 1
            pairs[key] = body[j + 1: k].strip()
            i = k
    return pairs


def _route_of(tags: dict[str, str]) -> str:
    if tags.get("route"):
        return tags["route"]
    if tags.get("controller") and tags.get("action"):
        return f"{tags['controller']}#{tags['action']}"
    return tags.get("path") or tags.get("endpoint") or tags.get("action") or ""


def _request_id_of(tags: dict[str, str]) -> str:
    for key in _REQUEST_ID_KEYS:
        if tags.get(key):
            return tags[key]
    traceparent = tags.get("traceparent", "")
    parts = traceparent.split("-")
    # W3C traceparent: version-traceid-spanid-flags; the trace id names the request
    return parts[1] if len(parts) == 4 else ""


# -- grouping statements into requests, streaming ---------------------------------------------------
# How a request was told apart; only the first three can carry an N+1 warning: a connection cut by
# idle time alone (pgbench, a pool without request comments) is at most an info note.
GROUPED_BY = ("request comment", "transaction", "application_name", "connection and time gap")
_STRONG = frozenset(GROUPED_BY[:3])
_TRANSACTION_START = frozenset({"BEGIN", "START"})
_KEEP_SIZES = 2_000
# a byte range's first statements of a connection, kept until its first BEGIN for the range before it
# (RequestGrouper.follow): at most this many per connection and in all
_HEAD_MAX = 200
_HEADS_MAX = 20_000
_NAN = float("nan")
OWN_APPLICATION = "perfkit"
_SPECIAL_COMMANDS = _TRANSACTION_START | _TRANSACTION_END | CONTROL_COMMANDS


class _Request:
    __slots__ = ("label", "request_id", "route", "grouped_by", "counts", "first_ms", "total_ms", "before",
                 "statements", "last_shape", "info", "last_end", "application")

    def __init__(self, label: str, request_id: str, route: str, grouped_by: str, application: str):
        self.label, self.request_id, self.route, self.grouped_by = label, request_id, route, grouped_by
        self.application = application
        self.counts: dict[str, int] = {}
        self.total_ms: dict[str, float] = {}
        self.before: dict[str, str] = {}
        self.info: dict[str, tuple] = {}
        self.statements = 0
        self.last_shape = ""
        self.last_end = float("nan")


class RequestGrouper:
    """N+1 per request in one pass, in bounded state: one open request per connection.

    A request is the run of a connection's statements that share a request comment
    (sqlcommenter ``request_id``/``traceparent``), an explicit transaction (BEGIN ... COMMIT), or
    an ``application_name`` the app sets per request; else a run cut by ``gap_ms`` of idle time
    (whose findings are only ``info``). perfkit's own sessions (application_name ``perfkit``)
    are left out.
    """

    def __init__(self, *, min_repeats: int = 3, max_statements: int = 10, gap_ms: float = 1000.0,
                 critical_repeats: int = 20, heads: bool = False):
        self.min_repeats, self.max_statements = min_repeats, max_statements
        self.gap_ms, self.critical_repeats = gap_ms, critical_repeats
        self.open: dict[str, _Request] = {}  # the open requests, in the order they opened
        # connection -> [its open request or None, its application_name, in a transaction]
        self.states: dict[str, list] = {}
        self.hits: dict[tuple, dict] = {}
        self.big: dict[tuple, dict] = {}
        self.sequence = 0
        self.requests = 0
        # ``heads``: the statements are a byte range's that follows another (perfkit.logs.stream). A
        # connection's requests there began before the range: its statements wait, up to its first
        # BEGIN (after which its state is this range's own), for the state the range before ends in
        # (follow). connection -> ("open" | "ended" | "cut", its waiting statements)
        self.heads: dict | None = {} if heads else None
        self.waiting: dict[str, list] = {}
        self.held = 0

    def add(self, connection: str, ts: str, duration: float, shape_key: str, shape, statement: str,
            application: str, epoch_ms) -> None:
        """One execution: its connection, log time (text), duration, shape and text."""
        if application.startswith(OWN_APPLICATION):
            return
        command = shape.command
        if self.heads is not None:
            waiting = self.waiting.get(connection)
            if (waiting is not None or connection not in self.heads) and self._wait(
                    connection, waiting, (ts, duration, shape_key, shape, statement, application, epoch_ms), command):
                return
        if "/*" in statement:
            tags = request_tags(statement)
            request_id, route = _request_id_of(tags), _route_of(tags)
        else:
            request_id = route = ""
        state = self.states.get(connection)
        if state is None:
            state = self.states[connection] = [None, application, False]
            app_changed = False
        elif state[1] != application:
            state[1] = application
            app_changed = True
        else:
            app_changed = False
        if command in _SPECIAL_COMMANDS:
            self._special(connection, command)
            return
        current, in_transaction = state[0], state[2]
        now = _NAN
        if request_id:
            grouped_by, label = "request comment", "request_id=" + request_id
        elif in_transaction:
            grouped_by = "transaction"
            label = current.label if current is not None and current.grouped_by == "transaction" else ""
        elif app_changed or (current is not None and current.grouped_by == "application_name"):
            grouped_by, label = "application_name", f"{connection} application_name={application}"
        else:
            grouped_by = "connection and time gap"
            label = current.label if current is not None and current.grouped_by == grouped_by else ""
            now = epoch_ms(ts) if ts else float("nan")
            start = now - duration if duration == duration else now
            if current is not None and current.last_end == current.last_end and start - current.last_end > self.gap_ms:
                label = ""
        if current is not None and (current.label != label or current.grouped_by != grouped_by or app_changed):
            self._close(connection)
            current = None
        if current is None:
            self.sequence += 1
            label = label or f"{connection}#{self.sequence}"
            current = state[0] = self.open[connection] = _Request(label, request_id, route, grouped_by, application)
        if route and not current.route:
            current.route = route
        current.statements += 1
        count = current.counts.get(shape_key, 0)
        if count == 0:
            current.before[shape_key] = current.last_shape
            current.info[shape_key] = (shape.normalized, shape.fingerprint, command)
            current.total_ms[shape_key] = 0.0
        current.counts[shape_key] = count + 1
        if duration == duration:
            current.total_ms[shape_key] += duration
        current.last_shape = shape_key
        current.last_end = now

    def _wait(self, connection: str, waiting: list | None, statement: tuple, command: str) -> bool:
        """Keep a range's statement of ``connection`` for the range before it (True), or not: from
        its first BEGIN on (kept too, and read here), or past the limits (its statements are read
        here after all, its request cut at the range's start, as a range read alone cuts it)."""
        if waiting is None:  # the connection's first statement in this range
            if self.held >= _HEADS_MAX:
                self.heads[connection] = ("cut", [])
                return False
            waiting = self.waiting[connection] = []
            self.heads[connection] = ("open", waiting)
        if command in _TRANSACTION_START:
            waiting.append(statement)
            del self.waiting[connection]
            self.heads[connection] = ("ended", waiting)
            return False
        if len(waiting) < _HEAD_MAX and self.held < _HEADS_MAX:
            waiting.append(statement)
            self.held += 1
            return True
        self._cut(connection)
        return False

    def _cut(self, connection: str) -> None:
        """Read ``connection``'s waiting statements here: its request cut at the range's start."""
        waiting = self.waiting.pop(connection)
        self.heads[connection] = ("cut", [])
        self.held -= len(waiting)
        for statement in waiting:
            self.add(connection, *statement)

    def follow(self, after: RequestGrouper) -> None:
        """``after``'s statements follow this grouper's (the next byte range of the same file): the
        statements its connections began with continue their requests here, what it closed is
        added, and its open requests and connection states become this grouper's."""
        for connection, (how, statements) in after.heads.items():  # in the order they came
            if how == "cut":
                self._close(connection)
            for statement in statements:
                self.add(connection, *statement)
        self.merge(after)
        for connection, state in after.states.items():
            if after.heads[connection][0] != "open":  # (else all its statements were read here)
                self.states[connection] = state
        for connection, request in after.open.items():
            self.open[connection] = request

    def _special(self, connection: str, command: str) -> None:
        """A transaction's start or end, or a session command (not counted in a request)."""
        state = self.states[connection]
        if command in _TRANSACTION_START:
            self._close(connection)
            state[2] = True
        elif command in _TRANSACTION_END:
            if state[2]:
                state[2] = False
                self._close(connection)
        elif command == "DISCARD":
            self._close(connection)

    def _close(self, connection: str) -> None:
        request = self.open.pop(connection, None)
        if request is None:
            return
        self.states[connection][0] = None
        if not request.statements:
            return
        self.requests += 1
        for key, repeats in request.counts.items():
            if repeats < self.min_repeats:
                continue
            normalized, fingerprint, command = request.info[key]
            hit = self.hits.get((request.route, key, request.grouped_by))
            total = request.total_ms[key]
            if hit is None:
                hit = self.hits[(request.route, key, request.grouped_by)] = {
                    "requests": 0, "executions": 0, "total_ms": 0.0, "saved_ms": 0.0, "repeats": [],
                    "worst": None, "normalized": normalized, "fingerprint": fingerprint, "command": command,
                }
            hit["requests"] += 1
            hit["executions"] += repeats
            hit["total_ms"] += total
            hit["saved_ms"] += total - total / repeats
            if len(hit["repeats"]) < _KEEP_SIZES:
                hit["repeats"].append(repeats)
            if hit["worst"] is None or repeats > hit["worst"]["repeats"]:
                before = request.before.get(key, "")
                hit["worst"] = {"repeats": repeats, "request": request.label, "request_id": request.request_id,
                                "statements": request.statements,
                                "after": request.info[before][0] if before in request.info else ""}
        if request.statements > self.max_statements:
            big = self.big.get((request.route, request.grouped_by))
            total = sum(request.total_ms.values())
            if big is None:
                big = self.big[(request.route, request.grouped_by)] = {"requests": 0, "sizes": [], "worst": None}
            big["requests"] += 1
            if len(big["sizes"]) < _KEEP_SIZES:
                big["sizes"].append(request.statements)
            if big["worst"] is None or request.statements > big["worst"]["statements"]:
                big["worst"] = {"statements": request.statements, "request": request.label,
                                "request_id": request.request_id, "total_ms": total}

    def close_all(self) -> None:
        for connection in list(self.waiting):  # a range with no range before it read here: cut
            self._cut(connection)
        for connection in list(self.open):
            self._close(connection)
        for state in self.states.values():
            state[2] = False

    def merge(self, other: RequestGrouper) -> None:
        self.requests += other.requests
        for key, hit in other.hits.items():
            mine = self.hits.get(key)
            if mine is None:
                self.hits[key] = hit
                continue
            for name in ("requests", "executions", "total_ms", "saved_ms"):
                mine[name] += hit[name]
            mine["repeats"] = (mine["repeats"] + hit["repeats"])[:_KEEP_SIZES]
            if hit["worst"]["repeats"] > mine["worst"]["repeats"]:
                mine["worst"] = hit["worst"]
        for key, big in other.big.items():
            mine = self.big.get(key)
            if mine is None:
                self.big[key] = big
                continue
            mine["requests"] += big["requests"]
            mine["sizes"] = (mine["sizes"] + big["sizes"])[:_KEEP_SIZES]
            if big["worst"]["statements"] > mine["worst"]["statements"]:
                mine["worst"] = big["worst"]

    def findings(self) -> pd.DataFrame:
        """The ``n_plus_one`` findings (columns as :func:`from_logs`)."""
        import statistics

        rows = []
        flagged = set()
        for (route, _key, grouped_by), hit in self.hits.items():
            worst = hit["worst"]
            strong = grouped_by in _STRONG
            statement = str(hit["normalized"])
            mean_ms = hit["total_ms"] / hit["executions"] if hit["executions"] else math.nan
            where = f"in one request to {route}" if route else "in one request"
            many = hit["requests"]
            after = worst["after"]
            evidence = (
                f"{_clip(statement, 100)} ran {worst['repeats']} times {where}"
                + (f" (request {worst['request_id']})" if worst["request_id"] else "")
                + (f", {int(statistics.median(hit['repeats']))} times at the median over {many} such requests"
                   if many > 1 else "")
                + (f"; {mean_ms:.2f} ms each" if mean_ms == mean_ms and mean_ms else "")
                + (f", right after {_clip(after, 80)}" if after else "")
                + f"; requests grouped by {grouped_by}"
                + ("" if strong else " alone (no request comment or transaction): a hint, not proof")
            )
            if strong:
                flagged.add(route)
                severity = "critical" if worst["repeats"] >= self.critical_repeats else "warning"
            else:
                severity = "info"
            rows.append(finding(
                "n_plus_one", severity, route or _clip(statement, 120), evidence,
                _recommendation(str(hit["command"]), after),
                sql=any_rewrite(statement) or "" if strong else "",
                benefit_ms=hit["saved_ms"] if strong else None,
                pattern="repeated_statement", route=route, fingerprint=hit["fingerprint"], statement=statement,
                repeats=int(worst["repeats"]), statements=int(worst["statements"]), requests=many,
                example_request=str(worst["request"]), after=after, grouped_by=grouped_by,
                confidence="high" if grouped_by == "request comment" else ("medium" if strong else "low"),
            ))
        for (route, grouped_by), big in self.big.items():
            worst = big["worst"]
            strong = grouped_by in _STRONG
            where = f"to {route}" if route else "without a route comment"
            explained = route in flagged
            rows.append(finding(
                "n_plus_one", "warning" if strong and not explained else "info",
                route or "requests without a route comment",
                f"{big['requests']} request(s) {where} ran more than {self.max_statements} statements: "
                f"{int(worst['statements'])} at most (request {worst['request_id'] or worst['request']}), "
                f"{int(statistics.median(big['sizes']))} at the median, {float(worst['total_ms']):.1f} ms of "
                f"database time in the largest; requests grouped by {grouped_by}"
                + ("; the repeated statement found for this route explains it" if explained else ""),
                "load what the request needs in fewer statements: fetch related rows with a join or "
                "one `= ANY($1)` query per table instead of one per row, and cache per-request lookups",
                pattern="too_many_statements", route=route, statements=int(worst["statements"]),
                requests=big["requests"], example_request=str(worst["request"]), grouped_by=grouped_by,
                confidence="high" if grouped_by == "request comment" else ("medium" if strong else "low"),
            ))
        return _with_columns(rows, LOG_FINDING_COLUMNS)


# -- grouping statements into requests ----------------------------------------------------------

def requests(logs: pd.DataFrame, *, gap_ms: float = 1000.0, split_on_commit: bool = True) -> pd.DataFrame:
    """The executed statements of ``logs``, each with the request it belongs to.

    A request is named by the app's request comment (``request_id=``, or a W3C
    ``traceparent``) when there is one. Otherwise it is a run of statements on one
    connection (session id, else file and pid), cut where the connection was idle longer than
    ``gap_ms``, after a COMMIT or ROLLBACK (``split_on_commit``) and after ``DISCARD ALL`` (a
    pooler handing the connection to another client).

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)``.
    gap_ms:
        Idle time on a connection that separates two requests.
    split_on_commit:
        End a request at the end of each transaction.

    Returns
    -------
    pandas.DataFrame
        The executions (``statement`` and ``execute`` entries) in log order with extra columns
        ``request``, ``route``, ``request_id`` and ``grouped_by`` (``request comment`` or
        ``connection and time gap``). Transaction and session statements (BEGIN, COMMIT, SET...)
        are included, marked by ``control`` = True.
    """
    import pandas as pd

    from perfkit.logs.analysis import executions
    runs = executions(logs).copy()
    if runs.empty:
        return runs.assign(**{c: pd.Series(dtype="object") for c in REQUEST_COLUMNS}, control=pd.Series(dtype=bool))
    unique = runs["statement"].unique()
    tags = {text: request_tags(text) for text in unique}
    runs["route"] = runs["statement"].map(lambda s: _route_of(tags[s]))
    runs["request_id"] = runs["statement"].map(lambda s: _request_id_of(tags[s]))
    runs["control"] = runs["command"].isin(CONTROL_COMMANDS)
    connection = runs["session_id"].where(runs["session_id"] != "", runs["file"].astype(str) + ":" + runs["pid"].astype(str))
    runs["_connection"] = connection
    runs = runs.sort_values(["_connection", "ts", "file", "line"], kind="stable")

    started = runs["ts"] - pd.to_timedelta(runs["duration_ms"].fillna(0.0), unit="ms")
    previous_end = runs.groupby("_connection", sort=False)["ts"].shift()
    idle_ms = (started - previous_end).dt.total_seconds() * 1000.0
    boundary = previous_end.isna() | (idle_ms > gap_ms)
    previous_command = runs.groupby("_connection", sort=False)["command"].shift().fillna("")
    if split_on_commit:
        boundary |= previous_command.isin(_TRANSACTION_END)
    boundary |= previous_command == "DISCARD"
    sequence = boundary.astype(int).groupby(runs["_connection"], sort=False).cumsum()
    by_gap = runs["_connection"] + "#" + sequence.astype(str)

    tagged = runs["request_id"] != ""
    runs["request"] = by_gap.where(~tagged, "request_id=" + runs["request_id"])
    runs["grouped_by"] = "connection and time gap"
    runs.loc[tagged, "grouped_by"] = "request comment"
    # a request grouped by time inherits the route that its statements carry
    untagged = runs[~tagged & (runs["route"] != "")]
    if not untagged.empty:
        routes = untagged.groupby("request")["route"].agg(lambda r: Counter(r).most_common(1)[0][0])
        missing = ~tagged & (runs["route"] == "")
        runs.loc[missing, "route"] = runs.loc[missing, "request"].map(routes).fillna("")
    return runs.drop(columns=["_connection"]).sort_values(["ts", "file", "line"], kind="stable")


# -- N+1 from logs ------------------------------------------------------------------------------

def from_logs(
    logs: pd.DataFrame,
    *,
    min_repeats: int = 3,
    max_statements: int = 10,
    gap_ms: float = 1000.0,
    critical_repeats: int = 20,
    split_on_commit: bool = True,
) -> pd.DataFrame:
    """``n_plus_one`` findings from logged statements grouped by request.

    Parameters
    ----------
    logs:
        ``perfkit.logs.read(...)`` of a log with every statement (``log_min_duration_statement
        = 0`` or ``log_statement = 'all'``), ideally with request comments (sqlcommenter).
    min_repeats:
        A statement shape run this many times or more in one request is flagged (3: the
        field's "same query executed 3+ times in one request").
    max_statements:
        A request running more statements than this is flagged ("total query count > 10").
    gap_ms, split_on_commit:
        How requests are cut when statements carry no request comment (see :func:`requests`).
    critical_repeats:
        Repeats that make a finding ``critical`` rather than ``warning``.

    Returns
    -------
    pandas.DataFrame
        Findings with extra columns ``pattern`` (``repeated_statement`` or
        ``too_many_statements``), ``route``, ``fingerprint``, ``statement`` (normalized),
        ``repeats`` (most in one request), ``statements`` (most in one request), ``requests``
        (requests affected), ``example_request``, ``after`` (the statement run just before the
        repeats: usually the list query), ``grouped_by``, ``confidence``.
    """
    from perfkit.logs.analysis import executions
    if min_repeats < 2:
        raise BadInputError(f"min_repeats must be 2 or more, not {min_repeats}")
    from perfkit.logs.normalize import Normalized

    grouper = RequestGrouper(min_repeats=min_repeats, max_statements=max_statements, gap_ms=gap_ms,
                             critical_repeats=critical_repeats)
    runs = executions(logs)
    runs = runs[runs["statement"].fillna("") != ""]
    if runs.empty:
        return grouper.findings()
    runs = runs.sort_values(["ts", "file", "line"], kind="stable")
    connection = runs["session_id"].where(runs["session_id"] != "",
                                          runs["file"].astype(str) + ":" + runs["pid"].astype(str))
    stamps = (runs["ts"].astype("int64") / 1e6).tolist()
    for conn, stamp, duration, shape, normalized, fingerprint, command, statement, application in zip(
            connection, stamps, runs["duration_ms"], runs["fingerprint"].fillna("text:" + runs["normalized"]),
            runs["normalized"], runs["fingerprint"], runs["command"], runs["statement"], runs["application"],
            strict=True):
        grouper.add(conn, stamp, float(duration), shape, Normalized(normalized, fingerprint, command), statement,
                    application or "", float)
    grouper.close_all()
    return grouper.findings()


def _recommendation(command: str, after: str) -> str:
    list_query = f" (the list query {_clip(after, 60)})" if after else ""
    if command == "INSERT":
        return "insert the rows in one statement (multi-row VALUES, INSERT ... SELECT FROM unnest($1), or COPY) instead of one INSERT per row"
    if command in ("UPDATE", "DELETE"):
        return f"{command.lower()} the rows in one statement with `WHERE id = ANY($1)` and the list of ids, instead of one per row"
    return (
        "fetch the rows in one query: collect the keys from the rows already loaded"
        f"{list_query} and run the lookup once with `= ANY($1)`, or join it to the list query; "
        "in an ORM, eager-load the relation (select_related / prefetch_related, includes, joinedload)"
    )


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- statement shapes ---------------------------------------------------------------------------

@lru_cache(maxsize=20_000)
def key_lookup(query: str) -> tuple[str, ...]:
    """The key columns when ``query`` looks rows up by key, else ``()``.

    A key lookup is one SELECT from one table whose WHERE is only equalities of a column to a
    parameter or constant (``WHERE id = $1``, ``WHERE tenant_id = $1 AND id = $2``), with
    ``IS NULL`` tests allowed, and no GROUP BY.
    """
    found = _lookup_equalities(query)
    return tuple(name for name, _ in found[1]) if found else ()


def _lookup_equalities(query: str):
    try:
        statements = parse_sql(query)
    except pg.ParseError:
        return None
    if len(statements) != 1:
        return None
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt) or stmt.op != enums.SetOperation.SETOP_NONE:
        return None
    if stmt.groupClause or not stmt.fromClause or len(stmt.fromClause) != 1:
        return None
    if not isinstance(stmt.fromClause[0], ast.RangeVar) or stmt.whereClause is None:
        return None
    where = stmt.whereClause
    conjuncts = list(where.args) if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR else [where]
    equalities = []
    for item in conjuncts:
        if isinstance(item, ast.NullTest):
            continue
        column = _column_equals_value(item)
        if column is None:
            return None
        equalities.append((column, item))
    return (stmt, equalities) if equalities else None


def _column_equals_value(node) -> str | None:
    if not isinstance(node, ast.A_Expr) or node.kind != enums.A_Expr_Kind.AEXPR_OP:
        return None
    if len(node.name) != 1 or getattr(node.name[0], "sval", None) != "=":
        return None
    for column, value in ((node.lexpr, node.rexpr), (node.rexpr, node.lexpr)):
        while isinstance(value, ast.TypeCast):
            value = value.arg
        if isinstance(column, ast.ColumnRef) and isinstance(value, ast.ParamRef | ast.A_Const):
            last = column.fields[-1]
            return getattr(last, "sval", None) or "*"
    return None


def any_rewrite(query: str) -> str | None:
    """``query`` with its per-row key equality turned into ``= ANY(...)``, or None.

    The key is ``id`` when the lookup has it, else the last ``*_id`` column that is not a
    tenant column, else the last equality (``tenant_id = $1 AND id = $2`` becomes
    ``tenant_id = $1 AND id = ANY($2)``).
    """
    found = _lookup_equalities(query)
    if not found:
        return None
    stmt, equalities = found
    names = [name for name, _ in equalities]
    chosen = None
    if "id" in names:
        chosen = names.index("id")
    else:
        keyed = [i for i, name in enumerate(names) if name.endswith("_id") and "tenant" not in name]
        chosen = keyed[-1] if keyed else len(names) - 1
    node = equalities[chosen][1]
    node.kind = enums.A_Expr_Kind.AEXPR_OP_ANY
    try:
        return RawStream()(stmt)
    except Exception:  # pglast cannot print some rare nodes back; the finding stays useful without
        return None


# -- N+1 from pg_stat_statements alone -----------------------------------------------------------

def from_statements(
    snapshot: pd.DataFrame,
    *,
    min_ratio: float = 3.0,
    rows_tolerance: float = 2.0,
    min_calls: int = 30,
    request_count: int | None = None,
    min_repeats: int = 3,
) -> pd.DataFrame:
    """Candidate ``n_plus_one`` findings from a statement snapshot (or a diff of two), no logs.

    A key lookup (:func:`key_lookup`) is a candidate when it ran at least ``min_ratio`` times
    as often as a list statement, and about as often as that list statement returned rows (its
    calls within ``rows_tolerance`` times the list's rows): one lookup per listed row.
    Confidence is lower than from logs: the two statements are only known to share an interval.
    What is not the application's workload (:func:`perfkit.statements.noise`) is left out.

    Parameters
    ----------
    snapshot:
        One row per statement with ``queryid``, ``query``, ``calls``, ``total_exec_ms``,
        ``mean_exec_ms``, ``rows`` (``perfkit.statements.snapshot`` or a diff of two).
    min_ratio:
        The lookup's calls over the list statement's calls.
    rows_tolerance:
        How far the lookup's calls may be from the list's rows (a factor).
    min_calls:
        Lookups called less often are ignored.
    request_count:
        Requests a load test made in the same interval; adds calls per request to the
        evidence, and a lookup run ``min_repeats`` or more times per request is flagged even
        without a matching list statement.
    min_repeats:
        Calls per request that count as repeated (with ``request_count``).

    Returns
    -------
    pandas.DataFrame
        Findings with extra columns ``pattern`` (``calls_multiple``), ``queryid``,
        ``list_queryid``, ``calls``, ``list_calls``, ``list_rows``, ``ratio``,
        ``calls_per_request``, ``statement``, ``confidence`` (``low``).
    """
    import pandas as pd
    missing = [c for c in SNAPSHOT_COLUMNS if c not in snapshot.columns]
    if missing:
        raise BadInputError(f"a statement snapshot needs the columns {', '.join(missing)}")
    if request_count is not None and request_count <= 0:
        raise BadInputError(f"request_count must be above 0, not {request_count}")
    stats = snapshot[list(SNAPSHOT_COLUMNS)].copy()
    for column in ("calls", "rows", "total_exec_ms", "mean_exec_ms"):
        stats[column] = pd.to_numeric(stats[column], errors="coerce").fillna(0.0)
    stats = stats[stats["calls"] > 0]
    stats["query"] = stats["query"].fillna("").astype(str)
    from perfkit.statements import noise

    stats = stats[noise(stats) == ""]  # perfkit's reads, driver probes, FK checks and bulk loads pair with nothing
    stats["keys"] = stats["query"].map(key_lookup)
    lookups = stats[(stats["keys"].map(len) > 0) & (stats["calls"] >= min_calls)]
    lists = stats[stats["rows"] >= stats["calls"] * min_ratio]
    rows = []
    for lookup in lookups.itertuples(index=False):
        best, best_distance = None, math.inf
        for parent in lists.itertuples(index=False):
            if parent.queryid == lookup.queryid or lookup.calls < parent.calls * min_ratio:
                continue
            distance = abs(math.log(lookup.calls / parent.rows))
            if distance <= math.log(rows_tolerance) and distance < best_distance:
                best, best_distance = parent, distance
        per_request = lookup.calls / request_count if request_count else math.nan
        repeated = request_count is not None and per_request >= min_repeats
        if best is None and not repeated:
            continue
        statement = " ".join(lookup.query.split())
        parts = [f"{_clip(statement, 100)} ran {int(lookup.calls):,} times"]
        if best is not None:
            parts.append(
                f", {lookup.calls / best.calls:.1f}× the {int(best.calls):,} calls of {_clip(best.query, 80)}, "
                f"which returned {int(best.rows):,} rows in all ({best.rows / best.calls:.1f} per call): "
                "about one lookup per listed row"
            )
        if request_count:
            parts.append(f"; {per_request:.1f} calls per request over {request_count:,} requests")
        parts.append("; from pg_stat_statements alone (no request boundaries), so a candidate to confirm in the logs")
        saved = lookup.total_exec_ms - (best.calls if best is not None else request_count or 0) * lookup.mean_exec_ms
        rows.append(
            finding(
                "n_plus_one",
                "warning" if repeated else "info",
                _clip(statement, 120),
                "".join(parts),
                _recommendation("SELECT", best.query if best is not None else ""),
                sql=any_rewrite(lookup.query) or "",
                benefit_ms=max(saved, 0.0),
                pattern="calls_multiple",
                queryid=lookup.queryid,
                list_queryid=best.queryid if best is not None else None,
                calls=int(lookup.calls),
                list_calls=int(best.calls) if best is not None else None,
                list_rows=int(best.rows) if best is not None else None,
                ratio=float(lookup.calls / best.calls) if best is not None else math.nan,
                calls_per_request=per_request,
                statement=statement,
                confidence="low",
            )
        )
    return _with_columns(rows, STATEMENT_FINDING_COLUMNS)

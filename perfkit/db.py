"""Database access: a read-only SQLAlchemy engine over psycopg 3, server facts, redacted DSNs.

Every perfkit session carries application_name=perfkit; every transaction is READ ONLY with a
statement_timeout and a lock_timeout of its own (pooler-safe: nothing is set on the session).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
import psycopg
import psycopg.conninfo
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perfkit import secrets
from perfkit.errors import (
    AuthenticationFailed,
    BadInputError,
    DatabaseUnreachable,
    PerfkitError,
    PermissionDenied,
    QueryTimeout,
    ReadOnlyViolation,
)

DEFAULT_STATEMENT_TIMEOUT = "30s"
DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_CONNECT_TIMEOUT = 10
APPLICATION_NAME = "perfkit"
# Leads every statement perfkit sends, so its own reads can be told apart in pg_stat_statements
# (the comment is not part of the query id, but it stays in the text first seen).
PERFKIT_TAG = "/* perfkit */ "

_DURATION = re.compile(r"^\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*$")

# redaction lives in perfkit.secrets; these names stay here, where most callers look for them
redact = secrets.redact
redact_text = secrets.redact_text
describe = secrets.describe


def resolve_dsn(dsn: str | None = None) -> str:
    """The connection string to use: ``dsn``, else ``$PERFKIT_DSN``, else libpq's PG* variables.

    An empty string means "libpq defaults" (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD...).
    """
    chosen = dsn if dsn else os.environ.get("PERFKIT_DSN", "")
    reason = secrets.malformed(chosen)
    if reason:  # libpq's own message quotes the text: never shown
        raise BadInputError(
            f"--dsn is not a valid connection string: the connection string is malformed ({reason}); "
            "it is not shown, as it may hold a password"
        )
    secrets.remember(chosen)  # its password and $PGPASSWORD: masked in every later output
    return chosen


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return redact_text(text[0].strip() if text else type(err).__name__)


def _check_duration(name: str, value: str | int | None) -> str:
    if value is None:
        return "0"
    text = str(value)
    if not _DURATION.match(text):
        raise BadInputError(f"--{name.replace('_', '-')} must be a duration like 30s, 500ms or 0 (off), not {text!r}")
    return text.replace(" ", "")


def dsn_origin(dsn: str | None) -> str:
    """Where the connection settings came from, for an error message (never a value that may hold a
    password): the DSN given (``--dsn``), ``$PERFKIT_DSN``, or libpq's defaults and which ``PG*``
    variables are set."""
    if dsn:
        return "the DSN given (--dsn, or the notebook's dsn)"
    if os.environ.get("PERFKIT_DSN", ""):
        return "$PERFKIT_DSN"
    shown = [f"{name}={os.environ[name]}" for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER")
             if os.environ.get(name)]
    hidden = [name for name in ("PGSERVICE", "PGPASSWORD", "PGPASSFILE", "PGSSLMODE") if os.environ.get(name)]
    named = ", ".join(redact_text(item) for item in shown) + (", " if shown and hidden else "") + ", ".join(hidden)
    return "libpq's defaults" + (f" and {named}" if named else " (no PG* variable set)") + ", as no --dsn or $PERFKIT_DSN was given"


_SOCKET = re.compile(r'on socket "([^"]+)"')
_ADDRESS = re.compile(r'at "([^"]+)"(?:\s*\([^)]*\))?, port (\d+)')


def _unreachable(full: str, reason: str) -> str:
    """libpq's reason in words: no server on that socket or port says so."""
    lowered = reason.lower()
    socket = _SOCKET.search(full)
    if socket and ("no such file" in lowered or "connection refused" in lowered):
        return (f"no server listens on the socket {socket.group(1)} ({reason}; is PostgreSQL running on this "
                "machine? a server elsewhere needs host=)")
    address = _ADDRESS.search(full)
    if address and "connection refused" in lowered:
        return f"no server listens on {address.group(1)} port {address.group(2)} ({reason})"
    return reason


def translate_error(err: BaseException, *, target: str = "", origin: str = "") -> PerfkitError:
    """A one-line PerfkitError for a psycopg/SQLAlchemy error (password never included); ``origin``
    (:func:`dsn_origin`) says, for a server that cannot be reached, where the settings came from."""
    orig = getattr(err, "orig", None) or err
    message = _first_line(orig)
    where = f" ({target})" if target else ""
    if isinstance(orig, psycopg.errors.QueryCanceled):
        if "lock timeout" in message:
            return QueryTimeout(f"cancelled by perfkit's lock_timeout{where}: {message}")
        return QueryTimeout(f"cancelled by perfkit's statement_timeout{where}: {message}; raise it with --statement-timeout")
    if isinstance(orig, psycopg.errors.LockNotAvailable):
        return QueryTimeout(f"cancelled by perfkit's lock_timeout{where}: {message}")
    if isinstance(orig, psycopg.errors.ReadOnlySqlTransaction):
        return ReadOnlyViolation(f"perfkit sessions are read-only{where}: {message}")
    if isinstance(orig, psycopg.errors.InsufficientPrivilege):
        return PermissionDenied(f"permission denied{where}: {message}")
    if isinstance(orig, psycopg.OperationalError):
        full = redact_text(str(orig))
        lowered = full.lower()
        if "password authentication failed" in lowered or "authentication failed" in lowered or "no password supplied" in lowered:
            return AuthenticationFailed(f"authentication failed for {target or 'the server'}: check the user and password")
        reason = _last_meaningful(full)
        return DatabaseUnreachable(f"cannot connect to {target or 'the server'}: {_unreachable(full, reason)}"
                                   + (f"; connection settings from {origin}" if origin else ""))
    if isinstance(orig, PerfkitError):
        return orig
    return PerfkitError(f"database error{where}: {message}")


def _last_meaningful(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # psycopg lists one attempt per address; the reason is after the last 'failed:'
    for line in reversed(lines):
        if "failed:" in line:
            return line.rsplit("failed:", 1)[1].strip()
    return lines[-1] if lines else "unknown error"


@dataclass
class SessionSettings:
    """What perfkit sets on every transaction it opens."""

    read_only: bool = True
    statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    application_name: str = APPLICATION_NAME
    extra: Mapping[str, str] = field(default_factory=dict)

    def statements(self) -> list[tuple[str, str]]:
        """The settings made local to each transaction (``SET LOCAL``)."""
        pairs = [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ]
        pairs.extend((str(k), str(v)) for k, v in self.extra.items())
        return pairs

    def set_local_sql(self) -> list[bytes]:
        """``SET LOCAL`` statements for the current transaction only (pooler-safe). SET, not
        ``SELECT set_config``: a SET takes no snapshot, so ``SET TRANSACTION READ WRITE`` may
        still follow (plans capture's --allow-writes)."""
        return [
            (PERFKIT_TAG + f"SET LOCAL {_setting_name(name)} = {_literal(value)}").encode()
            for name, value in self.statements()
        ]


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _setting_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        raise BadInputError(f"not a setting name: {name!r}")
    return name


class PerfkitConnection(psycopg.Connection):
    """A psycopg connection whose every transaction is perfkit's own, whoever opens it.

    psycopg starts each transaction with ``BEGIN READ ONLY`` (``read_only = True``); right
    after it this class sends ``SET LOCAL`` for the timeouts.
    Nothing is set on the session, so behind a transaction-mode pooler (PgBouncer) every
    transaction is read-only and bounded whichever server connection it lands on, and nothing
    leaks to the pooler's other clients. Also for code that uses the raw DBAPI connection
    (plans capture), since the hook is in psycopg's own transaction start.
    """

    perfkit_begin: list[bytes] = []

    def _start_query(self):
        starting = not self._autocommit and self.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        yield from super()._start_query()
        if starting:
            for command in self.perfkit_begin:
                yield from self._exec_command(command)


def _dsn_sets_connect_timeout(conninfo: str) -> bool:
    if os.environ.get("PGCONNECT_TIMEOUT"):
        return True
    try:
        return "connect_timeout" in psycopg.conninfo.conninfo_to_dict(conninfo) if conninfo else False
    except psycopg.ProgrammingError:
        return False


def connect(
    dsn: str | None = None,
    *,
    read_only: bool = True,
    statement_timeout: str | int | None = DEFAULT_STATEMENT_TIMEOUT,
    lock_timeout: str | int | None = DEFAULT_LOCK_TIMEOUT,
    connect_timeout: int | None = None,
    application_name: str = APPLICATION_NAME,
    check: bool = True,
    retries: int = 0,
    retry_backoff: float = 2.0,
) -> Engine:
    """An SQLAlchemy engine whose sessions are safe to point at production.

    Parameters
    ----------
    dsn:
        libpq connection string or ``postgresql://`` URL; default ``$PERFKIT_DSN``, then the
        libpq ``PG*`` variables.
    read_only:
        Every transaction starts with ``BEGIN READ ONLY`` (default).
    statement_timeout, lock_timeout:
        PostgreSQL durations (``"30s"``, ``"500ms"``, ``0`` for off) set for every
        transaction (``SET LOCAL``: safe behind PgBouncer in transaction mode).
    connect_timeout:
        Seconds to wait for the server; default the DSN's own ``connect_timeout`` (or
        ``$PGCONNECT_TIMEOUT``), else 10. An explicit value wins over both.
    check:
        Open one connection now, so an unreachable server or a bad password fails here with
        a one-line :class:`~perfkit.errors.PerfkitError`.
    retries, retry_backoff:
        For scheduled runs: when the server is unreachable at the check, try again up to
        ``retries`` times, waiting ``retry_backoff`` seconds, doubled each time (a bad password
        or bad input is never retried).

    Returns
    -------
    sqlalchemy.engine.Engine
        With ``engine.info["dsn"]`` (redacted) and ``engine.info["target"]``.
    """
    conninfo = resolve_dsn(dsn)
    origin = dsn_origin(dsn)
    settings = SessionSettings(
        read_only=read_only,
        statement_timeout=_check_duration("statement_timeout", statement_timeout),
        lock_timeout=_check_duration("lock_timeout", lock_timeout),
        application_name=application_name,
    )
    target = describe(conninfo)
    keywords: dict = {"application_name": application_name}
    if connect_timeout is not None or not _dsn_sets_connect_timeout(conninfo):
        keywords["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else int(connect_timeout)
    begin = settings.set_local_sql()

    def creator():
        try:
            # prepare_threshold=None: no server-side prepared statements, which a
            # transaction-mode pooler cannot carry from one transaction to the next
            raw = PerfkitConnection.connect(conninfo, prepare_threshold=None, **keywords)
        except psycopg.Error as err:
            raise translate_error(err, target=target, origin=origin) from None
        raw.read_only = bool(read_only)
        raw.perfkit_begin = begin
        return raw

    engine = sa.create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_size=2,
        max_overflow=4,
        pool_pre_ping=True,
    )
    engine.info = {"dsn": redact(conninfo), "target": target, "settings": settings}
    if check:
        attempt = 0
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text(PERFKIT_TAG + "SELECT 1"))
                break
            except (PerfkitError, sa.exc.SQLAlchemyError) as err:
                engine.dispose()
                error = err if isinstance(err, PerfkitError) else translate_error(err, target=target, origin=origin)
                if isinstance(error, DatabaseUnreachable) and attempt < retries:
                    time.sleep(retry_backoff * (2 ** attempt))
                    attempt += 1
                    continue
                raise error from None
    return engine


@contextmanager
def session(engine: Engine):
    """A connection from ``engine`` whose database errors arrive as PerfkitErrors."""
    target = getattr(engine, "info", {}).get("target", "") if hasattr(engine, "info") else ""
    try:
        with engine.connect() as conn:
            yield conn
    except PerfkitError:
        raise
    except (sa.exc.SQLAlchemyError, psycopg.Error) as err:
        raise translate_error(err, target=target) from None


def query(engine_or_conn, sql: str, params: Mapping | None = None) -> pd.DataFrame:
    """Run one read-only query and return its rows as a DataFrame (errors as PerfkitErrors)."""
    if isinstance(engine_or_conn, Engine):
        with session(engine_or_conn) as conn:
            return query(conn, sql, params)
    try:
        result = engine_or_conn.execute(sa.text(PERFKIT_TAG + sql), dict(params or {}))
        keys = list(result.keys())
        rows = result.cursor.fetchall() if result.cursor is not None else []
        if len(set(keys)) != len(keys):
            return pd.DataFrame.from_records(rows, columns=keys)
        # column-wise construction: much faster than DataFrame(list of Row objects)
        if not rows:  # object columns, so an empty result still has .str and .dt-free access
            return pd.DataFrame({key: pd.Series([], dtype=object) for key in keys}, columns=keys)
        columns = list(zip(*rows, strict=True))
        return pd.DataFrame({key: list(values) for key, values in zip(keys, columns, strict=True)}, columns=keys)
    except PerfkitError:
        raise
    except (sa.exc.SQLAlchemyError, psycopg.Error) as err:
        raise translate_error(err) from None


def scalar(engine_or_conn, sql: str, params: Mapping | None = None):
    """The single value of a one-row, one-column query."""
    frame = query(engine_or_conn, sql, params)
    return None if frame.empty else frame.iat[0, 0]


SERVER_FACTS_SQL = """
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       version() AS version_full,
       current_database() AS database,
       current_user AS "user",
       inet_server_addr()::text AS server_addr,
       inet_server_port() AS server_port,
       pg_postmaster_start_time() AS started_at,
       now() AS now
"""

KEY_SETTINGS = (
    "shared_preload_libraries",
    "track_io_timing",
    "compute_query_id",
    "pg_stat_statements.track",
    "pg_stat_statements.max",
    "max_connections",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "autovacuum",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor",
    "log_min_duration_statement",
    "default_transaction_read_only",
    "statement_timeout",
    "lock_timeout",
)

SETTINGS_SQL = """
SELECT name, setting, unit, current_setting(name) AS value, source
FROM pg_settings WHERE name = ANY(:names)
"""

EXTENSIONS_SQL = """
SELECT e.extname, e.extversion, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
"""


def server_facts(engine_or_conn) -> dict:
    """Version, database, user, key settings and installed extensions of the server."""
    facts = query(engine_or_conn, SERVER_FACTS_SQL).iloc[0].to_dict()
    settings = query(engine_or_conn, SETTINGS_SQL, {"names": list(KEY_SETTINGS)})
    facts["settings"] = dict(zip(settings["name"], settings["value"], strict=True))
    extensions = query(engine_or_conn, EXTENSIONS_SQL)
    facts["extensions"] = {
        row.extname: {"version": row.extversion, "schema": row.schema}
        for row in extensions.itertuples(index=False)
    }
    facts["pg_stat_statements"] = facts["extensions"].get("pg_stat_statements", {}).get("version")
    return facts


def server_id(engine_or_conn, dsn: str | None = None) -> str:
    """A stable name for the server and database, safe as a folder name (``host-port-dbname``)."""
    facts = query(
        engine_or_conn,
        "SELECT coalesce(inet_server_addr()::text, 'local') AS host, "
        "coalesce(inet_server_port(), current_setting('port')::int) AS port, current_database() AS db",
    ).iloc[0]
    host = str(facts["host"]).split("/")[0]
    if host in {"127.0.0.1", "::1", "local"} and dsn:
        host = describe(dsn).split("@")[-1].split(":")[0] or host
    return sanitize_server_id(f"{host}-{facts['port']}-{facts['db']}")


def sanitize_server_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if not cleaned:
        raise BadInputError(f"server name {name!r} has no usable characters")
    return cleaned

"""The evidence of one health run, read once: a per-run catalog context (pghero-style).

Every check asks the :class:`Context` for the rows it judges (index definitions, table
statistics, pg_stat_statements, the column workload, settings, sessions...). Each read runs
the first time a check needs it, in its own read-only session, and is kept for the rest of
the run: ``perfkit health`` reads pg_stat_statements once however many checks use it. A read
that fails (a missing privilege, the statement timeout) fails every check needing it, the same
way, without being sent again. :class:`Check` ties a check's read to its pure judging.
"""

from __future__ import annotations

import inspect
import ipaddress
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from perfkit import db
from perfkit.errors import ExtensionMissing, PerfkitError, PermissionDenied
from perfkit.health.common import size_text
from perfkit.health.workload import (
    STATEMENT_COLUMNS,
    TABLE_COLUMNS_SQL,
    column_workload,
    empty_statements,
)

# -- the catalog reads several checks share ----------------------------------------------------
DATABASE_SQL = """
SELECT d.datname AS database, d.blks_hit, d.blks_read, d.temp_files, d.temp_bytes,
       extract(epoch FROM now() - d.stats_reset) AS since_reset_s,
       extract(epoch FROM now() - pg_postmaster_start_time()) AS since_start_s,
       inet_server_addr()::text AS server_address
FROM pg_stat_database d WHERE d.datname = current_database()
"""

INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS table, ic.relname AS index, i.indexrelid::bigint AS oid,
       am.amname AS method, i.indnkeyatts AS nkeys,
       string_to_array(i.indkey::text, ' ')::int[] AS columns,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnatts) k
             ORDER BY k)::text[] AS column_names,
       string_to_array(i.indclass::text, ' ')::oid[] AS opclasses,
       string_to_array(i.indcollation::text, ' ')::oid[] AS collations,
       string_to_array(i.indoption::text, ' ')::int[] AS options,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS expressions,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       i.indisready AS is_ready,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS backs_constraint,
       EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) AS building,
       s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
       pg_relation_size(i.indexrelid) AS size_bytes,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY n.nspname, t.relname, i.indexrelid
"""

TABLES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table,
       s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan,
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       greatest(c.reltuples, 0) AS reltuples, c.relpages, c.relnatts,
       pg_table_size(s.relid) AS size_bytes,
       current_setting('block_size')::int AS block_size,
       coalesce((o.opts ->> 'fillfactor')::int, 100) AS fillfactor,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum)) AS since_vacuum_s,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze)) AS since_analyze_s,
       coalesce(o.opts ->> 'autovacuum_enabled', current_setting('autovacuum')) AS autovacuum,
       coalesce((o.opts ->> 'autovacuum_vacuum_threshold')::float8,
                current_setting('autovacuum_vacuum_threshold')::float8) AS vacuum_threshold,
       coalesce((o.opts ->> 'autovacuum_vacuum_scale_factor')::float8,
                current_setting('autovacuum_vacuum_scale_factor')::float8) AS vacuum_scale_factor,
       coalesce((o.opts ->> 'autovacuum_analyze_threshold')::float8,
                current_setting('autovacuum_analyze_threshold')::float8) AS analyze_threshold,
       coalesce((o.opts ->> 'autovacuum_analyze_scale_factor')::float8,
                current_setting('autovacuum_analyze_scale_factor')::float8) AS analyze_scale_factor,
       coalesce(io.heap_blks_hit, 0) AS heap_hit, coalesce(io.heap_blks_read, 0) AS heap_read,
       coalesce(io.idx_blks_hit, 0) AS idx_hit, coalesce(io.idx_blks_read, 0) AS idx_read
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
LEFT JOIN pg_statio_user_tables io ON io.relid = s.relid
LEFT JOIN LATERAL (SELECT jsonb_object_agg(t.option_name, t.option_value) AS opts
                   FROM pg_options_to_table(c.reloptions) t) o ON true
WHERE s.schemaname NOT LIKE 'pg_temp%'
"""

SETTINGS_SQL = """
SELECT name, setting, unit, current_setting(name) AS value, source
FROM pg_settings WHERE name = ANY(:names)
"""

# every setting a check weighs, read in one go
SETTING_NAMES = (
    "work_mem", "max_connections", "block_size", "shared_buffers", "effective_cache_size",
    "random_page_cost", "seq_page_cost", "autovacuum", "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor", "track_counts", "superuser_reserved_connections",
    "reserved_connections",  # PostgreSQL 16+: slots for pg_use_reserved_connections roles
    "autovacuum_freeze_max_age",
)

ACTIVITY_SQL = """
SELECT pid, usename, datname, application_name, coalesce(state, 'unknown') AS state, backend_type,
       wait_event_type, wait_event,
       extract(epoch FROM now() - state_change) AS idle_s,
       extract(epoch FROM now() - xact_start) AS xact_s,
       extract(epoch FROM now() - query_start) AS running_s,
       age(backend_xmin) AS xmin_age, query, pid = pg_backend_pid() AS is_self
FROM pg_stat_activity
"""

STATS_PRIVILEGE_SQL = """
SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats, current_user AS "user"
"""

_UNIT_BYTES = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _unit_bytes(unit: str | None) -> int:
    if not unit:
        return 1
    digits = "".join(ch for ch in unit if ch.isdigit())
    suffix = unit[len(digits):]
    return int(digits or 1) * _UNIT_BYTES.get(suffix, 1)


def settings_table(frame: pd.DataFrame) -> dict[str, dict]:
    """``{name: {"value": "4MB", "number": 4194304.0, "source": ...}}`` (memory in bytes) from pg_settings rows."""
    found = {}
    for row in frame.itertuples(index=False):
        unit = row.unit if isinstance(row.unit, str) else ""
        try:
            amount = float(row.setting) * _unit_bytes(unit) if "B" in unit else float(row.setting)
        except ValueError:
            amount = math.nan
        found[row.name] = {"value": row.value, "number": amount, "source": row.source}
    return found


def _is_local(address) -> bool:
    if address is None or (isinstance(address, float) and math.isnan(address)):
        return True  # a Unix socket
    try:
        return ipaddress.ip_address(str(address).split("/")[0]).is_loopback
    except ValueError:
        return False


def memory_of(address, memory_bytes: int | None = None) -> tuple[int | None, str]:
    """The server machine's memory in bytes and where that figure comes from.

    SQL cannot see the server's RAM: it comes from ``memory_bytes`` when given, else from
    this machine when the server is local (``address`` None for a Unix socket, or loopback).
    """
    if memory_bytes:
        return int(memory_bytes), f"{size_text(memory_bytes)} of memory (as given)"
    if _is_local(address) and hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None, "the machine's memory is unknown"
        return int(total), f"{size_text(total)} of memory (this machine's: the server is local)"
    return None, "the machine's memory is unknown (give memory_bytes / --server-memory)"


def cores_of(address, cores: int | None = None) -> tuple[int | None, str]:
    """The server machine's CPU cores and where that figure comes from.

    SQL cannot see the server's cores: they come from ``cores`` when given, else from this
    machine when the server is local (a Unix socket or loopback), else they are unknown.
    """
    if cores:
        return int(cores), f"{int(cores)} cores (as given)"
    if _is_local(address):
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if count:
            return int(count), f"{count} cores (this machine's: the server is local)"
    return None, "the server's cores are unknown (give --threshold cores=N)"


class _Failed:
    def __init__(self, error: PerfkitError):
        self.error = error


class Context:
    """The evidence of one run, each piece read at most once (see the module docstring).

    Parameters
    ----------
    source:
        A perfkit engine (each read in its own read-only session) or an open connection
        (every read on it).
    statements_limit:
        How many statements of pg_stat_statements, by total time, feed the workload checks.

    Attributes
    ----------
    reads:
        ``Counter`` of reads sent, by name (``reads["statements"]`` is 1 after any number of
        checks used the workload).
    """

    def __init__(self, source, *, statements_limit: int = 500):
        self.source = source
        self.statements_limit = statements_limit
        self.reads: Counter = Counter()
        self._cache: dict = {}

    @property
    def engine(self) -> Engine:
        return self.source if isinstance(self.source, Engine) else self.source.engine

    @contextmanager
    def session(self):
        if isinstance(self.source, Engine):
            with db.session(self.source) as conn:
                yield conn
        else:
            yield self.source

    def cached(self, key, read: Callable):
        """``read(conn)``'s value the first time ``key`` is asked for, the kept value (or error) after."""
        if key in self._cache:
            value = self._cache[key]
            if isinstance(value, _Failed):
                raise value.error
            return value
        self.reads[key if isinstance(key, str) else key[0]] += 1
        try:
            with self.session() as conn:
                value = read(conn)
        except PerfkitError as err:
            self._cache[key] = _Failed(err)
            raise
        self._cache[key] = value
        return value

    def query(self, key, sql: str, params: Mapping | None = None) -> pd.DataFrame:
        """``db.query(sql, params)`` once per run under ``key``."""
        return self.cached(key, lambda conn: db.query(conn, sql, params))

    # -- the shared reads --------------------------------------------------------------------
    def database(self) -> pd.Series:
        """This database's row of pg_stat_database (cache, temp files, statistics age, server address)."""
        return self.query("database", DATABASE_SQL).iloc[0]

    def stats_age(self) -> tuple[float, bool]:
        """Seconds the usage counters have been collected, and whether since a reset (else
        since the server started: a lower bound, PostgreSQL 15 keeps them across restarts)."""
        row = self.database()
        if row["since_reset_s"] is not None and row["since_reset_s"] == row["since_reset_s"]:
            return float(row["since_reset_s"]), True
        return float(row["since_start_s"]), False

    def indexes(self) -> pd.DataFrame:
        """Every index of the user schemas: definition, validity, scans, size."""
        return self.query("indexes", INDEXES_SQL)

    def tables(self) -> pd.DataFrame:
        """pg_stat_user_tables with pg_class, reloptions and pg_statio: scans, rows, vacuum, cache."""
        return self.query("tables", TABLES_SQL)

    def settings(self) -> dict[str, dict]:
        """The settings of :data:`SETTING_NAMES` (see :func:`settings_table`)."""
        return self.cached("settings", lambda conn: settings_table(db.query(conn, SETTINGS_SQL, {"names": list(SETTING_NAMES)})))

    def memory(self, memory_bytes: int | None = None) -> tuple[int | None, str]:
        return memory_of(self.database()["server_address"], memory_bytes)

    def activity(self) -> pd.DataFrame:
        """pg_stat_activity (every backend)."""
        return self.query("activity", ACTIVITY_SQL)

    def stats_privilege(self) -> tuple[bool, str]:
        """Whether this role sees every session (pg_read_all_stats), and its name."""
        row = self.query("privilege", STATS_PRIVILEGE_SQL).iloc[0]
        return bool(row["can_read_all_stats"]), str(row["user"])

    def require_stats_privilege(self, what: str) -> None:
        """Raise PermissionDenied unless the role sees every session: without it pg_stat_activity
        hides other roles' states and statements, and a check would report a healthy server it cannot see."""
        allowed, user = self.stats_privilege()
        if not allowed:
            raise PermissionDenied(
                f"role {user} cannot see other roles' sessions, so {what} would be incomplete: "
                f"GRANT pg_read_all_stats (or pg_monitor) TO {user}"
            )

    def snapshot(self) -> pd.DataFrame | None:
        """The pg_stat_statements snapshot (perfkit.statements.snapshot), read once; None when the
        extension is missing or hides every statement (see :meth:`statements_note`)."""
        from perfkit import statements

        def read(conn):
            try:
                return statements.snapshot(self.engine, server="health"), ""
            except (ExtensionMissing, PermissionDenied) as err:
                return None, str(err)

        return self.cached("statements", read)[0]

    def statements_note(self) -> str:
        """Why there is no statement evidence ("" when there is)."""
        self.snapshot()
        return self._cache["statements"][1] if not isinstance(self._cache["statements"], _Failed) else ""

    def statements(self) -> pd.DataFrame:
        """The costliest statements of this database (``STATEMENT_COLUMNS``, ms), perfkit's own and hidden
        texts left out; empty without pg_stat_statements."""
        from perfkit import statements

        def derive(conn):
            snap = self.snapshot()
            if snap is None:
                return empty_statements()
            database = self.database()["database"]
            keep = (snap["datname"] == database) & ~statements.own_statements(snap) & (snap["query"] != statements.HIDDEN_QUERY)
            columns = STATEMENT_COLUMNS + [c for c in ("stats_reset",) if c in snap.columns]
            top = snap.loc[keep, columns].sort_values("total_exec_ms", ascending=False).head(self.statements_limit)
            return top.reset_index(drop=True)

        return self._derived("top_statements", derive)

    def table_columns(self) -> dict[tuple[str, str], frozenset[str]]:
        """``{(schema, table): {column, ...}}`` for every user table the role can see."""
        def read(conn):
            grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
            for row in db.query(conn, TABLE_COLUMNS_SQL).itertuples(index=False):
                grouped[(row.schema, row.table)].add(row.column)
            return {key: frozenset(value) for key, value in grouped.items()}

        return self.cached("table_columns", read)

    def column_workload(self) -> pd.DataFrame | None:
        """How the statements use each column (:func:`perfkit.health.workload.column_workload`), or None
        without statements. Parsed once per run."""
        def derive(conn):
            stmts = self.statements()
            return column_workload(stmts, self.table_columns()) if len(stmts) else None

        return self._derived("column_workload", derive)

    def _derived(self, key: str, build: Callable):
        # computed from other reads: no query of its own, kept like one
        if key not in self._cache:
            self._cache[key] = build(None)
        return self._cache[key]


# -- a check: the read that feeds it and its pure judging ---------------------------------------
def _keyword_defaults(fn: Callable) -> dict[str, object]:
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


@dataclass(frozen=True)
class Check:
    """One health check: ``read(ctx, **options)`` gathers its evidence (a dict of row frames) from
    the run's :class:`Context`, ``judge(evidence, **thresholds)`` turns rows into findings without
    touching a database. The area is the module the judging lives in (``perfkit.health.indexes``
    -> ``indexes``).

    Calling a check runs both: ``check(ctx_engine_or_conn, **thresholds)`` -> list of findings.
    """

    name: str
    read: Callable
    judge: Callable
    kinds: tuple[str, ...]
    sql: tuple[str, ...] = ()

    @property
    def __name__(self) -> str:  # the check's name wherever a function's would be asked for
        return self.name

    @property
    def area(self) -> str:
        return self.judge.__module__.rsplit(".", 1)[-1]

    @property
    def thresholds(self) -> dict[str, object]:
        """``{argument: default}`` of every threshold and option this check takes."""
        return {**_keyword_defaults(self.read), **_keyword_defaults(self.judge)}

    def evidence(self, ctx: Context, **options) -> dict:
        taken = _keyword_defaults(self.read)
        return self.read(ctx, **{k: v for k, v in options.items() if k in taken})

    def judge_rows(self, evidence: Mapping, **thresholds) -> list[dict]:
        """The findings of ``evidence`` (frames, or lists of row dicts): the pure half, for tests as data."""
        frames = {k: pd.DataFrame(v) if isinstance(v, list) else v for k, v in evidence.items()}
        taken = _keyword_defaults(self.judge)
        found = self.judge(frames, **{k: v for k, v in thresholds.items() if k in taken})
        for row in found:
            row.setdefault("check", self.name)
            row.setdefault("area", self.area)
        return found

    def __call__(self, source, **thresholds) -> list[dict]:
        ctx = source if isinstance(source, Context) else Context(source)
        return self.judge_rows(self.evidence(ctx, **thresholds), **thresholds)


def area_of(fn) -> str:
    """The area of a check (its module), ``other`` for a function from outside perfkit.health."""
    if isinstance(fn, Check):
        return fn.area
    module = getattr(fn, "__module__", "") or ""
    return module.rsplit(".", 1)[-1] if module.startswith("perfkit.health.") else "other"

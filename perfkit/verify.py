"""Verify an index proposal by a real before/after run on a scratch or staging database.

``verify(dsn, fixes, ...)`` runs each proposal's statements with representative parameters N
times (``EXPLAIN (ANALYZE, TIMING OFF)`` in a transaction that is rolled back), builds the index
with ``CREATE INDEX CONCURRENTLY``, runs them again, and drops the index unless ``keep``. The
index never outlives an interruption: SIGINT/SIGTERM (raised as KeyboardInterrupt by the CLI)
land in a ``finally`` that drops it from a fresh connection, with further signals ignored
meanwhile. It writes (an index), so it refuses unless ``allow_writes``, refuses a standby, and
refuses a primary with replicas unless ``force``.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql as pgsql

from perfkit import db, sql
from perfkit.errors import BadInputError, PerfkitError
from perfkit.health.common import size_text
from perfkit.parameters import parameter_uses
from perfkit.sql import Fix, qualified

VERIFY_NAME = "verify.json"
_LIMIT_DEFAULT = 50


@dataclass
class Measured:
    """One statement's timings (ms) before and after the index."""

    query: str
    params: list
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        from perfkit.loadtests.analysis import bootstrap_p95_diff

        b, a = np.array(self.before, dtype=float), np.array(self.after, dtype=float)
        low, high = bootstrap_p95_diff(b, a) if len(b) >= 2 and len(a) >= 2 else (math.nan, math.nan)
        mean_b, mean_a = float(b.mean()) if len(b) else math.nan, float(a.mean()) if len(a) else math.nan
        return {"query": self.query, "params": [str(p) for p in self.params], "runs": len(b),
                "before_mean_ms": mean_b, "before_p95_ms": _p95(b), "after_mean_ms": mean_a, "after_p95_ms": _p95(a),
                "p95_diff_low_ms": low, "p95_diff_high_ms": high,
                "speedup": mean_b / mean_a if mean_a and not math.isnan(mean_a) else math.nan}


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95)) if len(values) else math.nan


@dataclass
class Verified:
    """One proposal's verification."""

    fix: Fix
    index: str
    statements: list[dict]
    build_s: float
    size_bytes: int
    kept: bool
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        before = sum(s["before_mean_ms"] for s in self.statements)
        after = sum(s["after_mean_ms"] for s in self.statements)
        return before / after if after else math.nan

    def text(self) -> str:
        """``verified: 41x faster on 3 statements, 12 MB, built in 0.4 s`` (``built, not measured: ...``
        when no statement could be timed)."""
        n = len(self.statements)
        if not n:
            why = self.notes[0] if self.notes else "no statement to time"
            return f"built, not measured ({why}): {size_text(self.size_bytes)}, built in {self.build_s:,.1f} s"
        return (f"verified: {self.speedup:,.1f}x faster on {n} statement{'s' if n != 1 else ''}, "
                f"{size_text(self.size_bytes)}, built in {self.build_s:,.1f} s")

    def to_dict(self) -> dict:
        return {"sql": self.fix.sql, "key": list(map(str, self.fix.key())), "fix": self.fix.to_dict(),
                "index": self.index, "statements": self.statements, "build_s": self.build_s,
                "size_bytes": self.size_bytes, "kept": self.kept, "speedup": self.speedup, "text": self.text(),
                "notes": self.notes}


# -- representative parameters --------------------------------------------------------------------
_TYPE_DEFAULTS = {"interval": "7 days", "boolean": "true", "text": "x", "character varying": "x",
                  "timestamp with time zone": "now", "timestamp without time zone": "now", "date": "today"}


def representative_params(conn: psycopg.Connection, text: str, count: int, runs: int, *,
                          tables: dict[str, tuple[str, str]]) -> list[list]:
    """``runs`` lists of ``count`` values: the columns' most common values in pg_stats (cycled), a
    histogram bound at the selective end for a range, 50 for a LIMIT, else a default of the type."""
    uses = parameter_uses(text)
    types: list[str] = []
    if count:
        name = f"perfkit_types_{uuid.uuid4().hex[:8]}"
        conn.execute(f"PREPARE {name} AS {text}")
        row = conn.execute("SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = %s",
                           (name,)).fetchone()
        conn.execute(f"DEALLOCATE {name}")
        types = [t for t in (row[0] if row else [])]
    columns: list[list] = []
    for n in range(1, count + 1):
        qualifier, column, operator = uses.get(n, (None, "", ""))
        kind = types[n - 1] if n - 1 < len(types) else "text"
        if column in ("limit", "offset") and qualifier is None and operator == "":
            columns.append([_LIMIT_DEFAULT if column == "limit" else 0])
            continue
        schema_table = tables.get(qualifier) if qualifier else (next(iter(tables.values())) if len(tables) == 1
                                                                 else None)
        values: list = []
        if schema_table is not None and column:
            schema, table = schema_table
            row = conn.execute(
                "SELECT most_common_vals::text::text[], histogram_bounds::text::text[] FROM pg_stats "
                "WHERE schemaname = %s AND tablename = %s AND attname = %s", (schema, table, column)).fetchone()
            if row:
                mcv, bounds = row[0] or [], row[1] or []
                if operator in (">", ">=") and bounds:
                    values = [bounds[max(0, len(bounds) - 1 - len(bounds) // 20)]]
                elif operator in ("<", "<=") and bounds:
                    values = [bounds[len(bounds) // 20]]
                else:
                    values = list(mcv[:10]) or list(bounds[:: max(1, len(bounds) // 10)][:10])
        if not values:
            values = [_TYPE_DEFAULTS.get(kind.removesuffix("[]"), "1")]
        if kind.endswith("[]"):
            values = ["{" + ",".join(f'"{v}"' for v in values[:3]) + "}"]
        columns.append(values)
    return [[c[i % len(c)] for c in columns] for i in range(runs)]


# -- running ---------------------------------------------------------------------------------------
def _connect(dsn: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(db.resolve_dsn(dsn), autocommit=True, application_name="perfkit verify")
    except psycopg.Error as err:
        raise db.translate_error(err) from None
    conn.execute("SET default_transaction_read_only = off")
    return conn


def check_target(conn: psycopg.Connection, *, allow_writes: bool, force: bool) -> None:
    """Refuse without ``allow_writes``; refuse a standby; refuse a primary with replicas unless ``force``."""
    if not allow_writes:
        raise BadInputError("perfkit verify creates (and drops) indexes: run it on a scratch or staging copy "
                            "and pass --allow-writes")
    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        raise BadInputError("the server is a standby (in recovery): verify needs a writable scratch database")
    replicas = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
    if replicas and not force:
        raise BadInputError(f"the server is a primary with {replicas} replica(s): building indexes there is not "
                            "a scratch run; use a copy, or pass --force if you mean it")


def _time_once(conn: psycopg.Connection, name: str, values: Sequence) -> float:
    arguments = ", ".join(pgsql.Literal(str(v)).as_string(conn) for v in values)
    call = f"EXECUTE {name}({arguments})" if values else f"EXECUTE {name}"
    conn.execute("BEGIN")
    try:
        row = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {call}").fetchone()
    finally:
        conn.execute("ROLLBACK")
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return float(document[0]["Execution Time"])


def _run(conn: psycopg.Connection, measured: list[Measured], param_sets: list[list[list]], phase: str,
         progress: Callable[[str], None] | None) -> None:
    for item, sets in zip(measured, param_sets, strict=True):
        name = f"perfkit_verify_{uuid.uuid4().hex[:8]}"
        conn.execute(f"PREPARE {name} AS {item.query}")
        try:
            _time_once(conn, name, sets[0])  # warm the cache: both phases start warm
            times = [_time_once(conn, name, values) for values in sets]
        finally:
            conn.execute(f"DEALLOCATE {name}")
        getattr(item, phase).extend(times)
        if progress:
            progress(f"{phase}: {np.mean(times):,.2f} ms mean over {len(times)} runs of {item.query[:70]}")


def _free_name(conn: psycopg.Connection, fix: Fix) -> str:
    base = fix.name or sql.index_name(fix.table, fix.key_columns)
    name = base
    while conn.execute("SELECT to_regclass(%s)", (qualified(fix.schema, name),)).fetchone()[0] is not None:
        name = f"{base[:50]}_v{uuid.uuid4().hex[:4]}"
    return name


def _drop(dsn: str, schema: str | None, name: str) -> None:
    """Drop the index from a fresh connection, with SIGINT/SIGTERM ignored until it is gone."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        with _connect(dsn) as conn:
            conn.execute("SET lock_timeout = '30s'")
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(schema, name)}")
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def statements_for(conn: psycopg.Connection, fix: Fix, *, limit: int = 5) -> list[str]:
    """The costliest pg_stat_statements entries of this database that use the index's leading key
    column on its table (where, join or order), as the statements to measure."""
    from perfkit.advisor import read_statement

    try:
        rows = conn.execute(
            "SELECT query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query !~* '^\\s*(explain|create|drop|prepare|deallocate)' "
            "AND s.query NOT LIKE '/* perfkit */%' ORDER BY s.total_exec_time DESC LIMIT 500").fetchall()
    except psycopg.Error:
        return []
    lead = fix.key_columns[0] if fix.key_columns else None
    out = []
    for (text,) in rows:
        for use in read_statement(text):
            if use.table != fix.table or (use.schema and use.schema != (fix.schema or "public")):
                continue
            if lead in use.equality or lead in use.range or lead in {c for c, _ in use.sort}:
                out.append(text)
                break
        if len(out) >= limit:
            break
    return out


def verify(dsn: str, fixes: Iterable[Fix | tuple[Fix, Sequence[str]]], *, runs: int = 20, keep: bool = False,
           allow_writes: bool = False, force: bool = False,
           progress: Callable[[str], None] | None = None) -> list[Verified]:
    """Measure each index before and after it exists, on ``dsn`` (a scratch or staging database).

    Parameters
    ----------
    dsn:
        The scratch database.
    fixes:
        ``create_index`` fixes, or ``(fix, statements)`` pairs; without statements, the costliest
        pg_stat_statements entries using the index's leading column are measured.
    runs:
        Timed runs of each statement before and after (plus one warm-up each).
    keep:
        Keep the index (default: drop it after the run).
    allow_writes, force:
        See :func:`check_target`.
    """
    if runs < 2:
        raise BadInputError(f"--runs must be 2 or more, not {runs}")
    results: list[Verified] = []
    with _connect(dsn) as conn:
        check_target(conn, allow_writes=allow_writes, force=force)
    for item in fixes:
        fix, given = (item if isinstance(item, tuple) else (item, ()))
        if fix.action != "create_index" or not fix.table:
            raise BadInputError(f"verify takes CREATE INDEX proposals, not {fix.sql}")
        results.append(_verify_one(dsn, replace(fix, schema=fix.schema or "public"), list(given), runs=runs,
                                   keep=keep, progress=progress))
    return results


def _verify_one(dsn: str, fix: Fix, statements: list[str], *, runs: int, keep: bool,
                progress: Callable[[str], None] | None) -> Verified:
    from perfkit.plans.capture import inspect_statement

    notes: list[str] = []
    conn = _connect(dsn)
    name: str | None = None
    created = False
    try:
        conn.execute("SET plan_cache_mode = force_custom_plan")
        statements = statements or statements_for(conn, fix)
        if not statements:
            why = (f"no statement in pg_stat_statements uses "
                   f"{fix.key_columns[0] if fix.key_columns else 'its columns'}")
            if not keep:  # nothing to learn from building and dropping it
                raise BadInputError(f"no statement to measure for {fix.sql} ({why}): give --statement")
            # kept (an index a foreign key's deletes and joins need): built, and said to be unmeasured
            name = _free_name(conn, fix)
            index = replace(fix, name=name, concurrently=True)
            started = time.perf_counter()
            created = True
            conn.execute(index.sql.rstrip(";"))
            build_s = time.perf_counter() - started
            size = int(conn.execute("SELECT pg_relation_size(%s::regclass)",
                                    (qualified(fix.schema, name),)).fetchone()[0])
            return Verified(index, name, [], build_s, size, keep, [why])
        measured, param_sets = [], []
        for text in statements:
            from perfkit.advisor import costable_text, read_statement

            text, _ = costable_text(str(text).strip().rstrip(";"))
            facts = inspect_statement(text)
            tables = {}
            for use in read_statement(text):
                tables[use.table] = (use.schema or fix.schema, use.table)
            try:
                sets = representative_params(conn, text, facts.params, runs, tables=tables)
            except psycopg.Error as err:
                notes.append(f"skipped {text[:80]}: {db.translate_error(err)}")
                continue
            measured.append(Measured(text, sets[0]))
            param_sets.append(sets)
        if not measured:
            raise BadInputError(f"none of the statements for {fix.sql} could be prepared: " + "; ".join(notes))
        _run(conn, measured, param_sets, "before", progress)
        name = _free_name(conn, fix)
        index = replace(fix, name=name, concurrently=True)
        if progress:
            progress(f"building {index.sql}")
        started = time.perf_counter()
        created = True  # from here on an interruption may leave an (invalid) index: the finally drops it
        conn.execute(index.sql.rstrip(";"))
        build_s = time.perf_counter() - started
        size = int(conn.execute("SELECT pg_relation_size(%s::regclass)", (qualified(fix.schema, name),)).fetchone()[0])
        _run(conn, measured, param_sets, "after", progress)
        return Verified(index, name, [m.summary() for m in measured], build_s, size, keep, notes)
    except psycopg.Error as err:
        raise db.translate_error(err) from None
    finally:
        try:
            conn.close()
        except psycopg.Error:
            pass
        if created and name and not keep:
            _drop(dsn, fix.schema, name)


# -- reading proposals, writing results ---------------------------------------------------------------
def fixes_from_report(directory: Path) -> list[Fix]:
    """The ``create_index`` recommendations of a report folder's summary.json."""
    from perfkit.report import SUMMARY_NAME

    path = Path(directory) / SUMMARY_NAME
    if not path.is_file():
        raise BadInputError(f"{directory} holds no {SUMMARY_NAME}: give a report folder (reports/YYYY-MM-DD)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path} is not readable JSON: {err}") from None
    out = []
    for row in summary.get("recommendations") or []:
        fix = sql.as_fix(row.get("fix")) or (sql.parse_fix(row["sql"]) if row.get("sql") else None)
        if fix is not None and fix.action == "create_index":
            out.append(fix)
    if not out:
        raise BadInputError(f"the report in {directory} recommends no index")
    return out


def fix_from_sql(text: str) -> Fix:
    try:
        fix = sql.parse_fix(text)
    except PerfkitError:
        fix = None
    if fix is None or fix.action != "create_index":
        raise BadInputError("--sql takes one CREATE INDEX statement")
    return fix


def write_results(directory: Path, results: list[Verified]) -> Path:
    """``DIR/verify.json`` (what the weekly report's advice section shows)."""
    from perfkit.fileio import write_atomic
    from perfkit.output import to_jsonable

    path = Path(directory) / VERIFY_NAME
    write_atomic(path, json.dumps(to_jsonable([r.to_dict() for r in results]), indent=2) + "\n")
    return path


def read_results(directory: Path | None, *, name: str = VERIFY_NAME) -> list[dict]:
    """The verifications saved in ``DIR/verify.json`` (``[]`` when there are none)."""
    if directory is None:
        return []
    path = Path(directory) / name
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def store_results(results: list[Verified], *, store: Path | None = None, server: str = "scratch") -> Path:
    """Keep the verifications in the snapshot store (``<store>/verify/server=<id>.json``), newest
    per index winning: what the weekly report's recommendations match their proposals against."""
    from perfkit.db import sanitize_server_id
    from perfkit.fileio import write_atomic
    from perfkit.output import to_jsonable
    from perfkit.store import default_root

    folder = store if store is not None else default_root()
    if "://" in str(folder):
        raise BadInputError(f"verification results are kept in a local store folder, not {folder}: give --store DIR")
    path = Path(folder) / "verify" / f"server={sanitize_server_id(server)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {tuple(r.get("key", [])): r for r in read_results(path.parent, name=path.name)}
    for result in results:
        record = result.to_dict()
        record["server"] = server
        record["verified_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        kept[tuple(record["key"])] = record
    write_atomic(path, json.dumps(to_jsonable(list(kept.values())), indent=2) + "\n")
    return path


def stored_results(store: Path | None = None) -> list[dict]:
    """Every verification kept in the store (``[]`` when there is none)."""
    from perfkit.store import default_root

    root = store if store is not None else default_root()
    if "://" in str(root):  # kept in a local store only (for now): an object-store root has none
        return []
    folder = Path(root) / "verify"
    out: list[dict] = []
    for path in sorted(folder.glob("server=*.json")) if folder.is_dir() else ():
        out += read_results(folder, name=path.name)
    return out


def verified_text(fix: Fix, verified: Iterable[dict]) -> str:
    """The ``verified: ...`` sentence of the latest verification of ``fix`` (the same index whatever its
    name or the order of a btree's keys), or ``""``."""
    from perfkit.advice import _plain_order

    wanted = _plain_order(fix).key()
    found = ""
    for record in verified:
        try:
            other = Fix.from_dict(record["fix"])
        except (KeyError, TypeError, ValueError):
            continue
        if _plain_order(other).key() == wanted:
            where = f" on {record['server']}" if record.get("server") else ""
            found = f"{record.get('text', '')}{where}"
    return found


__all__ = ["VERIFY_NAME", "Measured", "Verified", "check_target", "fix_from_sql", "fixes_from_report",
           "parameter_uses", "read_results", "representative_params", "statements_for", "store_results",
           "stored_results", "verified_text", "verify", "write_results"]

"""pg_stat_statements as DataFrames: snapshots in one column set for PostgreSQL 12-18, top, diff.

``snapshot(engine)`` reads the view; ``diff(before, after)`` says what happened in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from perfkit import secrets
from perfkit.errors import BadInputError, ExtensionMissing, PermissionDenied

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SNAPSHOT_COLUMNS = [
    "queryid",
    "datname",
    "rolname",
    "toplevel",
    "query",
    "calls",
    "total_exec_ms",
    "mean_exec_ms",
    "min_exec_ms",
    "max_exec_ms",
    "stddev_exec_ms",
    "total_plan_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "shared_blks_dirtied",
    "shared_blks_written",
    "temp_blks_read",
    "temp_blks_written",
    "blk_read_ms",
    "blk_write_ms",
    "wal_bytes",
    "captured_at",
    "server",
]

# Contract column -> view columns to read, first present wins (newest name first).
# PG 12 (1.7): total_time...; PG 13 (1.8): *_exec_time, *_plan_time, wal_*; PG 14 (1.9): toplevel;
# PG 15 (1.10): jit_*, temp_blk_*_time; PG 17 (1.11): shared_blk_{read,write}_time, stats_since.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("calls",),
    "total_exec_ms": ("total_exec_time", "total_time"),
    "mean_exec_ms": ("mean_exec_time", "mean_time"),
    "min_exec_ms": ("min_exec_time", "min_time"),
    "max_exec_ms": ("max_exec_time", "max_time"),
    "stddev_exec_ms": ("stddev_exec_time", "stddev_time"),
    "total_plan_ms": ("total_plan_time",),
    "rows": ("rows",),
    "shared_blks_hit": ("shared_blks_hit",),
    "shared_blks_read": ("shared_blks_read",),
    "shared_blks_dirtied": ("shared_blks_dirtied",),
    "shared_blks_written": ("shared_blks_written",),
    "temp_blks_read": ("temp_blks_read",),
    "temp_blks_written": ("temp_blks_written",),
    "blk_read_ms": ("shared_blk_read_time", "blk_read_time"),
    "blk_write_ms": ("shared_blk_write_time", "blk_write_time"),
    "wal_bytes": ("wal_bytes",),
    "toplevel": ("toplevel",),
    # beyond the contract: when the entry was (re)created, PG 17+
    "stats_since": ("stats_since",),
}

# Counters that add up over time: a diff subtracts them.
COUNTERS = [
    "calls",
    "total_exec_ms",
    "total_plan_ms",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "shared_blks_dirtied",
    "shared_blks_written",
    "temp_blks_read",
    "temp_blks_written",
    "blk_read_ms",
    "blk_write_ms",
    "wal_bytes",
]

# One entry of pg_stat_statements is one (user, database, queryid, toplevel).
KEY = ["queryid", "datname", "rolname", "toplevel"]

TOP_ORDERS = {
    "total": "total_exec_ms",
    "mean": "mean_exec_ms",
    "calls": "calls",
    "io": "io_ms",
    "temp": "temp_blks",
}

HIDDEN_QUERY = "<insufficient privilege>"

EXTENSION_SQL = """
SELECT n.nspname AS schema, e.extversion AS version
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""

VIEW_COLUMNS_SQL = """
SELECT a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = 'pg_stat_statements' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

INFO_SQL = "SELECT dealloc, stats_reset FROM {schema}.pg_stat_statements_info"

LOADED_SQL = "SELECT 'pg_stat_statements' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"


def select_list(available: set[str] | list[str]) -> dict[str, str]:
    """Contract column -> SQL expression over the view, for the view's column set.

    A contract column the server version lacks becomes NULL (e.g. ``total_plan_ms`` on PG 12).
    """
    present = set(available)
    chosen = {}
    for column, sources in SOURCE_COLUMNS.items():
        source = next((s for s in sources if s in present), None)
        chosen[column] = f's."{source}"' if source else "NULL"
    return chosen


def snapshot_sql(schema: str, available: set[str] | list[str]) -> str:
    """The SELECT that reads one snapshot, for the view in ``schema`` with ``available`` columns."""
    expressions = select_list(available)
    parts = [
        's.queryid AS queryid',
        'd.datname AS datname',
        'r.rolname AS rolname',
        f'{expressions.pop("toplevel")} AS toplevel',
        's.query AS query',
    ]
    parts += [f"{expr} AS {name}" for name, expr in expressions.items()]
    parts.append("statement_timestamp() AS captured_at")
    quoted_schema = '"' + schema.replace('"', '""') + '"'
    return (
        "SELECT " + ",\n       ".join(parts) + f"\nFROM {quoted_schema}.pg_stat_statements s\n"
        "LEFT JOIN pg_database d ON d.oid = s.dbid\n"
        "LEFT JOIN pg_roles r ON r.oid = s.userid"
    )


def _extension(conn) -> tuple[str, str]:
    from perfkit import db

    ext = db.query(conn, EXTENSION_SQL)
    if ext.empty:
        loaded = bool(db.scalar(conn, LOADED_SQL))
        database = db.scalar(conn, "SELECT current_database()")
        if loaded:
            raise ExtensionMissing(
                f"pg_stat_statements is loaded but not created in database {database!r}: "
                "run CREATE EXTENSION pg_stat_statements; there (as a superuser or the database owner)"
            )
        raise ExtensionMissing(
            "pg_stat_statements is not loaded: add it to shared_preload_libraries in postgresql.conf, "
            f"restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in database {database!r}"
        )
    return str(ext.at[0, "schema"]), str(ext.at[0, "version"])


def snapshot(engine: Engine, *, server: str | None = None, dsn: str | None = None) -> pd.DataFrame:
    """Read pg_stat_statements into the statement snapshot of DESIGN.md.

    Parameters
    ----------
    engine:
        A perfkit engine (``perfkit.db.connect``).
    server:
        Name of the server in the ``server`` column and the store; default ``host-port-dbname``.

    Returns
    -------
    pandas.DataFrame
        One row per statement entry, columns ``SNAPSHOT_COLUMNS`` plus ``stats_since`` (PG 17+)
        and ``stats_reset``/``dealloc`` (PG 14+, from pg_stat_statements_info). ``attrs`` holds
        ``server_version_num``, ``pgss_version`` and ``hidden_queries`` (entries whose text this
        role may not read).

    Raises
    ------
    ExtensionMissing
        pg_stat_statements is not loaded or not created in this database.
    PermissionDenied
        Every statement's text is hidden: the role needs pg_read_all_stats.
    """
    from perfkit import db

    with db.session(engine) as conn:
        schema, pgss_version = _extension(conn)
        available = db.query(conn, VIEW_COLUMNS_SQL, {"schema": schema})["attname"].tolist()
        try:
            frame = db.query(conn, snapshot_sql(schema, available))
        except ExtensionMissing:
            raise
        except Exception as err:  # noqa: BLE001 - the message decides
            text = str(err)
            if "must be loaded via" in text or "shared_preload_libraries" in text:
                raise ExtensionMissing(
                    "pg_stat_statements is created but not loaded: add it to shared_preload_libraries "
                    "in postgresql.conf and restart PostgreSQL"
                ) from None
            raise
        info = None
        if "toplevel" in available:  # 1.9+ has pg_stat_statements_info
            try:  # in a savepoint: a permission error must not abort the snapshot's transaction
                with conn.begin_nested():
                    info = db.query(conn, INFO_SQL.format(schema='"' + schema.replace('"', '""') + '"'))
            except PermissionDenied:
                info = None
        version_num = int(db.scalar(conn, "SELECT current_setting('server_version_num')::int"))
        name = server or db.server_id(conn, dsn)
    frame = _normalize(frame)
    # utility statements are kept word for word (ALTER ROLE ... PASSWORD '...'): scrubbed here,
    # before anything stores or shows them
    frame["query"] = secrets.scrub_statements(frame["query"])
    frame["server"] = name
    if info is not None and not info.empty:
        frame["stats_reset"] = pd.to_datetime(info.at[0, "stats_reset"], utc=True)
        frame["dealloc"] = int(info.at[0, "dealloc"])
    else:
        frame["stats_reset"] = pd.NaT
        frame["dealloc"] = np.nan
    frame = frame[SNAPSHOT_COLUMNS + [c for c in frame.columns if c not in SNAPSHOT_COLUMNS]]
    hidden = int((frame["query"] == HIDDEN_QUERY).sum())
    frame.attrs.update(
        server_version_num=version_num,
        pgss_version=pgss_version,
        hidden_queries=hidden,
    )
    if len(frame) and hidden == len(frame):
        raise PermissionDenied(
            f"the text of all {hidden} statements in pg_stat_statements is hidden from this role: "
            "GRANT pg_read_all_stats TO <role> (or connect as the statements' owner)"
        )
    return frame


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes: counters as numbers, timestamps UTC, stable column order."""
    frame = frame.copy()
    for column in COUNTERS + ["mean_exec_ms", "min_exec_ms", "max_exec_ms", "stddev_exec_ms"]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["calls"] = frame["calls"].astype("int64")
    frame["queryid"] = pd.to_numeric(frame["queryid"], errors="coerce").astype("Int64")
    frame["toplevel"] = frame["toplevel"].astype("boolean")
    frame["captured_at"] = pd.to_datetime(frame["captured_at"], utc=True)
    frame["stats_since"] = pd.to_datetime(frame["stats_since"], utc=True)
    ordered = [c for c in SNAPSHOT_COLUMNS if c in frame.columns]
    rest = [c for c in frame.columns if c not in ordered]
    return frame[ordered + rest]


def _with_derived(frame: pd.DataFrame) -> pd.DataFrame:
    io = frame["blk_read_ms"].fillna(0) + frame["blk_write_ms"].fillna(0)
    return frame.assign(
        io_ms=io,
        temp_blks=frame["temp_blks_read"].fillna(0) + frame["temp_blks_written"].fillna(0),
        share_total=frame["total_exec_ms"] / frame["total_exec_ms"].sum() if frame["total_exec_ms"].sum() else 0.0,
    )


_OWN_PREPARED = r"^\s*(?:/\*.*?\*/\s*)*(?:prepare|execute|deallocate)\s+perfkit_\w+"


def own_statements(frame: pd.DataFrame) -> pd.Series:
    """True for perfkit's own statements: its reads (their text starts with ``/* perfkit */``) and the
    statements it prepares to EXPLAIN or time (``PREPARE perfkit_... AS ...``: explain, verify)."""
    from perfkit import db

    text = frame["query"].fillna("").astype(str)
    return text.str.startswith(db.PERFKIT_TAG.strip()) | text.str.contains(_OWN_PREPARED, case=False, regex=True)


def top(snapshot_or_diff: pd.DataFrame, by: str = "total", n: int = 20, *, include_perfkit: bool = False) -> pd.DataFrame:
    """The ``n`` costliest statements ``by`` total, mean, calls, io or temp.

    ``io`` ranks by block read+write time (track_io_timing), then by blocks read; ``temp`` by
    temp blocks read+written (sorts and hashes that spilled to disk). Adds ``io_ms``,
    ``temp_blks`` and ``share_total`` (share of all execution time). perfkit's own reads are
    left out unless ``include_perfkit``.
    """
    if by not in TOP_ORDERS:
        raise BadInputError(f"--by must be one of {', '.join(TOP_ORDERS)}, not {by!r}")
    if n <= 0:
        raise BadInputError(f"-n must be above 0, not {n}")
    frame = snapshot_or_diff
    if "status" in frame.columns:
        frame = frame[frame["status"] != "evicted"]
    if not include_perfkit:
        frame = frame[~own_statements(frame)]
    frame = _with_derived(frame)
    order = [TOP_ORDERS[by]]
    if by == "io":
        order.append("shared_blks_read")
    order.append("total_exec_ms")
    return frame.sort_values(order, ascending=False, kind="stable", na_position="last").head(n).reset_index(drop=True)


def _reset_between(before: pd.DataFrame, after: pd.DataFrame) -> tuple[bool, str]:
    """Whether all of pg_stat_statements was reset between the two snapshots, and how we know."""
    before_at = before["captured_at"].max() if len(before) else pd.NaT
    after_reset = after["stats_reset"].dropna().max() if "stats_reset" in after.columns else pd.NaT
    before_reset = before["stats_reset"].dropna().max() if "stats_reset" in before.columns else pd.NaT
    if pd.notna(after_reset):
        # PG 14+: pg_stat_statements_info.stats_reset moves on every full reset
        moved = after_reset != before_reset if pd.notna(before_reset) else (pd.notna(before_at) and after_reset > before_at)
        if moved:
            return True, f"pg_stat_statements_info.stats_reset = {after_reset.isoformat()}"
        return False, ""
    # older servers: counters going down for most of the statements seen twice
    merged = before[KEY + ["calls"]].merge(after[KEY + ["calls"]], on=KEY, suffixes=("_b", "_a"))
    if len(merged) >= 3 and (merged["calls_a"] < merged["calls_b"]).mean() > 0.5:
        return True, f"calls went down for {(merged['calls_a'] < merged['calls_b']).sum()} of {len(merged)} statements"
    return False, ""


def _single_reset(prev: pd.DataFrame, cur: pd.DataFrame) -> pd.Series:
    """Statements whose counters cannot have grown from ``prev`` to ``cur`` without a reset:
    the minimum rose, the maximum fell, or the calls in between would have a mean outside
    [min, max] or a negative variance."""
    tol = 1e-6
    rose = cur["min_exec_ms"] > prev["min_exec_ms"] + tol
    fell = cur["max_exec_ms"] < prev["max_exec_ms"] - tol
    d_calls = cur["calls"] - prev["calls"]
    d_total = cur["total_exec_ms"] - prev["total_exec_ms"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = d_total / d_calls
        sum_sq_b = prev["calls"] * (prev["stddev_exec_ms"] ** 2 + prev["mean_exec_ms"] ** 2)
        sum_sq_a = cur["calls"] * (cur["stddev_exec_ms"] ** 2 + cur["mean_exec_ms"] ** 2)
        var = (sum_sq_a - sum_sq_b) / d_calls - mean**2
    ran = d_calls > 0
    slack = 1e-3 * cur["max_exec_ms"].abs() + tol  # the server rounds nothing, but floats drift
    outside = ran & ((mean < cur["min_exec_ms"] - slack) | (mean > cur["max_exec_ms"] + slack))
    negative = ran & (var < -(slack**2) - 1e-3 * cur["mean_exec_ms"] ** 2)
    return (rose | fell | outside | negative).fillna(False).astype(bool)


def diff(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """What happened between two snapshots, per statement.

    Counters (calls, times, blocks, WAL) hold the work done in the interval; ``mean_exec_ms``
    and ``stddev_exec_ms`` are those of the interval's calls; ``min``/``max`` are given only
    where the interval is known to hold them (a new extreme, or a new entry), else NaN.

    ``prev_mean_exec_ms`` is the statement's mean up to ``before`` (to spot what got slower).
    ``status`` says, per statement: ``changed`` (ran in the interval), ``unchanged``, ``new``
    (first seen in ``after``), ``reset`` (its counters restarted: the entry was evicted and
    re-created, or all statistics were reset; the interval's work before that is lost, so the
    figures are a lower bound; before PostgreSQL 17 a single statement's reset is seen when its
    min rose, its max fell, or the interval's mean or variance is impossible) or ``evicted`` (in
    ``before`` only; counters NaN; ``reset`` when it vanished in a full reset). Never
    negative work. ``attrs``: ``stats_reset`` (bool), ``reset_evidence``, ``reset_note`` (when a
    single statement's reset cannot be ruled out: no ``stats_since``), ``interval_start``,
    ``interval_end``.
    """
    for name, frame in (("before", before), ("after", after)):
        missing = [c for c in KEY + COUNTERS + ["captured_at"] if c not in frame.columns]
        if missing:
            raise BadInputError(f"the {name} snapshot lacks columns: {', '.join(missing)}")
    before_at = before["captured_at"].max() if len(before) else pd.NaT
    after_at = after["captured_at"].max() if len(after) else pd.NaT
    if pd.notna(before_at) and pd.notna(after_at) and before_at > after_at:
        before, after = after, before
        before_at, after_at = after_at, before_at
    full_reset, evidence = _reset_between(before, after)

    b = before.drop_duplicates(KEY, keep="last").set_index(KEY)
    a = after.drop_duplicates(KEY, keep="last").set_index(KEY)
    both = a.index.intersection(b.index)
    result = a.copy()
    result["status"] = "new"
    result["prev_mean_exec_ms"] = b["mean_exec_ms"].reindex(a.index)

    prev = b.loc[both]
    cur = a.loc[both]
    restarted = (cur["calls"] < prev["calls"]) | (cur["total_exec_ms"] < prev["total_exec_ms"] - 1e-6)
    known_since = pd.Series(False, index=both)
    if "stats_since" in a.columns and "stats_since" in b.columns:
        since_b = pd.to_datetime(prev["stats_since"], utc=True)
        since_a = pd.to_datetime(cur["stats_since"], utc=True)
        known_since = since_a.notna() & since_b.notna()
        restarted |= (known_since & (since_a > since_b)).to_numpy()
    # without stats_since (before PostgreSQL 17), one statement reset with
    # pg_stat_statements_reset(userid, dbid, queryid) and then run more often than before
    # shows only in figures that cannot move that way without a reset
    restarted |= _single_reset(prev, cur).to_numpy() & ~known_since.to_numpy()
    if full_reset:
        restarted[:] = True
    subtract = both[~restarted.to_numpy()]
    for column in COUNTERS:
        result.loc[subtract, column] = (a.loc[subtract, column] - b.loc[subtract, column]).clip(lower=0)
    result.loc[both[restarted.to_numpy()], "status"] = "reset"

    # interval mean and stddev from sums (pg_stat_statements keeps population stddev)
    def sum_sq(frame):
        return frame["calls"] * (frame["stddev_exec_ms"] ** 2 + frame["mean_exec_ms"] ** 2)

    if len(subtract):
        d_calls = result.loc[subtract, "calls"]
        d_sq = sum_sq(a.loc[subtract]) - sum_sq(b.loc[subtract])
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = result.loc[subtract, "total_exec_ms"] / d_calls
            var = (d_sq / d_calls - mean**2).clip(lower=0)
        ran = d_calls > 0
        result.loc[subtract, "mean_exec_ms"] = mean.where(ran)
        result.loc[subtract, "stddev_exec_ms"] = np.sqrt(var).where(ran)
        new_max = a.loc[subtract, "max_exec_ms"] > b.loc[subtract, "max_exec_ms"]
        new_min = a.loc[subtract, "min_exec_ms"] < b.loc[subtract, "min_exec_ms"]
        result.loc[subtract, "max_exec_ms"] = a.loc[subtract, "max_exec_ms"].where(new_max & ran)
        result.loc[subtract, "min_exec_ms"] = a.loc[subtract, "min_exec_ms"].where(new_min & ran)
        result.loc[subtract, "status"] = np.where(ran, "changed", "unchanged")

    evicted_keys = b.index.difference(a.index)
    evicted = b.loc[evicted_keys].copy()
    if len(evicted):
        for column in COUNTERS + ["mean_exec_ms", "min_exec_ms", "max_exec_ms", "stddev_exec_ms"]:
            evicted[column] = np.nan
        # gone because all statistics were reset (and not run since), not pushed out by pg_stat_statements.max
        evicted["status"] = "reset" if full_reset else "evicted"
        evicted["prev_mean_exec_ms"] = b.loc[evicted_keys, "mean_exec_ms"]
        evicted["captured_at"] = after_at
        result = pd.concat([result, evicted])
    result = result.reset_index()
    result["calls"] = result["calls"].round().astype("Int64")
    result["interval_start"] = before_at
    result["interval_end"] = after_at
    ordered = [c for c in SNAPSHOT_COLUMNS if c in result.columns] + ["status", "prev_mean_exec_ms", "interval_start", "interval_end"]
    rest = [c for c in result.columns if c not in ordered]
    result = result[ordered + rest]
    result = result.sort_values("total_exec_ms", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    unsure = ""
    if not full_reset and len(subtract) and not bool(known_since.any()):
        unsure = (f"{int((result['status'] == 'changed').sum())} changed statements: without stats_since "
                  "(PostgreSQL 17+), a statement reset on its own (pg_stat_statements_reset(userid, dbid, "
                  "queryid)) and then run more often than before cannot be ruled out; its figures are then "
                  "an undercount (checked: calls, total, min, max and mean could not have moved that way)")
    result.attrs.update(
        stats_reset=full_reset,
        reset_evidence=evidence,
        reset_note=unsure,
        interval_start=before_at,
        interval_end=after_at,
    )
    return result


def strip_leading_comments(query) -> str:
    """The statement without the ``/* ... */`` and ``--`` comments in front (sqlcommenter tags)."""
    text = "" if query is None or (isinstance(query, float) and np.isnan(query)) else str(query).lstrip()
    while True:
        if text.startswith("/*"):
            end = text.find("*/")
            if end < 0:
                return text
            text = text[end + 2 :].lstrip()
        elif text.startswith("--"):
            end = text.find("\n")
            if end < 0:
                return ""
            text = text[end + 1 :].lstrip()
        else:
            return text


def find(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows whose query text contains ``text`` (case-insensitive), for notebooks and tests."""
    return frame[frame["query"].fillna("").str.contains(text, case=False, regex=False)]


def summarize(frame: pd.DataFrame) -> dict:
    """Totals of a snapshot or diff: statements, calls, execution time, share of the top 10."""
    live = frame[frame.get("status", pd.Series("", index=frame.index)) != "evicted"]
    total = float(live["total_exec_ms"].sum())
    top10 = float(live["total_exec_ms"].nlargest(10).sum())
    return {
        "statements": int(len(live)),
        "calls": float(live["calls"].sum()),
        "total_exec_ms": total,
        "top10_share": (top10 / total) if total else 0.0,
    }


def explainable(frame: pd.DataFrame) -> pd.DataFrame:
    """Statements that can be EXPLAINed (not utility statements, not hidden)."""
    query = frame["query"].fillna("").str.lstrip().str.lower()
    mask = query.str.match(r"(select|with|insert|update|delete|merge|values|table)\b") & (frame["query"] != HIDDEN_QUERY)
    return frame[mask]


__all__ = [
    "SNAPSHOT_COLUMNS",
    "COUNTERS",
    "KEY",
    "snapshot",
    "snapshot_sql",
    "select_list",
    "top",
    "diff",
    "find",
    "summarize",
    "explainable",
]

# the assessment every front end renders (after the reader's names, which it uses)
from perfkit.statements.assess import NOISE_LABELS, assess, noise, regressions  # noqa: E402

__all__ += ["NOISE_LABELS", "assess", "noise", "regressions"]

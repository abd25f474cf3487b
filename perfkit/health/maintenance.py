"""Maintenance checks: bloat, overdue vacuum and analyze, transaction-ID wraparound, sequences running out.

Each check judges rows the run's context read once (the table statistics are shared with the
table checks); the judging functions touch no database.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from perfkit import sql
from perfkit.errors import PerfkitError
from perfkit.findings import finding
from perfkit.health.common import duration_text, number, share_text, size_text
from perfkit.health.context import SETTINGS_SQL, TABLES_SQL, Check

ROW_WIDTHS_SQL = """
SELECT st.schemaname AS schema, st.tablename AS table,
       sum((1 - st.null_frac) * st.avg_width) AS row_width,
       bool_or(st.null_frac > 0) AS has_nulls, count(*) AS analyzed_columns
FROM pg_stats st WHERE NOT st.inherited AND st.schemaname NOT IN ('pg_catalog', 'information_schema')
GROUP BY st.schemaname, st.tablename
"""

PAGE_HEADER = 24
TUPLE_HEADER = 23
ITEM_POINTER = 4
_OFF = {"off", "false", "no", "0", "f", "n"}


def estimated_bloat_bytes(row) -> float | None:
    """Bytes of a table beyond what its rows need (from pg_stats widths), or None when unknown.

    Each row costs its header, a null bitmap, its average width (aligned to 8 bytes) and a
    line pointer; pages hold ``fillfactor`` % of their usable space.
    """
    if row.row_width is None or row.row_width != row.row_width or not row.relpages:
        return None
    null_bitmap = math.ceil(row.relnatts / 8) if row.has_nulls else 0
    tuple_bytes = 8 * math.ceil((TUPLE_HEADER + null_bitmap + float(row.row_width)) / 8) + ITEM_POINTER
    usable = (row.block_size - PAGE_HEADER) * row.fillfactor / 100
    expected_pages = math.ceil(float(row.reltuples) * tuple_bytes / usable) if row.reltuples else 0
    return max(row.relpages - expected_pages, 0) * row.block_size


# who holds the xmin horizon back: the oldest snapshot of a session, a prepared transaction or a slot
HORIZON_SQL = """
SELECT * FROM (
    SELECT 'session' AS holder, pid, coalesce(state, 'unknown') AS state, usename::text AS "user",
           extract(epoch FROM now() - xact_start) AS xact_s, age(backend_xmin) AS xmin_age,
           left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80) AS query
    FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT 'prepared transaction', NULL, gid, owner::text, extract(epoch FROM now() - prepared), age(transaction), ''
    FROM pg_prepared_xacts
    UNION ALL
    SELECT 'replication slot', NULL, slot_name::text, '', NULL, greatest(age(xmin), age(catalog_xmin)), ''
    FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
) h ORDER BY xmin_age DESC NULLS LAST LIMIT 1
"""

# tables smaller than this stay quiet: vacuuming or analyzing them changes nothing a user feels
MIN_TABLE_BYTES = 256 * 1024


def read_horizon(ctx) -> list[dict]:
    try:
        return ctx.query("xmin_horizon", HORIZON_SQL).to_dict(orient="records")
    except PerfkitError:
        return []


def horizon_holder(evidence, *, min_age_s: float = 60.0) -> dict | None:
    """The transaction (or slot) holding the xmin horizon back, when it has for ``min_age_s`` or more."""
    rows = evidence.get("horizon")
    if rows is None or len(rows) == 0:
        return None
    row = rows.iloc[0].to_dict() if hasattr(rows, "iloc") else dict(rows[0])
    seconds = row.get("xact_s")
    if row.get("holder") == "session" and (seconds is None or seconds != seconds or float(seconds) < min_age_s):
        return None
    return row


def horizon_words(holder: dict) -> str:
    """``pid 123 (idle in transaction, user app, transaction open 5 min, xmin age 1,234)``."""
    if holder.get("holder") == "session":
        what = f"pid {int(holder['pid'])} ({holder['state']}, user {holder['user']}, "
        what += f"transaction open {duration_text(float(holder['xact_s']))}, xmin age {number(holder['xmin_age'])}"
        if holder.get("query"):
            what += f", last query: {holder['query']}"
        return what + ")"
    age = f"xmin age {number(holder['xmin_age'])}"
    return f"{holder['holder']} {holder['state']} ({age})"


def _pid(holder: dict) -> int | None:
    pid = holder.get("pid")
    return None if pid is None or pid != pid else int(pid)


def _end_holder(holder: dict) -> sql.Fix | None:
    pid = _pid(holder)
    if pid is None:
        return None
    return sql.end_backend(pid, comment="ends the transaction holding the xmin horizon; vacuum after it")


def held_back(row, holder: dict | None) -> bool:
    """The table's dead rows are probably kept by ``holder``: it has been open since before the last vacuum."""
    if holder is None:
        return False
    since = row.since_vacuum_s
    if since is None or since != since:
        return False  # never vacuumed: a vacuum has not been tried yet
    if holder.get("holder") != "session":
        return True
    return float(holder["xact_s"]) >= float(since)


def _held_recommendation(holder: dict) -> str:
    if holder.get("holder") == "session":
        return (f"VACUUM cannot remove these dead rows while {horizon_words(holder)} holds the xmin horizon: "
                f"end that transaction (commit or roll it back in its application, or "
                f"SELECT pg_terminate_backend({int(holder['pid'])})), set idle_in_transaction_session_timeout, "
                "then vacuum.")
    return (f"VACUUM cannot remove these dead rows while {horizon_words(holder)} holds the xmin horizon: "
            "commit/roll back or drop it, then vacuum.")


def read_bloat(ctx) -> dict:
    return {"tables": ctx.tables(), "widths": ctx.query("row_widths", ROW_WIDTHS_SQL), "horizon": read_horizon(ctx)}


def judge_table_bloat(
    evidence,
    *,
    min_dead_share: float = 0.10,
    min_dead_tuples: int = 1000,
    min_bloat_share: float = 0.5,
    min_bloat_bytes: int = 100 * 1024 * 1024,
    min_table_bytes: int = MIN_TABLE_BYTES,
    min_horizon_s: float = 60.0,
) -> list[dict]:
    """Tables carrying many dead rows, or much more space than their live rows need.

    When a transaction (or a prepared transaction, a replication slot) holds the xmin horizon
    back from before the last vacuum, VACUUM cannot remove the dead rows: the finding names
    it (pid, state, age) instead of advising a vacuum that would change nothing.

    Parameters
    ----------
    min_dead_share:
        Dead rows as a share of all rows (default 0.10).
    min_dead_tuples:
        And at least this many dead rows.
    min_bloat_share, min_bloat_bytes:
        Or estimated wasted space (from pg_stats average widths) of at least this share of
        the table and this many bytes (default 50 % and 100 MB).
    min_table_bytes:
        Ignore tables smaller than this on disk (default 256 kB).
    min_horizon_s:
        A transaction open this long (default 60 s) counts as holding the xmin horizon.
    """
    tables, widths = evidence["tables"], evidence.get("widths")
    holder = horizon_holder(evidence, min_age_s=min_horizon_s)
    if tables.empty:
        return []
    if widths is None or widths.empty:
        rows = tables.assign(row_width=None, has_nulls=None, analyzed_columns=None)
    else:
        rows = tables.merge(widths, on=["schema", "table"], how="left")
    found = []
    for row in rows.itertuples(index=False):
        total = row.n_live_tup + row.n_dead_tup
        dead_share = row.n_dead_tup / total if total else 0.0
        bloat = estimated_bloat_bytes(row)
        table_bytes = row.relpages * row.block_size
        bloat_share = bloat / table_bytes if bloat is not None and table_bytes else 0.0
        dead = dead_share >= min_dead_share and row.n_dead_tup >= min_dead_tuples
        bloated = bloat is not None and bloat_share >= min_bloat_share and bloat >= min_bloat_bytes
        if not (dead or bloated) or float(row.size_bytes or 0) < min_table_bytes:
            continue
        estimate = (
            f"estimated {size_text(bloat)} ({share_text(bloat_share)}) beyond what the live rows need"
            if bloat is not None
            else "no width statistics to estimate wasted space (never analyzed, or no SELECT privilege)"
        )
        text = (
            f"{number(row.n_dead_tup)} dead rows of {number(total)} ({share_text(dead_share)}); "
            f"{size_text(row.size_bytes)} on disk, {estimate}"
        )
        held = dead and held_back(row, holder)
        if held:
            text += f"; {_since(row.since_vacuum_s, 'vacuumed')}; the xmin horizon is held by {horizon_words(holder)}"
            recommendation = _held_recommendation(holder)
            fix = _end_holder(holder)
        elif dead:
            if holder is not None:
                text += f"; note: {horizon_words(holder)} holds the xmin horizon, rows it can still see stay"
            recommendation = (
                "VACUUM it to make the dead rows' space reusable, and find why autovacuum has not "
                "(see vacuum_overdue; long transactions holding back the xmin horizon also prevent it)."
            )
            fix = sql.vacuum(row.schema, row.table, verbose=True)
        else:
            recommendation = (
                "The space is reusable but not returned: rebuild the table with pg_repack online, or "
                "VACUUM FULL in a maintenance window (it takes an ACCESS EXCLUSIVE lock)."
            )
            fix = sql.Fix("vacuum_full", schema=row.schema, table=row.table)
        found.append(
            finding(
                "table_bloat",
                "warning",
                sql.qualified(row.schema, row.table),
                text,
                recommendation,
                fix=fix,
                table=sql.qualified(row.schema, row.table),
                dead_share=dead_share,
                bloat_bytes=bloat,
                horizon_pid=_pid(holder) if held else None,
            )
        )
    return found


def _since(seconds, what: str) -> str:
    if seconds is None or seconds != seconds:
        return f"never {what}"
    return f"last {what} {duration_text(float(seconds))} ago"


def read_tables(ctx) -> dict:
    return {"tables": ctx.tables(), "horizon": read_horizon(ctx)}


def _big_enough(rows, min_table_bytes: int):
    for row, on, trigger in rows:
        if float(row.size_bytes or 0) >= min_table_bytes:
            yield row, on, trigger


def _autovacuum_on(value) -> bool:
    return str(value).lower() not in _OFF


def _past_trigger(evidence, what: str, counter: str, overdue_factor: float, minimum: int):
    """``(row, autovacuum on, trigger)`` of each table whose ``counter`` is past autovacuum's ``what``
    (vacuum or analyze) trigger, ``threshold + scale_factor * rows`` (times ``overdue_factor`` when
    autovacuum is on for it), and at least ``minimum``."""
    for row in evidence["tables"].itertuples(index=False):
        on = _autovacuum_on(row.autovacuum)
        trigger = getattr(row, f"{what}_threshold") + getattr(row, f"{what}_scale_factor") * float(row.reltuples)
        if getattr(row, counter) >= max(minimum, trigger * (overdue_factor if on else 1.0)):
            yield row, on, trigger


def judge_vacuum_overdue(evidence, *, overdue_factor: float = 2.0, min_dead_tuples: int = 1000,
                         min_table_bytes: int = MIN_TABLE_BYTES, recent_vacuum_s: float = 600.0,
                         min_horizon_s: float = 60.0) -> list[dict]:
    """Tables whose dead rows are past the point where autovacuum should have vacuumed them.

    Autovacuum vacuums a table once its dead rows exceed ``autovacuum_vacuum_threshold +
    autovacuum_vacuum_scale_factor * rows`` (per-table settings win). A table is overdue at
    ``overdue_factor`` times that trigger, or past the trigger at all with autovacuum off.

    Parameters
    ----------
    overdue_factor:
        How far past the trigger counts as overdue when autovacuum is on (default 2).
    min_dead_tuples:
        Ignore tables with fewer dead rows.
    min_table_bytes:
        Ignore tables smaller than this on disk (default 256 kB).
    recent_vacuum_s:
        A table vacuumed this recently is not "overdue": its dead rows survived the vacuum.
    min_horizon_s:
        A transaction open this long (default 60 s) counts as holding the xmin horizon. A table
        vacuumed while such a transaction was open is not overdue either: VACUUM ran and could
        not remove the rows; ``table_bloat`` names the transaction holding them.
    """
    found = []
    holder = horizon_holder(evidence, min_age_s=min_horizon_s)
    rows = _past_trigger(evidence, "vacuum", "n_dead_tup", overdue_factor, min_dead_tuples)
    for row, on, trigger in _big_enough(rows, min_table_bytes):
        disabled = "" if on else "; autovacuum is off for this table"
        fix = sql.vacuum(row.schema, row.table, verbose=True)
        if not on:
            fix = replace(fix, requires=(sql.reset_table(row.schema, row.table, "autovacuum_enabled"),))
        since = row.since_vacuum_s
        recent = since is not None and since == since and float(since) < recent_vacuum_s
        if held_back(row, holder):
            continue  # vacuumed, and the rows stay for a snapshot: table_bloat names it
        if recent:
            continue  # vacuumed minutes ago: not overdue (and no snapshot visible to blame)
        found.append(
            finding(
                "vacuum_overdue",
                "warning",
                sql.qualified(row.schema, row.table),
                f"{number(row.n_dead_tup)} dead rows, {row.n_dead_tup / max(trigger, 1):,.1f}x the autovacuum "
                f"trigger of {number(trigger)} ({row.vacuum_threshold:g} + {row.vacuum_scale_factor:g} x "
                f"{number(row.reltuples)} rows); {_since(row.since_vacuum_s, 'vacuumed')}{disabled}",
                (
                    "Turn autovacuum back on for it and vacuum it now."
                    if not on
                    else "Vacuum it now; then make autovacuum keep up (lower its scale factor for this "
                    "table, raise autovacuum_vacuum_cost_limit, and look for long transactions)."
                ),
                fix=fix,
                table=sql.qualified(row.schema, row.table),
            )
        )
    return found


def judge_analyze_overdue(evidence, *, overdue_factor: float = 2.0, min_modifications: int = 1000,
                          min_table_bytes: int = MIN_TABLE_BYTES) -> list[dict]:
    """Tables changed well past autovacuum's analyze trigger since their last analyze.

    Stale statistics give the planner wrong row counts, and so wrong plans. The trigger is
    ``autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * rows``.

    Parameters
    ----------
    overdue_factor:
        How far past the trigger counts as overdue when autovacuum is on (default 2).
    min_modifications:
        Ignore tables with fewer rows changed since the last analyze.
    min_table_bytes:
        Ignore tables smaller than this on disk (default 256 kB).
    """
    found = []
    rows = _past_trigger(evidence, "analyze", "n_mod_since_analyze", overdue_factor, min_modifications)
    for row, on, trigger in _big_enough(rows, min_table_bytes):
        disabled = "" if on else "; autovacuum (and so autoanalyze) is off for this table"
        found.append(
            finding(
                "analyze_overdue",
                "warning",
                sql.qualified(row.schema, row.table),
                f"{number(row.n_mod_since_analyze)} rows changed since the last analyze, "
                f"{row.n_mod_since_analyze / max(trigger, 1):,.1f}x the autoanalyze trigger of {number(trigger)}; "
                f"{_since(row.since_analyze_s, 'analyzed')}{disabled}",
                "Analyze it so the planner sees today's row counts and value distributions.",
                fix=sql.analyze(row.schema, row.table),
                table=sql.qualified(row.schema, row.table),
            )
        )
    return found


SEQUENCES_SQL = """
SELECT s.schemaname AS schema, s.sequencename AS sequence, s.last_value, s.min_value, s.max_value,
       s.increment_by, s.data_type::text AS sequence_type,
       col.table_schema, col.table_name, col.column_name, col.column_type
FROM pg_sequences s
LEFT JOIN LATERAL (
    SELECT tn.nspname AS table_schema, tc.relname AS table_name, a.attname AS column_name,
           format_type(a.atttypid, a.atttypmod) AS column_type
    FROM pg_depend d
    JOIN pg_class tc ON tc.oid = d.refobjid
    JOIN pg_namespace tn ON tn.oid = tc.relnamespace
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
      AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
    LIMIT 1) col ON true
WHERE s.last_value IS NOT NULL
   OR NOT has_sequence_privilege(format('%I.%I', s.schemaname, s.sequencename), 'SELECT,USAGE')
"""

TYPE_LIMITS = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def read_sequences(ctx) -> dict:
    return {"sequences": ctx.query("sequences", SEQUENCES_SQL), "role": ctx.query("current_role", ROLE_SQL)}


ROLE_SQL = 'SELECT current_user AS "role"'


def judge_sequence_exhaustion(evidence, *, warning_share: float = 0.75, critical_share: float = 0.9) -> list[dict]:
    """Sequences that have used most of their range, or of the column they feed.

    A ``serial`` column is ``integer``: its bigint sequence runs out at 2,147,483,647,
    after which every insert fails.

    Parameters
    ----------
    warning_share, critical_share:
        Used share of the range for a warning (default 0.75) and for critical (0.9).
    """
    found = []
    sequences = evidence["sequences"]
    hidden = sequences[sequences["last_value"].isna()] if len(sequences) else sequences
    if len(hidden):
        role = str(evidence.get("role", pd.DataFrame([{"role": "perfkit"}])).iloc[0]["role"])
        names = [sql.qualified(r.schema, r.sequence) for r in hidden.itertuples(index=False)]
        schemas = sorted(set(hidden["schema"]))
        fix = (sql.grant(schemas[0], "*", role, on="ALL SEQUENCES IN SCHEMA") if len(names) > 1 and len(schemas) == 1
               else sql.grant(hidden.iloc[0]["schema"], hidden.iloc[0]["sequence"], role))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        found.append(finding(
            "missing_privilege", "warning", f"sequences: {shown}",
            f"pg_sequences.last_value is NULL for {len(names)} sequence{'s' if len(names) != 1 else ''} ({shown}): "
            f"role {role} has no SELECT privilege on them, so how much of their range is used is unknown",
            "Grant the monitoring role SELECT on the sequences so sequence_exhaustion can read them"
            + (" (one GRANT per schema: " + ", ".join(schemas) + ")" if len(schemas) > 1 else "") + ".",
            fix=fix, check="sequence_exhaustion",
        ))
    for row in sequences[sequences["last_value"].notna()].itertuples(index=False) if len(sequences) else ():
        low, high = int(row.min_value), int(row.max_value)
        bound_by = f"the sequence's {row.sequence_type} range"
        owner = sql.qualified(row.table_schema, row.table_name) if isinstance(row.table_name, str) else ""
        if row.column_type in TYPE_LIMITS:
            type_low, type_high = TYPE_LIMITS[row.column_type]
            if type_high < high:
                high, bound_by = type_high, f"{row.column_type} column {owner}.{row.column_name}"
            low = max(low, type_low)
        last = int(row.last_value)
        ascending = int(row.increment_by) > 0
        used = (last - low) / max(high - low, 1) if ascending else (high - last) / max(high - low, 1)
        if used < warning_share:
            continue
        remaining = high - last if ascending else last - low
        severity = "critical" if used >= critical_share else "warning"
        target = f" (feeds {owner}.{row.column_name})" if owner else ""
        fix = (
            sql.alter_column_type(row.table_schema, row.table_name, row.column_name, "bigint", comment="rewrites the table")
            if owner and row.column_type in ("smallint", "integer")
            else sql.alter_sequence(row.schema, row.sequence, "bigint")
        )
        found.append(
            finding(
                "sequence_exhaustion",
                severity,
                sql.qualified(row.schema, row.sequence),
                f"last value {number(last)} has used {share_text(used)} of {bound_by}{target}; "
                f"{number(remaining)} values left",
                "Move the column (and sequence) to bigint before inserts start failing; on a large "
                "table plan the rewrite (new column, backfill, swap).",
                fix=fix,
                used_share=used,
            )
        )
    return found


DATABASE_XID_SQL = """
SELECT datname AS database, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS mxid_age
FROM pg_database WHERE datallowconn
ORDER BY age(datfrozenxid) DESC
"""

TABLE_XID_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0)) AS xid_age
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm') AND c.relfrozenxid <> '0'::xid
ORDER BY xid_age DESC
LIMIT 1000
"""

# the transaction-ID space is 2^31 in each direction; PostgreSQL stops accepting writes
# shortly before a table's oldest unfrozen ID is that old
XID_LIMIT = 2**31


def read_xid(ctx) -> dict:
    freeze = ctx.settings().get("autovacuum_freeze_max_age", {}).get("number")
    return {"databases": ctx.query("database_xid", DATABASE_XID_SQL), "tables": ctx.query("table_xid", TABLE_XID_SQL),
            "settings": [{"autovacuum_freeze_max_age": freeze}]}


def judge_xid_wraparound(evidence, *, warning_share: float = 0.5, critical_share: float = 0.75, limit: int = 10) -> list[dict]:
    """Databases and tables whose oldest unfrozen transaction ID nears wraparound.

    Parameters
    ----------
    warning_share, critical_share:
        Age as a share of the 2^31 limit for a warning (default 0.5, ~1.07 billion) and
        for critical (0.75).
    limit:
        Report at most this many tables of the current database (oldest first).
    """
    found = []
    freeze_max = evidence["settings"].iloc[0]["autovacuum_freeze_max_age"]

    def severity_of(age: int) -> str:
        return "critical" if age >= critical_share * XID_LIMIT else "warning"

    for row in evidence["databases"].itertuples(index=False):
        age = int(row.xid_age)
        if age < warning_share * XID_LIMIT:
            continue
        found.append(
            finding(
                "xid_wraparound",
                severity_of(age),
                f"database {row.database}",
                f"oldest unfrozen transaction ID is {number(age)} transactions old, {share_text(age / XID_LIMIT)} "
                f"of the 2^31 wraparound limit (anti-wraparound vacuums start at autovacuum_freeze_max_age "
                f"{number(freeze_max)}); multixact age {number(row.mxid_age)}",
                "Find what stops freezing (long transactions, abandoned replication slots or prepared "
                "transactions) and VACUUM (FREEZE) the oldest tables before the server stops writes.",
            )
        )
    tables = evidence["tables"]
    if len(tables):
        tables = tables[tables["xid_age"].astype(float) >= int(warning_share * XID_LIMIT)]
        tables = tables.sort_values("xid_age", ascending=False, kind="stable").head(limit)
    for row in tables.itertuples(index=False):
        age = int(row.xid_age)
        found.append(
            finding(
                "xid_wraparound",
                severity_of(age),
                sql.qualified(row.schema, row.table),
                f"relfrozenxid is {number(age)} transactions old, {share_text(age / XID_LIMIT)} of the 2^31 limit",
                "Vacuum it with FREEZE (it cannot be skipped as it nears the limit).",
                fix=sql.Fix("vacuum", schema=row.schema, table=row.table, settings=(("freeze", "on"),), verbose=True),
                table=sql.qualified(row.schema, row.table),
            )
        )
    return found


table_bloat = Check("table_bloat", read_bloat, judge_table_bloat, ("table_bloat",), (TABLES_SQL, ROW_WIDTHS_SQL))
vacuum_overdue = Check("vacuum_overdue", read_tables, judge_vacuum_overdue, ("vacuum_overdue",), (TABLES_SQL,))
analyze_overdue = Check("analyze_overdue", read_tables, judge_analyze_overdue, ("analyze_overdue",), (TABLES_SQL,))
sequence_exhaustion = Check("sequence_exhaustion", read_sequences, judge_sequence_exhaustion, ("sequence_exhaustion",),
                            (SEQUENCES_SQL,))
xid_wraparound = Check("xid_wraparound", read_xid, judge_xid_wraparound, ("xid_wraparound",),
                       (DATABASE_XID_SQL, TABLE_XID_SQL, SETTINGS_SQL))

CHECKS = (table_bloat, vacuum_overdue, analyze_overdue, sequence_exhaustion, xid_wraparound)

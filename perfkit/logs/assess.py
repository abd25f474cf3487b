"""The server-log assessment: every log file read together, its statements ranked, its plans, slow
statements and N+1 patterns as findings; what ``perfkit logs`` and the notebook both render.

``assess(paths, ...)`` returns an Assessment (source ``logs``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from perfkit.assessment import Assessment, merge_findings
from perfkit.errors import BadInputError
from perfkit.findings import finding, findings_frame
from perfkit.logs import stream
from perfkit.secrets import scrub_statement

if TYPE_CHECKING:
    import pandas as pd

TITLE = "Server log"
NO_EXECUTIONS = (
    "no statement executions in these logs: set log_min_duration_statement (0 logs every "
    "statement) or log_statement = 'all' on the server"
)


def _check(name: str, value, minimum, flag: str) -> None:
    if value < minimum:
        raise BadInputError(f"{name} ({flag}) must be {minimum:g} or more, not {value:g}")


ALL_SHAPES = 10**9  # every shape: the tables are cut after the noise is left out


def _workload_shapes(shapes: pd.DataFrame, include_noise: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shapes that are the application's workload, and the others (empty with ``include_noise``)."""
    from perfkit.statements import noise

    if include_noise or shapes.empty:
        return shapes, shapes.iloc[0:0]
    labels = noise(shapes.assign(query=shapes["normalized"])[["query", "calls"]])
    return shapes[labels == ""], shapes[labels != ""]


def assess(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    prefix: str | None = None,
    skip_bad_lines: bool = False,
    timezone: str | None = None,
    n: int = 10,
    slow_ms: float = 200.0,
    min_repeats: int = 3,
    max_statements: int = 10,
    gap_ms: float = 1000.0,
    include_noise: bool = False,
    format: str | None = None,
    jobs: int | None = None,
    engine: str = "auto",
    state: str | os.PathLike | None = None,
    merge_days: float | None = None,
) -> Assessment:
    """Read PostgreSQL server logs (all files together, in one streaming pass) and assess them.

    Parameters
    ----------
    paths:
        Log files or glob patterns (csvlog, jsonlog, stderr, syslog; plain or compressed).
    prefix, skip_bad_lines, timezone:
        As ``perfkit.logs.read``. Lines that are not log records (a ``pg_ctl`` message in the
        file) are skipped and counted in a note whatever ``skip_bad_lines``; it still governs
        binary content and damaged archives.
    n:
        Rows per ranking, and how many logged plans are analysed.
    slow_ms:
        An execution this long is part of a ``slow_statement`` finding.
    min_repeats, max_statements, gap_ms:
        The N+1 rules (``perfkit.nplusone.RequestGrouper``).
    format:
        ``stderr``, ``csvlog``, ``jsonlog`` or ``syslog`` to override detection.
    jobs:
        Processes (default: every core); files and byte ranges of large plain files are shared out.
    engine:
        ``auto``: plain csvlog and jsonlog files of 1 MiB or more are read by DuckDB on every core
        (``perfkit.logs.duck``), the rest by the Python pass, plain stderr files a block of lines at
        a time (``perfkit.logs.scanner``); ``duckdb``: such files whatever their size; ``python``:
        every file by the Python pass and its line-by-line readers. The assessment is the same
        either way.
    state:
        An incremental run (``perfkit.logs.incremental``): read only what was appended to each file
        since the run that wrote this state file, keep this run's aggregates beside it and update it.
    merge_days:
        With ``state``: assess the stored runs of the last ``merge_days`` days (this one included)
        instead of this run alone. A state file given among ``paths`` stands for its stored runs
        of the last ``merge_days`` days (default 7: the weekly report's period).

    Returns
    -------
    Assessment
        ``tables``: ``slowest`` (one row per statement shape, its slowest execution, with
        ``has_plan`` and ``calls``; the plans are in ``data["slowest"]``), ``most_frequent``,
        ``most_time``, ``n_plus_one``, ``statement_types``, ``per_hour``, ``per_minute``,
        ``by_database``, ``by_user``, ``by_application``, ``by_host``, ``errors``, ``cancelled``,
        ``temp_files``, ``checkpoints``, ``autovacuum``, ``lock_waits``, ``deadlocks``,
        ``connections``, ``sessions``. ``findings``: N+1, slow statements, plan findings,
        ``temp_files``, ``checkpoints_too_frequent``, ``lock_waits``, ``deadlocks``,
        ``connection_churn``, ``error_spike``. ``facts``: ``files``, ``formats``, ``prefixes``,
        ``entries``, ``executions``, ``timed_executions``, ``empty_statements``, ``skipped_lines``,
        ``bad_records``, ``shapes_parsed``, ``engines`` (the files DuckDB read). ``data``: ``slowest``.

    Raises
    ------
    BadInputError
        An option out of range (named), or a file that cannot be read.
    """
    _check("n", n, 1, "-n")
    _check("slow_ms", slow_ms, 0, "--slow-ms")
    _check("min_repeats", min_repeats, 2, "--min-repeats")
    _check("max_statements", max_statements, 1, "--max-statements")
    _check("gap_ms", gap_ms, 0, "--gap-ms")
    if engine not in stream.ENGINES:
        raise BadInputError(f"--engine {engine!r}: one of {', '.join(stream.ENGINES)}")
    settings = stream.Settings(prefix=prefix, skip_bad_lines=skip_bad_lines, timezone=timezone, format=format,
                               slow_ms=slow_ms, min_repeats=min_repeats, max_statements=max_statements,
                               gap_ms=gap_ms, jobs=jobs, engine=engine)
    scanned = _scan(paths, settings, state, merge_days)
    return from_scan(scanned, n=n, slow_ms=slow_ms, include_noise=include_noise, timezone=timezone)


def _load_rendering() -> None:
    """What from_scan needs (pandas, the DataFrame analysis, the plan rules), loaded while the logs
    are read."""
    import statistics  # noqa: F401

    import pandas as pd

    import perfkit.logs.analysis
    import perfkit.logs.timestamps
    import perfkit.plans.rules
    import perfkit.statements.assess  # noqa: F401

    pd.Index(["text"])  # pandas' text columns load their Arrow parts on first use


def _scan(paths, settings: stream.Settings, state, merge_days: float | None) -> stream.Scan:
    from pathlib import Path

    from perfkit.logs import incremental
    from perfkit.logs.sources import expand

    if merge_days is not None:
        _check("merge_days", merge_days, 0, "--merge-days")
    files = expand(paths)
    stored = [f for f in files if incremental.is_state_file(f)]
    logs = [f for f in files if f not in stored]
    if state is None and not stored:
        if merge_days is not None:
            raise BadInputError("--merge-days merges the runs of a state file: give --state FILE (or the state file)")
        return stream.scan(logs, settings, meanwhile=_load_rendering)
    total = stream.Scan()
    if state is not None:
        state_path = Path(state)
        known = incremental.load(state_path)
        scanned = stream.Scan()
        if logs:
            resume, entries, notes = incremental.plan(logs, known)
            scanned = stream.scan(logs, settings, resume, meanwhile=_load_rendering)
            scanned.notes.extend(notes)
            read = sum(1 for f in logs if resume.get(str(f)) is None or resume[str(f)][0] < resume[str(f)][1])
            scanned.notes.append(f"incremental run ({state_path}): {read} of {len(logs)} file(s) had new lines")
            incremental.save_run(state_path, known, scanned, entries, notes)
        total.merge(incremental.merged(state_path, merge_days) if merge_days is not None else scanned)
    elif logs:
        total.merge(stream.scan(logs, settings, meanwhile=_load_rendering))
    for path in stored:
        total.merge(incremental.merged(path, merge_days if merge_days is not None else 7.0))
    return total


def _utc(texts, timezone: str | None) -> pd.Series:
    import pandas as pd

    from perfkit.logs.timestamps import to_utc
    series = pd.Series(list(texts), dtype="object")
    if series.empty:
        return pd.Series(dtype="datetime64[ns, UTC]")
    return to_utc(series.where(series != "", None), timezone=timezone, strict=True)


def from_scan(scanned: stream.Scan, *, n: int = 10, slow_ms: float = 200.0, include_noise: bool = False,
              timezone: str | None = None) -> Assessment:
    """The Assessment of a finished :func:`perfkit.logs.stream.scan`."""
    from perfkit.logs import events as ev
    from perfkit.logs.analysis import FREQUENT_COLUMNS

    report = scanned.report
    shapes = scanned.shapes
    notes: list[str] = list(scanned.notes)
    if report.skipped_lines:
        first = report.bad_records[0]
        notes.append(
            f"skipped {report.skipped_lines:,} line(s) that are not log records; the first: {first['file']}, "
            f"line {first['line']}: {first['reason']}"
        )
    if scanned.empty_statements:
        notes.append(f"{scanned.empty_statements:,} execution(s) logged with an empty statement text "
                     "(a driver's empty query); counted as executions")
    if not scanned.executions:
        notes.append(NO_EXECUTIONS)
    executed = {k: v for k, v in shapes.items() if v.calls}
    frame = _shape_frame(executed.values(), timezone)
    frequent, noisy = _workload_shapes(frame, include_noise)
    if len(noisy):
        notes.append(f"Left out of the statement tables: {len(noisy)} statement shapes ({noisy['calls'].sum():,.0f} "
                     "executions) that are not the application's workload (one-off DDL, driver probes, admin calls).")
    kept = set(frequent["key"]) if len(frequent) else set()
    ranked = _slowest(shapes, kept, n, timezone)
    plans = _plan_findings(shapes, n)
    n_plus_one = scanned.requests.findings() if scanned.requests is not None else findings_frame([])
    events: ev.Events = scanned.events
    tables = {
        "slowest": ranked.drop(columns=["plan"]).assign(has_plan=ranked["plan"] != ""),
        "most_frequent": frequent.sort_values(["calls", "total_ms"], ascending=False, kind="stable").head(n)
        .reset_index(drop=True)[FREQUENT_COLUMNS],
        "most_time": frequent.sort_values(["total_ms", "calls"], ascending=False, kind="stable").head(n)
        .reset_index(drop=True)[FREQUENT_COLUMNS],
        "n_plus_one": n_plus_one,
        "statement_types": _counts(scanned.breakdown("type"), ["type"]),
        **_time_tables(scanned.minutes, timezone),
        **{f"by_{dimension}": _breakdown(scanned.breakdown(dimension), dimension)
           for dimension in ("database", "user", "application", "host")},
        **_event_tables(events, timezone),
        "tenants": _tenant_table(scanned.tenants),
    }
    from perfkit.tenantcost import noisy_tenants

    findings = merge_findings(n_plus_one, _slow_findings(shapes, slow_ms), plans.drop(columns=[], errors="ignore"),
                              _event_findings(events, tables, scanned), noisy_tenants(tables["tenants"]))
    if plans.attrs.get("errors"):
        notes.extend(f"plan not read: {error}" for error in plans.attrs["errors"])
    facts = {
        "files": list(report.files),
        "formats": dict(report.formats),
        "prefixes": dict(report.prefixes),
        "entries": int(report.entries),
        "executions": int(scanned.executions),
        "timed_executions": int(scanned.timed),
        "empty_statements": int(scanned.empty_statements),
        "skipped_lines": int(report.skipped_lines),
        "bad_records": list(report.bad_records),
        "shapes_parsed": int(scanned.parsed_shapes),
        "engines": {path: "duckdb" for path in getattr(scanned, "engines", {})},  # the rest: the Python pass
        "requests": int(scanned.requests.requests) if scanned.requests is not None else 0,
    }
    tables["duration_bins"] = _duration_bins(shapes, tables["most_time"], top=6)
    return Assessment("logs", TITLE, findings=findings, tables=tables, facts=facts, notes=notes,
                      data={"slowest": ranked})


def _tenant_table(tenants: dict) -> pd.DataFrame:
    """Database time and calls per tenant, as ``perfkit.tenantcost.per_tenant`` (``TENANT_COLUMNS_OUT``)."""
    import pandas as pd

    from perfkit.tenantcost import NO_TENANT, TENANT_COLUMNS_OUT

    if not tenants or set(tenants) == {NO_TENANT}:
        return pd.DataFrame(columns=TENANT_COLUMNS_OUT)
    table = pd.DataFrame([(t, c, ms, len(shapes), ", ".join(sorted(known)))
                          for t, (c, ms, shapes, known) in tenants.items()],
                         columns=["tenant", "calls", "db_ms", "statements", "from"])
    known = table["tenant"] != NO_TENANT
    total = float(table.loc[known, "db_ms"].sum())
    table["share"] = (table["db_ms"] / total if total else math.nan)
    table.loc[~known, "share"] = math.nan
    table["mean_ms"] = table["db_ms"] / table["calls"]
    table = table.sort_values(["db_ms", "calls"], ascending=False, kind="stable")
    return table[TENANT_COLUMNS_OUT].reset_index(drop=True)


def _duration_bins(shapes: dict, busiest: pd.DataFrame, top: int) -> pd.DataFrame:
    """The duration histograms of the ``top`` shapes by total time: one row per (shape, bin)."""
    import pandas as pd
    by_key = {stream.shape_key_of(s): s for s in shapes.values()}
    rows = []
    for rank, row in enumerate(busiest.head(top).itertuples(index=False)):
        stats = by_key.get(row.fingerprint or "text:" + row.normalized)
        if stats is None:
            continue
        for index, count in sorted(stats.bins.items()):
            low = 0.0 if index == stream._ZERO_BIN else 10 ** (index / stream.BINS_PER_DECADE)
            high = 0.0 if index == stream._ZERO_BIN else 10 ** ((index + 1) / stream.BINS_PER_DECADE)
            rows.append((rank, row.normalized, low, high, count))
    return pd.DataFrame(rows, columns=["rank", "normalized", "low_ms", "high_ms", "runs"])


def _shape_frame(stats, timezone) -> pd.DataFrame:
    import pandas as pd
    rows = [(stream.shape_key_of(s), s.fingerprint, s.normalized, s.calls, s.total_ms if s.timed else math.nan,
             s.timed, s.max_ms if s.timed else math.nan, s.example, s.first_ts, s.last_ts) for s in stats]
    frame = pd.DataFrame(rows, columns=["key", "fingerprint", "normalized", "calls", "total_ms", "timed", "max_ms",
                                        "example", "first_ts", "last_ts"])
    frame["mean_ms"] = frame["total_ms"] / frame["timed"].where(frame["timed"] > 0)
    frame["example"] = frame["example"].map(scrub_statement)
    frame["first_ts"] = _utc(frame["first_ts"], timezone).array if len(frame) else frame["first_ts"]
    frame["last_ts"] = _utc(frame["last_ts"], timezone).array if len(frame) else frame["last_ts"]
    return frame


def _slowest(shapes: dict, kept: set, n: int, timezone) -> pd.DataFrame:
    """One row per shape, its slowest execution, slowest first (a statement repeated nine times is one row)."""
    import pandas as pd

    from perfkit.logs.analysis import SLOWEST_COLUMNS
    best = stream.top_shapes({k: v for k, v in shapes.items() if v.worst is not None and k in kept}, n,
                             key=lambda s: s.worst[0])
    rows = []
    for stats in best:
        duration, ts, statement, user, database, application, session, pid, file, line, plan = stats.worst
        rows.append({"ts": ts, "duration_ms": duration, "normalized": stats.normalized,
                     "statement": scrub_statement(statement), "fingerprint": stats.fingerprint, "user": user,
                     "database": database, "application": application, "session_id": session,
                     "pid": pid, "file": file, "line": line, "plan": scrub_statement(plan) if plan else "",
                     "calls": stats.calls})
    frame = pd.DataFrame(rows, columns=[*SLOWEST_COLUMNS, "calls"])
    if len(frame):
        frame["ts"] = _utc(frame["ts"], timezone).array
        frame["pid"] = pd.to_numeric(frame["pid"], errors="coerce").astype("Int64")
    return frame


def _plan_findings(shapes: dict, n: int) -> pd.DataFrame:
    from perfkit.logs.analysis import findings_of_plans
    worst = stream.top_shapes({k: v for k, v in shapes.items() if v.plan is not None}, n, key=lambda s: s.plan[0])
    return findings_of_plans((s.plan[1], s.fingerprint, s.normalized, s.plan[0], s.plan[2], s.plan[3]) for s in worst)


def _slow_findings(shapes: dict, slow_ms: float, critical_ms: float = 1000.0) -> pd.DataFrame:
    rows = []
    for stats in shapes.values():
        if not stats.slow_calls or stats.worst is None:
            continue
        worst = stats.worst
        rows.append(finding(
            "slow_statement", "critical" if stats.max_ms >= critical_ms else "warning", _clip(stats.normalized, 120),
            f"{stats.slow_calls:,} of {stats.calls:,} logged executions took {slow_ms:,.0f} ms or more "
            f"(slowest {stats.max_ms:,.1f} ms at {worst[8]}, line {worst[9]}; "
            f"mean of the slow ones {stats.slow_total / stats.slow_calls:,.1f} ms)",
            "read its plan (the auto_explain entry in the log, or perfkit explain --sql with the "
            "logged statement) and fix what the plan findings name: a missing index, a sort or "
            "hash that spills, a row misestimate",
            benefit_ms=stats.slow_over, fingerprint=stats.fingerprint, slow_calls=stats.slow_calls,
            max_ms=float(stats.max_ms), statement=scrub_statement(str(worst[2])),
        ))
    return findings_frame(rows)


def _counts(table: dict, names: list[str]) -> pd.DataFrame:
    import pandas as pd
    rows = [(*((k,) if not isinstance(k, tuple) else k), c, ms) for k, (c, ms) in table.items()]
    frame = pd.DataFrame(rows, columns=[*names, "calls", "total_ms"])
    return frame.sort_values("calls", ascending=False, kind="stable").reset_index(drop=True)


def _breakdown(table: dict, dimension: str) -> pd.DataFrame:
    import pandas as pd
    rows = [(value, c, ms) for value, (c, ms) in table.items()]
    frame = pd.DataFrame(rows, columns=[dimension, "calls", "total_ms"])
    return frame.sort_values(["total_ms", "calls"], ascending=False, kind="stable").reset_index(drop=True)


def _time_tables(minutes: dict, timezone) -> dict[str, pd.DataFrame]:
    import pandas as pd
    rows = [(f"{minute}:00 {zone}".strip(), c, ms) for (minute, zone), (c, ms) in minutes.items() if minute]
    frame = pd.DataFrame(rows, columns=["minute", "calls", "total_ms"])
    if frame.empty:
        empty = pd.DataFrame(columns=["minute", "calls", "total_ms"])
        return {"per_minute": empty, "per_hour": empty.rename(columns={"minute": "hour"})}
    frame["minute"] = _utc(frame["minute"], timezone).array
    frame = frame.groupby("minute", as_index=False)[["calls", "total_ms"]].sum().sort_values("minute")
    hours = frame.assign(hour=frame["minute"].dt.floor("h")).groupby("hour", as_index=False)[["calls", "total_ms"]].sum()
    return {"per_minute": frame.reset_index(drop=True), "per_hour": hours}


def _event_tables(events, timezone) -> dict[str, pd.DataFrame]:
    import pandas as pd
    errors = pd.DataFrame([(level, state, cls, c, example, statement)
                           for (level, state, cls), (c, example, statement) in events.errors.items()],
                          columns=["level", "sqlstate", "message", "count", "example", "statement"])
    errors = errors.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    errors["example"] = errors["example"].map(scrub_statement)
    errors["statement"] = errors["statement"].map(scrub_statement)
    temp = pd.DataFrame([(normalized, c, size, biggest, scrub_statement(example))
                         for (c, size, biggest, normalized, example) in events.temp_files.values()],
                        columns=["normalized", "count", "total_bytes", "max_bytes", "example"])
    temp = temp.sort_values("total_bytes", ascending=False, kind="stable").reset_index(drop=True)
    done = events.checkpoint_done
    starts = sorted(t for t in events.checkpoint_times if t)
    stamps = _utc(starts, timezone).dropna().sort_values() if starts else pd.Series(dtype="datetime64[ns, UTC]")
    gaps = stamps.diff().dt.total_seconds().dropna() if len(stamps) > 1 else pd.Series(dtype=float)
    checkpoints = pd.DataFrame([{
        "started": int(sum(events.checkpoints.values())),
        "timed": int(events.checkpoints.get("time", 0)),
        "requested": int(sum(v for k, v in events.checkpoints.items() if k != "time")),
        "wal": int(events.checkpoints.get("wal", 0)),
        "completed": int(done[0]), "buffers_written": int(done[4]),
        "write_s": float(done[1]), "sync_s": float(done[2]), "total_s": float(done[3]),
        "mean_distance_kb": float(done[5] / done[0]) if done[0] else math.nan, "max_distance_kb": int(done[6]),
        "median_interval_s": float(gaps.median()) if len(gaps) else math.nan,
        "min_interval_s": float(gaps.min()) if len(gaps) else math.nan,
    }]) if events.checkpoints or done[0] else pd.DataFrame()
    autovacuum = pd.DataFrame([(what, table, *cell) for (what, table), cell in events.autovacuum.items()],
                              columns=["action", "table", "runs", "elapsed_s", "tuples_removed", "max_elapsed_s",
                                       "max_dead_found", "live_at_max", "max_not_removable", "max_index_scans"])
    autovacuum = autovacuum.sort_values(["runs", "elapsed_s"], ascending=False, kind="stable").reset_index(drop=True)
    locks = pd.DataFrame([(mode, what, normalized, c, ms, longest, scrub_statement(example))
                          for (mode, what, _), (c, ms, longest, normalized, example) in events.lock_waits.items()],
                         columns=["mode", "object", "normalized", "waits", "total_ms", "max_ms", "example"])
    locks = locks.sort_values("total_ms", ascending=False, kind="stable").reset_index(drop=True)
    deadlocks = pd.DataFrame([{"ts": d["ts"], "statements": " | ".join(scrub_statement(s) for s in d["statements"]),
                               "file": d["file"], "line": d["line"]} for d in events.deadlocks],
                             columns=["ts", "statements", "file", "line"])
    if len(deadlocks):
        deadlocks["ts"] = _utc(deadlocks["ts"], timezone).array
    cancelled = pd.DataFrame([(reason, c, scrub_statement(example)) for reason, (c, example) in events.cancelled.items()],
                             columns=["reason", "count", "example"])
    connections = pd.DataFrame([(d, v, c) for (d, v), (c, _) in events.connections.items()],
                               columns=["dimension", "value", "connections"])
    connections = connections.sort_values(["dimension", "connections"], ascending=[True, False],
                                          kind="stable").reset_index(drop=True)
    sessions = pd.DataFrame([(d, v, c, s, s / c if c else math.nan) for (d, v), (c, s) in events.sessions.items()],
                            columns=["dimension", "value", "sessions", "total_s", "mean_s"])
    sessions = sessions.sort_values(["dimension", "sessions"], ascending=[True, False], kind="stable").reset_index(drop=True)
    hourly = {}
    for name, counts in (("connections_per_hour", events.connection_hours), ("errors_per_hour", events.error_hours)):
        frame = pd.DataFrame([(f"{hour}:00:00 {zone}".strip(), c) for (hour, zone), c in counts.items() if hour],
                             columns=["hour", "count"])
        if len(frame):
            frame["hour"] = _utc(frame["hour"], timezone).array
            frame = frame.groupby("hour", as_index=False)["count"].sum().sort_values("hour").reset_index(drop=True)
        hourly[name] = frame
    return {**hourly, "errors": errors, "cancelled": cancelled, "temp_files": temp, "checkpoints": checkpoints,
            "autovacuum": autovacuum, "lock_waits": locks, "deadlocks": deadlocks, "connections": connections,
            "sessions": sessions}


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} TB"


def _work_mem(largest: int) -> str:
    """A work_mem that would hold a spill of ``largest`` bytes in memory (twice it, in MB, a power of two)."""
    mb = max(4, 2 ** math.ceil(math.log2(max(largest * 2 / 1024 / 1024, 1))))
    return f"{mb}MB"


def _event_findings(events, tables: dict, scanned) -> pd.DataFrame:
    from perfkit import sql

    rows = []
    for row in tables["temp_files"].head(5).itertuples(index=False):
        setting = _work_mem(int(row.max_bytes))
        rows.append(finding(
            "temp_files", "warning" if row.total_bytes >= 64 * 1024 * 1024 else "info",
            _clip(row.normalized or "(statement not logged)", 120),
            f"{row.count:,} temporary file(s), {_size(row.total_bytes)} in all, the largest {_size(row.max_bytes)} "
            "(log_temp_files): its sorts or hashes spilled to disk",
            f"give this statement work_mem = '{setting}' (SET LOCAL in its transaction, or ALTER ROLE ... SET for "
            "its role) so that the spill stays in memory; fix the plan first if it sorts or hashes more rows "
            "than it needs",
            fix=sql.set_local(work_mem=setting), statement=row.normalized, temp_bytes=int(row.total_bytes),
            work_mem=setting,
        ))
    checkpoints = tables["checkpoints"]
    if len(checkpoints):
        row = checkpoints.iloc[0]
        interval = row["median_interval_s"]
        if row["wal"] and (row["wal"] * 2 >= row["started"] or (interval == interval and interval < 120)):
            distance_mb = row["max_distance_kb"] / 1024
            target = max(1024, 2 ** math.ceil(math.log2(max(distance_mb * 4, 1))))
            rows.append(finding(
                "checkpoints_too_frequent", "warning", "checkpoints",
                f"{int(row['wal'])} of {int(row['started'])} checkpoints were started by WAL volume, not by "
                f"checkpoint_timeout; a median of {interval:,.0f} s apart, up to {distance_mb:,.0f} MB of WAL "
                "between them (log_checkpoints)",
                f"raise max_wal_size (to about {target}MB: four times the largest WAL distance) so that checkpoints "
                "come from checkpoint_timeout and write each page once per interval",
                fix=sql.alter_system(max_wal_size=f"{target}MB"),
            ))
    rows.extend(_autovacuum_findings(tables["autovacuum"]))
    locks = tables["lock_waits"]
    for row in locks.head(3).itertuples(index=False):
        rows.append(finding(
            "lock_waits", "warning" if row.max_ms >= 1000 else "info", _clip(row.normalized or row.object, 120),
            f"{row.waits:,} wait(s) for {row.mode} on a {row.object}, {row.total_ms:,.0f} ms in all, the longest "
            f"{row.max_ms:,.0f} ms (log_lock_waits: each wait past deadlock_timeout)",
            "keep transactions that write these rows short, take the rows in one order, and move slow work "
            "outside the transaction; perfkit health lists the blockers while it happens",
            statement=row.normalized,
        ))
    if events.deadlock_count:
        first = events.deadlocks[0] if events.deadlocks else {"statements": []}
        both = " / ".join(_clip(s, 100) for s in first["statements"][:2])
        rows.append(finding(
            "deadlocks", "critical" if events.deadlock_count > 1 else "warning", "deadlocks",
            f"{events.deadlock_count:,} deadlock(s); the first between: {both}",
            "make the transactions that deadlock lock their rows in the same order (ORDER BY the key in "
            "SELECT ... FOR UPDATE, or update in key order), or retry on SQLSTATE 40P01",
            statements=list(first["statements"][:2]),
        ))
    total = events.connection_total
    sessions = events.session_total
    if total >= 100 and sessions[0] and sessions[1] / sessions[0] < 5.0:
        rows.append(finding(
            "connection_churn", "warning", "connections",
            f"{total:,} connections opened; sessions last {sessions[1] / sessions[0]:,.2f} s on average "
            "(log_connections, log_disconnections): each pays a new backend's start",
            "put a connection pooler in front (pgbouncer in transaction mode) or keep a pool in the application "
            "so that connections are reused",
        ))
    errors = tables["errors"]
    if len(errors) and scanned.executions:
        count = int(errors["count"].sum())
        if count * 100 >= scanned.executions and count >= 10:
            top = errors.iloc[0]
            rows.append(finding(
                "error_spike", "warning", _clip(str(top["message"]), 120),
                f"{count:,} errors for {scanned.executions:,} executions; the most common "
                f"({int(top['count']):,}): {top['sqlstate'] or top['level']} {_clip(str(top['example']), 100)}",
                "fix the statement or the code path that raises it; an error costs the work done before it and "
                "rolls back the transaction",
            ))
    return findings_frame(rows)


# autovacuum_lagging (see docs/README-logs.md): a run that had this many dead tuples to clean ...
BACKLOG_DEAD = 50_000
BACKLOG_SHARE = 0.10   # ... and they were this share of the table
SLOW_RUN_S = 60.0      # a run this long
HELD_DEAD = 10_000     # a run that could not remove this many dead tuples (an old snapshot holds them)
TARGET_DEAD = 10_000   # the scale factor proposed lets about this many dead tuples gather between runs


def _scale_factor(live: int) -> float:
    """autovacuum_vacuum_scale_factor that starts a vacuum after about TARGET_DEAD dead tuples, within
    [0.001, 0.05], one significant digit (the default, 0.2, lets a fifth of the table die first)."""
    raw = min(0.05, max(0.001, TARGET_DEAD / max(live, 1)))
    digits = -math.floor(math.log10(raw))
    return math.floor(raw * 10**digits) / 10**digits


def _table_name(logged: str) -> tuple[str | None, str]:
    """``perfkit.public.orders`` (autovacuum logs database.schema.table) -> ("public", "orders")."""
    parts = logged.split(".")
    if len(parts) >= 3:
        return parts[1], ".".join(parts[2:])
    if len(parts) == 2:
        return parts[0], parts[1]
    return None, logged


def _autovacuum_findings(table: pd.DataFrame) -> list:
    from perfkit import sql

    rows = []
    vacuums = table[table["action"] == "vacuum"] if len(table) else table
    for row in vacuums.sort_values("max_dead_found", ascending=False, kind="stable").itertuples(index=False):
        dead, live = int(row.max_dead_found), int(row.live_at_max)
        backlog = dead >= BACKLOG_DEAD and dead >= BACKLOG_SHARE * (dead + live)
        slow = row.max_elapsed_s >= SLOW_RUN_S
        held = int(row.max_not_removable) >= HELD_DEAD
        if not (backlog or slow or held):
            continue
        schema, name = _table_name(row.table)
        reasons, evidence = [], []
        if backlog:
            reasons.append("backlog")
            evidence.append(f"a run found {dead:,} dead tuples to clean in a table of {live:,} live ones "
                            f"({dead / max(dead + live, 1):.0%})")
        if slow:
            reasons.append("slow")
            evidence.append(f"the longest run took {row.max_elapsed_s:,.0f} s")
        if held:
            reasons.append("held_back")
            evidence.append(f"a run could not remove {int(row.max_not_removable):,} dead tuples ('dead but not yet "
                            "removable': a snapshot older than them held them)")
        if row.max_index_scans >= 2:
            evidence.append(f"a run scanned the indexes {int(row.max_index_scans)} times (its dead tuples did not "
                            "fit in autovacuum_work_mem)")
        fix, advice = None, []
        if backlog or slow:
            factor = _scale_factor(live)
            fix = sql.alter_table(schema, name, autovacuum_vacuum_scale_factor=f"{factor:g}")
            advice.append(f"vacuum this table sooner and in smaller runs: autovacuum_vacuum_scale_factor = {factor:g} "
                          f"(about {TARGET_DEAD:,} dead tuples between runs instead of a fifth of the table)")
            if slow:
                advice.append("raise its autovacuum_vacuum_cost_limit if runs stay long")
        if row.max_index_scans >= 2:
            advice.append("raise autovacuum_work_mem so that one index pass holds every dead tuple")
        if held:
            advice.append("find what holds the old snapshot and end it: a long or idle-in-transaction session, an "
                          "unused replication slot, a prepared transaction (perfkit health lists them); vacuuming "
                          "more often cannot remove these")
        critical = row.max_elapsed_s >= 10 * SLOW_RUN_S or int(row.max_not_removable) >= 100 * HELD_DEAD
        rows.append(finding(
            "autovacuum_lagging", "critical" if critical else "warning", row.table,
            f"{int(row.runs):,} autovacuum run(s) (log_autovacuum_min_duration): " + "; ".join(evidence),
            "; ".join(advice), fix=fix, table=row.table, reasons=reasons, dead_tuples=dead,
            not_removable=int(row.max_not_removable),
        ))
        if len(rows) >= 5:
            break
    return rows


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"

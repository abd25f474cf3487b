"""The fleet page: every server's status, what got slower where, the costliest statements across
servers, settings that differ within a tag, links to each server's weekly report.

The queries run in DuckDB over the store's Parquet files (only the files and columns they need;
never the whole store in pandas): a local store is read with ``read_parquet`` over the list of
live files, a remote one (``s3://``, ``gs://``) through a pyarrow dataset on the store's own
filesystem, which DuckDB scans with its filters pushed down. Which snapshot is each server's
latest and its baseline comes from the store's listing (:meth:`SnapshotStore.list`), so a
snapshot is counted once even while a compaction runs.

``build(fleet, store)`` returns a :class:`FleetPage`; ``write(page, out)`` writes ``fleet.html``
and ``fleet.json``; ``perfkit report fleet`` does both (and the per-server weekly reports).
"""

from __future__ import annotations

import html
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perfkit import secrets
from perfkit.display import NO_MATH, html_table, plural
from perfkit.errors import BadInputError, PerfkitError
from perfkit.fleet import Fleet, Server
from perfkit.statements.assess import (
    REGRESSION_MIN_ADDED_MS,
    REGRESSION_MIN_CALLS,
    REGRESSION_WARNING,
    noise,
    regressions,
    short_query,
)
from perfkit.store import SNAPSHOT_SCHEMA, SnapshotStore, parse_since

TREND_WEEKS = 12
TOP_STATEMENTS = 20
# settings that differ between any two servers by nature, never worth a row
IDENTITY_SETTINGS = frozenset({
    "port", "data_directory", "config_file", "hba_file", "ident_file", "external_pid_file", "cluster_name",
    "unix_socket_directories", "log_directory", "log_filename", "server_version", "server_version_num",
    "application_name", "transaction_read_only", "default_transaction_read_only", "statement_timeout",
    "lock_timeout", "transaction_isolation", "in_hot_standby", "data_checksums", "krb_server_keyfile",
    "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "session_authorization", "role", "is_superuser",
})
# the statement text grouped across servers: no leading comments, one space, lower case
NORMALIZED_SQL = r"lower(regexp_replace(regexp_replace(query, '^\s*(/\*.*?\*/\s*)*', ''), '\s+', ' ', 'g'))"


@dataclass
class FleetPage:
    """What the fleet page shows (every table a DataFrame, ready for html_table)."""

    servers: pd.DataFrame
    regressions: pd.DataFrame
    statements: pd.DataFrame
    settings: pd.DataFrame
    trend: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    store: str = ""
    since: str = "7d"
    generated_at: pd.Timestamp | None = None

    def _repr_html_(self) -> str:
        return page_html(self, full=False)

    @property
    def headline(self) -> str:
        if self.servers.empty:
            return "No servers."
        worst = self.servers.iloc[0]
        stored = int((self.servers["snapshots"] > 0).sum())
        text = f"{plural(len(self.servers), 'server')}, {stored} with snapshots; {plural(len(self.regressions), 'regression')}"
        if float(worst.get("worse_s") or 0) > 0:
            text += f"; the most time lost on {worst['server']} ({worst['worse_s']:,.1f} s more than at the baseline's pace)"
        return text + "."

    def to_dict(self) -> dict:
        from perfkit.output import to_jsonable

        return to_jsonable({"store": self.store, "since": self.since, "generated_at": self.generated_at,
                            "servers": self.servers, "regressions": self.regressions,
                            "statements": self.statements, "settings": self.settings, "trend": self.trend,
                            "notes": self.notes})


# -- which files ---------------------------------------------------------------------------------
def picked_snapshots(store: SnapshotStore, names: list[str], since: str = "7d") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each server's latest snapshot and its baseline (the one nearest ``since`` before it):
    ``server, role, snapshot_id, captured_at, file``; and the whole listing (with ``file``)."""
    delta = parse_since(since)
    listing = store.list()
    listing = listing[listing["server"].isin(names)].copy()
    listing["file"] = [file_of(store, p) for p in listing["path"]]
    columns = ["server", "role", "snapshot_id", "captured_at", "file"]
    if listing.empty:
        return pd.DataFrame(columns=columns), listing
    latest = listing.loc[listing.groupby("server")["captured_at"].idxmax()]
    at = listing["server"].map(latest.set_index("server")["captured_at"])
    earlier = listing[listing["captured_at"] < at].copy()
    earlier["distance"] = (earlier["captured_at"] - (at[earlier.index] - delta)).abs()
    base = earlier.loc[earlier.groupby("server")["distance"].idxmin()] if len(earlier) else earlier
    picked = pd.concat([latest.assign(role="latest"), base.assign(role="base")], ignore_index=True)
    picked = picked.sort_values(["server", "role"], ascending=[True, False], kind="stable")
    return picked[columns].reset_index(drop=True), listing


def file_of(store: SnapshotStore, shown) -> str:
    """The file (path inside the store's filesystem) of a listed snapshot path."""
    text = str(shown).partition("#")[0]
    if store.local:
        return os.path.abspath(text)
    return store.base + text[len(str(store.root)):]


def connect_duckdb(store: SnapshotStore, files: list[str], con=None, view: str = "snaps", *, union: bool = False):
    """A DuckDB connection with a view ``view`` over ``files`` (with ``server`` and ``date``).

    Columns are matched by name; ``union``: also across files that lack some (written before the
    declared schema), which makes DuckDB open every file's footer first (slower)."""
    import duckdb

    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
    files = sorted(set(files))
    if not files:
        empty = SNAPSHOT_SCHEMA.empty_table().to_pandas()
        empty["server"], empty["date"] = pd.Series(dtype=str), pd.Series(dtype=str)
        con.register(view, empty)
        return con
    if store.local:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        if union:  # a file written before snapshot_id was stored: its key is its name
            source = (f"read_parquet([{listed}], hive_partitioning = true, filename = true, "
                      "hive_types = {'server': VARCHAR, 'date': VARCHAR}, union_by_name = true)")
            key = r"regexp_extract(filename, '([^/]+)\.parquet$', 1)"
            try:
                con.execute(f"CREATE VIEW {view} AS SELECT * EXCLUDE (filename) REPLACE "
                            f"(coalesce(snapshot_id, {key}) AS snapshot_id) FROM {source}")
            except duckdb.BinderException:  # no file has the column
                con.execute(f"CREATE VIEW {view} AS SELECT * EXCLUDE (filename), {key} AS snapshot_id FROM {source}")
        else:
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
                        "hive_types = {'server': VARCHAR, 'date': VARCHAR})")
    else:
        import pyarrow as pa
        import pyarrow.dataset as ds

        schema = SNAPSHOT_SCHEMA.append(pa.field("server", pa.string())).append(pa.field("date", pa.string()))
        dataset = ds.dataset(files, filesystem=store.fs, format="parquet", schema=schema,
                             partitioning=ds.partitioning(pa.schema([("server", pa.string()), ("date", pa.string())]),
                                                          flavor="hive"),
                             partition_base_dir=store.base)
        con.register(view, dataset)
    return con


# -- the queries ---------------------------------------------------------------------------------
CHANGES_SQL = """
WITH a AS (SELECT s.server, s.snapshot_id, s.queryid, s.datname, s.rolname, s.toplevel, s.query, s.calls, s.total_exec_ms, s.mean_exec_ms, s.stats_reset
           FROM snaps s JOIN picked p ON p.server = s.server AND p.snapshot_id = s.snapshot_id
           WHERE p.role = 'latest'),
     b AS (SELECT s.server, s.snapshot_id, s.queryid, s.datname, s.rolname, s.toplevel, s.query, s.calls, s.total_exec_ms, s.mean_exec_ms, s.stats_reset
           FROM snaps s JOIN picked p ON p.server = s.server AND p.snapshot_id = s.snapshot_id
           WHERE p.role = 'base'),
     based AS (SELECT DISTINCT server FROM picked WHERE role = 'base')
SELECT a.server, a.queryid, a.datname, a.rolname, a.query,
       CASE WHEN b.queryid IS NULL THEN 'new'
            WHEN a.calls < b.calls OR a.stats_reset IS DISTINCT FROM b.stats_reset THEN 'reset'
            WHEN a.calls = b.calls THEN 'unchanged' ELSE 'changed' END AS status,
       CASE WHEN b.queryid IS NULL THEN a.calls ELSE a.calls - b.calls END AS calls,
       CASE WHEN b.queryid IS NULL THEN a.total_exec_ms ELSE a.total_exec_ms - b.total_exec_ms END AS total_exec_ms,
       b.mean_exec_ms AS prev_mean_exec_ms
FROM a JOIN based USING (server)
LEFT JOIN b ON b.server = a.server AND b.queryid = a.queryid AND b.datname = a.datname
            AND b.rolname = a.rolname AND b.toplevel IS NOT DISTINCT FROM a.toplevel
"""

# per server: the interval's totals, and the time lost to statements slower per call than before
SERVER_SQL = f"""
SELECT server, count(*) FILTER (WHERE status <> 'unchanged') AS statements_run,
       sum(calls) FILTER (WHERE status IN ('changed', 'new')) AS calls,
       sum(total_exec_ms) FILTER (WHERE status IN ('changed', 'new')) / 1000 AS interval_exec_s,
       coalesce(sum(greatest(total_exec_ms - prev_mean_exec_ms * calls, 0))
                FILTER (WHERE status = 'changed' AND calls >= {REGRESSION_MIN_CALLS}
                        AND query NOT LIKE '/* perfkit */%'), 0) / 1000 AS worse_s
FROM changes GROUP BY server
"""

# the candidates of a regression, by its thresholds (statements.assess.regressions decides): small, to pandas
CANDIDATES_SQL = f"""
SELECT server, queryid, query, status, calls, total_exec_ms, total_exec_ms / calls AS mean_exec_ms, prev_mean_exec_ms
FROM changes
WHERE status = 'changed' AND calls >= {REGRESSION_MIN_CALLS} AND prev_mean_exec_ms > 0
  AND total_exec_ms >= {REGRESSION_WARNING} * prev_mean_exec_ms * calls
  AND total_exec_ms - prev_mean_exec_ms * calls >= {REGRESSION_MIN_ADDED_MS}
"""

# the costliest statements across the fleet in the interval, grouped by normalized text (each
# distinct text normalized once)
STATEMENTS_SQL = f"""
WITH ran AS (SELECT server, queryid, query, calls, total_exec_ms FROM changes
             WHERE status IN ('changed', 'new') AND calls > 0 AND query NOT LIKE '/* perfkit */%'),
     texts AS (SELECT query, {NORMALIZED_SQL} AS normalized FROM (SELECT DISTINCT query FROM ran)),
     by_text AS (SELECT query, sum(calls) AS calls, sum(total_exec_ms) AS ms FROM ran GROUP BY query),
     top AS (SELECT t.normalized, sum(b.calls) AS calls, sum(b.ms) AS total_exec_ms, arg_max(b.query, b.ms) AS query
             FROM by_text b JOIN texts t USING (query) GROUP BY t.normalized ORDER BY total_exec_ms DESC LIMIT ?),
     g AS (SELECT DISTINCT t.normalized, r.server, r.queryid
           FROM ran r JOIN texts t USING (query) WHERE t.normalized IN (SELECT normalized FROM top))
SELECT top.normalized, count(DISTINCT g.server) AS servers, any_value(top.calls) AS calls,
       any_value(top.total_exec_ms) AS total_exec_ms,
       any_value(top.total_exec_ms) / nullif(any_value(top.calls), 0) AS mean_exec_ms,
       string_agg(DISTINCT g.server, ', ' ORDER BY g.server) AS on_servers,
       count(DISTINCT g.queryid) AS queryids, any_value(top.query) AS query
FROM top JOIN g ON g.normalized = top.normalized
GROUP BY top.normalized ORDER BY total_exec_ms DESC
"""

# each server's execution time per interval between consecutive snapshots (the last TREND_WEEKS weeks;
# trend_snaps is over the live files only: a snapshot is in exactly one of them)
TREND_SQL = """
WITH per AS (SELECT server, snapshot_id, any_value(captured_at) AS captured_at,
                    sum(total_exec_ms) AS total_ms, sum(calls) AS calls, any_value(stats_reset) AS stats_reset
             FROM trend_snaps GROUP BY server, snapshot_id),
steps AS (SELECT server, captured_at,
                 total_ms - lag(total_ms) OVER w AS exec_ms, calls - lag(calls) OVER w AS calls,
                 epoch(captured_at - lag(captured_at) OVER w) / 3600 AS hours,
                 stats_reset IS DISTINCT FROM lag(stats_reset) OVER w AS reset
          FROM per WINDOW w AS (PARTITION BY server ORDER BY captured_at))
SELECT server, count(*) AS intervals,
       arg_max(exec_ms, captured_at) / 1000 AS last_exec_s,
       median(exec_ms) / 1000 AS median_exec_s,
       arg_max(exec_ms, captured_at) / nullif(median(exec_ms), 0) AS last_vs_median
FROM steps WHERE exec_ms IS NOT NULL AND NOT reset AND exec_ms >= 0
GROUP BY server ORDER BY server
"""


def fleet_frames(store: SnapshotStore, names: list[str], *, since: str = "7d", top: int = TOP_STATEMENTS,
                 weeks: int = TREND_WEEKS) -> dict[str, pd.DataFrame]:
    """The fleet page's tables from the store, by DuckDB: ``picked``, ``listing``, ``servers``
    (interval totals, ``worse_s``), ``candidates``, ``statements``, ``trend``."""
    picked, listing = picked_snapshots(store, names, since)
    cutoff = (listing["captured_at"].max() - pd.Timedelta(weeks=weeks)) if len(listing) else None
    recent = listing[listing["captured_at"] >= cutoff] if cutoff is not None else listing
    import duckdb

    try:
        return _queries(store, picked, listing, recent, top, union=False)
    except (duckdb.BinderException, duckdb.InvalidInputException):  # a file without some column: an older perfkit's
        return _queries(store, picked, listing, recent, top, union=True)


def _queries(store, picked, listing, recent, top: int, *, union: bool) -> dict[str, pd.DataFrame]:
    con = connect_duckdb(store, list(picked["file"]), union=union)  # the latest and baseline files only
    try:
        connect_duckdb(store, list(recent["file"]), con, "trend_snaps", union=union)
        con.register("picked", picked[["server", "role", "snapshot_id"]])
        con.execute(f"CREATE TEMP TABLE changes AS {CHANGES_SQL}")
        frames = {
            "picked": picked,
            "listing": listing,
            "servers": con.execute(SERVER_SQL).df(),
            "candidates": con.execute(CANDIDATES_SQL).df(),
            "statements": con.execute(STATEMENTS_SQL, [top * 3]).df(),
            "trend": con.execute(TREND_SQL).df(),
        }
    finally:
        con.close()
    return frames


# -- live settings ---------------------------------------------------------------------------------
SETTINGS_SQL = "SELECT name, current_setting(name) AS value FROM pg_settings ORDER BY name"


def live_settings(server: Server, *, connect_timeout: int | None = None) -> tuple[dict | None, str | None]:
    """``pg_settings`` of ``server`` read now (name -> value), or None and why not."""
    from perfkit import db

    engine = None
    try:
        engine = db.connect(server.dsn, connect_timeout=connect_timeout or min(server.connect_timeout, 5),
                            statement_timeout="10s")
        frame = db.query(engine, SETTINGS_SQL)
        return dict(zip(frame["name"], frame["value"], strict=True)), None
    except PerfkitError as err:
        return None, secrets.redact_text(str(err), secrets.passwords_in(server.dsn))
    finally:
        if engine is not None:
            engine.dispose()


def differing_settings(fleet: Fleet, settings: dict[str, dict]) -> pd.DataFrame:
    """For each tag shared by two or more servers read live: the settings whose values differ."""
    rows = []
    for (tag, value), members in sorted(fleet.tagged().items()):
        read = [s.name for s in members if settings.get(s.name) is not None]
        if len(read) < 2:
            continue
        names = sorted(set().union(*(settings[n].keys() for n in read)) - IDENTITY_SETTINGS)
        for name in names:
            values = {n: settings[n].get(name, "(absent)") for n in read}
            if len(set(values.values())) > 1:
                rows.append({"tag": f"{tag}={value}", "setting": name,
                             "values": "; ".join(f"{n}: {v}" for n, v in values.items())})
    return pd.DataFrame(rows, columns=["tag", "setting", "values"])


# -- the page ------------------------------------------------------------------------------------
def build(fleet: Fleet, store: SnapshotStore, *, since: str = "7d", live: bool = True,
          reports: dict[str, dict] | None = None, top: int = TOP_STATEMENTS) -> FleetPage:
    """The fleet page of ``fleet`` over ``store``.

    Parameters
    ----------
    live:
        Read each server's pg_settings now (for "settings that differ within a tag"); a server
        that cannot be reached is skipped with a note.
    reports:
        server -> ``{"href": ..., "status": ..., "findings_by_severity": {...}}`` of its weekly report.
    """
    names = [s.name for s in fleet.servers]
    frames = fleet_frames(store, names, since=since, top=top)
    picked, listing = frames["picked"], frames["listing"]
    notes = []
    found = _regressions_with_server(frames["candidates"])
    settings, unreachable = {}, {}
    if live:
        with ThreadPoolExecutor(max_workers=min(8, len(fleet.servers))) as pool:
            for server, (values, error) in zip(fleet.servers, pool.map(live_settings, fleet.servers), strict=True):
                settings[server.name] = values
                if error:
                    unreachable[server.name] = error
        if unreachable:
            notes.append(f"Settings not compared for {', '.join(sorted(unreachable))}: not reachable now.")
    else:
        notes.append("Settings were not read (no live servers): the settings comparison is skipped.")
    rows = []
    per_server = frames["servers"].set_index("server") if len(frames["servers"]) else pd.DataFrame()
    for server in fleet.servers:
        mine = listing[listing["server"] == server.name]
        base = picked[(picked["server"] == server.name) & (picked["role"] == "base")]
        stats = per_server.loc[server.name] if server.name in per_server.index else None
        sev = found[found["server"] == server.name]["severity"].value_counts() if len(found) else pd.Series(dtype=int)
        report = (reports or {}).get(server.name, {})
        counts = report.get("findings_by_severity") or {}
        if not len(mine):
            status = "no snapshots"
        elif not len(base):
            status = "no baseline yet"
        else:
            status = "ok"
        if live and server.name in unreachable:
            status += "; unreachable now"
        rows.append({
            "server": server.name, "tags": server.tag_text(), "status": status, "snapshots": len(mine),
            "latest": mine["captured_at"].max() if len(mine) else pd.NaT,
            "baseline": base["captured_at"].iloc[0] if len(base) else pd.NaT,
            "worse_s": float(stats["worse_s"]) if stats is not None else 0.0,
            "interval_exec_s": float(stats["interval_exec_s"]) if stats is not None and pd.notna(stats["interval_exec_s"]) else None,
            "regressions_critical": int(sev.get("critical", 0)), "regressions_warning": int(sev.get("warning", 0)),
            "findings_critical": counts.get("critical"), "findings_warning": counts.get("warning"),
            "findings_info": counts.get("info"),
            "report": report.get("status", ""), "href": report.get("href", ""),
            "error": unreachable.get(server.name, "") or report.get("error", "") or "",
        })
    servers = pd.DataFrame(rows)
    servers = servers.sort_values(["worse_s", "regressions_critical", "regressions_warning", "server"],
                                  ascending=[False, False, False, True], kind="stable").reset_index(drop=True)
    statements = frames["statements"]
    if len(statements):
        statements = statements[noise(statements) == ""].head(top).reset_index(drop=True)
        statements["query"] = statements["query"].map(lambda q: short_query(q, 160))
        statements = statements.drop(columns=["normalized"])
    missing = [s.name for s in fleet.servers if s.name not in set(picked["server"])]
    if missing:
        notes.append(f"No snapshots in the store for {', '.join(missing)}.")
    return FleetPage(servers=servers, regressions=found, statements=statements,
                     settings=differing_settings(fleet, settings), trend=frames["trend"], notes=notes,
                     store=str(store.root), since=since, generated_at=pd.Timestamp.now(tz="UTC"))


def _regressions_with_server(candidates: pd.DataFrame) -> pd.DataFrame:
    """statements.assess.regressions per server, the workload's own statements only, worst first."""
    out = []
    for name, group in candidates.groupby("server", sort=True):
        group = group[noise(group) == ""]
        found = regressions(group)
        if len(found):
            out.append(found.assign(server=name))
    if not out:
        return pd.DataFrame(columns=["server", "severity", "subject", "evidence", "benefit_ms", "queryid"])
    frame = pd.concat(out, ignore_index=True)
    frame = frame.sort_values("benefit_ms", ascending=False, kind="stable").reset_index(drop=True)
    return frame[["server", "severity", "subject", "evidence", "benefit_ms", "queryid"]]


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{background:#f4f4f4}code{font-size:12px}.note{color:#555}"""


def _shown_servers(servers: pd.DataFrame) -> pd.DataFrame:
    """The servers table without its link column and without the columns nothing filled (the
    findings and report columns when no per-server report ran)."""
    empty = [c for c in servers.columns
             if c != "server" and servers[c].map(lambda v: v is None or v == "" or (isinstance(v, float) and pd.isna(v))).all()]
    return servers.drop(columns=["href", *empty], errors="ignore")


def _server_table(servers: pd.DataFrame, *, links: bool) -> str:
    shown = _shown_servers(servers)
    table = html_table(shown)
    if not links:
        return table
    for row in servers.itertuples(index=False):  # the report column: a link to the server's report
        if row.href and row.report:
            cell = f'<td style="text-align:left">{html.escape(row.report)}</td>'
            link = f'<td style="text-align:left"><a href="{html.escape(row.href, quote=True)}">{html.escape(row.report)}</a></td>'
            marker = f'<td style="text-align:left">{html.escape(row.server)}</td>'
            start = table.find(marker)
            at = table.find(cell, start)
            if start >= 0 and at >= 0:
                table = table[:at] + link + table[at + len(cell):]
    return table


def page_html(page: FleetPage, *, full: bool = True) -> str:
    """The fleet page as HTML (every value escaped; statements in <code>)."""
    parts = []
    if full:
        parts.append(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>perfkit fleet report</title>"
                     f"<style>{STYLE}</style></head><body class='{NO_MATH}'>")
        when = f"{page.generated_at:%Y-%m-%d %H:%M} UTC" if page.generated_at is not None else ""
        parts.append(f"<h1>Fleet report</h1><p class='note'>{html.escape(when)}; store "
                     f"<code>{html.escape(page.store)}</code>; each server's latest snapshot against the one "
                     f"nearest {html.escape(page.since)} before it.</p>")
    parts.append(f"<p><strong>{html.escape(page.headline)}</strong></p>")
    parts.append("<h2>Servers, the most time lost first</h2><p class='note'><code>worse_s</code>: the seconds the "
                 "interval's statements took beyond their time per call at the baseline.</p>")
    parts.append(_server_table(page.servers, links=full))
    parts.append("<h2>Regressions</h2>")
    parts.append(html_table(page.regressions, limit=50))
    parts.append("<h2>The costliest statements across the fleet</h2><p class='note'>In each server's interval, "
                 "grouped by normalized text (queryids differ between servers).</p>")
    parts.append(html_table(page.statements))
    parts.append("<h2>Settings that differ between servers with the same tag</h2>")
    parts.append(html_table(page.settings, limit=200))
    parts.append(f"<h2>Execution time per interval (last {TREND_WEEKS} weeks)</h2>")
    parts.append(html_table(page.trend))
    if page.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in page.notes) + "</ul>")
    if full:
        parts.append("</body></html>")
    return secrets.redact_text("\n".join(parts))


def write(page: FleetPage, out: str | Path) -> tuple[Path, Path]:
    """``out/fleet.html`` and ``out/fleet.json`` (atomically); their paths."""
    from perfkit.fileio import write_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out / "fleet.html", out / "fleet.json"
    write_atomic(html_path, page_html(page))
    write_atomic(json_path, secrets.redact_text(json.dumps(page.to_dict(), indent=2, default=str)))
    return html_path, json_path


def server_reports(fleet: Fleet, store: SnapshotStore, out: Path, *, store_uri: str | None = None,
                   since: str = "7d", timeout: float | None = 600, say=None) -> dict[str, dict]:
    """The weekly report of each server (one after the other: each runs a notebook kernel), into
    ``out/servers/<name>/``; server -> href (relative to ``out``), status, findings_by_severity, error.

    The kernel gets the store as ``$PERFKIT_STORE`` (``store_uri``: the URI as given, whose query
    may hold an endpoint or a key, so it is never a notebook parameter, which the report would
    show) and the server's fleet name as ``$PERFKIT_SERVER``, so its snapshot lands beside the
    fleet's and its baseline is found among them."""
    from perfkit.report import ReportInterrupted, environment, run_report

    results = {}
    if store.local:
        uri = str(Path(store.root).resolve())
    else:
        uri = store_uri or str(store.root)
    for index, server in enumerate(fleet.servers, 1):
        if say:
            say(f"perfkit: [{index}/{len(fleet.servers)}] weekly report of {server.name}")
        parameters = {"since": since, "loadtest": [], "logs": [], "plans": []}
        if server.slo:
            parameters["slo"] = server.slo
        folder = out / "servers" / server.name
        try:
            with environment(PERFKIT_STORE=uri, PERFKIT_SERVER=server.name):
                result = run_report("weekly", out=folder, parameters=parameters, dsn=server.dsn, force=True,
                                    progress=False, timeout=timeout)
        except ReportInterrupted:
            raise
        except PerfkitError as err:
            results[server.name] = {"status": "failed", "error": secrets.redact_text(str(err)), "href": ""}
            continue
        results[server.name] = {"status": result.status, "error": result.error or "",
                                "href": os.path.relpath(result.html, out),
                                "findings_by_severity": result.summary_data.get("findings_by_severity", {})}
    return results


class Table:
    """A table of the fleet page as a notebook shows it (escaped HTML, SQL in <code>)."""

    def __init__(self, frame: pd.DataFrame, limit: int | None = 50):
        self.frame, self.limit = frame, limit

    def _repr_html_(self) -> str:
        frame = _shown_servers(self.frame) if "server" in self.frame and "href" in self.frame else self.frame
        return secrets.redact_text(html_table(frame, limit=self.limit))

    def __repr__(self) -> str:
        return self.frame.to_string(max_rows=self.limit)


def load(fleet: str | Path = "", *, sample: str | Path = "../data/sample", store: str | Path = "",
         since: str = "7d", live: bool = True) -> FleetPage:
    """The fleet page for a notebook: ``fleet`` (a fleet file; empty: ``$PERFKIT_FLEET``, and
    when that is empty too, the sample fleet in ``<sample>/fleet``, read without connecting)."""
    from perfkit.fleet import load_fleet

    given = str(fleet or os.environ.get("PERFKIT_FLEET", ""))
    if given:
        parsed = load_fleet(given)
        chosen = SnapshotStore(str(store) if store else parsed.store)
    else:
        parsed, chosen = sample_fleet(sample)
        if store:
            chosen = SnapshotStore(str(store))
        live = False
    return build(parsed, chosen, since=since, live=live)


def sample_fleet(sample: str | Path) -> tuple[Fleet, SnapshotStore]:
    """The sample fleet (``<sample>/fleet/perfkit.toml`` over ``<sample>/fleet/store``)."""
    from perfkit.fleet import load_fleet

    folder = Path(sample) / "fleet"
    if not (folder / "perfkit.toml").is_file():
        raise BadInputError("no sample fleet here (perfkit.toml)", path=folder)
    return load_fleet(folder / "perfkit.toml"), SnapshotStore(folder / "store")


__all__ = ["FleetPage", "build", "fleet_frames", "page_html", "sample_fleet", "server_reports", "write"]

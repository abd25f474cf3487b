"""Settings review: work_mem, shared_buffers, effective_cache_size, random_page_cost, autovacuum, max_connections.

Each check weighs pg_settings against the machine's memory and the workload's evidence.
"""

from __future__ import annotations

import ipaddress
import math
import os

from perfkit import db
from perfkit.findings import finding
from perfkit.health.common import number, qualified, share_text, size_text
from perfkit.health.sessions import require_stats_privilege
from perfkit.health.workload import statement_stats

SETTINGS_SQL = """
SELECT name, setting, unit, current_setting(name) AS value, source, pending_restart
FROM pg_settings WHERE name = ANY(:names)
"""

_UNIT_BYTES = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
MB = 1024**2


def _unit_bytes(unit: str | None) -> int:
    if not unit:
        return 1
    digits = "".join(ch for ch in unit if ch.isdigit())
    suffix = unit[len(digits):]
    return int(digits or 1) * _UNIT_BYTES.get(suffix, 1)


def read_settings(conn, names) -> dict[str, dict]:
    """``{name: {"value": "4MB", "number": 4194304.0, "source": ...}}`` (memory in bytes)."""
    frame = db.query(conn, SETTINGS_SQL, {"names": list(names)})
    found = {}
    for row in frame.itertuples(index=False):
        unit = row.unit if isinstance(row.unit, str) else ""
        try:
            amount = float(row.setting) * _unit_bytes(unit) if "B" in unit else float(row.setting)
        except ValueError:
            amount = math.nan
        found[row.name] = {"value": row.value, "number": amount, "source": row.source}
    return found


SERVER_ADDRESS_SQL = "SELECT inet_server_addr()::text AS address"


def machine_memory(conn, memory_bytes: int | None = None) -> tuple[int | None, str]:
    """The server machine's memory in bytes and where that figure comes from.

    SQL cannot see the server's RAM: it comes from ``memory_bytes`` when given, else from
    this machine when the server is local (a Unix socket or a loopback address), else None.
    """
    if memory_bytes:
        return int(memory_bytes), f"{size_text(memory_bytes)} of memory (as given)"
    address = db.scalar(conn, SERVER_ADDRESS_SQL)
    local = address is None
    if address is not None:
        try:
            local = ipaddress.ip_address(str(address).split("/")[0]).is_loopback
        except ValueError:
            local = False
    if local and hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None, "the machine's memory is unknown"
        return int(total), f"{size_text(total)} of memory (this machine's: the server is local)"
    return None, "the machine's memory is unknown (give memory_bytes / --server-memory)"


DATABASE_TEMP_SQL = """
SELECT temp_files, temp_bytes, blks_hit, blks_read,
       extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time())) AS seconds
FROM pg_stat_database WHERE datname = current_database()
"""


def work_mem(
    conn,
    *,
    min_temp_bytes: int = 64 * MB,
    memory_bytes: int | None = None,
    statements_limit: int = 200,
) -> list[dict]:
    """Sorts and hashes spilling to disk (temp files) mean work_mem is too small for them.

    Evidence: temp blocks written per statement in pg_stat_statements, and the database's
    temp files in pg_stat_database. Also warns when ``work_mem x max_connections`` exceeds
    the machine's memory.

    Parameters
    ----------
    min_temp_bytes:
        Temp files written (since statistics reset) that make a finding (default 64 MB).
    memory_bytes:
        The server's memory, when perfkit cannot read it (a remote server).
    """
    settings = read_settings(conn, ["work_mem", "max_connections", "block_size"])
    current = settings["work_mem"]["number"]
    max_connections = int(settings["max_connections"]["number"])
    block_size = int(settings["block_size"]["number"])
    database = db.query(conn, DATABASE_TEMP_SQL).iloc[0]
    statements = statement_stats(conn, limit=statements_limit)
    spills = statements[statements["temp_blks_written"].fillna(0).astype(float) > 0].copy()
    spills["temp_bytes"] = spills["temp_blks_written"].astype(float) * block_size
    spills["per_call"] = spills["temp_bytes"] / spills["calls"].astype(float).clip(lower=1)
    spilled = max(float(spills["temp_bytes"].sum()), float(database["temp_bytes"] or 0))
    memory, memory_words = machine_memory(conn, memory_bytes)
    found = []
    if spilled >= min_temp_bytes and spilled > 0:
        evidence = (
            f"the database wrote {size_text(float(database['temp_bytes'] or 0))} in {number(database['temp_files'])} "
            f"temp files since statistics reset; work_mem is {settings['work_mem']['value']}"
        )
        proposal = current
        if len(spills):
            top = spills.sort_values("temp_bytes", ascending=False).iloc[0]
            evidence += (
                f"; {len(spills)} statement{'s' if len(spills) != 1 else ''} spilled {size_text(spills['temp_bytes'].sum())}, "
                f"the most {size_text(top['temp_bytes'])} ({size_text(top['per_call'])} per call over "
                f"{number(top['calls'])} calls): {' '.join(str(top['query']).split())[:120]}"
            )
            # twice the per-call spill (in-memory sorts need more than the on-disk size), in MB steps
            proposal = max(current, 2 ** math.ceil(math.log2(max(2 * float(top["per_call"]), MB) / MB)) * MB)
        budget_ok = memory is None or proposal * max_connections <= memory / 2
        if proposal > current and budget_ok:
            recommendation = (
                f"Raise work_mem to {size_text(proposal)} so these sorts and hashes stay in memory "
                f"({max_connections} connections x {size_text(proposal)} fits {memory_words})."
                if memory
                else f"Raise work_mem to {size_text(proposal)} for the roles or statements that spill "
                f"(SET LOCAL work_mem inside their transaction), then globally if memory allows."
            )
            sql = f"ALTER SYSTEM SET work_mem = '{int(proposal // MB)}MB';\nSELECT pg_reload_conf();"
        else:
            recommendation = (
                "Raise work_mem only for the statements that spill (SET LOCAL work_mem in their transaction, "
                "or ALTER ROLE for a reporting role): a global raise times max_connections would not fit in memory; "
                "or make them sort less (an index that matches ORDER BY, fewer rows)."
            )
            sql = f"SET LOCAL work_mem = '{int(max(proposal, 2 * current) // MB)}MB';  -- inside the spilling statement's transaction"
        found.append(finding("setting_work_mem", "warning", "work_mem", evidence, recommendation, sql))
    if memory and current * max_connections > memory:
        found.append(
            finding(
                "setting_work_mem",
                "warning",
                "work_mem",
                f"work_mem {settings['work_mem']['value']} x max_connections {max_connections} = "
                f"{size_text(current * max_connections)}, more than {memory_words}; one sort per connection "
                "could exhaust memory (a statement can use several)",
                "Lower work_mem globally and raise it per role or statement where the evidence shows spills.",
            )
        )
    return found


def shared_buffers(
    conn,
    *,
    memory_bytes: int | None = None,
    min_share: float = 0.15,
    max_share: float = 0.4,
) -> list[dict]:
    """shared_buffers against the machine's memory (25 % is the usual starting point).

    Parameters
    ----------
    memory_bytes:
        The server's memory, when perfkit cannot read it (a remote server).
    min_share, max_share:
        Below ``min_share`` of memory is a warning; above ``max_share`` an info (the OS
        cache also needs room).
    """
    settings = read_settings(conn, ["shared_buffers"])
    current = settings["shared_buffers"]["number"]
    memory, memory_words = machine_memory(conn, memory_bytes)
    database = db.query(conn, DATABASE_TEMP_SQL).iloc[0]
    hits = int(database["blks_hit"]), int(database["blks_read"])
    hit_words = (
        f"; database cache hit ratio {share_text(hits[0] / sum(hits))}" if sum(hits) else ""
    )
    if memory is None:
        if current != 128 * MB:
            return []
        return [
            finding(
                "setting_shared_buffers",
                "info",
                "shared_buffers",
                f"shared_buffers is still the default 128 MB and {memory_words}{hit_words}",
                "Set it to about 25 % of the server's memory (it needs a restart).",
            )
        ]
    share = current / memory
    if share < min_share:
        target = 2 ** round(math.log2(max(memory * 0.25, 128 * MB) / MB)) * MB
        return [
            finding(
                "setting_shared_buffers",
                "warning",
                "shared_buffers",
                f"shared_buffers {settings['shared_buffers']['value']} is {share_text(share)} of {memory_words}, "
                f"below {share_text(min_share)}{hit_words}",
                f"Raise it to about 25 % of memory ({size_text(target)}); it takes effect after a restart.",
                f"ALTER SYSTEM SET shared_buffers = '{int(target // MB)}MB';  -- then restart the server",
            )
        ]
    if share > max_share:
        return [
            finding(
                "setting_shared_buffers",
                "info",
                "shared_buffers",
                f"shared_buffers {settings['shared_buffers']['value']} is {share_text(share)} of {memory_words}, "
                f"above {share_text(max_share)}{hit_words}",
                "Leave room for the OS page cache, work_mem and connections: 25-40 % of memory is usual.",
            )
        ]
    return []


def effective_cache_size(conn, *, memory_bytes: int | None = None, min_share: float = 0.5) -> list[dict]:
    """effective_cache_size: the planner's guess of the cache, usually 50-75 % of memory.

    Too low makes index scans look expensive, so the planner picks sequential scans.

    Parameters
    ----------
    memory_bytes:
        The server's memory, when perfkit cannot read it.
    min_share:
        Below this share of memory (default 0.5) is reported.
    """
    settings = read_settings(conn, ["effective_cache_size", "shared_buffers"])
    current = settings["effective_cache_size"]["number"]
    buffers = settings["shared_buffers"]["number"]
    memory, memory_words = machine_memory(conn, memory_bytes)
    if current < buffers:
        reason = f"below shared_buffers {settings['shared_buffers']['value']}, which alone is cache"
    elif memory and current / memory < min_share:
        reason = f"{share_text(current / memory)} of {memory_words}, below {share_text(min_share)}"
    else:
        return []
    target = max(buffers, 0.75 * memory) if memory else 3 * buffers
    target_mb = int(target // MB)
    return [
        finding(
            "setting_effective_cache_size",
            "warning" if current < buffers else "info",
            "effective_cache_size",
            f"effective_cache_size {settings['effective_cache_size']['value']} is {reason}",
            f"Set it to about 75 % of memory ({size_text(target)}): it allocates nothing, it only tells the "
            "planner how much data is likely cached.",
            f"ALTER SYSTEM SET effective_cache_size = '{target_mb}MB';\nSELECT pg_reload_conf();",
        )
    ]


def random_page_cost(conn, *, min_hit_ratio: float = 0.99, min_blocks: int = 10_000, max_cost: float = 2.0) -> list[dict]:
    """random_page_cost at the spinning-disk default (4) while reads come from memory.

    Parameters
    ----------
    min_hit_ratio:
        The database's cache hit ratio from which random reads are as cheap as sequential.
    min_blocks:
        Block accesses needed before the hit ratio counts as evidence.
    max_cost:
        Values above this are reported (default 2.0).
    """
    settings = read_settings(conn, ["random_page_cost", "seq_page_cost"])
    cost = settings["random_page_cost"]["number"]
    if cost <= max_cost:
        return []
    database = db.query(conn, DATABASE_TEMP_SQL).iloc[0]
    hit, read = int(database["blks_hit"]), int(database["blks_read"])
    if hit + read < min_blocks or hit / (hit + read) < min_hit_ratio:
        return []
    return [
        finding(
            "setting_random_page_cost",
            "info",
            "random_page_cost",
            f"random_page_cost is {cost:g} (seq_page_cost {settings['seq_page_cost']['number']:g}) while "
            f"{share_text(hit / (hit + read))} of {number(hit + read)} block reads hit the cache: the planner "
            "overprices index scans",
            "Lower it to 1.1 (SSD or data that fits in memory) and compare the plans of the top statements.",
            "ALTER SYSTEM SET random_page_cost = 1.1;\nSELECT pg_reload_conf();",
        )
    ]


LARGE_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table, greatest(c.reltuples, 0)::bigint AS rows,
       (SELECT o.option_value::float8 FROM pg_options_to_table(c.reloptions) o
        WHERE o.option_name = :option) AS table_setting
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.reltuples >= :min_rows
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY c.reltuples DESC
LIMIT :limit
"""


def autovacuum(
    conn,
    *,
    large_table_rows: int = 1_000_000,
    max_vacuum_scale_factor: float = 0.05,
    max_analyze_scale_factor: float = 0.05,
    limit: int = 20,
) -> list[dict]:
    """autovacuum on, and its scale factors small enough for the large tables.

    With the default scale factor 0.2 a 100-million-row table waits for 20 million dead rows
    before autovacuum starts; large tables want a per-table factor of 0.01-0.05.

    Parameters
    ----------
    large_table_rows:
        Tables with at least this many rows are weighed (default 1,000,000).
    max_vacuum_scale_factor, max_analyze_scale_factor:
        Effective factors above these on a large table are reported.
    limit:
        At most this many tables are named.
    """
    settings = read_settings(
        conn, ["autovacuum", "autovacuum_vacuum_scale_factor", "autovacuum_analyze_scale_factor", "track_counts"]
    )
    found = []
    if settings["autovacuum"]["value"] == "off" or settings["track_counts"]["value"] == "off":
        found.append(
            finding(
                "setting_autovacuum",
                "critical",
                "autovacuum",
                f"autovacuum is {settings['autovacuum']['value']} and track_counts {settings['track_counts']['value']}: "
                "nothing removes dead rows or refreshes statistics, and only emergency vacuums prevent "
                "transaction-ID wraparound",
                "Turn autovacuum (and track_counts) on; tune it per table instead of disabling it.",
                "ALTER SYSTEM SET autovacuum = on;\nALTER SYSTEM SET track_counts = on;\nSELECT pg_reload_conf();",
            )
        )
    for kind, option, maximum in (
        ("vacuum", "autovacuum_vacuum_scale_factor", max_vacuum_scale_factor),
        ("analyze", "autovacuum_analyze_scale_factor", max_analyze_scale_factor),
    ):
        default = settings[option]["number"]
        tables = db.query(conn, LARGE_TABLES_SQL, {"option": option, "min_rows": large_table_rows, "limit": limit})
        tables["effective"] = tables["table_setting"].fillna(default).astype(float)
        tables = tables[tables["effective"] > maximum]
        if tables.empty:
            continue
        named = ", ".join(
            f"{row.table} ({number(row.rows)} rows: waits for {number(row.rows * row.effective)} changed rows)"
            for row in tables.head(5).itertuples(index=False)
        )
        target = min(maximum, 0.02 if kind == "vacuum" else 0.01)
        found.append(
            finding(
                f"setting_{option}",
                "info",
                option,
                f"{option} is {default:g}, so on {len(tables)} table{'s' if len(tables) != 1 else ''} of "
                f"{number(large_table_rows)}+ rows auto{kind} waits long: {named}",
                f"Set a per-table {option} of {target:g} on the large tables (or lower the global one).",
                "\n".join(
                    f"ALTER TABLE {qualified(row.schema, row.table)} SET ({option} = {target:g});"
                    for row in tables.itertuples(index=False)
                ),
            )
        )
    return found


CONNECTION_STATES_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state = 'active') AS active
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""


def max_connections(
    conn,
    *,
    pooler_connections: int = 100,
    min_idle: int = 20,
    max_idle_share: float = 0.5,
    high_max_connections: int = 500,
) -> list[dict]:
    """Many connections (or many idle ones) mean a pooler; a huge max_connections costs memory.

    Parameters
    ----------
    pooler_connections:
        Open client connections from which a pooler is recommended (default 100).
    min_idle, max_idle_share:
        Or at least ``min_idle`` idle connections making over ``max_idle_share`` of all.
    high_max_connections:
        A max_connections at or above this is reported.
    """
    require_stats_privilege(conn, "the connection review")
    limit = int(read_settings(conn, ["max_connections"])["max_connections"]["number"])
    counts = db.query(conn, CONNECTION_STATES_SQL).iloc[0]
    total, idle, active = int(counts["total"]), int(counts["idle"]), int(counts["active"])
    many = total >= pooler_connections
    idle_heavy = idle >= min_idle and total and idle / total > max_idle_share
    found = []
    if many or idle_heavy:
        found.append(
            finding(
                "setting_max_connections",
                "warning",
                "max_connections",
                f"{number(total)} client connections open ({number(active)} active, {number(idle)} idle) of "
                f"max_connections {number(limit)}",
                "Put a transaction-mode pooler (PgBouncer) in front: a few dozen server connections can serve "
                "all of them, each costing the server memory and snapshot work while idle.",
            )
        )
    if limit >= high_max_connections:
        found.append(
            finding(
                "setting_max_connections",
                "info",
                "max_connections",
                f"max_connections is {number(limit)}: every allowed connection reserves shared memory and "
                f"could run work_mem-sized sorts; {number(total)} are open now",
                "Lower it toward what a pooler needs and let the pooler queue the rest.",
            )
        )
    return found

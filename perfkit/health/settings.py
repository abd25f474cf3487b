"""Settings review: work_mem, shared_buffers, effective_cache_size, random_page_cost, autovacuum, max_connections.

Each check weighs pg_settings against the machine's memory and the workload's evidence.
"""

from __future__ import annotations

import math
from dataclasses import replace

from perfkit import sql
from perfkit.findings import finding
from perfkit.health.common import number, share_text, size_text
from perfkit.health.context import DATABASE_SQL, SETTINGS_SQL, Check, memory_of, settings_table  # noqa: F401

MB = 1024**2


def machine_memory(conn, memory_bytes: int | None = None) -> tuple[int | None, str]:
    """The server machine's memory in bytes and where that figure comes from (see context.memory_of)."""
    from perfkit.health.context import Context

    ctx = conn if isinstance(conn, Context) else Context(conn)
    return ctx.memory(memory_bytes)


def _base(ctx, memory_bytes) -> dict:
    memory, words = ctx.memory(memory_bytes)
    return {"settings": ctx.settings(), "database": [dict(ctx.database())],
            "memory": [{"bytes": memory, "words": words}]}


def read_work_mem(ctx, *, memory_bytes: int | None = None) -> dict:
    return {**_base(ctx, memory_bytes), "statements": ctx.statements()}


def read_settings(ctx) -> dict:
    return {"settings": ctx.settings(), "database": [dict(ctx.database())]}


def read_settings_and_memory(ctx, *, memory_bytes: int | None = None) -> dict:
    return _base(ctx, memory_bytes)


def _memory(evidence) -> tuple[int | None, str]:
    row = evidence["memory"].iloc[0]
    value = row["bytes"]
    return (None if value is None or value != value else int(value)), str(row["words"])


def _settings(evidence) -> dict:
    value = evidence["settings"]
    if hasattr(value, "columns") and "name" in getattr(value, "columns", []):
        return settings_table(value)
    return value


def judge_work_mem(evidence, *, min_temp_bytes: int = 64 * MB) -> list[dict]:
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
    settings = _settings(evidence)
    current = settings["work_mem"]["number"]
    max_connections = int(settings["max_connections"]["number"])
    block_size = int(settings["block_size"]["number"])
    database = evidence["database"].iloc[0]
    statements = evidence["statements"]
    if statements.empty:
        statements = statements.assign(temp_blks_written=[], calls=[])
    spills = statements[statements["temp_blks_written"].fillna(0).astype(float) > 0].copy()
    spills["temp_bytes"] = spills["temp_blks_written"].astype(float) * block_size
    spills["per_call"] = spills["temp_bytes"] / spills["calls"].astype(float).clip(lower=1)
    spilled = max(float(spills["temp_bytes"].sum()), float(database["temp_bytes"] or 0))
    memory, memory_words = _memory(evidence)
    found = []
    if spilled >= min_temp_bytes and spilled > 0:
        text = (
            f"the database wrote {size_text(float(database['temp_bytes'] or 0))} in {number(database['temp_files'])} "
            f"temp files since statistics reset; work_mem is {settings['work_mem']['value']}"
        )
        proposal = current
        if len(spills):
            top = spills.sort_values("temp_bytes", ascending=False).iloc[0]
            text += (
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
            fix = sql.alter_system(work_mem=f"{int(proposal // MB)}MB")
        else:
            recommendation = (
                "Raise work_mem only for the statements that spill (SET LOCAL work_mem in their transaction, "
                "or ALTER ROLE for a reporting role): a global raise times max_connections would not fit in memory; "
                "or make them sort less (an index that matches ORDER BY, fewer rows)."
            )
            fix = replace(sql.set_local(work_mem=f"{int(max(proposal, 2 * current) // MB)}MB"),
                          comment="as SET LOCAL, inside the spilling statement's transaction")
        found.append(finding("setting_work_mem", "warning", "work_mem", text, recommendation, fix=fix))
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


def judge_shared_buffers(
    evidence,
    *,
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
    settings = _settings(evidence)
    current = settings["shared_buffers"]["number"]
    memory, memory_words = _memory(evidence)
    database = evidence["database"].iloc[0]
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
                fix=sql.alter_system(restart=True, shared_buffers=f"{int(target // MB)}MB"),
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


def judge_effective_cache_size(evidence, *, min_share: float = 0.5) -> list[dict]:
    """effective_cache_size: the planner's guess of the cache, usually 50-75 % of memory.

    Too low makes index scans look expensive, so the planner picks sequential scans.

    Parameters
    ----------
    memory_bytes:
        The server's memory, when perfkit cannot read it.
    min_share:
        Below this share of memory (default 0.5) is reported.
    """
    settings = _settings(evidence)
    current = settings["effective_cache_size"]["number"]
    buffers = settings["shared_buffers"]["number"]
    memory, memory_words = _memory(evidence)
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
            fix=sql.alter_system(effective_cache_size=f"{target_mb}MB"),
        )
    ]


def judge_random_page_cost(evidence, *, min_hit_ratio: float = 0.99, min_blocks: int = 10_000, max_cost: float = 2.0) -> list[dict]:
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
    settings = _settings(evidence)
    cost = settings["random_page_cost"]["number"]
    if cost <= max_cost:
        return []
    database = evidence["database"].iloc[0]
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
            fix=sql.alter_system(random_page_cost="1.1"),
        )
    ]


def read_autovacuum(ctx) -> dict:
    return {"settings": ctx.settings(), "tables": ctx.tables()}


def judge_autovacuum(
    evidence,
    *,
    large_table_rows: int = 1_000_000,
    min_table_bytes: int = 1024**3,
    max_vacuum_scale_factor: float = 0.05,
    max_analyze_scale_factor: float = 0.05,
    limit: int = 20,
) -> list[dict]:
    """autovacuum on, and its scale factors small enough for the large tables.

    With the default scale factor 0.2 a 100-million-row table waits for 20 million dead rows
    before autovacuum starts; large tables want a per-table factor of 0.01-0.05.

    Parameters
    ----------
    large_table_rows, min_table_bytes:
        Tables with at least this many rows (default 1,000,000) or this size (default 1 GiB, a
        table of wide rows) are weighed.
    max_vacuum_scale_factor, max_analyze_scale_factor:
        Effective factors above these on a large table are reported.
    limit:
        At most this many tables are named.
    """
    settings = _settings(evidence)
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
                fix=sql.alter_system(autovacuum="on", track_counts="on"),
            )
        )
    all_tables = evidence["tables"]
    for kind, option, maximum in (
        ("vacuum", "autovacuum_vacuum_scale_factor", max_vacuum_scale_factor),
        ("analyze", "autovacuum_analyze_scale_factor", max_analyze_scale_factor),
    ):
        default = settings[option]["number"]
        if all_tables.empty:
            continue
        tables = all_tables[(all_tables["reltuples"].astype(float) >= large_table_rows)
                            | (all_tables["size_bytes"].astype(float) >= min_table_bytes)]
        tables = tables.assign(rows=tables["reltuples"].astype(float).round().astype("int64"),
                               effective=tables[f"{kind}_scale_factor"].astype(float))
        tables = tables.sort_values("reltuples", ascending=False).head(limit)
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
                f"{number(large_table_rows)}+ rows or {size_text(min_table_bytes)}+ auto{kind} waits long: {named}",
                f"Set a per-table {option} of {target:g} on the large tables (or lower the global one).",
                fix=_alter_tables(tables, option, target),
            )
        )
    return found


AUTOVACUUM_COLUMNS = ["schema", "table", "rows", "size_bytes", "autovacuum", "vacuum_scale_factor", "vacuum_threshold",
                      "vacuum_waits_for", "n_dead_tup", "analyze_scale_factor", "analyze_waits_for",
                      "n_mod_since_analyze", "per_table", "since_vacuum_s"]


def autovacuum_table(tables, settings, *, min_table_bytes: int = 10 * 1024**2):
    """Every table of ``min_table_bytes`` (default 10 MB) or more with its effective autovacuum
    settings: how many dead rows its autovacuum waits for (threshold + scale factor × rows), how
    many changed rows its autoanalyze waits for, what it has now, and whether it has per-table
    settings. Largest first."""
    import pandas as pd

    if tables is None or tables.empty:
        return pd.DataFrame(columns=AUTOVACUUM_COLUMNS)
    big = tables[tables["size_bytes"].astype(float) >= min_table_bytes].copy()
    rows = big["reltuples"].astype(float)
    big["rows"] = rows.round().astype("int64")
    big["vacuum_waits_for"] = (big["vacuum_threshold"].astype(float)
                               + big["vacuum_scale_factor"].astype(float) * rows).round().astype("int64")
    big["analyze_waits_for"] = (big["analyze_threshold"].astype(float)
                                + big["analyze_scale_factor"].astype(float) * rows).round().astype("int64")
    vacuum_default = settings["autovacuum_vacuum_scale_factor"]["number"]
    analyze_default = settings["autovacuum_analyze_scale_factor"]["number"]
    big["per_table"] = ((big["vacuum_scale_factor"].astype(float) != vacuum_default)
                        | (big["analyze_scale_factor"].astype(float) != analyze_default)
                        | (big["autovacuum"].astype(str).str.lower().isin(["false", "off"])))
    big = big.sort_values("size_bytes", ascending=False)
    return big[AUTOVACUUM_COLUMNS].reset_index(drop=True)


def read_connections(ctx) -> dict:
    ctx.require_stats_privilege("the connection review")
    return {"settings": ctx.settings(), "activity": ctx.activity()}


def judge_max_connections(
    evidence,
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
    limit = int(_settings(evidence)["max_connections"]["number"])
    activity = evidence["activity"]
    clients = activity[activity["backend_type"] == "client backend"] if len(activity) else activity
    total = int(len(clients))
    idle = int((clients["state"] == "idle").sum()) if total else 0
    active = int((clients["state"] == "active").sum()) if total else 0
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


def _alter_tables(tables, option: str, target: float) -> sql.Fix:
    fixes = [sql.alter_table(row.schema, row.table, **{option: f"{target:g}"}) for row in tables.itertuples(index=False)]
    first, *rest = fixes
    return replace(first, then=tuple(rest))


work_mem = Check("work_mem", read_work_mem, judge_work_mem, ("setting_work_mem",), (SETTINGS_SQL, DATABASE_SQL))
shared_buffers = Check("shared_buffers", read_settings_and_memory, judge_shared_buffers, ("setting_shared_buffers",),
                       (SETTINGS_SQL, DATABASE_SQL))
effective_cache_size = Check("effective_cache_size", read_settings_and_memory, judge_effective_cache_size,
                             ("setting_effective_cache_size",), (SETTINGS_SQL, DATABASE_SQL))
random_page_cost = Check("random_page_cost", read_settings, judge_random_page_cost,
                         ("setting_random_page_cost",), (SETTINGS_SQL, DATABASE_SQL))
autovacuum = Check("autovacuum", read_autovacuum, judge_autovacuum,
                   ("setting_autovacuum", "setting_autovacuum_vacuum_scale_factor", "setting_autovacuum_analyze_scale_factor"),
                   (SETTINGS_SQL,))
max_connections = Check("max_connections", read_connections, judge_max_connections, ("setting_max_connections",),
                        (SETTINGS_SQL,))

CHECKS = (work_mem, shared_buffers, effective_cache_size, random_page_cost, autovacuum, max_connections)

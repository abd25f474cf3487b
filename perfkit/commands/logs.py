"""``perfkit logs FILE...``: the slowest and most frequent statements, plan findings and N+1.

Reads csvlog, jsonlog or stderr logs (plain or compressed); findings go under ``findings`` in --json.
"""

from __future__ import annotations

import argparse

from perfkit.commands import add_fail_on_option, add_json_option, gate_code, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="slowest statements, plans, N+1 per request from PostgreSQL logs",
        description=(
            "Read PostgreSQL server logs (csvlog, jsonlog, or stderr with its log_line_prefix; "
            "gzip, bzip2 and xz too) and print the slowest and most frequent statements, the "
            "findings of their auto_explain plans, slow statements and N+1 patterns per request."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="log files or glob patterns ('log/*.csv')")
    parser.add_argument("--prefix", default=None, help="the server's log_line_prefix, for stderr logs "
                        "(default: try the common ones, such as '%%m [%%p] ')")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip unreadable lines and say how many")
    parser.add_argument("--format", default=None, choices=("stderr", "csvlog", "jsonlog", "syslog"),
                        help="what the files are (default: told from their first lines)")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="processes reading the files (default: every core)")
    parser.add_argument("--engine", default="auto", choices=("auto", "duckdb", "python"),
                        help="what reads the files: DuckDB for plain csvlog/jsonlog of 1 MiB or more, Python for the "
                        "rest, plain stderr a block of lines at a time (auto, the default); duckdb: DuckDB for "
                        "every csvlog/jsonlog it can read; python: the line-by-line readers for every file")
    parser.add_argument("--timezone", default=None, help="the server's log_timezone, when timestamps carry an "
                        "ambiguous zone such as CST")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="incremental run: read only what was appended since the run that wrote FILE, keep this "
                        "run's aggregates beside it (FILE.runs/) and update it")
    parser.add_argument("--merge-days", type=float, default=None, metavar="DAYS",
                        help="with --state: show the stored runs of the last DAYS days merged, not this run alone "
                        "(a state file given as FILE: its runs of the last DAYS days, default 7)")
    parser.add_argument("-n", "--top", type=positive_int, default=10, help="rows per table (default: 10)")
    parser.add_argument("--slow-ms", type=float, default=200.0, help="a statement this slow is a finding (default: 200)")
    parser.add_argument("--min-repeats", type=positive_int, default=3,
                        help="same statement this often in one request is N+1 (default: 3)")
    parser.add_argument("--max-statements", type=positive_int, default=10,
                        help="more statements than this in one request is a finding (default: 10)")
    parser.add_argument("--gap-ms", type=float, default=1000.0,
                        help="idle time that ends a request on a connection without request comments (default: 1000)")
    parser.add_argument("--all", action="store_true", dest="include_noise",
                        help="also list one-off DDL, driver probes and admin calls in the statement tables")
    add_json_option(parser)
    add_fail_on_option(parser)
    parser.set_defaults(func=run)


_EVENT_TABLES = (
    ("statement_types", "Statement types", ["type", "calls", "total_ms"]),
    ("by_database", "Per database", ["calls", "total_ms", "database"]),
    ("by_user", "Per user", ["calls", "total_ms", "user"]),
    ("by_application", "Per application", ["calls", "total_ms", "application"]),
    ("by_host", "Per client host", ["calls", "total_ms", "host"]),
    ("per_hour", "Statements per hour", ["hour", "calls", "total_ms"]),
    ("errors", "Errors", ["count", "level", "sqlstate", "message"]),
    ("cancelled", "Cancelled statements", ["count", "reason"]),
    ("temp_files", "Temporary files", ["count", "total_bytes", "max_bytes", "normalized"]),
    ("checkpoints", "Checkpoints", ["started", "timed", "requested", "wal", "write_s", "sync_s",
                                    "mean_distance_kb", "median_interval_s"]),
    ("autovacuum", "Autovacuum and autoanalyze", ["runs", "elapsed_s", "tuples_removed", "max_dead_found",
                                                               "max_not_removable", "action", "table"]),
    ("lock_waits", "Lock waits", ["waits", "total_ms", "max_ms", "mode", "normalized"]),
    ("deadlocks", "Deadlocks", ["ts", "statements"]),
    ("sessions", "Sessions", ["sessions", "mean_s", "dimension", "value"]),
    ("connections", "Connections", ["connections", "dimension", "value"]),
    ("connections_per_hour", "Connections per hour", ["hour", "count"]),
    ("errors_per_hour", "Errors per hour", ["hour", "count"]),
    ("tenants", "Cost per tenant", ["db_ms", "share", "calls", "mean_ms", "statements", "from", "tenant"]),
)


def run(args: argparse.Namespace) -> int:
    import perfkit.logs
    from perfkit.output import emit_json, print_findings, print_table, say, wrapped

    assessment = perfkit.logs.assess(
        args.files, prefix=args.prefix, skip_bad_lines=args.skip_bad_lines, timezone=args.timezone, n=args.top,
        slow_ms=args.slow_ms, min_repeats=args.min_repeats, max_statements=args.max_statements, gap_ms=args.gap_ms,
        include_noise=args.include_noise, format=args.format, jobs=args.jobs, engine=args.engine,
        state=args.state,
        merge_days=args.merge_days,
    )
    if args.json:
        emit_json(assessment.to_json())
        return gate_code(assessment.findings, args.fail_on)
    facts, tables = assessment.facts, assessment.tables
    for note in assessment.notes:
        say(wrapped(note, "perfkit: "))
    for name, prefix in facts["prefixes"].items():
        say(wrapped(f"{name}: {facts['formats'].get(name, 'stderr')}, read with", "perfkit: "))
        say(f"perfkit:   log_line_prefix {prefix!r}")  # whole, to copy
    by_duckdb = len(facts.get("engines") or {})
    say(f"read {facts['entries']:,} entries ({facts['executions']:,} statement executions) "
        f"from {len(facts['files'])} file(s)" + (f", {by_duckdb} of them by DuckDB" if by_duckdb else ""))
    slowest = tables["slowest"]
    print_table(slowest.assign(plan=slowest["has_plan"].map(lambda has: "yes" if has else "")),
                ["duration_ms", "calls", "ts", "normalized", "user", "database", "plan"],
                title="Slowest statements (one row per statement shape, its slowest run)", headers={"normalized": "statement"}, fit="normalized")
    print()
    print_table(tables["most_frequent"], ["calls", "total_ms", "mean_ms", "max_ms", "normalized"],
                title="Most frequent statements", headers={"normalized": "statement"}, fit="normalized")
    print()
    print_table(tables["most_time"], ["total_ms", "calls", "mean_ms", "max_ms", "normalized"],
                title="Most time-consuming statements", headers={"normalized": "statement"}, fit="normalized")
    print()
    for name, title, columns in _EVENT_TABLES:
        table = tables.get(name)
        if table is not None and len(table):
            print_table(table.head(args.top), columns, title=title, fit=columns[-1] if columns[-1] in (
                "message", "normalized", "statements", "value", "table", "reason") else None)
            print()
    print_findings(assessment.findings, title="Findings")
    return gate_code(assessment.findings, args.fail_on)

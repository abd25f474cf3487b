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
    parser.add_argument("--timezone", default=None, help="the server's log_timezone, when timestamps carry an "
                        "ambiguous zone such as CST")
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


def run(args: argparse.Namespace) -> int:
    import perfkit.logs
    from perfkit.output import emit_json, print_findings, print_table, say, wrapped

    assessment = perfkit.logs.assess(
        args.files, prefix=args.prefix, skip_bad_lines=args.skip_bad_lines, timezone=args.timezone, n=args.top,
        slow_ms=args.slow_ms, min_repeats=args.min_repeats, max_statements=args.max_statements, gap_ms=args.gap_ms,
        include_noise=args.include_noise,
    )
    if args.json:
        emit_json(assessment.to_json())
        return gate_code(assessment.findings, args.fail_on)
    facts, tables = assessment.facts, assessment.tables
    for note in assessment.notes:
        say(wrapped(note, "perfkit: "))
    say(f"read {facts['entries']:,} entries ({facts['executions']:,} statement executions) "
        f"from {len(facts['files'])} file(s)")
    slowest = tables["slowest"]
    print_table(slowest.assign(plan=slowest["has_plan"].map(lambda has: "yes" if has else "")),
                ["duration_ms", "ts", "normalized", "user", "database", "plan"],
                title="Slowest statements", headers={"normalized": "statement"}, fit="normalized")
    print()
    print_table(tables["most_frequent"], ["calls", "total_ms", "mean_ms", "max_ms", "normalized"],
                title="Most frequent statements", headers={"normalized": "statement"}, fit="normalized")
    print()
    print_table(tables["most_time"], ["total_ms", "calls", "mean_ms", "max_ms", "normalized"],
                title="Most time-consuming statements", headers={"normalized": "statement"}, fit="normalized")
    print()
    print_findings(assessment.findings, title="Findings")
    return gate_code(assessment.findings, args.fail_on)

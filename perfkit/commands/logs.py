"""``perfkit logs FILE...``: the slowest and most frequent statements, plan findings and N+1.

Reads csvlog, jsonlog or stderr logs (plain or compressed); findings go under ``findings`` in --json.
"""

from __future__ import annotations

import argparse

from perfkit.commands import add_json_option, positive_int


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
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    import perfkit.logs
    from perfkit import nplusone
    from perfkit.errors import BadInputError
    from perfkit.findings import count_by_severity, findings_frame
    from perfkit.output import emit_json, print_table, say

    if args.min_repeats < 2:
        raise BadInputError(f"--min-repeats must be 2 or more, not {args.min_repeats}")
    logs = perfkit.logs.read(args.files, prefix=args.prefix, skip_bad_lines=args.skip_bad_lines, timezone=args.timezone)
    report = logs.attrs
    slowest = perfkit.logs.slowest(logs, n=args.top)
    frequent = perfkit.logs.most_frequent(logs, n=args.top)
    plans = perfkit.logs.plan_findings(logs, n=args.top)
    parts = [
        nplusone.from_logs(logs, min_repeats=args.min_repeats, max_statements=args.max_statements, gap_ms=args.gap_ms),
        perfkit.logs.slow_statements(logs, slow_ms=args.slow_ms),
        plans,
    ]
    findings = findings_frame(pd.concat([p for p in parts if not p.empty], ignore_index=True)) if any(
        not p.empty for p in parts
    ) else findings_frame([])
    notes = []
    if report["skipped_lines"]:
        first = report["bad_records"][0]
        notes.append(
            f"skipped {report['skipped_lines']:,} unreadable line(s); the first: {first['file']}, "
            f"line {first['line']}: {first['reason']}"
        )
    if plans.attrs.get("skipped"):
        notes.append(plans.attrs["skipped"])
    notes.extend(f"plan not read: {error}" for error in plans.attrs.get("errors", []))
    executions = perfkit.logs.executions(logs)
    if executions.empty:
        notes.append(
            "no statement executions in these logs: set log_min_duration_statement (0 logs every "
            "statement) or log_statement = 'all' on the server"
        )

    if args.json:
        emit_json(
            {
                "files": report["files"],
                "formats": report["formats"],
                "prefixes": report["prefixes"],
                "entries": len(logs),
                "executions": len(executions),
                "skipped_lines": report["skipped_lines"],
                "bad_records": report["bad_records"],
                "notes": notes,
                "slowest": slowest.drop(columns=["plan"]).assign(has_plan=slowest["plan"] != ""),
                "most_frequent": frequent,
                "findings": findings,
                "severity_counts": count_by_severity(findings),
            }
        )
    else:
        for note in notes:
            say(f"perfkit: {note}")
        say(f"read {len(logs):,} entries ({len(executions):,} statement executions) from {len(report['files'])} file(s)")
        print_table(slowest.assign(plan=slowest["plan"].map(lambda p: "yes" if p else "")),
                    ["duration_ms", "ts", "normalized", "user", "database", "plan"],
                    title="Slowest statements", headers={"normalized": "statement"})
        print()
        print_table(frequent, ["calls", "total_ms", "mean_ms", "max_ms", "normalized"],
                    title="Most frequent statements", headers={"normalized": "statement"})
        print()
        print_table(findings, ["severity", "kind", "subject", "evidence", "recommendation"],
                    title="Findings", max_width=80)
    return 0

"""``perfkit loadtest``: summarize load-test result files, judge them against SLOs, gate CI.

Exit codes: 0 fine, 1 with --ci when a critical SLO is breached, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perfkit.commands import add_json_option
from perfkit.errors import BadInputError
from perfkit.loadtest_formats import names as format_names

# what the reader modules declare, read from their sources: `perfkit --help` imports no pandas
FORMAT_NAMES = format_names()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "loadtest",
        help="summarize load-test results (k6, Locust, Artillery, ab, wrk, JMeter, pgbench, Gatling, "
        "hey, vegeta)",
        description="Per endpoint and ALL: requests, failures, error rate, throughput, mean, "
        "p50/p90/p95/p99, max, and the SLO verdict of each metric.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="result files")
    parser.add_argument("--latest", metavar="DIR", help="read the newest file in DIR")
    parser.add_argument("--format", default=None, help=f"the file format (default: detected): {', '.join(FORMAT_NAMES)}")
    parser.add_argument("--slo", metavar="FILE", help="SLO targets in TOML (default: DESIGN.md's table)")
    parser.add_argument("--ci", action="store_true", help="exit 1 when any critical SLO is breached")
    parser.add_argument("--html", metavar="OUT", help="write a standalone HTML page")
    parser.add_argument("--skip-bad-lines", action="store_true",
                        help="skip truncated or malformed lines (reported) instead of failing")
    parser.add_argument("--summary-only", action="store_true",
                        help="summarize without loading the samples (files larger than memory: k6 "
                        "NDJSON and JMeter CSV are streamed through DuckDB; exact counts and "
                        "percentiles; no sample-based flags or charts)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _analyse(path: Path, args, targets) -> dict:
    import pandas as pd

    from perfkit import loadtests
    from perfkit.findings import findings_frame

    options = {"skip_bad_lines": True} if args.skip_bad_lines else {}
    if getattr(args, "summary_only", False):
        options = {"summary_only": True}
    try:
        run_ = loadtests.read(path, args.format, **options)
    except BadInputError as err:
        if options and "does not take that option" in str(err):
            run_ = loadtests.read(path, args.format)
        else:
            raise
    verdicts = loadtests.slo(run_, targets)
    findings = findings_frame(pd.concat([loadtests.slo_findings(verdicts, run_.summary),
                                         loadtests.flags(run_)], ignore_index=True))
    return {"run": run_, "verdicts": verdicts, "findings": findings}


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from perfkit import loadtests
    from perfkit.output import emit_json, format_table

    paths = [Path(f) for f in args.files]
    if args.latest:
        paths.append(loadtests.latest(args.latest))
    if not paths:
        raise BadInputError("no result file: give FILE... or --latest DIR")
    targets = loadtests.load_targets(args.slo) if args.slo else None
    results = [_analyse(path, args, targets) for path in paths]
    critical = any((r["verdicts"]["verdict"] == "critical").any() for r in results)
    if args.html:
        from perfkit.loadtests.html import page

        Path(args.html).write_text(page(results))
    if args.json:
        emit_json({
            "results": [
                {"source": r["run"].source, "tool": r["run"].tool, "format": r["run"].format,
                 "percentiles_from": r["run"].percentiles_from, "notes": r["run"].notes,
                 "skipped_lines": r["run"].skipped_lines, "summary": r["run"].summary,
                 "slo": r["verdicts"]}
                for r in results
            ],
            "findings": pd.concat([r["findings"].assign(source=r["run"].source) for r in results],
                                  ignore_index=True),
            "critical": critical,
        })
    else:
        for r in results:
            run_ = r["run"]
            print(f"{run_.source}: {run_.tool} ({run_.format}), percentiles from {run_.percentiles_from}")
            table = run_.summary.copy()
            table["error_rate"] = table["error_rate"] * 100
            wide = r["verdicts"].pivot_table(index="endpoint", columns="metric", values="verdict",
                                             aggfunc="first")
            for metric in ("p95_ms", "p99_ms", "error_rate", "rps"):
                if metric in wide.columns:
                    table[f"slo_{metric.replace('_ms', '')}"] = table["endpoint"].map(wide[metric]).fillna("")
            print(format_table(table, headers={"error_rate": "error_%"}))
            for note in run_.notes:
                print(f"  note: {note}")
            flagged = r["findings"]
            if len(flagged):
                print(format_table(flagged, ["severity", "kind", "subject", "evidence"], max_width=90))
            print()
        if args.html:
            print(f"HTML report: {args.html}")
    return 1 if (args.ci and critical) else 0

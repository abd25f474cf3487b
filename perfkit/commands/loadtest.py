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
    parser.add_argument("--slo", metavar="FILE", help="SLO targets in TOML (default: p95 < 500 ms, p99 < 1 s, errors < 1 %%, > 100 req/s)")
    parser.add_argument("--ci", action="store_true", help="exit 1 when a critical SLO is breached (by the latest run; "
                        "with --each, by any file)")
    parser.add_argument("--each", action="store_true",
                        help="judge every file against the SLO (unrelated runs); by default the files are runs of one "
                        "test in order: the latest is judged, the earlier ones are its baseline")
    parser.add_argument("--html", metavar="OUT", help="write a standalone HTML page")
    parser.add_argument("--skip-bad-lines", action="store_true",
                        help="skip truncated or malformed lines (reported) instead of failing")
    parser.add_argument("--summary-only", action="store_true",
                        help="summarize without loading the samples (files larger than memory: k6 "
                        "NDJSON and JMeter CSV are streamed through DuckDB; exact counts and "
                        "percentiles; no sample-based flags or charts)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _per_file(assessment) -> list[dict]:
    """The assessment's runs, each with its verdicts, findings and facts (the rows whose source it is)."""
    slo_table, findings = assessment.tables["slo"], assessment.findings
    by_source = findings["source"] if "source" in findings else None
    out = []
    for run_, facts in zip(assessment.data["runs"], assessment.facts["per_file"], strict=True):
        mine = findings[by_source == facts["source"]] if by_source is not None else findings.iloc[:0]
        out.append({"run": run_, "facts": facts, "findings": mine.reset_index(drop=True),
                    "verdicts": slo_table[slo_table["source"] == facts["source"]].reset_index(drop=True)})
    return out


def _slo_words(verdicts):
    """endpoint -> ``pass``, or the worst verdict and the metrics that have it (``warning: p95, p99``)."""
    words = {}
    for endpoint, mine in verdicts.groupby("endpoint", sort=False):
        for worst in ("critical", "warning"):
            metrics = mine.loc[mine["verdict"] == worst, "metric"].str.replace("_ms", "", regex=False).tolist()
            if metrics:
                words[endpoint] = f"{worst}: {', '.join(metrics)}"
                break
        else:
            words[endpoint] = "pass" if (mine["verdict"] == "pass").any() else "n/a"
    return words


def _write_html(out: str, text: str) -> None:
    """Write the HTML page to ``out``: through a temporary file and a rename for a file, straight
    into a device or a pipe (``/dev/stdout``); a folder, a missing folder or a full disk is a
    one-line error."""
    import os
    import stat

    from perfkit.fileio import write_atomic

    path = Path(out)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise BadInputError(f"--html: cannot write it ({err.strerror or err})", path=path) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise BadInputError("--html: is a folder: give the HTML file's name (--html DIR/report.html)", path=path)
    if mode is None and not path.parent.is_dir():
        raise BadInputError(f"--html: no such folder {str(path.parent)!r}: create it first", path=path)
    try:
        if mode is not None and not stat.S_ISREG(mode):  # never rename over a device (/dev/full)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            write_atomic(path, text)
    except OSError as err:
        raise BadInputError(f"--html: cannot write it ({err.strerror or err}); nothing was written",
                            path=path) from None


def run(args: argparse.Namespace) -> int:
    from perfkit import loadtests
    from perfkit.output import emit_json, format_findings, format_table, wrapped

    paths = [Path(f) for f in args.files]
    if args.latest:
        paths.append(loadtests.latest(args.latest))
    if not paths:
        raise BadInputError("no result file: give FILE... or --latest DIR")
    assessment = loadtests.assess(paths, slo=args.slo, format=args.format, skip_bad_lines=args.skip_bad_lines,
                                  judge="each" if args.each else "latest",
                                  summary_only=getattr(args, "summary_only", False))
    results = _per_file(assessment)
    critical = assessment.facts["critical"]
    if args.html:
        from perfkit.loadtests.html import page

        _write_html(args.html, page(results))
    if args.json:
        emit_json({
            **assessment.to_json(),
            "results": [
                {"source": r["run"].source, "tool": r["run"].tool, "format": r["run"].format,
                 "percentiles_from": r["run"].percentiles_from, "notes": r["run"].notes,
                 "skipped_lines": r["run"].skipped_lines, "summary": r["run"].summary,
                 "slo": r["verdicts"].drop(columns=["source"])}
                for r in results
            ],
            "critical": critical,
        })
    else:
        for r in results:
            run_ = r["run"]
            print(wrapped(f"{run_.source}: {run_.tool} ({run_.format}), percentiles from {run_.percentiles_from}"))
            table = run_.summary.copy()
            table["slo"] = table["endpoint"].map(_slo_words(r["verdicts"])).fillna("")
            columns = ["endpoint", "requests", "failures", "error_rate", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms",
                       "slo"]
            print(format_table(table, [c for c in columns if c in table], max_width=40, fit="endpoint",
                               headers={"error_rate": "errors", "requests": "reqs", "failures": "fail"}))
            for note in run_.notes:
                print(wrapped(note, "  note: "))
            flagged = r["findings"]
            if len(flagged):
                print(format_findings(flagged))
            print()
        comparison = assessment.data.get("comparison")
        if comparison is not None:
            compared = assessment.facts["compared"]
            print(f"{compared['run']} against {compared['baseline']}:")
            print(format_table(comparison.table, ["endpoint", "requests_a", "requests_b", "p95_a", "p95_b",
                                                  "p95_change", "p95_diff_low", "p95_diff_high"]))
            if len(comparison.findings):
                print(format_findings(comparison.findings))
            print()
        if args.html:
            print(f"HTML report: {args.html}")
    return 1 if (args.ci and critical) else 0

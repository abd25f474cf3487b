"""``perfkit loadtest``: summarize load-test result files, judge them against SLOs, gate CI.

Exit codes: 0 fine, 1 with --ci when a critical SLO is breached, 2 on bad input.
``--format markdown`` prints the tables for a pull request or $GITHUB_STEP_SUMMARY; ``--junit FILE``
writes one JUnit test case per endpoint and SLO metric.
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
    parser.add_argument("--latest", metavar="DIR", help="read the newest load-test result in DIR (files of a known "
                        "format only: never perfkit's own HTML or JSON)")
    parser.add_argument("--format", default=None, metavar="FORMAT",
                        help=f"the file format (default: detected): {', '.join(FORMAT_NAMES)}; or the output's: "
                        "markdown (GitHub-flavoured tables), text (default), json")
    parser.add_argument("--input-format", default=None, metavar="FORMAT",
                        help="the file format, when --format names the output's")
    parser.add_argument("--slo", metavar="FILE", help="SLO targets in TOML (default: p95 < 500 ms, p99 < 1 s, errors < 1 %%, > 100 req/s)")
    parser.add_argument("--env", metavar="NAME", help="judge by the SLO file's [env.NAME] targets (staging, production...)")
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
    parser.add_argument("--dsn", default=None, metavar="DSN",
                        help="the app's database: database time per route of the latest run, from the stored "
                        "snapshots that bracket its window (or the two --run takes)")
    parser.add_argument("--run", default=None, metavar="COMMAND",
                        help="with --dsn: snapshot, run COMMAND (the load test, e.g. \"k6 run --out json=r.json s.js\"), "
                        "snapshot again, then read FILE")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="snapshot store (default: $PERFKIT_STORE or data/snapshots)")
    parser.add_argument("--server", default=None, metavar="NAME", help="server name in the store (default: host-port-dbname)")
    parser.add_argument("--junit", metavar="FILE", default=None,
                        help="write a JUnit XML report to FILE: one test case per endpoint and SLO metric of the "
                        "judged run(s), failed when it breaches its critical target (what --ci gates on)")
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


def _engine(args):
    from perfkit import db

    return db.connect(db.resolve_dsn(args.dsn))


def _run_between_snapshots(args):
    """Snapshot, run the load test command, snapshot: the two snapshots (both saved in the store)."""
    import shlex
    import subprocess
    import sys

    from perfkit import statements
    from perfkit.store import SnapshotStore

    try:
        command = shlex.split(args.run)
    except ValueError as err:
        raise BadInputError(f"--run: cannot read the command ({err})") from None
    if not command:
        raise BadInputError("--run: the command is empty")
    engine = _engine(args)
    store = SnapshotStore(args.store)
    try:
        before = statements.snapshot(engine, server=args.server, dsn=args.dsn)
        store.save(before)
        from perfkit.secrets import redact_text

        print(f"perfkit: running {redact_text(args.run)}", file=sys.stderr, flush=True)  # a DSN in it: masked
        try:
            finished = subprocess.run(command, check=False)
        except FileNotFoundError:
            raise BadInputError(f"--run: no such command {command[0]!r}") from None
        if finished.returncode:
            print(f"perfkit: {command[0]} exited with {finished.returncode}; reading its results all the same",
                  file=sys.stderr)
        after = statements.snapshot(engine, server=args.server, dsn=args.dsn)
        store.save(after)
    finally:
        engine.dispose()
    return before, after


def _db_time_from_store(args, assessment) -> None:
    """Database time per route from the stored snapshots around the latest run's window."""
    from perfkit import db, loadtests
    from perfkit.store import SnapshotStore

    run_ = assessment.data["runs"][-1]
    span = loadtests.window(run_)
    if span is None:
        raise BadInputError("the run's file has no timestamps, so its window in the store is unknown: "
                            "use --run \"COMMAND\" to take the snapshots around it", path=run_.source)
    server = args.server
    if server is None:
        engine = _engine(args)
        try:
            server = db.server_id(engine, args.dsn)
        finally:
            engine.dispose()
    before, after = loadtests.bracketing(SnapshotStore(args.store), *span, server=server)
    loadtests.with_db_time(assessment, before, after, how="the stored snapshots around the run")


def run(args: argparse.Namespace) -> int:
    from perfkit import loadtests
    from perfkit.output import emit_json, format_findings, format_table, wrapped

    paths = [Path(f) for f in args.files]
    if getattr(args, "run", None) and not getattr(args, "dsn", None):
        raise BadInputError("--run needs --dsn DSN: the snapshots around the command are taken there")
    if getattr(args, "run", None) and not paths and not args.latest:  # checked before a minutes-long test runs
        raise BadInputError("--run needs FILE... or --latest DIR: where the command writes its results")
    if args.env and not args.slo:
        raise BadInputError("--env needs --slo FILE: the environments are tables of the SLO file")
    if args.input_format and args.format:
        raise BadInputError("give the file format once: --format or --input-format")
    taken = _run_between_snapshots(args) if getattr(args, "run", None) else None
    if args.latest:
        paths.append(loadtests.latest(args.latest))
    if not paths:
        raise BadInputError("no result file: give FILE... or --latest DIR")
    assessment = loadtests.assess(paths, slo=args.slo, env=args.env, format=args.input_format or args.format,
                                  skip_bad_lines=args.skip_bad_lines,
                                  judge="each" if args.each else "latest",
                                  summary_only=getattr(args, "summary_only", False))
    if taken is not None:
        loadtests.with_db_time(assessment, *taken, how="taken around --run")
    elif getattr(args, "dsn", None):
        _db_time_from_store(args, assessment)
    results = _per_file(assessment)
    critical = assessment.facts["critical"]
    if args.html:
        from perfkit.loadtests.html import page

        _write_html(args.html, page(results, assessment=assessment))
    if args.junit:
        from perfkit import junit

        junit.write(args.junit, junit.loadtest_cases(assessment.tables["slo"]))
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
        routes = assessment.tables.get("routes")
        if routes is not None:
            print(f"Database time per route ({assessment.facts['db_time']['snapshots']}):")
            shown = routes  # db_share is a fraction: the table shows it as a percentage
            print(format_table(shown, ["endpoint", "requests", "mean_ms", "p95_ms", "db_ms_per_request",
                                       "statements_per_request", "db_share", "attributed_by"], max_width=40, fit="endpoint",
                               headers={"requests": "reqs", "db_ms_per_request": "db_ms/req",
                                        "statements_per_request": "stmts/req", "db_share": "db_%",
                                        "attributed_by": "by"}))
            print()
        for note in assessment.notes:
            print(wrapped(note, "note: "))
        if args.html:
            print(f"HTML report: {args.html}")
    return 1 if (args.ci and critical) else 0

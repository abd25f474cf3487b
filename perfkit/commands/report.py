"""``perfkit report``: run a notebook with papermill into reports/YYYY-MM-DD/ (notebook, HTML, summary.json).

``perfkit report weekly --dsn DSN`` is the scheduled report; any notebook runs the same way with ``-p``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from perfkit.commands import add_json_option

# DESIGN.md's exit code for a report that failed part-way (its partial report written)
FAILED_PART_WAY = 4
LIBPQ_TARGET_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE", "PGPORT", "PGUSER")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="run a notebook (weekly, or any) into a dated report folder", description=__doc__)
    parser.add_argument("notebook", metavar="NOTEBOOK|weekly|fleet",
                        help="weekly, fleet (the fleet page: --fleet FILE), a shipped notebook's name (e.g. 03-loadtest; "
                             "`perfkit notebooks DIR` copies them) or a path to an .ipynb")
    parser.add_argument("--dsn", default=None,
                        help="the database (default: $PERFKIT_DSN, then the libpq PG* variables); "
                             "it reaches the notebook through PERFKIT_DSN and is only ever shown redacted")
    parser.add_argument("--sample", action="store_true", help="run on the sample data shipped with perfkit, no database")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a notebook parameter (repeatable); VALUE is read as JSON when it parses, else as text")
    parser.add_argument("--loadtest", action="append", default=[], metavar="PATH", help="a load-test result file (repeatable; the last is compared with the first)")
    parser.add_argument("--logs", action="append", default=[], metavar="PATH", help="a PostgreSQL log file or glob pattern (repeatable)")
    parser.add_argument("--plan", action="append", default=[], metavar="PATH",
                        help="a saved plan, EXPLAIN JSON or text (repeatable; default with a database: explain its costliest statements)")
    parser.add_argument("--slo", default=None, metavar="FILE", help="a TOML file of SLO targets (default: p95 < 500 ms, p99 < 1 s, errors < 1 %%, > 100 req/s)")
    parser.add_argument("--env", default=None, metavar="NAME",
                        help="judge load tests by the SLO file's [env.NAME] targets (staging, production...)")
    parser.add_argument("--store", default=None, metavar="DIR", help="snapshot store (default: $PERFKIT_STORE, else data/snapshots under $PERFKIT_HOME or here)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="reports folder (default: reports/ under $PERFKIT_HOME, else under the working folder)")
    parser.add_argument("--force", action="store_true", help="overwrite today's report instead of adding a -2 suffix")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS", help="longest a cell may run (default 1800)")
    parser.add_argument("--fleet", nargs="?", const="perfkit.toml", default=None, metavar="FILE",
                        help="for `report fleet`: the fleet file (default perfkit.toml; docs/README-fleet.md)")
    parser.add_argument("--per-server", action="store_true",
                        help="for `report fleet`: also run each server's weekly report (one notebook kernel per server)")
    parser.add_argument("--since", default="7d", metavar="AGE", help="for `report fleet`: the baseline's age (default 7d)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def parse_value(text: str):
    """A -p value: JSON when it parses (numbers, true/false, null, lists), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def absolute_if_exists(value):
    """A value naming an existing file or folder (relative to here) as an absolute path; else unchanged."""
    if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _files(paths: list[str], what: str) -> list[str]:
    from perfkit.errors import BadInputError

    resolved = []
    for text in paths:
        path = Path(text)
        if not path.is_file():
            raise BadInputError(f"{what} file not found", path=text)
        resolved.append(str(path.resolve()))
    return resolved


def _log_files(paths: list[str]) -> list[str]:
    """The log files of ``--logs`` (files or glob patterns, as ``perfkit logs`` takes them), absolute."""
    from perfkit.logs.sources import expand

    return [str(path.resolve()) for path in expand(paths)] if paths else []


def build_parameters(args) -> tuple[dict, str | None]:
    """The notebook parameters and the DSN from the options (paths made absolute: the kernel runs in notebooks/)."""
    from perfkit.errors import BadInputError

    parameters = {key: absolute_if_exists(parse_value(value)) for key, value in args.parameter}
    dsn = args.dsn or os.environ.get("PERFKIT_DSN") or None
    if dsn is None and not args.sample and any(os.environ.get(v) for v in LIBPQ_TARGET_VARIABLES):
        dsn = "application_name=perfkit"  # libpq fills in the rest from the PG* variables
    if args.sample and (args.dsn or "dsn" in parameters):
        raise BadInputError("--sample runs without a database: drop --dsn")
    if args.sample:
        dsn = None
    weekly = Path(args.notebook).stem == "weekly"
    if weekly and not dsn and not args.sample and "dsn" not in parameters:
        raise BadInputError("the weekly report needs a database: --dsn DSN (or PERFKIT_DSN), "
                            "or --sample for the bundled sample data")
    if args.loadtest or (weekly and not args.sample):
        parameters["loadtest"] = _files(args.loadtest, "load-test")
    if args.logs or (weekly and not args.sample):
        parameters["logs"] = _log_files(args.logs)
    if args.plan or (weekly and not args.sample):
        parameters["plans"] = _files(args.plan, "plan")
    if args.slo:
        parameters["slo"] = _files([args.slo], "SLO")[0]
    if getattr(args, "env", None):
        slo_file = parameters.get("slo")
        if not slo_file:
            raise BadInputError("--env needs --slo FILE: the environments are tables of the SLO file")
        from perfkit.loadtests.slo import load_targets

        load_targets(slo_file, env=args.env)  # an unknown environment fails here, in one line
    if args.store:
        parameters["store"] = str(Path(args.store).resolve())
    return parameters, dsn


def run(args) -> int:
    """0 when the report ran through; 4 when it failed part-way or was stopped by a signal
    (the partial report is written either way)."""
    from perfkit.output import emit_json, say
    from perfkit.paths import reports_dir
    from perfkit.report import ReportInterrupted, run_report

    if args.notebook == "fleet":
        return run_fleet(args)
    parameters, dsn = build_parameters(args)
    args.out = args.out or str(reports_dir())
    try:
        result = run_report(args.notebook, out=args.out, parameters=parameters, dsn=dsn, force=args.force,
                            timeout=args.timeout if args.timeout > 0 else None, slo_env=getattr(args, "env", None))
    except ReportInterrupted as stopped:
        result = stopped.result
    if args.json:
        emit_json(result.summary_data)
    else:
        counts = result.summary_data.get("findings_by_severity", {})
        say(f"perfkit: report {result.status}"
            + (f" ({result.error})" if result.error else "")
            + "; findings: " + ", ".join(f"{n} {k}" for k, n in counts.items())
            + f"; index: {Path(args.out) / 'index.html'}")
        print(result.folder)
    return 0 if result.ok else FAILED_PART_WAY


def run_fleet(args) -> int:
    """``perfkit report fleet``: the fleet page (and with --per-server each server's weekly report)."""
    from perfkit import fleetreport
    from perfkit.errors import BadInputError
    from perfkit.fleet import load_fleet
    from perfkit.output import emit_json, say
    from perfkit.store import SnapshotStore, parse_since

    if args.dsn or args.sample:
        raise BadInputError("report fleet takes its servers from --fleet FILE: drop --dsn and --sample")
    parse_since(args.since)
    fleet = load_fleet(args.fleet)
    for warning in fleet.warnings:
        say(f"perfkit: warning: {warning}")
    store = SnapshotStore(args.store or fleet.store)
    out = Path(args.out)
    reports = {}
    if args.per_server:
        reports = fleetreport.server_reports(fleet, store, out, store_uri=args.store or fleet.store, since=args.since,
                                             timeout=args.timeout if args.timeout > 0 else None, say=say)
    say(f"perfkit: fleet page of {len(fleet.servers)} servers from {store.root}")
    page = fleetreport.build(fleet, store, since=args.since, reports=reports)
    html_path, json_path = fleetreport.write(page, out)
    if args.json:
        emit_json({**page.to_dict(), "html": str(html_path), "json": str(json_path)})
    else:
        say(f"perfkit: {page.headline}")
        print(html_path)
    failed = [name for name, r in reports.items() if r.get("status") != "ok"]
    return FAILED_PART_WAY if failed else 0

"""``perfkit budgets``: the SLO file's query budgets per route (from the server log) and its
expected indexes (from the generic plans), as a CI gate."""

from __future__ import annotations

import argparse

from perfkit.commands import add_dsn_option, add_json_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "budgets", help="check the SLO file's query budgets per route and its expected indexes (a CI gate)",
        description="Per route, from the server log's requests (grouped by request comments): statements per "
        "request, database ms per request and repeats of one statement (N+1) against [budgets.routes.\"PATTERN\"]; "
        "with --dsn, each [budgets.indexes] expectation against the generic plan of every statement it covers.",
    )
    parser.add_argument("--slo", required=True, metavar="FILE", help="the SLO file (TOML) with a [budgets] table")
    parser.add_argument("--logs", nargs="+", default=[], metavar="FILE",
                        help="server log files or globs (statements with request comments)")
    parser.add_argument("--prefix", default=None, help="the server's log_line_prefix, for stderr logs")
    parser.add_argument("--ci", action="store_true", help="exit 1 when a budget is broken or an expected index unused")
    parser.add_argument("--junit", metavar="FILE", default=None,
                        help="write a JUnit XML report: one test case per route limit and per expected index")
    add_dsn_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perfkit import budgets
    from perfkit.commands import engine_from_args
    from perfkit.output import emit_json, format_table, print_findings, wrapped

    declared = budgets.load_budgets(args.slo)
    logs = None
    if args.logs:
        import perfkit.logs

        logs = perfkit.logs.read(args.logs, prefix=args.prefix)
    engine = engine_from_args(args) if (args.dsn and declared.indexes) else None
    try:
        assessment = budgets.assess(declared, logs=logs, engine=engine)
    finally:
        if engine is not None:
            engine.dispose()
    broken = len(assessment.findings) > 0
    if args.junit:
        from perfkit import junit

        junit.write(args.junit, junit.budget_cases(assessment))
    if args.json:
        emit_json(assessment.to_json())
    else:
        routes = assessment.tables.get("routes")
        if routes is not None and len(routes):
            print("Route budgets (per request, from the server log):")
            print(format_table(routes, ["route", "requests", "statements_p95", "max_statements", "db_ms_p95",
                                        "max_db_ms", "repeats_max", "max_repeats", "verdict"], max_width=40,
                               fit="verdict", headers={"requests": "reqs", "statements_p95": "stmts",
                                                       "max_statements": "max_st", "db_ms_p95": "db_ms",
                                                       "max_db_ms": "max_ms", "repeats_max": "rep",
                                                       "max_repeats": "max_rep"}))
            print(wrapped("(stmts and db_ms: the 95th percentile of the route's requests; rep: the most runs of one "
                          "statement in a request; max_*: the budgets)"))
        indexes = assessment.tables.get("indexes")
        if indexes is not None and len(indexes):
            print("Expected indexes (generic plans):")
            print(format_table(indexes, ["pattern", "expected_index", "queryid", "verdict"], max_width=40,
                               fit="pattern"))
        if broken:
            print_findings(assessment.findings, ["severity", "kind", "subject", "evidence", "recommendation"])
        for note in assessment.notes:
            print(wrapped(note, "note: "))
        print(f"{len(assessment.findings)} budget{'s' if len(assessment.findings) != 1 else ''} broken"
              if broken else "every budget holds")
    return 1 if (args.ci and broken) else 0

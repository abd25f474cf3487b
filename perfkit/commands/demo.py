"""``perfkit demo``: the whole investigation loop on a throwaway database, from slow endpoint to verified fix.

Builds a multi-tenant shop with planted problems, load-tests its API, reports, applies the fixes, measures again.
"""

from __future__ import annotations

import os
from pathlib import Path

from perfkit.commands import add_json_option, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the whole investigation loop on a throwaway database", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the shop's row counts (default 1.0: 300,000 orders, about 250,000 invoices)")
    parser.add_argument("--users", type=positive_int, default=10, help="Locust users per load test (default 10)")
    parser.add_argument("--duration", type=positive_int, default=30, metavar="SECONDS",
                        help="seconds of load per load test (default 30, at most 600)")
    parser.add_argument("--top", type=positive_int, default=3, help="index recommendations to apply (default 3)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where the report folders go (default: reports/ under $PERFKIT_HOME, else here)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the sandbox running and print its DSN (stop it with `perfkit sandbox stop`)")
    parser.add_argument("--dsn", default=None,
                        help="use this scratch database instead of a sandbox (refused when it holds tables, unless --force)")
    parser.add_argument("--force", action="store_true", help="with --dsn: use the database even though it holds tables")
    parser.add_argument("--sample-data", nargs="?", const="data/sample", default=None, metavar="DIR",
                        help="copy the run's real outputs to DIR (default data/sample/)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from perfkit.demo import DemoOptions, run_demo
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json
    from perfkit.paths import reports_dir

    if not 0 < args.scale <= 10:
        raise BadInputError(f"--scale must be above 0 and at most 10, not {args.scale}")
    if args.duration > 600:
        raise BadInputError(f"--duration is at most 600 seconds, not {args.duration}")
    if args.force and not args.dsn:
        raise BadInputError("--force only applies with --dsn")
    if args.keep and args.dsn:
        raise BadInputError("--keep only applies to the sandbox; with --dsn the database is yours and stays")
    options = DemoOptions(
        scale=args.scale, users=args.users, duration_s=args.duration, top=args.top, dsn=args.dsn,
        force=args.force, keep=args.keep, out=Path(args.out or reports_dir()),
        sample_dest=Path(args.sample_data) if args.sample_data else None,
    )
    result = run_demo(options)
    if args.json:
        emit_json(result.as_json())
        return 0
    print_result(result)
    return 0


def print_result(result) -> None:
    """What a person reads at the end of the demo (stdout)."""
    import pandas as pd

    from perfkit.output import print_table

    if not result.findings.empty:
        order = {"critical": 0, "warning": 1, "info": 2}
        found = result.findings.assign(_rank=result.findings["severity"].map(order).fillna(3))
        found = found.sort_values("_rank", kind="stable").drop_duplicates(["kind", "subject"])
        if "endpoint" in found:  # a plan's node says more next to its endpoint
            where = found["endpoint"].fillna("").astype(str)
            found["subject"] = (where + ": ").where(where != "", "") + found["subject"].astype(str)
        print_table(found.head(15), ["source", "severity", "kind", "subject"],
                    title=f"what perfkit found before the fixes ({len(result.findings)} findings; the first 15, most severe first)",
                    max_width=60, fit="subject")
        print()
    if not result.p95.empty:
        print_table(result.p95, ["endpoint", "p95_before_ms", "p95_after_ms", "p95_change", "requests_before", "requests_after"],
                    title="p95 latency per endpoint, before and after the fixes (Locust, ms)",
                    headers={"p95_change": "change"})
        print()
    if not getattr(result, "routes", pd.DataFrame()).empty:
        print_table(result.routes, ["endpoint", "db_ms_per_request_before", "db_ms_per_request_after",
                                    "statements_per_request_before", "statements_per_request_after"],
                    title="database time per request of each route, before and after (pg_stat_statements over each run)",
                    headers={"db_ms_per_request_before": "db_ms/req before", "db_ms_per_request_after": "after",
                             "statements_per_request_before": "stmts/req before",
                             "statements_per_request_after": "after"})
        print()
    if not result.fixes.empty:
        from perfkit.output import wrapped, wrapped_sql

        print("fixes applied through perfkit verify (from the report's recommendations):")
        for fix in result.fixes.to_dict(orient="records"):
            said = fix.get("verified") or fix.get("error") or ""
            print(wrapped(f"{fix.get('status', '')} in {float(fix.get('seconds') or 0):.2f} s: {said}", "  ", indent="    "))
            print("\n".join("    " + line for line in wrapped_sql(str(fix.get("sql", "")), width=96).splitlines()))
        print()
    if not result.statement_changes.empty:
        print_table(result.statement_changes.head(8), ["mean_ms_before", "mean_ms_after", "calls_before", "calls_after", "query"],
                    title="statements behind the endpoints, mean time before and after (pg_stat_statements)", max_width=70,
                    fit="query")
        print()
    if result.skipped:
        print("skipped steps:")
        for step, reason in result.skipped.items():
            print(f"  {step}: {reason}")
        print()
    for name, path in result.reports.items():
        print(f"{name}: {path}")
    if result.chart:
        print(f"chart: {result.chart}")
    if result.sample_files:
        root = Path(os.path.commonpath([str(p) for p in result.sample_files]))
        print(f"sample data: {len(result.sample_files)} files in {root}")
    timings = pd.DataFrame({"step": list(result.timings), "seconds": list(result.timings.values())})
    timings.loc[len(timings)] = ["total", timings["seconds"].sum()]
    print()
    print_table(timings, title="wall time per step (s)")
    if result.dsn:
        print(f"\nthe database is still running: {result.dsn}\nstop it with `perfkit sandbox stop`")

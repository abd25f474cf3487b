"""``perfkit verify``: a real before/after run of index proposals on a scratch or staging database.

Rendering only: :func:`perfkit.verify.verify` measures; this prints each statement's mean and p95
before and after (with the bootstrap interval of the p95 change), the build time and the size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perfkit.commands import add_json_option, positive_int


def register(subparsers) -> None:
    """Add ``perfkit verify`` to the command line."""
    parser = subparsers.add_parser(
        "verify",
        help="measure index proposals before and after on a scratch database (creates, then drops, the index)",
        description="For each proposal: run its statements N times with representative parameters (pg_stats' most "
        "common values), CREATE INDEX CONCURRENTLY, run them again, print mean and p95 before and after, the "
        "build time and the size, and drop the index (unless --keep). It writes: it refuses without "
        "--allow-writes, refuses a standby, and refuses a primary with replicas unless --force. Interrupted, "
        "it drops the index before it exits.",
    )
    parser.add_argument("--dsn", default=None, help="the scratch or staging database (default: $PERFKIT_DSN, then PG*)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--from-report", type=Path, metavar="DIR",
                      help="verify the index recommendations of a report folder (writes DIR/verify.json)")
    what.add_argument("--sql", action="append", metavar="'CREATE INDEX ...'", help="an index to verify (repeatable)")
    parser.add_argument("--statement", action="append", default=[], metavar="SQL",
                        help="a statement to measure (repeatable; default: the costliest pg_stat_statements entries "
                        "using the index's leading column)")
    parser.add_argument("--runs", type=positive_int, default=20, help="timed runs per statement, before and after (20)")
    parser.add_argument("--keep", action="store_true", help="keep the index after the run")
    parser.add_argument("--allow-writes", action="store_true", help="required: verify creates and drops indexes")
    parser.add_argument("--force", action="store_true", help="run on a primary that has replicas")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write DIR/verify.json (default: the --from-report folder)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perfkit import verify
    from perfkit.output import emit_json, print_table, say

    if args.from_report is not None:
        fixes = verify.fixes_from_report(args.from_report)
    else:
        fixes = [verify.fix_from_sql(text) for text in args.sql]
    items = [(fix, list(args.statement)) for fix in fixes]
    results = verify.verify(args.dsn, items, runs=args.runs, keep=args.keep, allow_writes=args.allow_writes,
                            force=args.force, progress=None if args.json else lambda m: say(f"perfkit verify: {m}"))
    out = args.out or args.from_report
    path = verify.write_results(out, results) if out is not None else None
    from perfkit import db

    engine = db.connect(args.dsn)
    try:
        server = db.server_id(engine, args.dsn)
    finally:
        engine.dispose()
    verify.store_results(results, server=server)  # the weekly report's recommendations show them
    if args.json:
        emit_json({"verified": [r.to_dict() for r in results], "written": str(path) if path else None})
        return 0
    import pandas as pd

    for result in results:
        print(result.fix.sql)
        print(f"  {result.text()}" + ("" if not result.kept else " (kept)"))
        frame = pd.DataFrame(result.statements)
        frame = frame.assign(p95_change=[f"{lo:+,.2f} .. {hi:+,.2f}" for lo, hi in
                                         zip(frame["p95_diff_low_ms"], frame["p95_diff_high_ms"], strict=True)])
        print_table(frame.round(2), ["before_mean_ms", "before_p95_ms", "after_mean_ms", "after_p95_ms", "p95_change",
                                     "speedup", "query"],
                    headers={"before_mean_ms": "mean before", "before_p95_ms": "p95 before", "after_mean_ms": "mean after",
                             "after_p95_ms": "p95 after", "p95_change": "p95 change (95 % CI, ms)"}, fit="query")
        for note in result.notes:
            say(f"perfkit verify: {note}")
    if path is not None:
        say(f"perfkit verify: wrote {path}")
    return 0

"""``perfkit top``: the costliest statements in pg_stat_statements right now."""

from __future__ import annotations

from perfkit.commands import add_dsn_option, add_json_option, engine_from_args, positive_int

# perfkit.statements.TOP_ORDERS, spelled out so `perfkit --help` need not import pandas
TOP_CHOICES = ("total", "mean", "calls", "io", "temp")
TOP_COLUMNS = ["queryid", "calls", "total_exec_ms", "mean_exec_ms", "rows", "io_ms", "temp_blks", "share_total", "query"]
HEADERS = {"total_exec_ms": "total ms", "mean_exec_ms": "mean ms", "share_total": "share", "temp_blks": "temp blks", "io_ms": "io ms"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("top", help="the costliest statements", description=__doc__)
    add_dsn_option(parser)
    add_ranking_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def add_ranking_options(parser) -> None:
    """``--by``, ``-n`` and ``--all``: which statements ``top`` and ``diff`` rank, and how many."""
    parser.add_argument("--by", default="total", choices=list(TOP_CHOICES), help="rank by total time (default), mean time, calls, io or temp")
    parser.add_argument("-n", type=positive_int, default=20, help="how many statements (default 20)")
    parser.add_argument("--all", action="store_true", dest="include_noise",
                        help="also rank perfkit's own reads, EXPLAINs, driver catalog probes and one-off DDL / bulk "
                        "loads (left out by default, and counted in a note)")


def print_statements(frame, title: str, by: str = "total") -> None:
    from perfkit.output import print_table
    from perfkit.statements import strip_leading_comments

    shown = frame.assign(queryid=frame["queryid"].astype("string"), query=frame["query"].map(strip_leading_comments))
    # the block-time and temp columns when ranking by them (--json has every column): the query keeps the room
    extra = {"io": ["io_ms"], "temp": ["temp_blks"]}.get(by, [])
    columns = [c for c in TOP_COLUMNS if c in shown.columns and (c not in ("io_ms", "temp_blks", "rows") or c in extra)]
    print_table(shown, columns, title=title, headers=HEADERS, fit="query")


def run(args) -> int:
    from perfkit import statements
    from perfkit.output import emit_json, say, wrapped

    engine = engine_from_args(args)
    snap = statements.snapshot(engine, dsn=args.dsn)
    result = statements.assess(snap, since=None, by=args.by, n=args.n, include_noise=args.include_noise)
    if args.json:
        emit_json({"by": args.by, **result.to_json()})
        return 0
    for note in result.notes:
        say(wrapped(note, "perfkit: "))
    print_statements(result.tables["statements"], by=args.by, title=f"Top {len(result.tables['statements'])} statements by {args.by} "
                     f"({engine.info['target']})")
    return 0

"""``perfkit demo``: a throwaway database with a multi-tenant shop, a workload, and its top statements."""

from __future__ import annotations

from perfkit.commands import add_json_option, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="the investigation loop on a throwaway database", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the shop's row counts (default 1.0: 60,000 orders)")
    parser.add_argument("--requests", type=positive_int, default=400, help="web requests in the workload (default 400)")
    parser.add_argument("--keep", action="store_true", help="leave the database running and print its DSN")
    parser.add_argument("-n", type=positive_int, default=10, help="statements to show (default 10)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from perfkit import statements
    from perfkit.commands.top import print_statements
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json

    if not 0 < args.scale <= 100:
        raise BadInputError(f"--scale must be above 0 and at most 100, not {args.scale}")
    result = run_demo_from_args(args)
    top = statements.top(result.changes, by="total", n=args.n)
    if args.json:
        emit_json({"dsn": result.dsn if args.keep else None, "requests": result.requests,
                   "timings_s": result.timings, "statements": top})
        return 0
    print("requests per route: " + ", ".join(f"{route} {count}" for route, count in result.requests.items()))
    print_statements(top, f"\nTop {len(top)} statements by total time during the workload")
    print("\nseconds per step: " + ", ".join(f"{step} {secs:.1f}" for step, secs in result.timings.items()))
    if args.keep:
        print(f"\nthe database is still running: {result.dsn}\nstop it with `perfkit sandbox stop`")
    return 0


def run_demo_from_args(args):
    from perfkit.demo import run_demo

    return run_demo(scale=args.scale, requests=args.requests, keep=args.keep)

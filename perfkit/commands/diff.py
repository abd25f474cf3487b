"""``perfkit diff``: what happened between two snapshots, per statement (week over week)."""

from __future__ import annotations

from perfkit.commands import add_json_option, positive_int
from perfkit.commands.snapshot import add_store_options
from perfkit.commands.top import TOP_CHOICES

DIFF_COLUMNS = ["status", "queryid", "calls", "total_exec_ms", "mean_exec_ms", "prev_mean_exec_ms", "share_total", "query"]
HEADERS = {"total_exec_ms": "total ms", "mean_exec_ms": "mean ms", "prev_mean_exec_ms": "mean before", "share_total": "% total"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help="what changed between snapshots", description=__doc__)
    add_store_options(parser)
    parser.add_argument("--since", default="7d", help="compare with the snapshot nearest to this long before (default 7d)")
    parser.add_argument("--dsn", default=None, help="take and store a fresh snapshot first (default: compare stored snapshots only)")
    parser.add_argument("--statement-timeout", default="30s", help="statement_timeout with --dsn")
    parser.add_argument("--lock-timeout", default="5s", help="lock_timeout with --dsn")
    parser.add_argument("--by", default="total", choices=list(TOP_CHOICES), help="rank the statements by (default total)")
    parser.add_argument("-n", type=positive_int, default=20, help="how many statements (default 20)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from perfkit import statements
    from perfkit.commands import engine_from_args
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json
    from perfkit.store import SnapshotStore, parse_since

    since = parse_since(args.since)
    store = SnapshotStore(args.store)
    if args.dsn:
        engine = engine_from_args(args)
        after = statements.snapshot(engine, server=args.server, dsn=args.dsn)
        after_path = store.save(after)
        server = after["server"].iloc[0] if len(after) else args.server
    else:
        latest = store.latest(args.server)
        after_path, server = latest.path, latest.server
        after = store.load(after_path)
    now = after["captured_at"].max()
    base = store.baseline(since, server, now=now)
    if base is None:
        raise BadInputError(
            f"no stored snapshot of {server} older than the latest one in {store.root}: "
            f"take one now with `perfkit snapshot`, and diff again after {args.since}"
        )
    before = store.load(base.path)
    changes = statements.diff(before, after)
    ranked = statements.top(changes[changes["status"] != "unchanged"], by=args.by, n=args.n)
    counts = changes["status"].value_counts().to_dict()
    interval = {
        "start": changes.attrs["interval_start"],
        "end": changes.attrs["interval_end"],
        "hours": (changes.attrs["interval_end"] - changes.attrs["interval_start"]).total_seconds() / 3600,
        "asked_since": args.since,
        "before": str(base.path),
        "after": str(after_path),
    }
    if args.json:
        emit_json({
            "server": server,
            "interval": interval,
            "stats_reset": changes.attrs["stats_reset"],
            "reset_evidence": changes.attrs["reset_evidence"],
            "counts": counts,
            "totals": statements.summarize(changes),
            "statements": ranked,
        })
        return 0
    from perfkit.output import print_table

    print(f"{server}: {interval['start']:%Y-%m-%d %H:%M} -> {interval['end']:%Y-%m-%d %H:%M} UTC "
          f"({interval['hours']:.1f} h; asked for {args.since})")
    if abs(interval["hours"] - since.total_seconds() / 3600) > max(1.0, 0.25 * since.total_seconds() / 3600):
        print(f"note: the nearest stored snapshot is {interval['hours']:.1f} h before the latest, not {args.since}")
    if changes.attrs["stats_reset"]:
        print(f"note: pg_stat_statements was reset in between ({changes.attrs['reset_evidence']}); "
              "figures are the work since the reset, a lower bound")
    print("statements: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("changed", "new", "reset", "evicted", "unchanged")))
    totals = statements.summarize(changes)
    print(f"work in the interval: {totals['calls']:,.0f} calls, {totals['total_exec_ms'] / 1000:,.1f} s of execution")
    from perfkit.statements import strip_leading_comments

    shown = ranked.assign(share_total=(ranked["share_total"] * 100).round(1), queryid=ranked["queryid"].astype("string"),
                          query=ranked["query"].map(strip_leading_comments))
    print_table(shown, [c for c in DIFF_COLUMNS if c in shown.columns], title=f"\nTop {len(shown)} by {args.by} in the interval", headers=HEADERS)
    return 0

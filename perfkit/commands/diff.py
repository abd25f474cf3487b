"""``perfkit diff``: what happened between two snapshots, per statement (week over week)."""

from __future__ import annotations

from perfkit.commands import add_json_option
from perfkit.commands.snapshot import add_store_options
from perfkit.commands.top import add_ranking_options

DIFF_COLUMNS = ["status", "queryid", "calls", "total_exec_ms", "mean_exec_ms", "prev_mean_exec_ms", "share_total", "query"]
HEADERS = {"total_exec_ms": "total ms", "mean_exec_ms": "mean ms", "prev_mean_exec_ms": "before", "share_total": "% total"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help="what changed between snapshots", description=__doc__)
    add_store_options(parser)
    parser.add_argument("--since", default="7d", help="compare with the snapshot nearest to this long before (default 7d)")
    parser.add_argument("--dsn", default=None, help="take and store a fresh snapshot first (default: compare stored snapshots only)")
    parser.add_argument("--statement-timeout", default="30s", help="statement_timeout with --dsn")
    parser.add_argument("--lock-timeout", default="5s", help="lock_timeout with --dsn")
    add_ranking_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from perfkit import statements
    from perfkit.commands import engine_from_args
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json, format_table, print_table, wrapped
    from perfkit.store import SnapshotStore, parse_since

    parse_since(args.since)  # a bad --since fails before anything is read
    store = SnapshotStore(args.store)
    if args.dsn:
        engine = engine_from_args(args)
        after = statements.snapshot(engine, server=args.server, dsn=args.dsn)
        after_path = store.save(after)
    else:
        latest = store.latest(args.server)
        after_path = latest.path
        after = store.load(after_path)
    result = statements.assess(after, path=after_path, store=store, since=args.since, by=args.by, n=args.n,
                               include_noise=args.include_noise)
    facts = result.facts
    if facts["baseline"] is None:
        raise BadInputError(
            f"no stored snapshot of {facts['server']} older than the latest one in {store.root}: "
            f"take one now with `perfkit snapshot`, and diff again after {args.since}"
        )
    interval = {**facts["interval"], "before": facts["baseline"]["snapshot"], "after": str(after_path)}
    from perfkit.plans.history import changes_between

    changed, comparisons = changes_between(store.root, str(facts["server"]), result.tables["changes"]["queryid"],
                                           interval["start"], interval["end"])
    if args.json:
        payload = result.to_json()
        payload.pop("statements", None)  # since the reset; diff is about the interval
        payload["statements"] = payload.pop("changes")
        payload["interval"] = interval
        payload["totals"] = payload.pop("interval_totals")
        payload["plan_changes"] = [{**{k: v for k, v in f.items() if k != "fix"},
                                    "compare": comparisons[f["queryid"]].to_dict()} for f in changed]
        emit_json(payload)
        return 0
    from perfkit.statements.assess import span

    print(f"{facts['server']}: {interval['start']:%Y-%m-%d %H:%M} -> {interval['end']:%Y-%m-%d %H:%M} UTC "
          f"({span(interval['hours'])}; asked for {args.since})")
    for note in result.notes[1:]:  # the first says what the headline says
        print(wrapped(note, "note: "))
    counts = facts["counts"]
    print("statements: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("changed", "new", "reset", "evicted", "unchanged")))
    totals = facts["interval_totals"]
    print(f"work in the interval: {totals['calls']:,.0f} calls, {totals['total_exec_ms'] / 1000:,.1f} s of execution")
    from perfkit.statements import strip_leading_comments

    ranked = result.tables["changes"]
    shown = ranked.assign(share_total=(ranked["share_total"] * 100).round(1), queryid=ranked["queryid"].astype("string"),
                          query=ranked["query"].map(strip_leading_comments))
    print_table(shown, [c for c in DIFF_COLUMNS if c in shown.columns], title=f"\nTop {len(shown)} by {args.by} in the interval", headers=HEADERS, fit="query")
    if len(result.findings):
        print(f"\n{len(result.findings)} statement(s) got slower per call:")
        print(format_table(result.findings, ["severity", "subject", "evidence"], max_width=50, fit="evidence"))
    for found in changed:  # plans stored by the weekly reports (perfkit.plans.history)
        print()
        print(wrapped(f"{found['severity']}: {found['subject']}: {found['evidence']}", "plan changed: "))
        print(wrapped(comparisons[found["queryid"]].summary, "  "))
    return 0

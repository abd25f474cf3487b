"""``perfkit diff``: what happened between two snapshots, per statement (week over week)."""

from __future__ import annotations

from pathlib import Path

from perfkit.commands import add_fail_on_option, add_json_option, gate_code
from perfkit.commands.snapshot import add_store_options
from perfkit.commands.top import add_ranking_options

DIFF_COLUMNS = ["status", "queryid", "calls", "total_exec_ms", "mean_exec_ms", "prev_mean_exec_ms", "share_total", "query"]
HEADERS = {"total_exec_ms": "total ms", "mean_exec_ms": "mean ms", "prev_mean_exec_ms": "before", "share_total": "share"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help="what changed between snapshots", description=__doc__)
    add_store_options(parser)
    parser.add_argument("--since", default="7d",
                        help="compare with the snapshot nearest to this long before: 7d, 12h, 30m, 90s (default 7d)")
    parser.add_argument("--from", dest="from_snapshot", default=None, metavar="SNAP",
                        help="the earlier snapshot, instead of --since: its id or capture time as `perfkit snapshot "
                             "--list` shows it (a prefix is enough: 20261123T2111), or its path")
    parser.add_argument("--to", dest="to_snapshot", default=None, metavar="SNAP",
                        help="the later snapshot (default: the latest stored one)")
    parser.add_argument("--dsn", default=None, help="take and store a fresh snapshot first (default: compare stored snapshots only)")
    parser.add_argument("--statement-timeout", default="30s", help="statement_timeout with --dsn")
    parser.add_argument("--lock-timeout", default="5s", help="lock_timeout with --dsn")
    add_ranking_options(parser)
    add_json_option(parser)
    add_fail_on_option(parser)
    parser.set_defaults(func=run)


def _gated(findings, changed):
    """The findings --fail-on gates: the statements' and the plan changes'."""
    from perfkit.assessment import merge_findings
    from perfkit.findings import findings_frame

    return merge_findings(findings, findings_frame(changed)) if changed else findings


def run(args) -> int:
    import pandas as pd

    from perfkit import statements
    from perfkit.commands import engine_from_args
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json, format_findings, print_table, wrapped
    from perfkit.store import SnapshotStore, parse_since

    parse_since(args.since)  # a bad --since fails before anything is read
    if args.dsn and args.to_snapshot:
        raise BadInputError("--to names a stored snapshot; with --dsn the later one is the fresh snapshot: drop one")
    store = SnapshotStore(args.store)
    earlier = store.find(args.from_snapshot, args.server) if args.from_snapshot else None
    if args.dsn:
        engine = engine_from_args(args)
        after = statements.snapshot(engine, server=args.server, dsn=args.dsn)
        after_path = store.save(after)
    else:
        chosen = store.find(args.to_snapshot, args.server) if args.to_snapshot else store.latest(args.server)
        after_path = chosen.path
        after = store.load(after_path)
    if earlier is not None:
        if Path(earlier.path).resolve() == Path(after_path).resolve():
            raise BadInputError(f"--from and --to name the same snapshot ({Path(after_path).stem})")
        later = after["captured_at"].max() if "captured_at" in after and len(after) else None
        if later is not None and pd.notna(earlier.captured_at) and earlier.captured_at >= later:
            raise BadInputError(f"--from {Path(earlier.path).stem} is not older than the later snapshot "
                                f"{Path(after_path).stem}: swap them")
        result = statements.assess(after, path=after_path, baseline=store.load(earlier.path), since=None,
                                   baseline_path=earlier.path, by=args.by, n=args.n, include_noise=args.include_noise)
    else:
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

    changed, comparisons = changes_between(store, str(facts["server"]), result.tables["changes"]["queryid"],
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
        return gate_code(_gated(result.findings, changed), args.fail_on)
    from perfkit.statements.assess import span

    print(f"{facts['server']}: {interval['start']:%Y-%m-%d %H:%M} -> {interval['end']:%Y-%m-%d %H:%M} UTC "
          f"({span(interval['hours'])}; "
          + (f"--from {Path(earlier.path).stem})" if earlier is not None else f"asked for {args.since})"))
    for note in result.notes[1:]:  # the first says what the headline says
        print(wrapped(note, "note: "))
    counts = facts["counts"]
    print("statements: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("changed", "new", "reset", "evicted", "unchanged")))
    totals = facts["interval_totals"]
    print(f"work in the interval: {totals['calls']:,.0f} calls, {totals['total_exec_ms'] / 1000:,.1f} s of execution")
    from perfkit.statements import strip_leading_comments

    ranked = result.tables["changes"]
    shown = ranked.assign(queryid=ranked["queryid"].astype("string"),
                          query=ranked["query"].map(strip_leading_comments))
    print_table(shown, [c for c in DIFF_COLUMNS if c in shown.columns], title=f"\nTop {len(shown)} by {args.by} in the interval", headers=HEADERS, fit="query")
    if len(result.findings):
        print(f"\n{len(result.findings)} statement(s) got slower per call:")
        print(format_findings(result.findings, ["severity", "subject", "evidence"]))
    for found in changed:  # plans stored by the weekly reports (perfkit.plans.history)
        print()
        print(wrapped(f"{found['severity']}: {found['subject']}: {found['evidence']}", "plan changed: "))
        print(wrapped(comparisons[found["queryid"]].summary, "  "))
    return gate_code(_gated(result.findings, changed), args.fail_on)

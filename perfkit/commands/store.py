"""``perfkit store``: look after the snapshot store (``compact``: one file per server and day)."""

from __future__ import annotations

from perfkit.commands import add_json_option


def register(subparsers) -> None:
    parser = subparsers.add_parser("store", help="look after the snapshot store (compact)", description=__doc__)
    actions = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    compact = actions.add_parser(
        "compact",
        help="rewrite each server's day into one file",
        description="Rewrite each server's day of snapshots into one Parquet file (atomic; a snapshot "
        "written meanwhile is kept). Without --date: every day before today (UTC).",
    )
    compact.add_argument("--store", default=None, metavar="DIR|URI",
                         help="snapshot store: a folder or s3://, gs:// URI (default: $PERFKIT_STORE or data/snapshots)")
    compact.add_argument("--server", default=None, metavar="NAME", help="only this server (default: all)")
    compact.add_argument("--date", default=None, metavar="YYYY-MM-DD", help="only this day (today included)")
    add_json_option(compact)
    compact.set_defaults(func=run_compact)


def run_compact(args) -> int:
    from perfkit.output import emit_json
    from perfkit.store import SnapshotStore

    store = SnapshotStore(args.store)
    days = store.compact(args.server, args.date)
    if args.json:
        emit_json({"store": str(store.root), "days": days})
        return 0
    changed = [d for d in days if d["path"]]
    for day in changed:
        print(f"{day['server']} {day['date']}: {day['files_before']} files -> {day['files_after']} "
              f"({day['snapshots']} snapshots, {day['rows']:,} rows) {day['path']}")
    print(f"compacted {len(changed)} of {len(days)} server-days in {store.root}")
    return 0

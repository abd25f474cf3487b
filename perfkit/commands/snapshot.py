"""``perfkit snapshot``: save a pg_stat_statements snapshot into the store."""

from __future__ import annotations

from perfkit.commands import add_dsn_option, add_json_option, engine_from_args, positive_int


def add_store_options(parser) -> None:
    parser.add_argument("--store", default=None, metavar="DIR|URI",
                        help="snapshot store: a folder or s3://, gs:// URI (default: $PERFKIT_STORE or data/snapshots)")
    parser.add_argument("--server", default=None, metavar="NAME", help="server name in the store (default: host-port-dbname)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("snapshot", help="save a pg_stat_statements snapshot", description=__doc__)
    add_dsn_option(parser)
    add_store_options(parser)
    parser.add_argument("--list", action="store_true", dest="list_only",
                        help="list the stored snapshots (id, capture time, server) instead of taking one; "
                             "`perfkit diff --from ID --to ID` compares two of them")
    parser.add_argument("--fleet", nargs="?", const="perfkit.toml", default=None, metavar="FILE",
                        help="snapshot every server of a fleet file (TOML; default perfkit.toml) in parallel: "
                             "exit 0 when all landed, 3 when any failed (docs/README-fleet.md)")
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="with --fleet: servers snapshotted at once (default: the file's jobs, else 8)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def list_snapshots(args) -> int:
    from perfkit.output import emit_json, print_table
    from perfkit.store import SnapshotStore

    store = SnapshotStore(args.store)
    listing = store.list(args.server)
    listing = listing.assign(id=listing["snapshot_id"].astype(str), path=listing["path"].map(str))
    if args.json:
        emit_json({"store": str(store.root), "snapshots": listing[["id", "captured_at", "server", "path"]]})
        return 0
    if listing.empty:
        print(f"no snapshots stored in {store.root}")
        return 0
    print_table(listing, ["id", "captured_at", "server"], title=f"{len(listing)} snapshots in {store.root}, oldest first:")
    return 0


def run(args) -> int:
    if args.fleet:
        return run_fleet(args)
    if args.jobs:
        from perfkit.errors import BadInputError

        raise BadInputError("--jobs goes with --fleet FILE (one server is one job)")
    from perfkit import statements
    from perfkit.output import emit_json, say
    from perfkit.store import SnapshotStore

    if args.list_only:
        return list_snapshots(args)
    engine = engine_from_args(args, retries=1)  # often a cron job: one retry if the server is away
    snap = statements.snapshot(engine, server=args.server, dsn=args.dsn)
    store = SnapshotStore(args.store)
    path = store.save(snap)
    summary = statements.summarize(snap)
    hidden = snap.attrs.get("hidden_queries", 0)
    if hidden:
        say(f"perfkit: warning: {hidden} statements have hidden text (GRANT pg_read_all_stats to see them)")
    if args.json:
        emit_json({"path": str(path), "server": snap["server"].iloc[0] if len(snap) else args.server,
                   "captured_at": snap["captured_at"].max() if len(snap) else None, **summary,
                   "hidden_queries": hidden})
    else:
        print(f"saved {summary['statements']} statements ({summary['calls']:,.0f} calls, "
              f"{summary['total_exec_ms'] / 1000:,.1f} s of execution) to {path}")
    return 0


def run_fleet(args) -> int:
    """``snapshot --fleet``: every server in parallel; 0 when all landed, 3 when any failed."""
    from perfkit import fleet as fleets
    from perfkit.errors import BadInputError
    from perfkit.output import emit_json, say
    from perfkit.store import SnapshotStore

    if args.dsn or args.server:
        raise BadInputError("--fleet names its servers itself: drop --dsn and --server")
    fleet = fleets.load_fleet(args.fleet)
    for warning in fleet.warnings:
        say(f"perfkit: warning: {warning}")
    store = SnapshotStore(args.store or fleet.store)
    say(f"perfkit: snapshotting {len(fleet.servers)} servers into {store.root}, "
        f"{min(args.jobs or fleet.jobs, len(fleet.servers))} at a time")

    def progress(outcome, done, total):
        state = f"ok, {outcome.statements} statements" if outcome.ok else f"FAILED: {outcome.error}"
        say(f"perfkit: [{done}/{total}] {outcome.server}: {state} ({outcome.seconds:.1f} s)")

    statement_timeout = args.statement_timeout if args.statement_timeout != "30s" else None
    lock_timeout = args.lock_timeout if args.lock_timeout != "5s" else None
    outcomes = fleets.collect(fleet, store, jobs=args.jobs, statement_timeout=statement_timeout,
                              lock_timeout=lock_timeout, report=progress)
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        emit_json({"store": str(store.root), "servers": [o.to_dict() for o in outcomes],
                   "ok": len(outcomes) - len(failed), "failed": len(failed)})
    else:
        for outcome in outcomes:
            print(f"{outcome.server}: " + (f"saved {outcome.statements} statements to {outcome.path}" if outcome.ok
                                           else f"failed: {outcome.error}"))
        say(f"perfkit: {len(outcomes) - len(failed)} of {len(outcomes)} servers stored"
            + (f"; failed: {', '.join(o.server for o in failed)}" if failed else ""))
    return 3 if failed else 0

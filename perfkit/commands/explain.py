"""``perfkit explain``: EXPLAIN one statement on a live server, safely, and analyze the plan.

Read-only session with timeouts; data-changing statements only with --allow-writes, rolled back.
"""

from __future__ import annotations

import argparse

from perfkit.commands import add_dsn_option, add_json_option, engine_from_args


def _queryid(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a queryid is a whole number (it may be negative), not {text!r}") from None


def register(subparsers) -> None:
    """Add ``perfkit explain`` to the command line."""
    parser = subparsers.add_parser(
        "explain",
        help="EXPLAIN a statement (or a pg_stat_statements queryid) and analyze the plan",
        description="Run EXPLAIN (BUFFERS, SETTINGS, FORMAT JSON) — with --analyze, EXPLAIN ANALYZE — in a "
        "read-only session and print the plan tree with self time per node and the findings. "
        "Statements with $1 parameters get a generic plan; with --analyze give --param values.",
    )
    add_dsn_option(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="one SQL statement")
    what.add_argument("--queryid", type=_queryid, help="a queryid from pg_stat_statements")
    parser.add_argument("--analyze", action="store_true", help="execute the statement (EXPLAIN ANALYZE) for actual rows and times")
    parser.add_argument(
        "--param", action="append", default=None, metavar="VALUE",
        help="a value for $1, $2, ... (repeat in order; sent as an SQL literal, the server infers the type)",
    )
    parser.add_argument(
        "--allow-writes", action="store_true",
        help="allow EXPLAIN ANALYZE of INSERT/UPDATE/DELETE/MERGE (rolled back) and of calls that act outside the "
        "transaction (dblink, foreign tables, VOLATILE functions, signals, sequences: NOT rolled back)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
        help="a setting for this EXPLAIN only (SET LOCAL), e.g. --set work_mem=64MB; repeatable",
    )
    parser.add_argument("--top", type=int, default=0, metavar="N", help="show only the N nodes with the most self time")
    add_json_option(parser)
    parser.set_defaults(func=run)


def analyze_hint(args, sql: str) -> str:
    """What ``--analyze`` (and ``--param`` for a statement with ``$1``) would add to a plain EXPLAIN."""
    import re

    parameters = sorted({int(n) for n in re.findall(r"\$(\d+)", sql or "")})
    target = f"--queryid {args.queryid}" if args.queryid is not None else "--sql ..."
    params = " ".join(f"--param VALUE{n}" for n in parameters[:4]) + (" ..." if len(parameters) > 4 else "")
    return ("these are the planner's estimates: no rows were counted and no time was measured, so findings that "
            "need them (misestimates, rows removed by a filter, spills, the slowest node) cannot show. "
            f"perfkit explain {target} --analyze{(' ' + params) if params else ''} runs the statement "
            "(read-only) and shows actual rows and times per node.")


def _record_plan(engine, args, plan):
    """Keep the plan's fingerprint with its queryid in the snapshot store (``$PERFKIT_STORE``);
    ``plan_changed`` against the plan stored last time. A store that cannot be written is a note."""
    from perfkit import db
    from perfkit.errors import BadInputError
    from perfkit.plans.history import record_plans
    from perfkit.store import default_root

    plan.extra["queryid"] = int(args.queryid)
    try:
        plan.extra["mean_ms"] = float(db.scalar(
            engine, "SELECT sum(total_exec_time) / nullif(sum(calls), 0) FROM pg_stat_statements WHERE queryid = :q",
            {"q": int(args.queryid)}) or float("nan"))
    except Exception:  # noqa: BLE001 - an older pg_stat_statements (total_time): the mean is only a detail
        plan.extra["mean_ms"] = float("nan")
    try:
        return record_plans(default_root(), db.server_id(engine, getattr(args, "dsn", None)),
                            [(f"queryid {args.queryid}", plan)])
    except (OSError, BadInputError) as err:  # a read-only or unreachable store: the plan is still shown
        reason = getattr(err, "strerror", None) or str(err)
        plan.extra.setdefault("capture_notes", []).append(f"the plan's fingerprint was not stored ({reason})")
        return None


def run(args: argparse.Namespace) -> int:
    """Capture the plan on the server and print it (exit code 0; refusals raise PerfkitError -> 2)."""
    from perfkit.commands.plan import show_plan
    from perfkit.errors import BadInputError
    from perfkit.output import say
    from perfkit.plans import assess, explain, explain_queryid

    settings = {}
    for item in args.settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadInputError(f"--set takes NAME=VALUE, not {item!r}")
        settings[name.strip()] = value.strip()
    engine = engine_from_args(args)
    try:
        options = {"analyze": args.analyze, "params": args.param, "allow_writes": args.allow_writes, "settings": settings}
        if args.analyze:
            say("running EXPLAIN ANALYZE (the statement is executed" + (", then rolled back)" if args.allow_writes else ")"))
        changes = None
        if args.queryid is not None:
            plan = explain_queryid(engine, args.queryid, **options)
            changes = _record_plan(engine, args, plan)
        else:
            plan = explain(engine, args.sql, **options)
        notes = list(plan.extra.get("capture_notes", []))
        advanced = dict(plan.extra.get("sequences_advanced", {}))
        extra = {"server": engine.info.get("target", ""), "sql": plan.query, "notes": notes,
                 "sequences_advanced": advanced}
        from perfkit.advice import existing_indexes

        result = assess([(plan.source or "EXPLAIN", plan)], existing=existing_indexes(engine), plan_changes=changes)
        for note in notes:
            say(f"perfkit explain: {note}")
        hint = "" if args.analyze else analyze_hint(args, plan.query or args.sql or "")
        if hint:
            extra["hint"] = hint
        show_plan(result, as_json=args.json, top=args.top, extra=extra)
        if hint and not args.json:
            from perfkit.output import wrapped

            print()
            print(wrapped(hint, "hint: "))
        if advanced and not args.json:
            from perfkit.plans.capture import sequences_note

            print()
            print(sequences_note(advanced))
    finally:
        engine.dispose()
    return 0

"""``perfkit health``: run the database health checks and print the ranked findings.

Rendering only: ``health.assess`` decides; the terminal gets a table plus the fix SQL (printed, never
run), ``--json`` the assessment (``findings``, ``recommendations``, facts and notes).
"""

from __future__ import annotations

import argparse
import re

from perfkit.commands import (
    add_dsn_option,
    add_fail_on_option,
    add_json_option,
    engine_from_args,
    gate_code,
)
from perfkit.errors import BadInputError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB)\s*$")
_SIZE_FACTORS = {"B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_amount(text: str) -> int | float:
    """``"5"`` -> 5, ``"0.2"`` -> 0.2, ``"64MB"`` -> 67108864; anything else is bad input."""
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    size = _SIZE.match(value)
    if size:
        return int(float(size.group(1)) * _SIZE_FACTORS[size.group(2)])
    raise BadInputError(f"{text!r} is not a number or a size like 64MB")


def parse_threshold(text: str) -> tuple[str, int | float]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise BadInputError(f"--threshold takes NAME=VALUE (e.g. min_rows=5000), not {text!r}")
    return name.strip(), parse_amount(value)


def format_board(board, width: int | None = None, *, colour: bool | None = None) -> str:
    """The check board in a terminal: every check with its status (and how many findings), packed
    in as many columns as fit ``width``; one line per check when only one fits."""
    import shutil

    from perfkit.output import paint

    width = width or shutil.get_terminal_size((100, 24)).columns
    entries = []
    for row in board.to_dict(orient="records"):
        count = f" ({row['findings']})" if row["status"] in ("critical", "warning") and row["findings"] else ""
        entries.append((row["status"], f"{row['check']}{count}"))
    label = max(len(status) for status, _ in entries)
    cell = label + 2 + max(len(text) for _, text in entries)
    per_line = max(1, (width - 2 + 3) // (cell + 3))
    counts = {}
    for status, _ in entries:
        counts[status] = counts.get(status, 0) + 1
    lines = [f"Checks ({len(entries)}): " + ", ".join(f"{n} {status}" for status, n in counts.items())]
    for start in range(0, len(entries), per_line):
        parts = []
        for status, text in entries[start:start + per_line]:
            parts.append(paint(status.ljust(label), status, colour=colour) + "  " + text.ljust(cell - label - 2))
        lines.append(("  " + "   ".join(parts)).rstrip())
    return "\n".join(lines)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "health",
        help="index, table, vacuum, connection, lock and settings checks, ranked",
        description="Run the database health checks (read-only) and print the findings, most severe "
        "first, with the SQL that fixes each one (printed, never executed).",
    )
    add_dsn_option(parser)
    add_json_option(parser)
    add_fail_on_option(parser, junit=True)
    parser.add_argument(
        "--tenant-column",
        action="append",
        default=[],
        metavar="NAME",
        help="a column holding the tenant, added to tenant_id, company_id, retailer_id (repeatable)",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a threshold for every check taking it (min_rows=5000, min_size_bytes=10MB) or for one "
        "check (xid_wraparound.warning_share=0.3); repeatable, see docs/README-health.md",
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this check (repeatable), e.g. unused_indexes",
    )
    parser.add_argument(
        "--server-memory",
        default=None,
        metavar="SIZE",
        help="the database server's memory (e.g. 16GB) for the settings review of a remote server",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perfkit import health
    from perfkit.display import plural, shared_advice
    from perfkit.output import (
        emit_json,
        paint,
        print_code,
        print_findings,
        print_table,
        say,
        wrapped,
        wrapped_sql,
    )

    options: dict[str, object] = {}
    per_check: dict[str, dict[str, object]] = {}
    for text in args.threshold:
        name, value = parse_threshold(text)
        check_name, dot, argument = name.rpartition(".")
        if dot:
            per_check.setdefault(check_name, {})[argument] = value
        else:
            options[name] = value
    if args.tenant_column:
        options["tenant_columns"] = tuple(dict.fromkeys([*health.TENANT_COLUMNS, *args.tenant_column]))
    if args.server_memory:
        memory = parse_amount(args.server_memory)
        if memory <= 0:
            raise BadInputError(f"--server-memory must be a size above 0, not {args.server_memory!r}")
        options["memory_bytes"] = int(memory)
    checks = None
    if args.check:
        by_name = {fn.__name__: fn for fn in health.CHECKS}
        unknown = [name for name in args.check if name not in by_name]
        if unknown:
            raise BadInputError(f"no check called {', '.join(unknown)}; checks: {', '.join(by_name)}")
        checks = [by_name[name] for name in args.check]
    health.route_thresholds(checks or health.CHECKS, options, per_check)  # bad names fail before connecting
    if args.junit and not args.fail_on:
        raise BadInputError("--junit needs --fail-on SEVERITY: it says which findings fail a check")

    engine = engine_from_args(args)
    try:
        say(f"perfkit health: checking {engine.info.get('target', '')}")
        assessment = health.assess(engine, checks=checks, per_check=per_check, **options)
    finally:
        engine.dispose()
    for note in assessment.notes:
        say(f"perfkit health: {note}")
    if args.junit:
        from perfkit import junit

        ran = checks or health.CHECKS
        junit.write(args.junit, junit.health_cases([fn.__name__ for fn in ran], assessment.findings, args.fail_on,
                                                   {fn.__name__: health.area_of(fn) for fn in ran}))
    if args.json:
        emit_json(assessment.to_json())
        return gate_code(assessment.findings, args.fail_on)
    findings, counts = assessment.findings, assessment.facts["counts"]
    print(f"{plural(len(findings), 'finding')}: "
          + ", ".join(paint(f"{counts[s]} {s}", s if counts[s] else "") for s in ("critical", "warning", "info")))
    board = assessment.tables.get("board")
    if board is not None and len(board):
        print()
        print(format_board(board))
    if findings.empty:
        print_table(findings)
    # by area, most severe area first (the findings are ranked, so the first row of each area leads)
    for area, group in findings.groupby("area", sort=False) if len(findings) else ():
        print()
        print_findings(group, title=f"{area}:")
    recommendations = assessment.tables["recommendations"]
    fixes = recommendations[recommendations["sql"] != ""]
    if len(fixes):
        print("\nRecommendations, each fix once (printed only; review before running):")
        fixes, shared = shared_advice(fixes)
        said = set()
        block = []
        for number, row in enumerate(fixes.itertuples(index=False), start=1):
            if row.kind in shared and row.kind not in said:  # what every fix of this kind says, once
                said.add(row.kind)
                block.append(wrapped(f"{row.kind} (each of the {(fixes['kind'] == row.kind).sum()}): {shared[row.kind]}",
                                     "-- ", indent="--    "))
            merged = f" [{', '.join(row.sources)}]" if len(row.sources) > 1 else ""
            advice = f": {row.recommendation}" if row.recommendation else ""
            # every line a comment, so the block can be pasted into psql as it is
            block.append(wrapped(f"{number}. {row.kind} {row.subject}{merged}{advice}", "-- ", indent="--    "))
            block.append(wrapped_sql(row.sql))
        print_code("\n".join(block), "sql")  # fenced in Markdown
    return gate_code(assessment.findings, args.fail_on)

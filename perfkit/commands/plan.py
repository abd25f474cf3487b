"""``perfkit plan FILE``: analyze a saved plan (EXPLAIN JSON, or text from psql, pgAdmin, logs).

Prints the plan tree with self time per node and the findings; ``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import math

from perfkit.commands import add_fail_on_option, add_json_option, gate_code


def register(subparsers) -> None:
    """Add ``perfkit plan`` to the command line."""
    parser = subparsers.add_parser(
        "plan",
        help="analyze a saved plan (JSON or text)",
        description="Analyze a saved EXPLAIN plan: EXPLAIN (FORMAT JSON) output, or the text format as "
        "pasted from psql (any frame), pgAdmin, a server log or auto_explain. Use - to read standard input.",
    )
    parser.add_argument("file", metavar="FILE", help="the plan file (- for standard input)")
    parser.add_argument("after", metavar="AFTER", nargs="?", default=None,
                        help="the same statement's plan after a change: compare the two")
    parser.add_argument("--top", type=int, default=0, metavar="N", help="show only the N nodes with the most self time")
    add_json_option(parser)
    add_fail_on_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse the file and print the plan (exit code 0; bad input raises BadInputError -> 2)."""
    from perfkit.plans import assess, parse_file

    plan = parse_file(args.file)
    after = parse_file(args.after) if args.after else None
    assessment = assess([(args.file, plan)], compare_with=after, compare_heading=args.after or "")
    show_plan(assessment, as_json=args.json, top=args.top)
    return gate_code(assessment.finding_rows, getattr(args, "fail_on", None))


def render_tree(plan, *, top: int = 0, findings=None, width: int | None = None) -> str:
    """The plan picture for the terminal (perfkit.plans.picture.plan_text): per node self time, a
    bar of its share, rows (estimate), loops; the hottest node marked ``>>``; findings under their
    node; as wide as the terminal."""
    from perfkit.output import terminal_columns
    from perfkit.plans.picture import plan_text

    return plan_text(plan, findings, width=width or terminal_columns(), top=top)


def render_totals(plan) -> str:
    """One line of plan-wide figures (planning, execution, triggers, JIT)."""
    parts = [f"plan from {plan.source or plan.format}"]
    if not math.isnan(plan.planning_ms):
        parts.append(f"planning {plan.planning_ms:,.2f} ms")
    if not math.isnan(plan.execution_ms):
        parts.append(f"execution {plan.execution_ms:,.2f} ms")
    if _trigger_count(plan):
        parts.append(f"triggers {plan.trigger_ms:,.2f} ms")
    if not math.isnan(plan.io_read_ms) and plan.io_read_ms > 0:
        parts.append(f"I/O read {plan.io_read_ms:,.2f} ms")
    if not math.isnan(plan.io_write_ms) and plan.io_write_ms > 0:
        parts.append(f"I/O write {plan.io_write_ms:,.2f} ms")
    if plan.jit and not math.isnan(plan.jit.get("total_ms", math.nan)):
        parts.append(f"JIT {plan.jit['total_ms']:,.2f} ms")
    if not plan.analyzed:
        parts.append("estimates only (no ANALYZE)")
    elif not plan.timed:
        parts.append("no timing (TIMING OFF)")
    return ", ".join(parts)


def _trigger_count(plan) -> int:
    rows = getattr(plan, "trigger_rows", None)
    return len(rows) if rows is not None else len(plan.triggers)


TRIGGER_COLUMNS = ["trigger", "constraint", "relation", "time_ms", "calls"]


def plan_payload(plan) -> dict:
    """``plan.to_dict()`` (what ``--json`` prints of the plan) from its rows, building no DataFrame."""
    from perfkit.assessment import finding_table
    from perfkit.output import Rows
    from perfkit.plans.assess import _nodes_table, plan_finding_rows

    triggers = getattr(plan, "trigger_rows", None)
    if getattr(plan, "rows", None) is None or triggers is None:  # a Plan without rows: its frames
        return plan.to_dict()
    return {
        "source": plan.source,
        "format": plan.format,
        "planning_ms": plan.planning_ms,
        "execution_ms": plan.execution_ms,
        "root_ms": plan.root_ms,
        "trigger_ms": plan.trigger_ms,
        "io_read_ms": plan.io_read_ms,
        "io_write_ms": plan.io_write_ms,
        "nodes": _nodes_table(plan),
        "findings": finding_table(plan_finding_rows(plan)),
        "triggers": Rows(triggers, TRIGGER_COLUMNS),
        "jit": plan.jit,
        "settings": plan.settings,
        "planning": plan.planning,
        "query": plan.query,
    }


def show_plan(assessment, *, as_json: bool, top: int = 0, extra: dict | None = None) -> None:
    """Print a plans assessment for people (tree, totals, findings, fixes) or as one JSON object."""
    from perfkit.assessment import finding_records, table_rows
    from perfkit.display import shared_advice
    from perfkit.output import emit_json, print_code, print_findings, print_table, wrapped

    plan = assessment.data["plan"]
    findings = assessment.finding_rows
    fixes = table_rows(assessment.tables, "recommendations")
    if as_json:
        payload = plan_payload(plan)
        payload["findings"] = finding_records(findings)
        payload["severity_counts"] = assessment.counts
        payload["recommendations"] = finding_records(fixes)
        if "comparison" in assessment.data:
            payload["comparison"] = assessment.data["comparison"].to_dict()
        payload.update(extra or {})
        emit_json(payload)
        return
    print(wrapped(render_totals(plan)))  # it names the file: as long as its path
    print()
    print_code(render_tree(plan, top=top, findings=findings if "node_id" in findings.columns else None))
    print()
    print_findings(findings, title=f"Findings ({len(findings)})")
    if fixes is not None and len(fixes):
        print()
        print("What to do (each fix once):")
        fixes, shared = shared_advice(fixes)
        for kind, text in shared.items():  # what every fix of a kind says, once
            print(wrapped(f"every {kind}: {text}", "     "))
        for number, row in enumerate(fixes, start=1):
            subject, recommendation, sql = row.get("subject"), row.get("recommendation"), row.get("sql")
            print(wrapped(f"{subject}: {recommendation}" if recommendation else str(subject), f"{number:>3}. "))
            if sql:  # on one line, as it is copied
                print_code(f"     {sql}", "sql")
    if "comparison" in assessment.data:
        print()
        print(wrapped(f"Against {assessment.facts['comparison']['after']}: {assessment.facts['comparison']['summary']}"))
        print_table(table_rows(assessment.tables, "comparison"), title=None)
        if assessment.data.get("after") is not None:
            print()
            print(wrapped(f"After ({assessment.facts['comparison']['after']}):"))
            print(render_tree(assessment.data["after"], top=top))

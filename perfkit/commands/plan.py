"""``perfkit plan FILE``: analyze a saved plan (EXPLAIN JSON, or text from psql, pgAdmin, logs).

Prints the plan tree with self time per node and the findings; ``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import math

from perfkit.commands import add_json_option


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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse the file and print the plan (exit code 0; bad input raises BadInputError -> 2)."""
    from perfkit.plans import assess, parse_file

    plan = parse_file(args.file)
    after = parse_file(args.after) if args.after else None
    show_plan(assess([(args.file, plan)], compare_with=after, compare_heading=args.after or ""),
              as_json=args.json, top=args.top)
    return 0


def _number(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def render_tree(plan, *, top: int = 0) -> str:
    """The plan as indented node lines: self ms, % of the total, rows (estimate), loops."""
    nodes = plan.nodes
    keep = None
    if top and top > 0 and plan.timed:
        keep = set(nodes.sort_values("self_ms", ascending=False)["node_id"].head(top))
    lines = []
    if plan.timed:
        lines.append(f"{'self ms':>10} {'% total':>7} {'rows':>12} {'est rows':>10} {'loops':>7}  node")
    elif plan.analyzed:
        lines.append(f"{'rows':>12} {'est rows':>10} {'loops':>7}  node")
    else:
        lines.append(f"{'cost':>12} {'est rows':>10}  node")
    for row in nodes.itertuples(index=False):
        if keep is not None and row.node_id not in keep:
            continue
        indent = "  " * int(row.depth)
        arrow = "-> " if row.depth else ""
        tag = f"[{row.subplan_name}] " if row.subplan_name else ""
        name = f"{indent}{arrow}{tag}{row.label}"
        if row.loops == 0:
            name += "  (never executed)"
        if plan.timed:
            lines.append(
                f"{_number(row.self_ms):>10} {_number(row.pct_total, 1):>7} {_number(row.actual_rows, 0):>12} "
                f"{_number(row.plan_rows, 0):>10} {_number(row.loops, 0):>7}  {name}"
            )
        elif plan.analyzed:
            lines.append(f"{_number(row.actual_rows, 0):>12} {_number(row.plan_rows, 0):>10} {_number(row.loops, 0):>7}  {name}")
        else:
            lines.append(f"{_number(row.total_cost):>12} {_number(row.plan_rows, 0):>10}  {name}")
    return "\n".join(lines)


def render_totals(plan) -> str:
    """One line of plan-wide figures (planning, execution, triggers, JIT)."""
    parts = [f"plan from {plan.source or plan.format}"]
    if not math.isnan(plan.planning_ms):
        parts.append(f"planning {plan.planning_ms:,.2f} ms")
    if not math.isnan(plan.execution_ms):
        parts.append(f"execution {plan.execution_ms:,.2f} ms")
    if len(plan.triggers):
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


def show_plan(assessment, *, as_json: bool, top: int = 0, extra: dict | None = None) -> None:
    """Print a plans assessment for people (tree, totals, findings, fixes) or as one JSON object."""
    from perfkit.assessment import finding_records
    from perfkit.output import emit_json, print_table, wrapped

    plan = assessment.data["plan"]
    if as_json:
        payload = plan.to_dict()
        payload["findings"] = finding_records(assessment.findings)
        payload["severity_counts"] = assessment.counts
        payload["recommendations"] = finding_records(assessment.tables.get("recommendations"))
        if "comparison" in assessment.data:
            payload["comparison"] = assessment.data["comparison"].to_dict()
        payload.update(extra or {})
        emit_json(payload)
        return
    print(wrapped(render_totals(plan)))  # it names the file: as long as its path
    print()
    print(render_tree(plan, top=top))
    print()
    findings = assessment.findings
    print_table(findings, ["severity", "kind", "subject", "evidence"], title=f"Findings ({len(findings)})", max_width=40,
                fit="evidence")
    fixes = assessment.tables.get("recommendations")
    if fixes is not None and len(fixes):
        print()
        print("What to do (each fix once):")
        for number, row in enumerate(fixes.itertuples(index=False), start=1):
            print(wrapped(f"{row.subject}: {row.recommendation}", f"{number:>3}. "))
            if row.sql:  # on one line, as it is copied
                print(f"     {row.sql}")
    if "comparison" in assessment.data:
        print()
        print(wrapped(f"Against {assessment.facts['comparison']['after']}: {assessment.facts['comparison']['summary']}"))
        print_table(assessment.tables["comparison"], title=None)

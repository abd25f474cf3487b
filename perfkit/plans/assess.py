"""The plans assessment: one or more plans, their findings, a before/after comparison, a what-if.

``assess(plans, compare_with=...)`` is what ``perfkit plan``, ``perfkit explain``, the plan
notebook and the weekly report render; ``costliest(engine, snapshot)`` captures the generic
plans of the costliest statements for the weekly report (EXPLAIN without ANALYZE: nothing runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from perfkit.assessment import Assessment, Tables, finding_table, merge_findings
from perfkit.errors import PerfkitError
from perfkit.output import Rows

if TYPE_CHECKING:
    import pandas as pd

EXPLAIN_TOP = 3  # without a plan file: how many of the costliest statements to explain
FINDING_DTYPES = {"node_id": "Int64"}  # a plan findings frame's node_id (perfkit.plans.rules.problems_frame)


def node_rows(plan) -> list[dict]:
    """``plan.rows`` (its nodes as dicts, no DataFrame), or the rows of ``plan.nodes``."""
    rows = getattr(plan, "rows", None)
    return list(rows) if rows is not None else plan.nodes.to_dict(orient="records")


def plan_finding_rows(plan) -> list[dict]:
    """``plan.finding_rows`` (its findings as dicts, no DataFrame), or the rows of ``plan.findings``."""
    rows = getattr(plan, "finding_rows", None)
    return list(rows) if rows is not None else plan.findings.to_dict(orient="records")


def _nodes_table(plan) -> Rows:
    from perfkit.plans.model import EXTRA_COLUMNS, NODE_COLUMNS

    return Rows(node_rows(plan), NODE_COLUMNS + EXTRA_COLUMNS, infer=False, frame=lambda: plan.nodes)


def _totals(heading: str, plan) -> dict:
    return {
        "plan": heading,
        "source": plan.source or plan.format,
        "nodes": len(node_rows(plan)),
        "findings": len(plan_finding_rows(plan)),
        "planning_ms": plan.planning_ms,
        "execution_ms": plan.execution_ms,
        "io_read_ms": plan.io_read_ms,
        "io_write_ms": plan.io_write_ms,
        "analyzed": bool(plan.analyzed),
        "timed": bool(plan.timed),
    }


def assess(plans, *, compare_with=None, compare_heading: str = "", what_if=None, notes: Iterable[str] = (),
           existing=None, plan_changes=None) -> Assessment:
    """The assessment of ``plans``: a Plan, or ``[(heading, Plan), ...]``.

    Parameters
    ----------
    plans:
        One :class:`perfkit.plans.Plan` or a list of ``(heading, Plan)``; the first is the one a
        comparison and a what-if are about.
    compare_with:
        A second plan of the same statement (after a change): the first is compared with it.
    compare_heading:
        What to call ``compare_with`` (its file name).
    what_if:
        A :class:`perfkit.plans.capture.WhatIf` result (hypopg) to keep with the assessment.
    notes:
        Sentences to show (statements that could not be explained, ...).
    plan_changes:
        ``(findings, comparisons)`` of :func:`perfkit.plans.history.plan_changes` (plans that
        changed since the baseline): the findings join the others, the comparisons are kept in
        ``data["plan_changes"]`` (queryid -> PlanComparison).
    existing:
        The database's indexes (``perfkit.advice.existing_indexes``) when the plans come from a
        live one: a fix building one of them (or a prefix of one) is not recommended.

    Returns
    -------
    Assessment
        ``source="plans"``; tables ``nodes`` (the first plan's), ``plans`` (one row per plan) and,
        with a comparison, ``comparison`` (its totals), and ``recommendations`` (the findings' fixes,
        each once); findings of every plan with a ``plan`` column.
    """
    if hasattr(plans, "nodes"):
        plans = [(plans.source or plans.format or "plan", plans)]
    plans = list(plans)
    notes = list(notes)
    changed, comparisons = plan_changes if plan_changes is not None else ([], {})
    found = [dict(row, plan=h) for h, p in plans for row in plan_finding_rows(p)]
    found += list(changed)

    def findings_frame():  # what the notebooks read: built only then
        from perfkit.findings import findings_frame as frame_of

        frame = merge_findings(*[p.findings.assign(plan=h) for h, p in plans if len(p.findings)])
        return merge_findings(frame, frame_of(changed)) if changed else frame

    findings = finding_table(Rows(found, frame=findings_frame, dtypes=FINDING_DTYPES))
    totals = [_totals(h, p) for h, p in plans]
    tables = Tables({"plans": Rows(totals)})
    data = {"plans": [p for _, p in plans], "headings": [h for h, _ in plans]}
    facts = {"plans": [h for h, _ in plans]}
    if plans:
        first = plans[0][1]
        tables["nodes"] = _nodes_table(first)
        data["plan"] = first
        facts.update({k: v for k, v in totals[0].items() if k != "plan"})
    if comparisons:
        data["plan_changes"] = comparisons
    if compare_with is not None and plans:
        from perfkit.plans.compare import compare

        result = compare(plans[0][1], compare_with)
        data["comparison"] = result
        data["after"] = compare_with
        tables["comparison"] = result.totals  # a DataFrame: the comparison is pandas' (perfkit.plans.compare)
        facts["comparison"] = {"after": compare_heading or compare_with.source, "summary": result.summary,
                               "shape_changed": result.shape_changed, "fingerprint_before": result.fingerprint_before,
                               "fingerprint_after": result.fingerprint_after}
    if len(findings):
        from perfkit.advice import recommend_rows

        def recommendations_frame():
            from perfkit.advice import recommend

            return recommend(plan_findings=findings.to_frame(), existing=existing)

        merged = recommend_rows(plan_findings=findings.records(), existing=existing)
        tables["recommendations"] = finding_table(Rows(merged, frame=recommendations_frame))
    if what_if is not None:
        data["what_if"] = what_if
        facts["what_if"] = what_if.summary() if hasattr(what_if, "summary") else str(what_if)
    return Assessment("plans", "Plan deep-dive", findings=findings, tables=tables, facts=facts, notes=notes,
                      data=data)


def costliest(engine, snapshot: pd.DataFrame, *, n: int = EXPLAIN_TOP) -> tuple[list, list[str]]:
    """Generic plans of the ``n`` costliest application statements of ``snapshot``.

    Returns ``([(heading, Plan), ...], notes)``; a statement that cannot be explained is a note.
    """
    from perfkit import db, statements
    from perfkit.plans.capture import explain_queryid
    from perfkit.statements.assess import short_query

    work = snapshot[statements.noise(snapshot) == ""]
    # sqlcommenter tags lead many statements' text: judge the statement behind them
    bare = work.assign(query=work["query"].map(statements.strip_leading_comments))
    costly = statements.top(work.loc[statements.explainable(bare).index], by="total", n=n)
    captured, notes = [], []
    for row in costly.itertuples(index=False):
        try:
            plan = explain_queryid(engine, int(row.queryid))
            plan.extra["queryid"] = int(row.queryid)
            plan.extra["mean_ms"] = float(getattr(row, "mean_exec_ms", float("nan")))
            captured.append((f"queryid {row.queryid}: {short_query(row.query, 80)}", plan))
        except PerfkitError as err:
            notes.append(f"queryid {row.queryid} could not be explained: {db.redact_text(str(err))}")
    return captured, notes


__all__ = ["EXPLAIN_TOP", "assess", "costliest", "node_rows", "plan_finding_rows"]

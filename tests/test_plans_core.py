"""The pandas-free plan core: reading a plan and its findings loads neither pandas nor numpy nor the
database drivers, and the node rows are what the (lazily built) node DataFrame holds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from perfkit.plans import Plan, parse_file

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "tests" / "fixtures" / "plans"
HEAVY = ("pandas", "numpy", "sqlalchemy", "psycopg", "pglast")


def _loaded_after_reading(fixture: Path) -> tuple[list[str], int]:
    code = (
        "import json, sys\n"
        "import perfkit.plans\n"
        f"plan = perfkit.plans.parse_file({str(fixture)!r})\n"
        "found = plan.finding_rows\n"
        "assert len(plan.rows) > 0 and plan.analyzed and plan.timed\n"
        "plan.root_ms, plan.trigger_ms, plan.io_read_ms\n"
        f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], len(found)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    loaded, count = json.loads(done.stdout)
    return loaded, count


def test_reading_a_plan_and_its_findings_loads_no_pandas_and_no_drivers():
    # a text plan whose finding (a foreign-key trigger) needs no condition parsed: not even pglast
    loaded, count = _loaded_after_reading(PLANS / "text_trigger_fk.txt")
    assert count >= 1
    assert loaded == []
    # rules that parse a condition load PostgreSQL's parser, and still nothing else
    loaded, count = _loaded_after_reading(PLANS / "sort_spill.json")
    assert count >= 1
    assert [m for m in loaded if m != "pglast"] == []


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if a is None or a is pd.NA:
        return b is None or b is pd.NA
    return type(a) is type(b) and a == b or (isinstance(a, float | int) and isinstance(b, float | int) and a == b)


def _frame_rows(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


@pytest.mark.parametrize("name", [
    "styles/analyze.json", "styles/analyze_border1.txt", "styles/io_analyze.json", "styles/io_analyze.txt",
    "initplan.json", "text_pg17_initplan.txt", "text_never_executed.txt", "gather.json", "trigger_fk.json",
])
def test_rows_are_what_the_node_frame_holds(name):
    plan = parse_file(PLANS / name)
    rows = plan.rows
    assert plan._nodes is None  # nothing built the frame yet
    frame = plan.nodes
    assert list(frame.columns) == list(rows[0])
    assert str(frame["parent_id"].dtype) == "Int64" and str(frame["node_id"].dtype) == "int64"
    assert frame["total_ms"].dtype == "float64" and frame["relation"].dtype == object
    framed = _frame_rows(frame)
    assert len(framed) == len(rows)
    for row, held in zip(rows, framed, strict=True):
        wrong = {key: (row[key], held[key]) for key in row if not _same(row[key], held[key])}
        assert not wrong, f"node {row['node_id']}: {wrong}"
    assert rows[0]["parent_id"] is None and all(isinstance(r["parent_id"], int) for r in rows[1:])
    # a Plan made from the frame (as code built them before) gives back the same rows and findings
    again = Plan(nodes=frame, planning_ms=plan.planning_ms, execution_ms=plan.execution_ms,
                 triggers=plan.triggers, jit=plan.jit, settings=plan.settings)
    assert [r["node_id"] for r in again.rows] == [r["node_id"] for r in rows]
    assert all(_same(a[k], b[k]) for a, b in zip(again.rows, rows, strict=True) for k in b)
    assert ([(f["kind"], f["subject"], f["node_id"]) for f in again.finding_rows]
            == [(f["kind"], f["subject"], f["node_id"]) for f in plan.finding_rows])
    assert again.trigger_ms == plan.trigger_ms and _same(again.root_ms, plan.root_ms)


@pytest.mark.parametrize("name", ["styles/analyze.json", "sort_spill.json", "trigger_fk.json", "text_trigger_fk.txt",
                                  "misestimate.json", "nested_loop.json"])
def test_finding_rows_are_the_findings_frame_in_its_order(name):
    plan = parse_file(PLANS / name)
    found = plan.finding_rows
    frame = plan.findings
    assert len(found) == len(frame) > 0
    assert [f["kind"] for f in found] == frame["kind"].tolist()
    assert [f["sql"] for f in found] == frame["sql"].tolist()
    assert [f["node_id"] for f in found] == [None if pd.isna(v) else int(v) for v in frame["node_id"]]
    assert str(frame["node_id"].dtype) == "Int64"
    # the frame with chosen rules is still a DataFrame, and the same findings with the defaults
    assert plan.find().drop(columns=["fix"]).equals(frame.drop(columns=["fix"]))


def test_a_text_plan_is_scrubbed_unless_its_lines_hold_nothing_secret(monkeypatch):
    # the text reader skips the scrubbing walk only when no line holds a secret word or a known password
    from perfkit.plans import parse

    def filtered(condition: str) -> str:
        text = f"Seq Scan on users  (cost=0.00..1.01 rows=1 width=4)\n  Filter: {condition}\n  Output: a, b\n"
        return parse(text).rows[0]["detail"]["Filter"]

    assert filtered("(password = 'Sup3rS3cretValue'::text)") == "(password = '***'::text)"
    assert filtered("(note = 'Sup3rS3cretValue'::text)") == "(note = 'Sup3rS3cretValue'::text)"  # nothing to hide
    monkeypatch.setenv("PGPASSWORD", "Sup3rS3cretValue")  # a password the process knows is masked anywhere
    assert filtered("(note = 'Sup3rS3cretValue'::text)") == "(note = '***'::text)"
    monkeypatch.setenv("PGPASSWORD", "a; b")  # could span two values joined with "; ": the lines are walked
    assert filtered("(note = 'x'::text)") == "(note = 'x'::text)"


def test_conditions_differing_only_in_constants_read_the_same_columns():
    # the column lookup reads each constant as a placeholder (one parse for many such conditions)
    from perfkit.plans import rules
    from perfkit.plans.rules import _without_constants, expression_columns, pattern_columns

    assert _without_constants("((region_id = 42) AND (zone_id = 7))") == _without_constants("((region_id = 1) AND (zone_id = 99))")
    assert _without_constants("(\"col 1\" = 5)") == "(\"col 1\" = 0)"  # a quoted name is kept
    assert _without_constants("(t2.c3 > 1.5)") == "(t2.c3 > 0)"  # digits inside names are names
    assert _without_constants("((a€1 = 5) AND (x·2 < 3))") == "((a€1 = 0) AND (x·2 < 0))"  # also after non-ASCII
    assert _without_constants("(note ~~ 'it''s 42%'::text)") == "(note ~~ ''::text)"
    assert _without_constants(r"(x = E'a\'b')") == r"(x = E'a\'b')"  # a backslash: left alone
    for condition in ("((region_id = 42) AND (zone_id = 7))", "(\"Col 1\" = 5)", "(note ~~ 'it''s 42%'::text)",
                      "((o.tenant_id = 3) AND (o.created_at > '2024-01-01'::date))", "((o.a€1 = 5) AND (b = 2))"):
        cleaned = _without_constants(condition)
        assert expression_columns(condition, table=["o"]) == expression_columns(cleaned, table=["o"]) != []
        # read as written (no placeholders) the columns are the same
        assert rules._expression_columns(condition, "where", ("o",)) == tuple(expression_columns(condition, table=["o"]))
        assert rules._pattern_columns(condition, ("o",)) == tuple(pattern_columns(condition, table=["o"]))


def test_simple_conditions_read_without_pglast_as_pglast_reads_them(monkeypatch):
    # the common conditions are read without importing pglast; each gives the columns pglast gives
    import itertools

    from pglast.keywords import UNRESERVED_KEYWORDS

    from perfkit.plans import rules

    names = ["a", "tenant_id", "o.created_at", "c.id", "x.y", "_z9", "n" * 63, "n" * 70, "Tenant", "user",
             "o.select", "true", "null", "value", "name"]
    operands = [*names, *(f"({n})::text" for n in names[:4]), "0", "''", "NULL", "''::text",
                "''::character varying", "''::timestamp with time zone", "0::numeric", "(0)", "'x'", "-0"]
    operators = ["=", "<>", "<", ">=", "~~", "~~*", "!~", "@>", "IS"]
    conditions = [f"({left} {op} {right})" for left, op, right in itertools.product(operands, operators, ["0", "c.id", "''::text"])]
    conditions += [f"({kw} = 0)" for kw in sorted(UNRESERVED_KEYWORDS)] + [f"(o.{kw} < b.{kw})" for kw in sorted(UNRESERVED_KEYWORDS)]
    conditions += ["((a = 0) AND (b < 0))", "((a = 0) AND ((b)::text ~~ ''::text) AND (o.c = d))", "((a = 0) OR (b = 0))",
                   "(a = 0) AND (b = 0)", "((a = 0))", "(a = 0 AND b = 0)", "((a = 0) AND ((b = 0) AND (c = 0)))",
                   "((tenant_id = 7) AND (status = 'paid'::text))", "(a = (b))", "((a = 0) AND (b = ANY (c)))", "(a =  0)",
                   "((a < 0)) AND ((b = 0))", "(((a < 0)) AND ((b = 0) AND (c = 0)))", "(a = 0) AND b = 0", "a = 0",
                   "((a = 0) AND (b = 0)) OR (c = 0)", "(a = 0)) AND ((b = 0)", "((a = 0) AND (b = 0)", "(a = 0) AND",
                   "( a = 0)", "((a)::text = (b)::text)", "(a = '') AND (b = '\\')", "(a = 0) AND (b = 0) AND (c = 0)"]

    def read(condition):
        for table in ((), ("o",), ("b", "x")):
            yield rules._expression_columns(condition, "where", table), rules._pattern_columns(condition, table)

    def clear():
        for memo in (rules._expression_columns, rules._pattern_columns):
            memo.cache_clear()

    clear()
    fast = {condition: list(read(condition)) for condition in conditions}
    taken = [c for c in conditions if rules._simple_where(c) is not None]
    assert len(taken) > 600 and "(user = 0)" not in taken and f"({'n' * 70} = 0)" not in taken
    for condition in ("(tenant_id < 10)", "((tenant_id = 7) AND (status = 'paid'::text))", "(kind < 50)", "(tier = $0)",
                      "((id < 100000)) AND ((tenant_id = 4))"):
        assert rules._simple_where(rules._OPAQUE.sub("NULL", rules._without_constants(condition))) is not None
    monkeypatch.setattr(rules, "_simple_where", lambda condition: None)
    clear()
    assert {condition: list(read(condition)) for condition in conditions} == fast
    clear()


def test_simple_sort_keys_read_without_pglast_as_pglast_reads_them(monkeypatch):
    from pglast.keywords import UNRESERVED_KEYWORDS

    from perfkit.plans import rules

    keys = ["o.created_at DESC", "id", "c.id, o.created_at", "a DESC NULLS LAST, b NULLS FIRST", "a ASC", "(count(*)) DESC",
            "user", "o.select", "a  DESC", "a desc", "n" * 70, "Id", "a, b, a", "x.y, o.z", "lower(name)", "a USING <"]
    keys += [f"o.{kw} DESC, {kw}" for kw in sorted(UNRESERVED_KEYWORDS)]

    def read(key):
        return [rules._expression_columns(key, "order", table) for table in ((), ("o",), ("c", "x"))]

    rules._expression_columns.cache_clear()
    fast = {key: read(key) for key in keys}
    assert sum(rules._simple_sort_keys(key) is not None for key in keys) > 330
    assert rules._simple_sort_keys("user") is None and rules._simple_sort_keys("o.created_at DESC, id") is not None
    monkeypatch.setattr(rules, "_simple_sort_keys", lambda keys: None)
    rules._expression_columns.cache_clear()
    assert {key: read(key) for key in keys} == fast
    rules._expression_columns.cache_clear()


def test_paused_gc_restores_the_collector_and_leaves_frozen_objects_frozen():
    import gc

    from perfkit.plans.model import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        kept = [[] for _ in range(5000)]
    assert gc.isenabled() and gc.get_count()[0] < 1000  # the young generation is not left full
    with pytest.raises(ValueError), paused_gc():
        raise ValueError
    assert gc.isenabled()
    gc.freeze()  # someone else's frozen objects stay frozen
    try:
        frozen = gc.get_freeze_count()
        with paused_gc():
            pass
        assert gc.get_freeze_count() == frozen > 0
    finally:
        gc.unfreeze()
    assert len(kept) == 5000

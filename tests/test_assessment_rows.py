"""An assessment held as rows gives what its DataFrames give: ``to_json()``, ``record()``, the
findings' records and the ``--json`` of ``perfkit plan``; and the frames, read later, are the frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from perfkit.assessment import Assessment, Tables, finding_records, finding_table
from perfkit.findings import finding, findings_frame
from perfkit.output import Rows, column_kind, format_table, markdown_table, to_jsonable
from perfkit.plans import assess, parse_file

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
CASES = ["seq_scan.json", "text_unicode_border2.txt", "jit.json", "trigger_fk.json", "plain.json",
         "nested_loop_memoize.json", "styles/io_bound.txt", "text_misestimate.txt"]


def _as_frames(assessment: Assessment) -> Assessment:
    """The same assessment with every table and the findings read as DataFrames (today's path)."""
    for name in list(assessment.tables.keys()):
        assessment.tables[name]
    assert isinstance(assessment.findings, pd.DataFrame)
    return assessment


def _plan_changed() -> dict:
    return finding("plan_changed", "warning", "queryid 42", "the plan of queryid 42 changed", "look at it",
                   queryid=42, mean_before_ms=1.5)


@pytest.mark.parametrize("name", CASES)
def test_rows_and_frames_give_the_same_json(name):
    def made():
        plans = [(name, parse_file(FIXTURES / name)), ("other", parse_file(FIXTURES / "jit.json"))]
        return assess(plans, plan_changes=([_plan_changed()], {}))

    rows, frames = made(), _as_frames(made())
    assert isinstance(rows.tables, Tables) and isinstance(rows.tables.raw("plans"), Rows)
    assert json.dumps(rows.to_json()) == json.dumps(frames.to_json())
    assert json.dumps(rows.record()) == json.dumps(frames.record())
    assert finding_records(rows.finding_rows) == finding_records(frames.findings)
    assert rows.counts == frames.counts and sum(rows.counts.values()) == len(frames.findings)
    # the rows stand for the frames the notebooks read: the same frames, built later
    later = made()
    pd.testing.assert_frame_equal(later.findings, frames.findings)
    for table in ("plans", "nodes", "recommendations"):
        if table in frames.tables:
            pd.testing.assert_frame_equal(later.tables[table], frames.tables[table])
    assert isinstance(later.tables.raw("plans"), pd.DataFrame)  # kept once built


def test_a_comparison_keeps_its_totals():
    before, after = parse_file(FIXTURES / "seq_scan.json"), parse_file(FIXTURES / "seq_scan_after_index.json")
    rows, frames = assess(before, compare_with=after), _as_frames(assess(before, compare_with=after))
    assert json.dumps(rows.to_json()) == json.dumps(frames.to_json())
    assert list(dict(rows.tables)) == ["plans", "nodes", "comparison", "recommendations"]
    assert all(isinstance(table, pd.DataFrame) for table in dict(rows.tables).values())  # dict() reads frames


def test_findings_given_as_dicts_are_ranked_like_the_frame():
    found = [
        finding("a", "info", "x", "e", "r", benefit_ms=5.0),
        finding("b", "critical", "y", "e", "r", node_id=3),
        finding("c", "warning", "z", "e", "r", benefit_ms=1.0, node_id=None),
        finding("d", "critical", "w", "e", "r", benefit_ms=9.0, extra_flag=True),
        {"kind": "e", "severity": "warning", "subject": "v", "evidence": "e", "recommendation": "r", "sql": None},
    ]
    held = Assessment("plans", "t", findings=found)
    assert held._frame is None  # nothing built yet
    ranked = held.finding_rows
    assert [r["kind"] for r in ranked] == ["d", "b", "c", "e", "a"]
    assert ranked.columns == list(findings_frame(found).columns)
    assert json.dumps(to_jsonable(ranked)) == json.dumps(to_jsonable(findings_frame(found)))
    assert finding_records(ranked) == finding_records(findings_frame(found))
    pd.testing.assert_frame_equal(held.findings, findings_frame(found))
    assert held.counts == {"critical": 2, "warning": 2, "info": 1}
    assert finding_table(ranked) is ranked


@pytest.mark.parametrize("values", [[1, None], [1, math.nan], [True, None], [1, "a"], [1, 2.5], [None, None],
                                    [1, True], [1, 2], [math.nan, None], [True, False], [2.5, None]])
def test_column_kinds_are_pandas_dtypes(values):
    frame = pd.DataFrame([{"a": v} for v in values])
    kind = column_kind(values)
    assert {"int": "int64", "float": "float64", "bool": "bool", "object": "object"}[kind] == str(frame["a"].dtype)
    rows = Rows([{"a": v} for v in values])
    assert json.dumps(to_jsonable(rows)) == json.dumps(to_jsonable(frame))


def test_tables_of_rows_print_as_their_frames():
    rows = [{"metric": "execution_ms", "before": 258.378, "after": 173.68, "ratio": 1.49, "n": 3, "note": None},
            {"metric": "nodes", "before": 2.0, "after": math.nan, "ratio": None, "n": 4, "note": "a | b"}]
    frame = pd.DataFrame(rows)
    assert format_table(Rows(rows), colour=False) == format_table(frame, colour=False)
    assert format_table(Rows(rows), ["note", "n"], fit="note", width=40) == format_table(frame, ["note", "n"], fit="note",
                                                                                          width=40)
    assert markdown_table(Rows(rows)) == markdown_table(frame)
    assert format_table(Rows([], ["a"])) == format_table(pd.DataFrame(columns=["a"])) == "(none)"


def test_findings_replaced_by_an_empty_frame_count_none():
    # a frame set after construction is kept as given: an empty one may have no columns (counted as before)
    held = Assessment("plans", "t", findings=[finding("a", "info", "x", "e", "r")])
    held.findings = pd.DataFrame()
    assert held.counts == {"critical": 0, "warning": 0, "info": 0}
    assert held.to_json()["findings"] == [] and held.record()["findings"] == []

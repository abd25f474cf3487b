"""Parsing saved plans: every captured fixture, text/JSON parity, self-time semantics, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfkit.errors import BadInputError, PerfkitError
from perfkit.plans import NODE_COLUMNS, parse, parse_file

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
PLAN_FILES = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.name != "README.md")
TIMED = [
    p for p in PLAN_FILES
    if p.name not in {"plain.json", "text_costs_off.txt", "text_timing_off.txt"}
]


def load(name: str):
    return parse_file(FIXTURES / name)


# --- every fixture -----------------------------------------------------------------------------------
def test_every_fixture_is_documented_and_small():
    readme = (FIXTURES / "README.md").read_text()
    for path in PLAN_FILES:
        assert f"| {path.name} |" in readme, f"{path.name} has no README line"
        assert path.stat().st_size < 200_000


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
def test_fixture_parses_into_contract_columns(path):
    plan = parse_file(path)
    assert list(plan.nodes.columns[: len(NODE_COLUMNS)]) == NODE_COLUMNS
    assert plan.nodes["node_id"].tolist() == list(range(len(plan.nodes)))
    assert plan.nodes["depth"].iat[0] == 0 and plan.nodes["parent_id"].isna().iat[0]
    # depth-first: every parent comes before its children, one level up
    for row in plan.nodes.iloc[1:].itertuples(index=False):
        parent = plan.nodes.iloc[int(row.parent_id)]
        assert parent.node_id < row.node_id and parent.depth == row.depth - 1
    assert all(isinstance(d, dict) for d in plan.nodes["detail"])


@pytest.mark.parametrize("path", TIMED, ids=lambda p: p.name)
def test_self_times_add_up_to_the_root_and_are_never_negative(path):
    plan = parse_file(path)
    nodes = plan.nodes
    assert nodes["self_ms"].notna().all()
    assert (nodes["self_ms"] >= 0).all()
    # the root's inclusive time as EXPLAIN printed it (x loops): rounding of per-loop times only
    root = plan.document["Plan"]
    printed = root["Actual Total Time"] * root["Actual Loops"]
    assert nodes["self_ms"].sum() == pytest.approx(printed, abs=0.05 + 0.002 * printed)
    assert nodes["pct_total"].sum() == pytest.approx(100.0, abs=1.0)


# --- text and JSON give the same nodes -----------------------------------------------------------
@pytest.mark.parametrize(
    "text_file, json_file",
    [
        ("text_psql_aligned.txt", "seq_scan.json"),
        ("text_misestimate.txt", "misestimate.json"),
        ("text_sort_spill.txt", "sort_spill.json"),
        ("text_pgadmin_quoted.txt", "hash_spill.json"),
        ("text_unicode_border2.txt", "initplan_join.json"),
        ("text_plus_continuation.txt", "cte.json"),
        ("text_jit.txt", "jit.json"),
        ("text_trigger_fk.txt", "trigger_fk.json"),
        ("text_timing_off.txt", "gather.json"),
        ("text_costs_off.txt", "cte.json"),
        ("json_psql_plus.txt", "gather.json"),
        ("auto_explain.json", "misestimate.json"),
    ],
)
def test_text_forms_match_the_json_capture_of_the_same_statement(text_file, json_file):
    text, data = load(text_file), load(json_file)
    columns = ["node_type", "label", "relation", "index_name", "depth", "parent_relationship", "subplan_name"]
    assert text.nodes[columns].to_dict("records") == data.nodes[columns].to_dict("records")
    if text_file != "text_costs_off.txt":
        assert text.nodes["loops"].tolist() == data.nodes["loops"].tolist()
        assert text.nodes["actual_rows"].tolist() == data.nodes["actual_rows"].tolist()
        assert text.nodes["rows_removed_by_filter"].fillna(-1).tolist() == data.nodes["rows_removed_by_filter"].fillna(-1).tolist()


def test_text_keys_are_read_like_json_keys():
    plan = load("text_pgadmin_quoted.txt")
    hash_node = plan.nodes.loc[plan.nodes["node_type"] == "Hash"].iloc[0]
    assert hash_node["detail"]["Hash Batches"] == 16
    assert hash_node["detail"]["Hash Buckets"] == 4096
    assert hash_node["detail"]["Peak Memory Usage"] == 87
    assert plan.nodes["shared_hit"].iat[0] == 13755 and plan.nodes["temp_read"].iat[0] == 813
    assert plan.planning == {"Shared Hit Blocks": 261}
    spill = load("text_sort_spill.txt").nodes.iloc[0]["detail"]
    assert (spill["Sort Method"], spill["Sort Space Type"], spill["Sort Space Used"]) == ("external merge", "Disk", 4056)
    jit = load("text_jit.txt").jit
    assert jit["functions"] == 8 and jit["total_ms"] == pytest.approx(319.995) and jit["inlining"] is True
    assert load("text_psql_aligned.txt").settings == {}
    assert load("sort_spill.json").settings == {"work_mem": "64kB", "max_parallel_workers_per_gather": "0"}


def test_psql_footers_and_old_total_runtime():
    current, old = load("text_psql_aligned.txt"), load("text_total_runtime.txt")
    assert old.execution_ms == current.execution_ms
    assert math.isnan(old.planning_ms) and not math.isnan(current.planning_ms)


def test_never_executed_nodes_have_no_rows_and_no_time():
    plan = load("text_never_executed.txt")
    never = plan.nodes.loc[plan.nodes["loops"] == 0]
    assert never["label"].tolist() == ["Bitmap Heap Scan on orders o", "Bitmap Index Scan on orders_customer_id_idx"]
    assert (never["total_ms"] == 0).all() and (never["actual_rows"] == 0).all()
    assert never["misestimate"].isna().all()


def test_timing_off_keeps_rows_but_no_times():
    plan = load("text_timing_off.txt")
    assert plan.analyzed and not plan.timed
    assert plan.nodes["total_ms"].isna().all() and plan.nodes["self_ms"].isna().all()
    assert plan.nodes["actual_rows"].iat[-1] == 333333 * 3


def test_costs_off_and_plain_explain_have_estimates_only():
    costs_off = load("text_costs_off.txt")
    assert not costs_off.analyzed and costs_off.nodes["plan_rows"].isna().all()
    assert costs_off.nodes.loc[1, "subplan_name"] == "CTE totals"
    plain = load("plain.json")
    assert not plain.analyzed and plain.nodes["total_cost"].notna().all()
    assert plain.findings.empty


def test_auto_explain_logs_give_query_and_duration():
    text = load("auto_explain_text.log")
    assert text.query.startswith("/* fixture_text */ SELECT count(*) FROM customers c")
    assert text.execution_ms > 0 and text.nodes["node_type"].tolist()[:2] == ["Aggregate", "Nested Loop"]
    data = load("auto_explain.json")
    assert "region_id = 7" in data.query


# --- self-time semantics ---------------------------------------------------------------------------
def node(kind, ms, loops=1, rows=1, children=(), **keys):
    """A JSON plan node for hand-made semantic cases."""
    data = {"Node Type": kind, "Actual Total Time": ms, "Actual Loops": loops, "Actual Rows": rows, "Plan Rows": rows}
    data.update(keys)
    if children:
        data["Plans"] = list(children)
    return data


def self_times(root) -> list[float]:
    return [round(v, 6) for v in parse({"Plan": root}).nodes["self_ms"]]


def test_times_are_per_loop():
    root = node("Nested Loop", 50.0, children=[
        node("Seq Scan", 5.0, rows=100, **{"Parent Relationship": "Outer"}),
        node("Index Scan", 0.4, loops=100, **{"Parent Relationship": "Inner"}),
    ])
    assert self_times(root) == [5.0, 5.0, 40.0]
    plan = parse({"Plan": root})
    assert plan.nodes["total_ms"].tolist() == [50.0, 5.0, 40.0]
    assert plan.nodes["actual_rows"].tolist() == [1.0, 100.0, 100.0]


def test_gather_children_are_wall_time_shared_by_leader_and_workers():
    root = node("Gather", 30.0, **{"Workers Planned": 2, "Workers Launched": 2}, children=[
        node("Seq Scan", 27.0, loops=3, **{"Parent Relationship": "Outer", "Rows Removed by Filter": 10}),
    ])
    plan = parse({"Plan": root})
    assert plan.nodes["total_ms"].tolist() == [30.0, 27.0]  # 27 x 3 loops / (2 workers + leader)
    assert plan.nodes["self_ms"].tolist() == [3.0, 27.0]
    assert plan.nodes["rows_removed_by_filter"].iat[1] == 30  # per loop x loops


def test_initplan_time_is_taken_from_the_node_using_its_parameter_not_the_one_it_hangs_under():
    root = node("Hash Join", 100.0, children=[
        node("Aggregate", 20.0, **{"Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $0)"}),
        node("Seq Scan", 60.0, **{"Parent Relationship": "Outer", "Filter": "(x > $0)"}),
        node("Hash", 10.0, **{"Parent Relationship": "Inner"}),
    ])
    # Hash Join 100 - 60 - 10 = 30; Seq Scan 60 includes the InitPlan's 20 -> 40
    assert self_times(root) == [30.0, 20.0, 40.0, 10.0]


def test_initplan_in_pg17_notation_and_under_gather_params_evaluated():
    pg17 = node("Result", 50.0, children=[
        node("Aggregate", 20.0, **{"Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1"}),
        node("Seq Scan", 45.0, **{"Parent Relationship": "Outer", "Filter": "(x > (InitPlan 1).col1)"}),
    ])
    assert self_times(pg17) == [5.0, 20.0, 25.0]
    gather = node("Gather", 50.0, **{"Workers Launched": 1, "Params Evaluated": ["$0"]}, children=[
        node("Aggregate", 20.0, **{"Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $0)"}),
        node("Seq Scan", 25.0, loops=2, **{"Parent Relationship": "Outer", "Filter": "(x > $0)"}),
    ])
    # the leader evaluates the InitPlan before starting workers: its time is in the Gather
    assert self_times(gather) == [5.0, 20.0, 25.0]


def test_initplan_without_a_visible_user_lands_in_the_node_it_hangs_under():
    root = node("Result", 30.0, children=[
        node("Aggregate", 25.0, **{"Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $0)"}),
    ])
    assert self_times(root) == [5.0, 25.0]


def test_cte_time_is_taken_from_the_cte_scans_once():
    root = node("Hash Join", 120.0, children=[
        node("Seq Scan", 80.0, **{"Parent Relationship": "InitPlan", "Subplan Name": "CTE t"}),
        node("CTE Scan", 90.0, **{"Parent Relationship": "Outer", "CTE Name": "t"}),
        node("Hash", 20.0, **{"Parent Relationship": "Inner"}, children=[
            node("CTE Scan", 15.0, **{"Parent Relationship": "Outer", "CTE Name": "t"}),
        ]),
    ])
    selfs = self_times(root)
    assert selfs[0] == 10.0 and selfs[1] == 80.0
    assert selfs[2] + selfs[4] == pytest.approx(90.0 + 15.0 - 80.0)  # the CTE's 80 ms taken once
    assert sum(selfs) == pytest.approx(120.0)


def test_subplan_time_is_inside_the_node_that_runs_it_and_self_time_is_clamped():
    root = node("Seq Scan", 40.0, **{"Filter": "(SubPlan 1)"}, children=[
        node("Index Scan", 0.05, loops=1000, **{"Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1"}),
    ])
    plan = parse({"Plan": root})
    # the child's 50 ms cannot exceed its parent's inclusive time: the parent grows to 50, self 0
    assert plan.nodes["self_ms"].tolist() == [0.0, 50.0]
    assert (plan.nodes["self_ms"] >= 0).all()


def test_rounding_with_many_loops_is_absorbed_by_the_parent():
    plan = load("nested_loop_memoize.json")
    memoize = plan.nodes.loc[plan.nodes["node_type"] == "Memoize"].iloc[0]
    child = plan.nodes.loc[plan.nodes["parent_id"] == memoize["node_id"]].iloc[0]
    assert memoize["detail"]["Cache Hits"] > 900_000
    assert memoize["total_ms"] >= child["total_ms"] > 0 and memoize["self_ms"] == 0


def test_triggers_are_outside_every_node():
    plan = load("trigger.json")
    assert plan.triggers[["trigger", "relation", "calls"]].to_dict("records") == [
        {"trigger": "orders_audit", "relation": "orders", "calls": 2000}
    ]
    assert plan.trigger_ms > 0 and plan.root_ms + plan.trigger_ms <= plan.execution_ms
    text = load("text_trigger_fk.txt")
    assert text.triggers["constraint"].tolist() == ["orders_customer_id_fkey"] and text.triggers["calls"].iat[0] == 5000


def test_pg17_initplan_notation_gives_the_same_self_times():
    old, new = load("text_unicode_border2.txt"), load("text_pg17_initplan.txt")
    assert new.nodes["self_ms"].tolist() == old.nodes["self_ms"].tolist()
    assert new.nodes["subplan_name"].iat[1] == "InitPlan 1"


def test_unknown_and_newer_keys_are_kept_in_detail():
    plan = load("future_keys.json")
    scan = plan.nodes.iloc[1]["detail"]
    assert scan["Some Future Key"] == {"Nested": [1, 2, 3]} and scan["Disabled"] is False
    assert plan.extra["Future Top Key"] == [1, "two"] and "Serialization" in plan.extra
    assert plan.planning["Memory Used"] == 21
    text = load("text_pg18_keys.txt")
    index_scan = text.nodes.iloc[1]["detail"]
    assert index_scan["Index Searches"] == 1
    assert index_scan["Unparsed Lines"] == ["Some Future Line Without A Colon"]
    assert text.nodes.iloc[0]["detail"]["Disabled"] == "true"
    assert text.planning["Memory"].startswith("used=21kB") and "Serialization" in text.extra


def test_bare_object_array_and_node_forms():
    document = json.loads((FIXTURES / "seq_scan.json").read_text())
    for form in (document, document[0], document[0]["Plan"], json.dumps(document[0])):
        assert parse(form).nodes["label"].tolist() == ["Sort", "Seq Scan on orders"]


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, words, line",
    [
        ("empty.txt", "empty", 1),
        ("truncated.json", "truncated JSON", 51),  # the file's last line, cut in a string
        ("not_a_plan.txt", "not an EXPLAIN plan", 1),
        ("bad_figures.txt", "cannot read the cost or actual figures", 2),
    ],
)
def test_bad_files_give_one_line_naming_file_and_line(name, words, line):
    path = FIXTURES / "broken" / name
    with pytest.raises(BadInputError) as caught:
        parse_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: ") and words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, words",
    [
        ("[]", "found a list of 0 items"),
        ('{"Query": 1}', 'no "Plan" key'),
        ('{"Plan": {"Node Type": "Sort", "Plans": 3}}', "is not a list"),
        ("<explain xmlns=...>", "XML and YAML"),
        ("Seq Scan on t\n  Rows Removed by Filter: many", "should be a number"),
        ("   \n\n", "empty"),
        ("QUERY PLAN\n----------\n(0 rows)\n", "no plan"),
    ],
)
def test_bad_texts(text, words):
    with pytest.raises(BadInputError, match=words):
        parse(text)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        parse_file(tmp_path / "nope.json")
    with pytest.raises(BadInputError, match="folder"):
        parse_file(tmp_path)


# --- fuzz: any text gives a Plan or a PerfkitError, never a crash ----------------------------------
SAMPLE_LINES = [
    line
    for name in ("text_unicode_border2.txt", "text_plus_continuation.txt", "text_pgadmin_quoted.txt", "text_jit.txt", "text_trigger_fk.txt")
    for line in (FIXTURES / name).read_text().splitlines()
]
JSON_TEXT = (FIXTURES / "initplan_join.json").read_text()


def parses_or_refuses(text: str) -> None:
    try:
        plan = parse(text)
    except PerfkitError as err:
        assert str(err)
        return
    assert len(plan.nodes) >= 1
    assert plan.findings is not None
    assert ((plan.nodes["self_ms"] >= 0) | plan.nodes["self_ms"].isna()).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_fuzz_any_text(text):
    parses_or_refuses(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SAMPLE_LINES), min_size=1, max_size=25), st.integers(0, 6))
def test_fuzz_shuffled_real_plan_lines(lines, indent):
    parses_or_refuses("\n".join(" " * indent + line for line in lines))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(JSON_TEXT)), st.integers(0, 40), st.text(max_size=5))
def test_fuzz_damaged_json(cut, drop, insert):
    parses_or_refuses(JSON_TEXT[:cut] + insert + JSON_TEXT[cut + drop:])


@settings(max_examples=100, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["Node Type", "Plans", "Plan", "Actual Loops", "Actual Total Time", "Actual Rows",
                         "Plan Rows", "Parent Relationship", "Subplan Name", "Workers Launched", "Filter", "x"]),
        children, max_size=5),
    max_leaves=20,
))
def test_fuzz_json_structures(document):
    try:
        plan = parse(document)
    except PerfkitError:
        return
    assert len(plan.nodes) >= 1
    plan.findings  # noqa: B018 - the rules must not crash either

"""Every paste of one real plan (psql's frame styles, prompts, transcripts, cuts, quotes, GUI exports)
reads as its JSON twin: the same node table. Fixtures: tests/fixtures/plans/styles (README.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from perfkit.errors import BadInputError
from perfkit.plans import parse, parse_all, parse_file

STYLES = Path(__file__).parent / "fixtures" / "plans" / "styles"
SAME = ["node_id", "parent_id", "depth", "node_type", "relation", "index_name", "alias", "label", "plan_rows",
        "startup_cost", "total_cost", "parent_relationship"]
RAN = ["actual_rows", "loops", "rows_removed_by_filter"]


def _table(plan, columns):
    return plan.nodes[columns].astype(object).where(plan.nodes[columns].notna(), None).values.tolist()


@pytest.mark.parametrize("name", sorted(p.name for p in STYLES.glob("plain_*.txt")))
def test_every_paste_reads_as_its_json_twin(name):
    twin = parse_file(STYLES / "plain.json")
    plan = parse_file(STYLES / name)
    assert len(plan.nodes) == len(twin.nodes) == 8
    assert _table(plan, SAME) == _table(twin, SAME)
    assert plan.planning.get("Shared Hit Blocks") is not None


@pytest.mark.parametrize("name", ["analyze_border1.txt", "analyze_unicode_double_both.txt"])
def test_analyzed_twins_agree_on_rows_loops_and_names(name):
    twin = parse_file(STYLES / "analyze.json")  # another execution: rows and loops equal, times differ
    plan = parse_file(STYLES / name)
    assert _table(plan, SAME + RAN) == _table(twin, SAME + RAN)
    assert plan.nodes["total_ms"].notna().all() and twin.nodes["total_ms"].notna().all()
    assert math.isclose(plan.nodes["total_ms"].iat[0], plan.execution_ms, rel_tol=0.2)


def test_quoted_relation_is_the_name_itself():
    plan = parse_file(STYLES / "plain_border2.txt")
    assert "mytable:2020-12-09" in plan.nodes["relation"].tolist()
    assert "Big Orders" in plan.nodes["relation"].tolist()
    qualified = parse('Seq Scan on "Sales"."Big Orders" o  (cost=0.00..4622.00 rows=300000 width=10)')
    assert qualified.nodes[["relation", "alias"]].values.tolist() == [["Big Orders", "o"]]
    assert qualified.nodes["detail"].iat[0]["Schema"] == "Sales"
    index = parse('Index Scan using "My Index" on "My Table"  (cost=0.29..8.31 rows=1 width=37)')
    assert index.nodes[["index_name", "relation"]].values.tolist() == [["My Index", "My Table"]]


def test_transcript_with_a_bracket_and_two_plans():
    plans = parse_all((STYLES / "plain_two_plans.txt").read_text())
    assert [p.nodes["node_type"].iat[0] for p in plans] == ["Aggregate", "Index Scan"]
    first = parse_file(STYLES / "plain_two_plans.txt")
    assert "2 plans" in first.extra["notes"][0]
    assert _table(first, SAME) == _table(parse_file(STYLES / "plain.json"), SAME)


@pytest.mark.parametrize("text, expected", [
    ("# explain analyze select 1;\nnot a plan at all\n", "not an EXPLAIN plan"),
    ("QUERY PLAN\n----------\n(0 rows)\n", "expected a plan node"),
])
def test_refusals_name_what_was_expected(text, expected):
    with pytest.raises(BadInputError, match=expected):
        parse(text, path="paste.txt")


def test_cut_inside_query_plan_and_cost_and_a_prompt_above():
    body = (STYLES / "plain_border1.txt").read_text().split("\n")
    header = body[0].rstrip()
    cut = header.index("QUERY PL") + len("QUERY PL")
    node = body[2]
    at = node.index("(cost=") + 4
    text = "\n".join(["-- taken from https://example.org/plans/1", "db=# EXPLAIN (BUFFERS) SELECT ...;",
                      header[:cut], header[cut:], *body[1:2], node[:at], node[at:], *body[3:]])
    plan = parse(text)
    assert _table(plan, SAME) == _table(parse_file(STYLES / "plain.json"), SAME)

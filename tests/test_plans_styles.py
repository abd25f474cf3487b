"""Every paste of one real plan (psql's frame styles, prompts, transcripts, cuts, quotes, GUI exports)
reads as its JSON twin: the same node table. Fixtures: tests/fixtures/plans/styles (README.md)."""

from __future__ import annotations

import math
import re
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


def test_io_timings_are_numbers_in_text_and_json():
    # captured with track_io_timing = on; two executions, so the figures differ by run
    text, twin = parse_file(STYLES / "io_analyze.txt"), parse_file(STYLES / "io_analyze.json")
    for plan in (text, twin):
        scan = plan.nodes.loc[plan.nodes["node_type"] == "Seq Scan"].iloc[0]
        assert scan["io_read_ms"] > 0 and scan["self_io_read_ms"] == scan["io_read_ms"]
        assert plan.nodes["self_io_read_ms"].iat[0] == 0  # the Aggregate's I/O is its scan's
        assert plan.io_read_ms == scan["io_read_ms"] and plan.io_write_ms == 0
    printed = re.search(r"I/O Timings: shared read=([\d.]+)", (STYLES / "io_analyze.txt").read_text()).group(1)
    assert text.nodes["io_read_ms"].iat[1] == float(printed)  # as the text prints it
    assert "I/O Timings" not in str(text.nodes["detail"].iat[1])
    # the same plan printed in each version's words reads the same
    for line in ("I/O Timings: read=6.056", "I/O Timings: shared/local read=6.056",
                 "I/O Timings: shared read=6.000, local read=0.056", "I/O Timings: shared read=6.056 write=0.000"):
        plan = parse(f"Seq Scan on big  (cost=0.00..1.00 rows=1 width=0) (actual time=0.1..9.0 rows=1 loops=1)\n  {line}")
        assert math.isclose(plan.nodes["io_read_ms"].iat[0], 6.056), line
    wal = parse("Insert on t  (cost=0.00..0.01 rows=0 width=0) (actual time=0.1..0.1 rows=0 loops=1)\n"
                "  WAL: records=3 fpi=1 bytes=412")
    assert wal.nodes[["wal_records", "wal_bytes"]].values.tolist() == [[3.0, 412.0]]


def test_io_bound_node_finds_the_scan_waiting_on_reads():
    bound = parse_file(STYLES / "io_bound.json")  # an index scan reading pages after a restart
    found = bound.findings
    assert found["kind"].tolist() == ["io_bound_node"] and found["fix"].iat[0] is None
    assert "shared_buffers" in found["recommendation"].iat[0]
    plan = parse_file(STYLES / "io_analyze.json")
    assert plan.find(rules=["io_bound_node"]).empty  # the kernel's cache answered: not most of the time
    found = plan.find(rules=["io_bound_node"], io_bound_node={"min_share": 0.05, "min_ms": 1.0})
    assert found["kind"].tolist() == ["io_bound_node"]
    assert "waiting on reads" in found["evidence"].iat[0]
    assert found["fix"].iat[0] is not None and "big" in found["sql"].iat[0]  # the index that avoids the read


def test_perfkit_plan_file_does_not_load_the_database_drivers():
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "perfkit", "plan", str(STYLES / "io_bound.json")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, check=True)
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "io_bound_node" in done.stdout
    assert not {name for name in loaded if name.split(".")[0] in ("sqlalchemy", "psycopg")}

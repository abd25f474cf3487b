"""PostgreSQL 12-18 plan features, read from real EXPLAIN output others published (tests/fixtures/plans/README.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from perfkit.plans import parse_file

VERSIONS = Path(__file__).parent / "fixtures" / "plans" / "pg_versions"


def _node(plan, node_type: str):
    return plan.nodes.loc[plan.nodes["node_type"] == node_type].iloc[0]


def test_pg18_docs_index_searches_fractional_rows_and_planning_buffers():
    plan = parse_file(VERSIONS / "pg18_docs_nested_loop.txt")  # the command and psql's header above it
    assert list(plan.nodes["node_type"]) == ["Nested Loop", "Bitmap Heap Scan", "Bitmap Index Scan", "Index Scan"]
    inner = _node(plan, "Index Scan")
    assert (inner["loops"], inner["actual_rows"], inner["index_name"]) == (10, 10.0, "tenk2_unique2")  # rows=1.00 x 10
    assert inner["detail"]["Index Searches"] == 10 and _node(plan, "Bitmap Index Scan")["detail"]["Index Searches"] == 1
    assert inner["total_ms"] == pytest.approx(0.03) and plan.nodes["shared_written"].iat[1] == 4
    assert plan.planning == {"Shared Hit Blocks": 15, "Shared Dirtied Blocks": 9}
    assert (plan.planning_ms, plan.execution_ms) == (0.485, 0.073)
    sort = parse_file(VERSIONS / "pg18_docs_sort_hash.txt")
    assert list(sort.nodes["relation"]) == [None, None, "tenk2", None, "tenk1", None]
    assert _node(sort, "Hash")["detail"]["Hash Buckets"] == 1024 and _node(sort, "Sort")["detail"]["Sort Space Used"] == 74
    assert _node(sort, "Seq Scan")["actual_rows"] == 10000 and sort.planning["Shared Hit Blocks"] == 12
    skip = parse_file(VERSIONS / "pg18_docs_skip_scan.txt")  # PG 18 skip scan: 3 searches of one index
    assert skip.nodes["node_type"].tolist() == ["Index Only Scan"] and skip.nodes["heap_fetches"].iat[0] == 0
    assert skip.nodes["detail"].iat[0]["Index Searches"] == 3


def test_incremental_sort_and_memoize_with_workers_and_jit():
    incremental = parse_file(VERSIONS / "pg_docs_incremental_sort.txt")
    assert list(incremental.nodes["node_type"]) == ["Limit", "Incremental Sort", "Index Scan"]
    assert _node(incremental, "Incremental Sort")["detail"]["Presorted Key"] == ["four"] and not incremental.analyzed
    plan = parse_file(VERSIONS / "pg18_memoize_jit.txt")
    assert list(plan.nodes["node_type"]) == ["Nested Loop", "Limit", "Gather Merge", "Sort", "Seq Scan", "Memoize",
                                             "Index Scan"]
    memoize = _node(plan, "Memoize")
    assert (memoize["loops"], memoize["detail"]["Cache Misses"], memoize["detail"]["Peak Memory Usage"]) == (1000, 1000, 128)
    assert memoize["detail"]["Cache Key"] == "o.customer_id" and memoize["detail"]["Cache Hits"] == 0
    sort = _node(plan, "Sort")  # under Gather Merge: rows=888.67 per loop of the leader and 2 workers
    assert sort["actual_rows"] == pytest.approx(888.67 * 3) and sort["total_ms"] == pytest.approx(561.343)
    assert _node(plan, "Seq Scan")["detail"]["Parallel Aware"] is True
    assert _node(plan, "Gather Merge")["workers_launched"] == 2 and _node(plan, "Index Scan")["detail"]["Index Searches"] == 1000
    assert plan.jit["functions"] == 17 and plan.jit["total_ms"] == 12.258 and plan.execution_ms == 613.422


def test_disabled_nodes_and_fractional_rows_under_loops():
    disabled = parse_file(VERSIONS / "pev2_disabled.txt")  # PG 18: a node the settings disabled says so
    assert disabled.nodes["detail"].iat[0]["Disabled"] == "true" and disabled.settings == {"enable_seqscan": "off"}
    assert disabled.nodes["plan_rows"].iat[0] == 333333 and not disabled.analyzed
    plan = parse_file(VERSIONS / "pev2_fractional_rows.txt")  # psql's unicode rule under QUERY PLAN
    scan = _node(plan, "Seq Scan")
    assert (scan["loops"], scan["actual_rows"], scan["rows_removed_by_filter"]) == (4, 1.0, 24)  # 0.25 and 6 per loop
    assert _node(plan, "Function Scan")["actual_rows"] == 4 and plan.planning == {"Shared Hit Blocks": 4}


def test_serialization_and_planning_memory_text_and_json_twins_agree():
    text = parse_file(VERSIONS / "pev2_serialization_memory.txt")
    twin = parse_file(VERSIONS / "pev2_serialization_memory_json.txt")  # the same statement again, FORMAT JSON
    assert (text.format, twin.format) == ("text", "json")
    columns = ["node_type", "relation", "plan_rows", "actual_rows", "loops", "shared_hit", "startup_cost", "total_cost"]
    assert text.nodes[columns].to_dict("records") == twin.nodes[columns].to_dict("records")
    for key in ("Shared Hit Blocks", "Memory Used", "Memory Allocated"):
        assert text.planning[key] == twin.planning[key]
    assert text.extra["Serialization"]["Output Volume"] == twin.extra["Serialization"]["Output Volume"] == 31251
    assert text.extra["Serialization"]["Shared Hit Blocks"] == twin.extra["Serialization"]["Shared Hit Blocks"] == 200
    assert text.extra["Serialization"]["Time"] == 4.69 and twin.extra["Serialization"]["Time"] == 25.481  # two runs
    assert twin.nodes["detail"].iat[0]["Disabled"] is False
    assert not math.isnan(text.root_ms) and not math.isnan(twin.root_ms)

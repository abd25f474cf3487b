"""Plan rules as data: (fixture, expected finding kinds), then thresholds, columns and SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfkit.errors import BadInputError
from perfkit.findings import FINDING_COLUMNS
from perfkit.plans import RULES, parse, parse_file
from perfkit.plans.rules import expression_columns, pattern_columns

FIXTURES = Path(__file__).parent / "fixtures" / "plans"

# fixture -> the exact set of finding kinds with default thresholds
EXPECTED_KINDS = {
    "seq_scan.json": {"seq_scan_large_table", "rows_removed_by_filter"},
    "seq_scan_after_index.json": set(),
    "misestimate.json": {"seq_scan_large_table", "row_misestimate", "rows_removed_by_filter"},
    "sort_spill.json": {"seq_scan_large_table", "sort_spill", "rows_removed_by_filter"},
    "hash_spill.json": {"hash_spill", "rows_removed_by_filter"},
    "hashagg_spill.json": {"hash_spill", "rows_removed_by_filter"},
    "nested_loop.json": {"nested_loop_many_loops", "heap_fetches", "rows_removed_by_filter"},
    "heap_fetches.json": {"heap_fetches"},
    "workers_not_launched.json": {"workers_not_launched", "seq_scan_large_table", "row_misestimate", "rows_removed_by_filter"},
    "jit.json": {"jit_overhead"},
    "styles/io_bound.json": {"io_bound_node"},
    "slow_planning.json": {"slow_planning"},
    "trigger.json": {"trigger_time"},
    "trigger_fk.json": {"trigger_time"},
    "gather.json": set(),
    "plain.json": set(),
    "text_costs_off.txt": set(),
    "text_never_executed.txt": set(),
    "text_jit.txt": {"jit_overhead"},
    "text_trigger_fk.txt": {"trigger_time"},
    "text_sort_spill.txt": {"seq_scan_large_table", "sort_spill", "rows_removed_by_filter"},
}


@pytest.mark.parametrize("name, kinds", sorted(EXPECTED_KINDS.items()))
def test_fixture_gives_expected_kinds(name, kinds):
    findings = parse_file(FIXTURES / name).findings
    assert set(findings["kind"]) == kinds
    assert list(findings.columns[: len(FINDING_COLUMNS)]) == FINDING_COLUMNS
    for row in findings.itertuples(index=False):
        assert row.subject and row.evidence and row.recommendation
        assert any(ch.isdigit() for ch in row.evidence), "evidence gives the numbers"


def test_every_rule_has_a_fixture_and_a_docstring_with_the_fix():
    covered = set().union(*EXPECTED_KINDS.values())
    assert covered == set(RULES)
    for name, rule in RULES.items():
        doc = rule.__doc__ or ""
        assert "Anti-pattern" in doc and "Fix:" in doc, name


# fixture, kind -> (subject, words in the evidence, the SQL)
DETAILS = [
    ("seq_scan.json", "seq_scan_large_table", "Seq Scan on orders", "read 1,000,000 rows to keep 10,000",
     "CREATE INDEX CONCURRENTLY orders_tenant_id_status_created_at_idx ON orders (tenant_id, status, created_at);"),
    ("misestimate.json", "row_misestimate", "Seq Scan on orders", "1,000x under-estimate",
     "CREATE STATISTICS orders_region_id_zone_id_stats (dependencies, ndistinct, mcv) ON region_id, zone_id FROM orders;\nANALYZE orders;"),
    ("sort_spill.json", "sort_spill", "Sort", "external merge sort wrote 4,056 kB to disk (work_mem = 64kB)",
     "SET work_mem = '8MB';"),
    ("hash_spill.json", "hash_spill", "Hash", "split into 16 batches", "SET work_mem = '4MB';"),
    ("heap_fetches.json", "heap_fetches", "Index Only Scan using events_account_id_idx on events", "79,604 heap fetches",
     "VACUUM (ANALYZE) events;"),
    ("workers_not_launched.json", "workers_not_launched", "Gather", "2 parallel workers planned, 0 launched", ""),
    ("workers_not_launched.json", "seq_scan_large_table", "Parallel Seq Scan on orders", "read 1,000,000 rows",
     "CREATE EXTENSION IF NOT EXISTS pg_trgm;\nCREATE INDEX CONCURRENTLY orders_note_trgm_idx ON orders USING gin (note gin_trgm_ops);"),
    ("nested_loop.json", "nested_loop_many_loops", "Nested Loop", "ran 4,000 times", ""),
    ("trigger.json", "trigger_time", "Trigger orders_audit on orders", "2,000 calls", ""),
    ("trigger_fk.json", "trigger_time", "Trigger for constraint orders_customer_id_fkey on orders", "5,000 calls", ""),
    ("text_trigger_fk.txt", "trigger_time", "Trigger for constraint orders_customer_id_fkey", "5,000 calls", ""),
    ("jit.json", "jit_overhead", "JIT compilation", "compiling 8 functions", "SET jit = off;"),
    ("slow_planning.json", "slow_planning", "planning", "% of planning + execution", ""),
    ("initplan_join.json", "rows_removed_by_filter", "Index Scan using orders_pkey on orders o", "97,999 of 99,999 rows",
     "CREATE INDEX CONCURRENTLY orders_tenant_id_id_idx ON orders (tenant_id, id);"),
]


@pytest.mark.parametrize("name, kind, subject, words, sql", DETAILS, ids=[f"{d[0]}-{d[1]}" for d in DETAILS])
def test_finding_names_node_numbers_and_fix(name, kind, subject, words, sql):
    findings = parse_file(FIXTURES / name).findings
    rows = findings.loc[(findings["kind"] == kind) & (findings["subject"] == subject)]
    assert len(rows) == 1, findings[["kind", "subject"]]
    row = rows.iloc[0]
    assert words in row["evidence"]
    assert row["sql"] == sql


def test_severity_grades_and_thresholds_are_arguments():
    plan = parse_file(FIXTURES / "misestimate.json")
    assert plan.find(["row_misestimate"])["severity"].tolist() == ["critical"]
    assert plan.find(["row_misestimate"], row_misestimate={"grades": (10, 2000, 5000)})["severity"].tolist() == ["info"]
    assert plan.find(["row_misestimate"], row_misestimate={"min_rows": 5000}).empty
    assert plan.find(["seq_scan_large_table"], seq_scan_large_table={"min_rows": 2_000_000}).empty
    loops = parse_file(FIXTURES / "nested_loop.json")
    assert loops.find(["nested_loop_many_loops"], nested_loop_many_loops={"min_loops": 5000}).empty
    assert parse_file(FIXTURES / "trigger.json").find(["trigger_time"], trigger_time={"min_share": 0.9}).empty
    assert parse_file(FIXTURES / "slow_planning.json").find(["slow_planning"], slow_planning={"min_ms": 1e6}).empty
    with pytest.raises(BadInputError, match="unknown plan rule"):
        plan.find(["no_such_rule"])


def test_findings_are_ranked_and_point_at_nodes():
    findings = parse_file(FIXTURES / "workers_not_launched.json").findings
    ranks = findings["severity"].map({"critical": 0, "warning": 1, "info": 2}).tolist()
    assert ranks == sorted(ranks)
    scan = findings.loc[findings["kind"] == "seq_scan_large_table"].iloc[0]
    assert scan["node_id"] == 3 and scan["benefit_ms"] > 0
    assert findings.loc[findings["kind"] == "workers_not_launched", "node_id"].tolist() == [1]


def test_limit_overestimates_are_not_misestimates():
    limited = {"Plan": {
        "Node Type": "Limit", "Plan Rows": 10, "Actual Rows": 10, "Actual Loops": 1, "Actual Total Time": 1.0,
        "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Parent Relationship": "Outer",
                   "Plan Rows": 1000000, "Actual Rows": 10, "Actual Loops": 1, "Actual Total Time": 0.9}],
    }}
    assert parse(limited).find(["row_misestimate"]).empty
    alone = {"Plan": dict(limited["Plan"]["Plans"][0])}
    assert parse(alone).find(["row_misestimate"])["evidence"].str.contains("over-estimate").all()


def test_inherited_misestimates_are_reported_once_where_they_start():
    plan = parse_file(FIXTURES / "misestimate.json")
    # the Aggregate above the misestimated scan returns the 1 row it expected: only the scan is named
    assert plan.find(["row_misestimate"])["subject"].tolist() == ["Seq Scan on orders"]


@pytest.mark.parametrize(
    "expression, table, columns",
    [
        ("((tenant_id = 7) AND (status = 'paid'::text))", None, ["tenant_id", "status"]),
        ("((amount > $0) AND (tenant_id = 3))", None, ["tenant_id", "amount"]),
        ("((created_at > (now() - '1 day'::interval)) AND (o.tenant_id = ANY ('{1,2}'::integer[])))", None, ["tenant_id", "created_at"]),
        ("((status)::text = 'x'::text)", None, ["status"]),
        ("(id = o.customer_id)", ["customers", "c"], ["id"]),
        ("(tier = (InitPlan 1).col1)", None, ["tier"]),
        ("(x = (SubPlan 2))", None, ["x"]),
        ("this is not sql (((", None, []),
    ],
)
def test_expression_columns_use_postgres_parser(expression, table, columns):
    assert expression_columns(expression, table=table) == columns


def test_sort_keys_and_patterns():
    assert expression_columns("o.created_at DESC, id", clause="order") == ["created_at", "id"]
    assert pattern_columns("((note ~~ '%abc%'::text) AND (tenant_id = 1))") == ["note"]
    assert pattern_columns("(tenant_id = 1)") == []


def _scan(filter_text: str, **extra) -> dict:
    """A Seq Scan that reads 1,000,000 rows to keep 1,000 (EXPLAIN ANALYZE JSON)."""
    node = {"Node Type": "Seq Scan", "Relation Name": "t", "Alias": "t", "Filter": filter_text,
            "Rows Removed by Filter": 999000, "Plan Rows": 1000, "Actual Rows": 1000, "Actual Loops": 1,
            "Actual Total Time": 90.0}
    node.update(extra)
    return {"Plan": node, "Execution Time": 91.0}


@pytest.mark.parametrize("word", ["left", "right", "join", "inner", "full", "like", "is", "verbose", "freeze", "user"])
def test_index_fix_on_a_keyword_column_is_valid_sql(word):
    from pglast import parse_sql

    scan = parse(_scan(f'("{word}" = 7)')).find(["seq_scan_large_table"]).iloc[0]
    fix = scan["fix"]
    assert fix.action == "create_index" and fix.key_columns == (word,) and fix.schema is None
    assert scan["sql"] == fix.sql == f'CREATE INDEX CONCURRENTLY t_{word}_idx ON t ("{word}");'
    statement = parse_sql(scan["sql"])[0].stmt
    assert statement.indexParams[0].name == word and statement.relation.relname == "t"


def test_plan_fixes_are_objects_on_the_plan_schema():
    verbose = parse(_scan("((tenant_id = 7) AND (created_at > now()))", Schema="shop", **{"Plan Rows": 1}))
    found = verbose.find(["seq_scan_large_table", "row_misestimate"]).set_index("kind")
    fix = found.loc["seq_scan_large_table", "fix"]
    assert (fix.action, fix.schema, fix.table, fix.key_columns) == ("create_index", "shop", "t", ("tenant_id", "created_at"))
    assert found.loc["seq_scan_large_table", "sql"] == (
        "CREATE INDEX CONCURRENTLY t_tenant_id_created_at_idx ON shop.t (tenant_id, created_at);")
    stats = found.loc["row_misestimate", "fix"]
    assert stats.action == "create_statistics" and stats.schema == "shop" and [t.action for t in stats.then] == ["analyze"]
    # every finding that proposes SQL has the fix it was rendered from; the others have neither
    for name in sorted(EXPECTED_KINDS):
        for row in parse_file(FIXTURES / name).findings.itertuples(index=False):
            assert (row.fix is None) == (row.sql == ""), (name, row.kind)
            assert row.fix is None or row.fix.sql == row.sql
    spill = parse_file(FIXTURES / "sort_spill.json").find(["sort_spill"]).iloc[0]["fix"]
    assert spill.action == "set" and spill.settings == (("work_mem", "8MB"),)
    heap = parse_file(FIXTURES / "heap_fetches.json").find(["heap_fetches"]).iloc[0]["fix"]
    assert (heap.action, heap.table) == ("vacuum", "events")

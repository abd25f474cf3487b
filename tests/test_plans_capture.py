"""Live capture on the sandbox: read-only, writes refused or rolled back, generic plans, whatif, queryid."""

from __future__ import annotations

import pytest

from perfkit import db
from perfkit.errors import BadInputError, QueryTimeout, ReadOnlyViolation
from perfkit.plans import explain, explain_queryid, whatif
from perfkit.plans.capture import inspect_statement


@pytest.fixture(scope="module")
def items(sandbox):
    """A small table (20,000 rows) built once for this module."""
    with sandbox.admin_connect() as conn:
        conn.execute("DROP TABLE IF EXISTS plan_items")
        conn.execute(
            "CREATE TABLE plan_items AS SELECT i AS id, i % 100 AS grp, md5(i::text) AS label "
            "FROM generate_series(1, 20000) i"
        )
        conn.execute("ALTER TABLE plan_items ADD PRIMARY KEY (id)")
        conn.execute("CREATE SEQUENCE IF NOT EXISTS plan_items_seq")
        conn.execute("ANALYZE plan_items")
    return "plan_items"


def count(engine, where: str = "true") -> int:
    return int(db.scalar(engine, f"SELECT count(*) FROM plan_items WHERE {where}"))


@pytest.mark.parametrize(
    "sql, writes, params",
    [
        ("SELECT * FROM t WHERE a = $1 AND b > $2", False, 2),
        ("DELETE FROM t WHERE id = 1", True, 0),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone", True, 0),
        ("SELECT * FROM (WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM x) s", True, 0),
        ("INSERT INTO t SELECT 1", True, 0),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", True, 0),
        ("CREATE TABLE t2 AS SELECT 1", True, 0),
        ("SELECT 1 INTO t3", True, 0),
        ("SELECT 'DELETE FROM t' AS not_a_write, $3", False, 3),
        ("VALUES (1), (2)", False, 0),
    ],
)
def test_statements_are_read_by_postgres_parser(sql, writes, params):
    facts = inspect_statement(sql)
    assert (facts.writes, facts.params) == (writes, params)


@pytest.mark.parametrize(
    "sql, words",
    [
        ("SELECT 1; SELECT 2", "exactly one SQL statement"),
        ("SELECT 1; DELETE FROM t", "exactly one SQL statement"),
        ("SELEC 1", "does not parse"),
        ("", "no SQL statement"),
        ("-- only a comment", "no SQL statement"),
        ("EXPLAIN SELECT 1", "without EXPLAIN"),
        ("VACUUM t", "cannot run a Vacuum"),
    ],
)
def test_refused_before_reaching_the_server(sql, words):
    with pytest.raises(BadInputError, match=words):
        inspect_statement(sql)


def test_explain_analyze_a_select(engine, items):
    plan = explain(engine, "SELECT grp, count(*) FROM plan_items WHERE grp < 10 GROUP BY grp", analyze=True)
    assert plan.analyzed and plan.timed and plan.execution_ms > 0
    scan = plan.nodes.loc[plan.nodes["relation"] == "plan_items"].iloc[0]
    assert scan["actual_rows"] == 2000 and scan["rows_removed_by_filter"] == 18000
    assert plan.nodes["shared_hit"].notna().all()
    assert plan.query.startswith("SELECT grp")


def test_analyze_of_a_write_is_refused_without_the_flag(engine, items):
    before = count(engine)
    for sql in ("DELETE FROM plan_items WHERE id <= 100",
                "WITH gone AS (DELETE FROM plan_items WHERE id <= 100 RETURNING id) SELECT count(*) FROM gone"):
        with pytest.raises(BadInputError, match="allow_writes"):
            explain(engine, sql, analyze=True)
    assert count(engine) == before


def test_plain_explain_of_a_write_runs_nothing(engine, items):
    plan = explain(engine, "DELETE FROM plan_items WHERE id <= 100")
    assert plan.nodes["label"].tolist()[0] == "Delete on plan_items" and not plan.analyzed
    assert count(engine, "id <= 100") == 100


@pytest.mark.parametrize(
    "sql, where",
    [
        ("DELETE FROM plan_items WHERE id <= 100", "id <= 100"),
        ("UPDATE plan_items SET grp = -1 WHERE id <= 100", "grp = -1"),
        ("WITH gone AS (DELETE FROM plan_items WHERE id <= 100 RETURNING id) SELECT count(*) FROM gone", "id <= 100"),
        ("INSERT INTO plan_items SELECT 100000 + i, -2, 'x' FROM generate_series(1, 50) i", "grp = -2"),
    ],
)
def test_allowed_writes_run_and_are_rolled_back(engine, items, sql, where):
    before_total, before_rows = count(engine), count(engine, where)
    plan = explain(engine, sql, analyze=True, allow_writes=True)
    assert plan.analyzed
    assert plan.nodes["actual_rows"].max() in (50, 100)  # the statement really ran
    assert count(engine) == before_total and count(engine, where) == before_rows
    # and the session is read-only again afterwards
    with pytest.raises(ReadOnlyViolation):
        db.query(engine, "DELETE FROM plan_items WHERE id = 1")


def test_read_only_session_stops_writes_the_parser_cannot_see(engine, items):
    with pytest.raises(BadInputError, match=r"nextval\(\) advances a sequence"):
        explain(engine, "SELECT nextval('plan_items_seq')", analyze=True)
    # allow_writes lets the call through, but a SELECT still runs in the read-only transaction
    with pytest.raises(ReadOnlyViolation):
        explain(engine, "SELECT nextval('plan_items_seq')", analyze=True, allow_writes=True)


def test_statement_timeout_applies(sandbox, items):
    engine = db.connect(sandbox.dsn, statement_timeout="200ms")
    try:
        with pytest.raises(QueryTimeout):
            explain(engine, "SELECT pg_sleep(2)", analyze=True)
    finally:
        engine.dispose()


def test_settings_are_local_to_the_explain(engine, items):
    plan = explain(engine, "SELECT * FROM plan_items ORDER BY label", analyze=True, settings={"work_mem": "64kB"})
    assert plan.settings.get("work_mem") == "64kB"
    assert "sort_spill" in set(plan.findings["kind"])
    assert db.scalar(engine, "SHOW work_mem") != "64kB"


def test_generic_plan_for_parameters_then_deallocated(sandbox, items):
    engine = db.connect(sandbox.dsn)  # its own pool: the next query uses the same session
    try:
        plan = explain(engine, "SELECT * FROM plan_items WHERE grp = $1 AND id > $2")
        scan = plan.nodes.iloc[-1]
        assert "$1" in str(scan["detail"]) and not plan.analyzed
        assert db.scalar(engine, "SELECT count(*) FROM pg_prepared_statements") == 0
        assert db.scalar(engine, "SHOW plan_cache_mode") == "auto"
    finally:
        engine.dispose()


def test_analyze_with_parameters_needs_values(engine, items):
    sql = "SELECT count(*) FROM plan_items WHERE grp = $1 AND label <> $2"
    with pytest.raises(BadInputError, match=r"needs values for its 2 parameter"):
        explain(engine, sql, analyze=True)
    with pytest.raises(BadInputError, match="2 parameter"):
        explain(engine, sql, analyze=True, params=[1])
    with pytest.raises(BadInputError, match="no \\$1 placeholders"):
        explain(engine, "SELECT 1", params=[1])
    plan = explain(engine, sql, analyze=True, params=[7, "it's"])
    assert plan.nodes.loc[plan.nodes["relation"] == "plan_items", "actual_rows"].iat[0] == 200


def test_whatif_compares_costs_with_a_hypothetical_index(sandbox, engine, items):
    assert sandbox.hypopg, "hypopg is missing: scripts/setup.sh installs postgresql-NN-hypopg"
    result = whatif(engine, "SELECT * FROM plan_items WHERE label = 'abc'", "CREATE INDEX CONCURRENTLY ON plan_items (label)")
    assert result.used and result.cost_after < result.cost_before / 10
    assert "cheaper" in result.summary()
    assert db.scalar(engine, "SELECT count(*) FROM hypopg_list_indexes") == 0
    assert db.scalar(engine, "SELECT count(*) FROM pg_indexes WHERE tablename = 'plan_items'") == 1  # only the pkey
    useless = whatif(engine, "SELECT count(*) FROM plan_items", "CREATE INDEX ON plan_items (grp)")
    assert not useless.used and "would not use" in useless.summary()
    with pytest.raises(BadInputError, match="one CREATE INDEX"):
        whatif(engine, "SELECT 1", "DROP TABLE plan_items")


def test_explain_by_queryid_gets_a_generic_plan(admin, engine, items, marker):
    admin.execute(f"SELECT /* {marker} */ count(*) FROM plan_items WHERE grp = 5 AND id > 10")
    queryid = admin.execute(
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE %s LIMIT 1", (f"%{marker}%",)
    ).fetchone()[0]
    plan = explain_queryid(engine, queryid)
    assert marker in plan.query and "$1" in plan.query
    assert plan.source == f"queryid {queryid}" and not plan.analyzed
    analyzed = explain_queryid(engine, queryid, analyze=True, params=[5, 10])
    assert analyzed.nodes.iloc[0]["actual_rows"] == 1
    with pytest.raises(BadInputError, match="not in pg_stat_statements"):
        explain_queryid(engine, 12345)

"""EXPLAIN ANALYZE never writes or signals through a side door without allow_writes.

Each door is opened for real on the sandbox: dblink and postgres_fdw connect back to the sandbox
itself, pg_terminate_backend aims at a live session, pg_stat_statements_reset at the real counts.
"""

from __future__ import annotations

import pytest

from perfkit import db
from perfkit.errors import BadInputError
from perfkit.plans import explain

DATABASE = "sidedoors"


@pytest.fixture(scope="module")
def doors(sandbox):
    """A database with dblink, postgres_fdw (a foreign table back to itself), a VOLATILE writing
    function, a view calling it, an IMMUTABLE sql function and a serial table."""
    with sandbox.admin_connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    loopback = f"host=127.0.0.1 port={sandbox.port} dbname={DATABASE} user=postgres"
    with sandbox.admin_connect(DATABASE) as conn:
        for statement in (
            "CREATE EXTENSION IF NOT EXISTS dblink",
            "CREATE EXTENSION IF NOT EXISTS postgres_fdw",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            "DROP TABLE IF EXISTS victims, audit, serials CASCADE",
            "CREATE TABLE victims AS SELECT i AS id, md5(i::text) AS label FROM generate_series(1, 100) i",
            "CREATE TABLE audit (id int, at timestamptz DEFAULT now())",
            "CREATE TABLE serials (id serial PRIMARY KEY, label text)",
            "INSERT INTO serials (label) VALUES ('first')",
            "DROP SERVER IF EXISTS loop CASCADE",
            f"CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '{sandbox.port}', "
            f"dbname '{DATABASE}')",
            "CREATE USER MAPPING FOR postgres SERVER loop OPTIONS (user 'postgres')",
            "CREATE FOREIGN TABLE remote_victims (id int, label text) SERVER loop OPTIONS (table_name 'victims')",
            "CREATE OR REPLACE FUNCTION log_it(n int) RETURNS int LANGUAGE plpgsql VOLATILE AS "
            "$$ BEGIN INSERT INTO audit (id) VALUES (n); RETURN n; END $$",
            "CREATE OR REPLACE VIEW logged_victims AS SELECT id, log_it(id) AS logged FROM victims",
            "CREATE OR REPLACE VIEW nested_logged AS SELECT * FROM logged_victims WHERE id < 5",
            "CREATE OR REPLACE FUNCTION twice(n int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT n * 2 $$",
            "CREATE OR REPLACE FUNCTION half(n int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT n / 2 $$",
            "CREATE OR REPLACE VIEW safe_view AS SELECT id, twice(id) AS doubled, lower(label) AS label FROM victims",
            "CREATE SEQUENCE IF NOT EXISTS loose_seq",
            "ANALYZE victims",
        ):
            conn.execute(statement)
    engine = db.connect(sandbox.dsn_for(DATABASE))
    yield {"engine": engine, "loopback": loopback, "sandbox": sandbox}
    engine.dispose()


def rows(doors, table: str = "victims") -> int:
    with doors["sandbox"].admin_connect(DATABASE) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_dblink_exec_cannot_delete_through_its_own_connection(doors):
    before = rows(doors)
    sql = f"SELECT dblink_exec('{doors['loopback']}', 'DELETE FROM victims WHERE id <= 10')"
    with pytest.raises(BadInputError, match=r"dblink_exec.*own connection"):
        explain(doors["engine"], sql, analyze=True)
    assert rows(doors) == before == 100


def test_foreign_table_through_postgres_fdw_is_refused(doors):
    with pytest.raises(BadInputError, match=r"remote_victims is a foreign table"):
        explain(doors["engine"], "SELECT count(*) FROM remote_victims", analyze=True)
    with pytest.raises(BadInputError, match=r"remote_victims is a foreign table"):  # also hidden in a subquery
        explain(doors["engine"], "SELECT * FROM victims WHERE id IN (SELECT id FROM public.remote_victims)", analyze=True)
    with pytest.raises(BadInputError, match=r"postgres_fdw_disconnect_all\(\) opens its own connection"):
        explain(doors["engine"], "SELECT postgres_fdw_disconnect_all()", analyze=True)
    # plain EXPLAIN plans it and executes nothing
    assert explain(doors["engine"], "SELECT count(*) FROM remote_victims").nodes["label"].iat[0]


def test_pg_terminate_backend_of_a_sleeping_session_is_refused_and_it_survives(doors):
    import threading

    sandbox = doors["sandbox"]
    victim = sandbox.admin_connect(DATABASE)
    pid = victim.info.backend_pid
    sleeper = threading.Thread(target=lambda: victim.execute("SELECT pg_sleep(3)"), daemon=True)
    sleeper.start()
    try:
        for sql in (f"SELECT pg_terminate_backend({pid})", f"SELECT pg_cancel_backend({pid})",
                    f"SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {pid}"):
            with pytest.raises(BadInputError, match=r"pg_(terminate|cancel)_backend\(\) signals another server process"):
                explain(doors["engine"], sql, analyze=True)
        with sandbox.admin_connect(DATABASE) as admin:
            alive = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]
        assert alive == 1
    finally:
        sleeper.join(10)
        assert not victim.closed and victim.execute("SELECT 1").fetchone() == (1,)  # never signalled
        victim.close()


def test_pg_stat_statements_reset_is_refused_and_the_counts_survive(doors):
    def statements() -> int:
        with doors["sandbox"].admin_connect(DATABASE) as conn:
            return int(conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0])

    before = statements()
    assert before > 4
    for sql in ("SELECT pg_stat_statements_reset()", "SELECT pg_stat_reset()",
                "SELECT pg_stat_reset_shared('bgwriter')", "SELECT pg_reload_conf()"):
        with pytest.raises(BadInputError, match=r"\(\) (resets statistics|changes server state)"):
            explain(doors["engine"], sql, analyze=True)
    assert statements() >= before


def test_volatile_user_function_that_inserts_is_refused_directly_and_through_views(doors):
    before = rows(doors, "audit")
    for sql, name in (("SELECT log_it(1)", r"log_it\(integer\) is VOLATILE"),
                      ("SELECT * FROM victims WHERE id = log_it(2)", r"log_it\(integer\) is VOLATILE"),
                      ("SELECT count(*) FROM logged_victims", r"log_it\(integer\) \(through view logged_victims\)"),
                      ("SELECT count(*) FROM nested_logged", r"log_it\(integer\) \(through view logged_victims\)"),
                      ("WITH v AS (SELECT * FROM nested_logged) SELECT count(*) FROM v", r"through view logged_victims")):
        with pytest.raises(BadInputError, match=name):
            explain(doors["engine"], sql, analyze=True)
    assert rows(doors, "audit") == before
    # the caller who asks for it gets it, and the rollback keeps the table as it was
    with pytest.raises(Exception, match="read-only"):
        explain(doors["engine"], "SELECT log_it(3)", analyze=True, allow_writes=True)
    assert rows(doors, "audit") == before


@pytest.mark.parametrize(
    "sql, words",
    [
        ("SELECT set_config('work_mem', '1GB', false)", r"set_config\(\) changes a setting"),
        ("SELECT pg_advisory_lock(42)", r"pg_advisory_lock\(\) takes an advisory lock"),
        ("SELECT pg_try_advisory_xact_lock(42)", r"pg_try_advisory_xact_lock\(\) takes an advisory lock"),
        ("SELECT nextval('loose_seq')", r"nextval\(\) advances a sequence"),
        ("SELECT setval('loose_seq', 100)", r"setval\(\) advances a sequence"),
        ("SELECT pg_notify('channel', 'hello')", r"pg_notify\(\) sends a notification"),
        ("SELECT lo_unlink(1)", r"lo_unlink\(\) works on large objects"),
        ("SELECT dblink_connect('x', 'dbname=sidedoors')", r"dblink_connect\(\) opens its own connection"),
        ("SELECT * FROM public.dblink('dbname=sidedoors', 'SELECT 1') AS t(x int)", r"public.dblink\(\) opens"),
    ],
)
def test_each_side_door_is_refused_with_one_line_naming_it(doors, sql, words):
    with pytest.raises(BadInputError, match=words) as caught:
        explain(doors["engine"], sql, analyze=True)
    assert "\n" not in str(caught.value) and "--allow-writes" in str(caught.value)


def test_the_side_doors_stayed_shut(doors):
    with doors["sandbox"].admin_connect(DATABASE) as conn:
        locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
        seq = conn.execute("SELECT last_value, is_called FROM loose_seq").fetchone()
    assert locks == 0 and seq == (1, False)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT v.id, s.label FROM victims v JOIN serials s ON s.id = v.id WHERE v.id < 10",
        "SELECT lower(label), count(*), max(id), coalesce(min(id), 0) FROM victims GROUP BY 1 ORDER BY 2 DESC",
        "SELECT now(), clock_timestamp(), current_user, length(label) FROM victims LIMIT 3",
        "SELECT twice(id), half(id) FROM victims WHERE twice(id) > 10",
        "SELECT * FROM safe_view WHERE doubled > 100",
        "WITH c AS (SELECT id FROM victims) SELECT count(*) FROM c",
        "SELECT count(*) FROM pg_stat_statements",
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid",
        "SELECT id FROM victims WHERE label LIKE 'a%' AND id BETWEEN 1 AND 50 ORDER BY id DESC",
    ],
)
def test_safe_statements_still_run(doors, sql):
    plan = explain(doors["engine"], sql, analyze=True)
    assert plan.analyzed


def test_user_functions_are_named_in_a_note_even_for_plain_explain(doors):
    plan = explain(doors["engine"], "SELECT * FROM safe_view WHERE id = twice(3)")
    notes = plan.extra["capture_notes"]
    assert len(notes) == 1 and "twice(integer)" in notes[0] and "even under plain EXPLAIN" in notes[0]
    assert explain(doors["engine"], "SELECT lower(label) FROM victims").extra["capture_notes"] == []


def test_allowed_insert_into_a_serial_table_reports_the_sequence(doors):
    before = rows(doors, "serials")
    plan = explain(doors["engine"], "INSERT INTO serials (label) VALUES ('a'), ('b')", analyze=True, allow_writes=True)
    assert rows(doors, "serials") == before  # rolled back
    assert plan.extra["sequences_advanced"] == {"serials_id_seq": 2}
    assert "sequences advanced: serials_id_seq +2" in plan.extra["capture_notes"][-1]


@pytest.mark.parametrize("analyze, count, values",
                         [(False, 0, None), (True, 0, None), (False, 1, None), (False, 1, [5]), (True, 1, [5])])
def test_a_smuggled_second_statement_is_refused_by_the_server_itself(doors, analyze, count, values):
    """Below inspect_statement's single-statement check: the extended protocol takes one command."""
    from perfkit.errors import PerfkitError
    from perfkit.plans.capture import _raw_connection, _server_version, explain_document

    before = rows(doors)
    where = "$1" if count else "1"
    smuggled = f"SELECT {where}::int; DELETE FROM victims WHERE id <= 10"
    with pytest.raises(PerfkitError, match="multiple commands"):
        with _raw_connection(doors["engine"]) as raw:
            version = _server_version(raw)
            raw.rollback()
            raw.execute("SET TRANSACTION READ WRITE")  # even with the session's read-only guard off
            explain_document(raw, smuggled, version, analyze=analyze, count=count, values=values)
    assert rows(doors) == before


def test_cli_explain_prints_the_refusal_the_note_and_the_sequences(doors, capsys):
    from perfkit import cli

    dsn = doors["sandbox"].dsn_for(DATABASE)
    code = cli.main(["explain", "--dsn", dsn, "--analyze", "--sql",
                     f"SELECT dblink_exec('{doors['loopback']}', 'DELETE FROM victims WHERE id <= 10')"])
    err = capsys.readouterr().err
    assert code == 2 and "dblink_exec() opens its own connection" in err and "Traceback" not in err
    assert rows(doors) == 100

    assert cli.main(["explain", "--dsn", dsn, "--sql", "SELECT twice(id) FROM victims"]) == 0
    captured = capsys.readouterr()
    assert "user-defined function(s) twice(integer)" in captured.err

    assert cli.main(["explain", "--dsn", dsn, "--analyze", "--allow-writes", "--sql",
                     "INSERT INTO serials (label) VALUES ('c')"]) == 0
    assert "sequences advanced: serials_id_seq +1" in capsys.readouterr().out

    assert cli.main(["explain", "--dsn", dsn, "--analyze", "--allow-writes", "--json", "--sql",
                     "INSERT INTO serials (label) VALUES ('d')"]) == 0
    import json

    payload = json.loads(capsys.readouterr().out)
    assert payload["sequences_advanced"] == {"serials_id_seq": 1}
    assert any("serials_id_seq +1" in note for note in payload["notes"])


DOOR_CALLS = ["dblink_exec('x', 'DELETE FROM t')", "public.dblink('x', 'SELECT 1')", "pg_terminate_backend(1)",
              "pg_catalog.pg_cancel_backend(1)", "pg_stat_statements_reset()", "pg_stat_reset()", "pg_reload_conf()",
              "lo_unlink(1)", "pg_notify('c', 'x')", "set_config('a', 'b', false)", "pg_advisory_lock(1)",
              "nextval('s')", "setval('s', 1)", "postgres_fdw_disconnect_all()"]
SHAPES = ["SELECT {}", "SELECT * FROM t WHERE id = {}", "SELECT CASE WHEN a THEN {} END FROM t",
          "WITH c AS (SELECT {} AS x) SELECT * FROM c", "SELECT * FROM (SELECT {} AS x) s",
          "SELECT count(*) FILTER (WHERE {} IS NULL) FROM t", "SELECT * FROM t WHERE EXISTS (SELECT {})",
          "SELECT coalesce(NULL, {}) UNION ALL SELECT 1", "SELECT ARRAY[{}]", "SELECT ({})::text",
          "SELECT * FROM t JOIN u ON u.id = {}", "SELECT * FROM t ORDER BY {} LIMIT 1"]


def test_write_detection_finds_every_door_in_any_shape():
    """Property: a side-door call anywhere in a statement, nested any depth, is found by name."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from perfkit.plans.safety import _door, _parse, find_calls

    @settings(max_examples=300, deadline=None)
    @given(call=st.sampled_from(DOOR_CALLS), shapes=st.lists(st.sampled_from(SHAPES), min_size=1, max_size=4))
    def check(call, shapes):
        text = shapes[0].format(call)
        for shape in shapes[1:]:  # the statement so far becomes a scalar subquery of the next one
            text = shape.format(f"({text})")
        found = [name for _schema, name, _n in find_calls(_parse(text)).functions if _door(name)]
        assert found, text

    check()

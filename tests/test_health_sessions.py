"""perfkit.health session checks (idle in transaction, lock waits, long statements, connections) and privileges."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from perfkit import db, health
from perfkit.health import sessions


def wait_until(admin, sql: str, params, timeout: float = 10.0) -> None:
    """Poll the server until ``sql`` returns a row (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.execute(sql, params).fetchone():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for: {sql} {params}")


@pytest.fixture(scope="module")
def scene(sandbox):
    """An idle-in-transaction session, a lock holder and a session blocked behind it."""
    schema = "hs_" + uuid.uuid4().hex[:8]
    admin = sandbox.admin_connect()
    admin.execute(f"CREATE SCHEMA {schema}")
    admin.execute(f"CREATE TABLE {schema}.lockme (id int PRIMARY KEY, v int)")
    admin.execute(f"INSERT INTO {schema}.lockme VALUES (1, 0)")

    idle = sandbox.admin_connect(autocommit=False)
    idle.execute("SELECT 1")  # psycopg opened a transaction: now idle in it

    holder = sandbox.admin_connect(autocommit=False)
    holder.execute(f"UPDATE {schema}.lockme SET v = v + 1 WHERE id = 1")

    waiter = sandbox.admin_connect()
    waiter_pid = waiter.info.backend_pid
    errors: list[BaseException] = []

    def blocked_update():
        try:
            waiter.execute(f"UPDATE {schema}.lockme SET v = v + 10 WHERE id = 1")
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            errors.append(err)

    thread = threading.Thread(target=blocked_update, daemon=True)
    thread.start()
    wait_until(admin, "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", (waiter_pid,))
    yield {
        "schema": schema,
        "idle_pid": idle.info.backend_pid,
        "holder_pid": holder.info.backend_pid,
        "waiter_pid": waiter_pid,
    }
    holder.rollback()
    thread.join(timeout=10)
    assert not errors and not thread.is_alive()
    for conn in (idle, holder, waiter):
        conn.close()
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


def run(check, engine, **thresholds):
    with db.session(engine) as conn:
        return check(conn, **thresholds)


def pids(found) -> set[int]:
    return {f["pid"] for f in found}


def test_idle_in_transaction_is_found_past_its_threshold(engine, scene):
    found = run(sessions.idle_in_transaction, engine, min_seconds=0)
    assert {scene["idle_pid"], scene["holder_pid"]} <= pids(found)
    row = next(f for f in found if f["pid"] == scene["idle_pid"])
    assert row["kind"] == "idle_in_transaction" and f"pid {scene['idle_pid']}" in row["subject"]
    assert "idle in transaction for" in row["evidence"] and "SELECT 1" in row["evidence"]
    assert row["sql"] == f"SELECT pg_terminate_backend({scene['idle_pid']});"
    assert scene["idle_pid"] not in pids(run(sessions.idle_in_transaction, engine))  # default: 60 s
    critical = run(sessions.idle_in_transaction, engine, min_seconds=0, critical_seconds=0)
    assert {f["severity"] for f in critical} == {"critical"}


def test_lock_wait_names_waiter_blocker_and_table(engine, scene):
    found = run(sessions.lock_waits, engine, min_seconds=0)
    row = next(f for f in found if f["pid"] == scene["waiter_pid"])
    assert row["kind"] == "lock_wait"
    assert row["blocked_by"] == [scene["holder_pid"]]
    assert f"blocked by pid {scene['holder_pid']}" in row["evidence"]
    assert f"{scene['schema']}.lockme" in row["evidence"] and "idle in transaction" in row["evidence"]
    assert f"pg_terminate_backend({scene['holder_pid']})" in row["sql"]
    assert scene["waiter_pid"] not in pids(run(sessions.lock_waits, engine, min_seconds=3600))


def test_long_running_statement_threshold(engine, scene):
    found = run(sessions.long_running_queries, engine, min_seconds=0)
    row = next(f for f in found if f["pid"] == scene["waiter_pid"])
    assert row["kind"] == "long_running_query" and "waiting on Lock/" in row["evidence"]
    assert scene["waiter_pid"] not in pids(run(sessions.long_running_queries, engine))


def test_connection_saturation_thresholds(engine, scene):
    assert run(sessions.connection_saturation, engine) == []  # a handful of the sandbox's 100
    warning = run(sessions.connection_saturation, engine, warning_share=0.01)
    assert [f["severity"] for f in warning] == ["warning"]
    assert "idle in transaction" in warning[0]["evidence"] and "of max_connections 100" in warning[0]["evidence"]
    critical = run(sessions.connection_saturation, engine, warning_share=0.01, critical_share=0.02)
    assert [f["severity"] for f in critical] == ["critical"]


def test_check_reports_sessions_together_with_the_rest(engine, scene):
    findings = health.check(
        engine,
        checks=[sessions.idle_in_transaction, sessions.lock_waits],
        min_seconds=0,
    )
    assert {"idle_in_transaction", "lock_wait"} <= set(findings["kind"])
    assert set(findings["check"]) == {"idle_in_transaction", "lock_waits"}


# -- privileges and timeouts ------------------------------------------------------------------


@pytest.fixture(scope="module")
def unprivileged(sandbox):
    """A plain LOGIN role (password auth over 127.0.0.1), a schema it can read, a table it cannot."""
    role = "hr_" + uuid.uuid4().hex[:8]
    schema = role + "_s"
    with sandbox.admin_connect() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(f"CREATE TABLE {schema}.things (id int PRIMARY KEY, a int)")
        admin.execute(f"CREATE INDEX things_a_idx ON {schema}.things (a)")
        admin.execute(f"CREATE TABLE {schema}.secret (id int)")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        engine = db.connect(sandbox.dsn_for(sandbox.database, role, f"pw-{role}"))
        yield {"role": role, "schema": schema, "engine": engine}
        engine.dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")


def test_missing_privilege_becomes_info_and_other_checks_still_run(sandbox, unprivileged, scene):
    engine = unprivileged["engine"]
    findings = health.check(engine, per_check={"unused_indexes": {"min_size_bytes": 0}})
    skipped = findings[findings["kind"] == "missing_privilege"]
    assert set(skipped["subject"]) == {
        "connection_saturation",
        "pool_sizing",
        "idle_in_transaction",
        "long_running_queries",
        "lock_waits",
        "max_connections",
    }
    assert set(skipped["severity"]) == {"info"}
    assert skipped["evidence"].str.contains("pg_read_all_stats").all()
    # the catalog checks ran for this role and still found the unused index
    assert f"{unprivileged['schema']}.things_a_idx" in set(findings.loc[findings["kind"] == "unused_index", "subject"])
    assert "idle_in_transaction" not in set(findings["kind"])

    with sandbox.admin_connect() as admin:
        admin.execute(f"GRANT pg_read_all_stats TO {unprivileged['role']}")
    try:
        granted = health.check(engine, checks=[sessions.idle_in_transaction], min_seconds=0)
        assert scene["idle_pid"] in set(granted["pid"].dropna().astype(int))
    finally:
        with sandbox.admin_connect() as admin:
            admin.execute(f"REVOKE pg_read_all_stats FROM {unprivileged['role']}")


def test_a_check_the_server_refuses_becomes_info_naming_the_error(unprivileged):
    secret = f"{unprivileged['schema']}.secret"

    def secret_rows(conn):
        """A check reading a table this role has no SELECT on."""
        db.query(conn, f"SELECT count(*) FROM {secret}")
        return []

    findings = health.check(unprivileged["engine"], checks=[secret_rows, sessions.connection_saturation])
    refused = findings[findings["subject"] == "secret_rows"].iloc[0]
    assert refused["kind"] == "missing_privilege" and refused["severity"] == "info"
    assert "permission denied for table secret" in refused["evidence"]
    # the next check still ran (and reported its own missing privilege)
    assert "connection_saturation" in set(findings["subject"])


def test_a_check_past_the_statement_timeout_becomes_info(sandbox):
    engine = db.connect(sandbox.dsn, statement_timeout="100ms")
    try:
        def slow(conn):
            """A check slower than the session's statement_timeout."""
            db.query(conn, "SELECT pg_sleep(5)")
            return []

        started = time.monotonic()
        findings = health.check(engine, checks=[slow, sessions.connection_saturation], warning_share=0.0)
        assert time.monotonic() - started < 4
    finally:
        engine.dispose()
    timed_out = findings[findings["subject"] == "slow"].iloc[0]
    assert timed_out["kind"] == "check_timeout" and "statement_timeout" in timed_out["evidence"]
    assert "connection_saturation" in set(findings["kind"])


def test_checks_run_in_read_only_sessions(engine):
    def try_to_write(conn):
        """A check that (wrongly) writes: the session refuses."""
        db.query(conn, "CREATE TABLE perfkit_should_not_exist (id int)")
        return []

    findings = health.check(engine, checks=[try_to_write])
    assert findings.iloc[0]["kind"] == "check_failed" and "read-only" in findings.iloc[0]["evidence"]

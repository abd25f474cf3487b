"""`perfkit health` fails (exit 3) when the server goes away mid-run or most checks cannot run."""

from __future__ import annotations

import threading
import time

import pytest

from perfkit import db, health
from perfkit.errors import EnvironmentFailure

DATABASE = "healthgone"


@pytest.fixture(scope="module")
def target(sandbox):
    with sandbox.admin_connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    with sandbox.admin_connect(DATABASE) as conn:
        conn.execute("DROP TABLE IF EXISTS held")
        conn.execute("CREATE TABLE held AS SELECT i AS id FROM generate_series(1, 1000) i")
        conn.execute("CREATE INDEX held_id_idx ON held (id)")
    return sandbox.dsn_for(DATABASE)


def _terminate_when_blocked(sandbox, stop: threading.Event, killed: list) -> None:
    """Hold an ACCESS EXCLUSIVE lock on `held`; terminate the perfkit backend that waits for it."""
    with sandbox.admin_connect(DATABASE, autocommit=False) as locker, sandbox.admin_connect(DATABASE) as admin:
        locker.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            found = admin.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'perfkit' AND datname = %s AND wait_event_type = 'Lock'", (DATABASE,)
            ).fetchall()
            if found:
                killed.extend(pid for pid, _ in found)
                break
            time.sleep(0.02)
        locker.rollback()


def test_cli_health_exits_3_when_its_backend_is_terminated_mid_run(sandbox, target, capsys):
    from perfkit import cli

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_terminate_when_blocked, args=(sandbox, stop, killed), daemon=True)
    killer.start()
    time.sleep(0.3)  # the lock is held before health starts
    try:
        code = cli.main(["health", "--dsn", target, "--lock-timeout", "20s"])
    finally:
        stop.set()
        killer.join(40)
    captured = capsys.readouterr()
    assert killed, "no health query waited on the lock"
    assert code == 3, captured.out + captured.err
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith("perfkit: error: health: ") and "connection to the server was lost" in line
    assert f"of {len(health.CHECKS)} checks failed" in line and "findings:" not in captured.out


def missing_table_check(conn):
    """A check whose query fails on the server (a relation that does not exist)."""
    import sqlalchemy as sa

    conn.execute(sa.text("SELECT * FROM perfkit_no_such_table"))
    return []


def another_missing_table_check(conn):
    import sqlalchemy as sa

    conn.execute(sa.text("SELECT * FROM perfkit_no_such_table_either"))
    return []


def test_more_than_half_failed_is_an_environment_failure(target):
    engine = db.connect(target)
    try:
        good = health.CHECKS[0]
        with pytest.raises(EnvironmentFailure, match=r"health: 2 of 3 checks failed \(more than half; first "
                                                     r"missing_table_check: .*perfkit_no_such_table"):
            health.assess(engine, checks=[good, missing_table_check, another_missing_table_check])
        assert EnvironmentFailure.exit_code == 3
        # half or fewer: the run stands, the failure is an info finding
        result = health.assess(engine, checks=[good, health.CHECKS[1], missing_table_check])
        assert result.findings["kind"].tolist().count("check_failed") == 1
    finally:
        engine.dispose()


def test_a_role_without_privileges_is_not_a_failure(sandbox, target):
    """Checks skipped for a missing privilege are a limit of the setup: the run stands."""
    with sandbox.admin_connect(DATABASE) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'perfkit_nobody'").fetchone():
            conn.execute("CREATE ROLE perfkit_nobody LOGIN PASSWORD 'nobody-pw-1234'")
    engine = db.connect(sandbox.dsn_for(DATABASE, user="perfkit_nobody", password="nobody-pw-1234"))
    try:
        result = health.assess(engine)
        kinds = result.findings["kind"].tolist()
        assert kinds.count("missing_privilege") >= 3 and "check_failed" not in kinds
    finally:
        engine.dispose()

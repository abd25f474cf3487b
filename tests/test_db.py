"""perfkit.db against the real sandbox: read-only sessions, timeouts, redaction, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perfkit import db
from perfkit.errors import (
    AuthenticationFailed,
    BadInputError,
    DatabaseUnreachable,
    QueryTimeout,
    ReadOnlyViolation,
)


def test_session_is_read_only_and_tagged(engine, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        db.query(engine, f"INSERT INTO {marker} VALUES (1) RETURNING id")
    assert admin.execute(f"SELECT count(*) FROM {marker}").fetchone()[0] == 0
    settings = db.query(engine, "SELECT current_setting('application_name') AS app, "
                                "current_setting('transaction_read_only') AS ro, "
                                "current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt")
    assert settings.iloc[0].to_dict() == {"app": "perfkit", "ro": "on", "st": "30s", "lt": "5s"}


def test_statement_timeout_cancels_with_clear_error(sandbox):
    engine = db.connect(sandbox.dsn, statement_timeout="200ms")
    with pytest.raises(QueryTimeout) as err:
        db.query(engine, "SELECT pg_sleep(5)")
    assert "statement_timeout" in str(err.value)
    assert "\n" not in str(err.value)
    engine.dispose()


def test_lock_timeout(sandbox, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    engine = db.connect(sandbox.dsn, lock_timeout="100ms")
    with sandbox.admin_connect(autocommit=False) as holder:
        holder.execute(f"LOCK TABLE {marker} IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(QueryTimeout, match="lock_timeout"):
            db.query(engine, f"SELECT * FROM {marker}")
        holder.rollback()
    engine.dispose()


@pytest.mark.parametrize(
    "dsn, shown",
    [
        ("postgresql://app:s3cr3t-Pw@db.example:5432/shop", "postgresql://app:***@db.example:5432/shop"),
        ("host=db user=app password=s3cr3t-Pw dbname=shop", "host=db user=app password=*** dbname=shop"),
        ("host=db password='s3 cr3t-Pw' dbname=shop", "host=db password=*** dbname=shop"),
        ("postgresql://db/shop?user=app&password=s3cr3t-Pw", "postgresql://db/shop?user=app&password=***"),
        ("postgresql+psycopg://app:s3cr3t-Pw@db/shop", "postgresql+psycopg://app:***@db/shop"),
    ],
)
def test_redact(dsn, shown):
    assert db.redact(dsn) == shown


def test_unreachable_server_error_has_no_password(sandbox):
    with pytest.raises(DatabaseUnreachable) as err:
        db.connect(f"postgresql://app:Hunter2-secret@127.0.0.1:{_closed_port()}/shop", connect_timeout=3)
    message = str(err.value)
    assert "Hunter2-secret" not in message
    assert "127.0.0.1" in message and "\n" not in message


def test_authentication_failure_is_one_line_without_password(sandbox, admin, marker):
    admin.execute(f"CREATE ROLE {marker} LOGIN PASSWORD 'right-pass'")
    with pytest.raises(AuthenticationFailed) as err:
        db.connect(sandbox.dsn_for(sandbox.database, marker, "Wrong-Pass-42"))
    assert "Wrong-Pass-42" not in str(err.value)
    ok = db.connect(sandbox.dsn_for(sandbox.database, marker, "right-pass"))
    assert db.scalar(ok, "SELECT current_user") == marker
    ok.dispose()


def test_dsn_from_environment(sandbox, monkeypatch):
    monkeypatch.setenv("PERFKIT_DSN", sandbox.dsn)
    engine = db.connect()
    assert db.scalar(engine, "SELECT current_database()") == sandbox.database
    engine.dispose()
    monkeypatch.delenv("PERFKIT_DSN")
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(sandbox.port))
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", sandbox.database)
    engine = db.connect()
    assert db.scalar(engine, "SELECT current_setting('application_name')") == "perfkit"
    engine.dispose()


def test_bad_timeout_option_is_bad_input(sandbox):
    with pytest.raises(BadInputError, match="statement-timeout"):
        db.connect(sandbox.dsn, statement_timeout="soon")


def test_server_facts(engine):
    facts = db.server_facts(engine)
    assert facts["version_num"] >= 120000
    assert facts["pg_stat_statements"]
    assert "pg_stat_statements" in facts["settings"]["shared_preload_libraries"]
    assert facts["settings"]["track_io_timing"] == "on"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_connection_failure_json_and_stderr_have_no_password():
    port = _closed_port()
    result = subprocess.run(
        [sys.executable, "-m", "perfkit.cli", "top", "--json", "--dsn", f"postgresql://app:Hunter2-secret@127.0.0.1:{port}/shop"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3  # the environment, not the input
    assert "Hunter2-secret" not in result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("perfkit: error: cannot connect")
    assert "Traceback" not in result.stderr
    json.dumps(result.stdout)

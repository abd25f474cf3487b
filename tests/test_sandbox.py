"""perfkit.sandbox: the throwaway cluster is configured as promised and always cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from perfkit.errors import SandboxError
from perfkit.sandbox import Sandbox, find_bindir


def test_session_sandbox_settings(sandbox):
    with sandbox.admin_connect() as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_preload_libraries', "
            "'pg_stat_statements.track', 'track_io_timing', 'compute_query_id', 'listen_addresses', 'log_destination')"
        ).fetchall())
        extensions = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
    assert settings["shared_preload_libraries"] == "pg_stat_statements,auto_explain"
    assert settings["pg_stat_statements.track"] == "all"
    assert settings["track_io_timing"] == "on"
    assert settings["compute_query_id"] == "on"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["log_destination"] in {"jsonlog", "csvlog"}
    assert "pg_stat_statements" in extensions
    assert "hypopg" in extensions  # scripts/setup.sh installs postgresql-NN-hypopg
    assert (sandbox.socket_dir / f".s.PGSQL.{sandbox.port}").exists()
    if os.geteuid() == 0:
        with sandbox.admin_connect() as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0] != "0"


def test_cleanup_when_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with Sandbox() as sb:
            directory, dsn = sb.directory, sb.dsn
            assert directory.exists()
            raise RuntimeError("boom")
    assert not directory.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)


def test_given_directory_must_be_empty(tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(SandboxError, match="not empty"):
        Sandbox(tmp_path).start()


def test_missing_binaries_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFKIT_PG_BINDIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(SandboxError, match="apt-get install postgresql"):
        find_bindir()


def test_cli_start_status_stop(tmp_path):
    state = tmp_path / "state.json"
    env = {**os.environ, "PERFKIT_PROGRESS": "0"}
    cli = [sys.executable, "-m", "perfkit.cli", "sandbox"]
    started = subprocess.run([*cli, "start", "--state", str(state)], capture_output=True, text=True, env=env, timeout=120)
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.strip()
    assert dsn.startswith("postgresql://postgres@127.0.0.1:")
    try:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0] >= 0
        status = subprocess.run([*cli, "status", "--json", "--state", str(state)], capture_output=True, text=True, env=env)
        assert json.loads(status.stdout)["running"] is True
        again = subprocess.run([*cli, "start", "--state", str(state)], capture_output=True, text=True, env=env)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        stopped = subprocess.run([*cli, "stop", "--state", str(state)], capture_output=True, text=True, env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    directory = json.loads(stopped.stdout) if stopped.stdout.startswith("{") else None
    assert directory is None and "stopped and removed" in stopped.stdout
    status = subprocess.run([*cli, "status", "--state", str(state)], capture_output=True, text=True, env=env)
    assert status.returncode == 3 and "not running" in status.stdout

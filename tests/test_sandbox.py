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
        with sandbox.admin_connect() as conn:  # read while the backend lives (it exits with the connection)
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


# -- stop touches only a cluster perfkit started; one start at a time per state file --------------
CLI = [sys.executable, "-m", "perfkit.cli", "sandbox"]
ENV = {**os.environ, "PERFKIT_PROGRESS": "0"}


def sandbox_cli(*args, timeout=120):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


def decoy(folder, pid, *, token=None, pg_version=True):
    """A folder of somebody's files with a postmaster.pid naming ``pid`` (and, optionally, perfkit's marker)."""
    (folder / "data").mkdir(parents=True)
    (folder / "keep.txt").write_text("somebody's file")
    (folder / "notes").mkdir()
    (folder / "notes" / "more.txt").write_text("more")
    (folder / "data" / "postmaster.pid").write_text(f"{pid}\n{folder / 'data'}\n")
    if pg_version:
        (folder / "data" / "PG_VERSION").write_text("15\n")
    if token is not None:
        (folder / ".perfkit-sandbox").write_text(token + "\n")
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_state(path, folder, *, token="", owned=True, port=1):
    path.write_text(json.dumps({"directory": str(folder), "port": port, "dsn": f"postgresql://postgres@127.0.0.1:{port}/perfkit",
                                "version": 15, "owned_directory": owned, "token": token}))


@pytest.fixture
def bystander():
    """An unrelated process: it must survive every refused stop."""
    process = subprocess.Popen(["sleep", "1000"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize(
    ("marker", "pg_version", "owned", "message"),
    [
        (None, True, True, "not a sandbox perfkit started"),          # no marker at all
        ("forged-token", True, False, "not a sandbox perfkit started"),  # a marker with another token
        ("TOKEN", False, True, "no PG_VERSION"),                     # the marker, but not a cluster
        ("TOKEN", True, True, "not this sandbox's postgres"),         # the PID is not its postgres
    ],
)
def test_stop_refuses_a_folder_it_did_not_start(tmp_path, bystander, marker, pg_version, owned, message):
    folder, state = tmp_path / "victim", tmp_path / "state.json"
    token = "a3" * 16
    files = decoy(folder, bystander.pid, token=token if marker == "TOKEN" else marker, pg_version=pg_version)
    write_state(state, folder, token=token, owned=owned)
    stopped = sandbox_cli("stop", "--state", state)
    assert stopped.returncode == 2, stopped.stderr
    assert message in stopped.stderr and stopped.stderr.count("\n") == 1, stopped.stderr
    assert bystander.poll() is None  # not signalled
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files  # nothing removed
    assert state.exists()


def test_stop_refuses_another_clusters_postgres(tmp_path, sandbox):
    """A postmaster.pid naming a real postgres, of another data directory (the session's cluster)."""
    pid = int((sandbox.data_dir / "postmaster.pid").read_text().splitlines()[0])
    folder, state, token = tmp_path / "other", tmp_path / "state.json", "5c" * 16
    files = decoy(folder, pid, token=token)
    write_state(state, folder, token=token, port=sandbox.port)
    stopped = sandbox_cli("stop", "--state", state)
    assert stopped.returncode == 2 and "not this sandbox's postgres" in stopped.stderr, stopped.stderr
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    with sandbox.admin_connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.fixture
def reachable_tmp():
    """A folder the 'postgres' system user can reach (a sandbox run as root needs one)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="perfkit-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_two_concurrent_starts_on_one_state_file(tmp_path, reachable_tmp):
    state = tmp_path / "state.json"
    dirs = [reachable_tmp / "a", reachable_tmp / "b"]
    runs = [subprocess.Popen([*CLI, "start", "--state", str(state), "--dir", str(d)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV) for d in dirs]
    results = [run.communicate(timeout=180) for run in runs]
    codes = [run.returncode for run in runs]
    try:
        assert sorted(codes) == [0, 2], results
        winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
        assert ("another perfkit sandbox start or stop is using" in results[loser][1]
                or "already running" in results[loser][1]), results[loser][1]
        assert not dirs[loser].exists() or not any(dirs[loser].iterdir())  # the second started nothing
        recorded = json.loads(state.read_text())
        assert recorded["directory"] == str(dirs[winner].resolve()) and len(recorded["token"]) == 32
        assert oct(state.stat().st_mode & 0o777) == "0o600"
        assert (dirs[winner] / ".perfkit-sandbox").read_text().strip() == recorded["token"]
        # while a start (or stop) holds the state file, another refuses at once
        lock = os.open(f"{state}.lock", os.O_RDWR)
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
            busy = sandbox_cli("stop", "--state", state, timeout=30)
            assert busy.returncode == 2 and "another perfkit sandbox start or stop" in busy.stderr
        finally:
            os.close(lock)
        # a tampered marker: stop refuses and the cluster keeps running
        marker = dirs[winner] / ".perfkit-sandbox"
        marker.write_text("0" * 32 + "\n")
        refused = sandbox_cli("stop", "--state", state)
        assert refused.returncode == 2 and "not a sandbox perfkit started" in refused.stderr
        with psycopg.connect(recorded["dsn"], connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        marker.write_text(recorded["token"] + "\n")
    finally:
        stopped = sandbox_cli("stop", "--state", state)
    assert stopped.returncode == 0, stopped.stderr
    assert not dirs[codes.index(0)].exists()  # a folder start made is removed
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(recorded["dsn"], connect_timeout=2)


def test_any_state_file_never_removes_or_signals_what_perfkit_did_not_start(tmp_path, bystander):
    """Whatever the state file says, stop ends in 0 or a one-line refusal, and nothing else is touched."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from perfkit.cli import main

    token = "7e" * 16
    folder = tmp_path / "victim"
    files = decoy(folder, bystander.pid, token=token)
    state = tmp_path / "state.json"
    paths = st.sampled_from([str(folder), str(folder / "data"), str(tmp_path), "/", "", "relative/none", "a\0b"])
    values = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=20), st.lists(st.integers(), max_size=2))
    shaped = st.fixed_dictionaries({
        "directory": st.one_of(paths, st.text(max_size=30), values), "port": st.one_of(st.integers(-1, 70000), values),
        "dsn": st.one_of(st.just("postgresql://postgres@127.0.0.1:1/perfkit"), values),
        "version": st.one_of(st.just(15), values), "owned_directory": st.one_of(st.booleans(), values),
        "token": st.one_of(st.just(token), st.text(max_size=40), values),
    }, optional={"extra": values}).map(json.dumps)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(shaped, st.text(max_size=60), st.binary(max_size=60)))
    def stop_with(content):
        if isinstance(content, bytes):
            state.write_bytes(content)
        else:
            state.write_text(content)
        code = main(["sandbox", "stop", "--state", str(state)])
        assert code in (0, 2)
        assert bystander.poll() is None
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files

    stop_with()

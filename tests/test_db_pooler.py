"""perfkit's connections behind a real PgBouncer in transaction mode, the DSN's connect_timeout,
and the one bounded retry of scheduled runs."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from perfkit import db, statements
from perfkit.errors import DatabaseUnreachable, ReadOnlyViolation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {log.read_text()[-800:] if log.exists() else ''}") from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pgbouncer(sandbox):
    """A PgBouncer in transaction mode (2 server connections) in front of the sandbox; its DSN."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    folder = Path(tempfile.mkdtemp(prefix="perfkit-pgbouncer-"))
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    log = folder / "pgbouncer.log"
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"perfkit = host=127.0.0.1 port={sandbox.port} dbname=perfkit user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\nmin_pool_size = 0\nmax_client_conn = 50\n"
        f"logfile = {log}\npidfile =\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    argv = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chmod(folder, 0o755)
        for path in [folder, *folder.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
        argv = ["runuser", "-u", "postgres", "--", *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, proc, log)
        yield f"postgresql://postgres@127.0.0.1:{port}/perfkit"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


PROBE = ("SELECT pg_backend_pid() AS pid, current_setting('transaction_read_only') AS ro, "
         "current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, pg_sleep(0.05) AS slept")


def test_every_perfkit_transaction_is_read_only_behind_pgbouncer(pgbouncer, admin, marker):
    admin.execute(f"CREATE TABLE {marker} (id int)")
    engine = db.connect(pgbouncer, statement_timeout="7s", lock_timeout="3s")
    seen, refused, failures = [], [], []

    def work():
        try:
            for _ in range(3):
                seen.append(db.query(engine, PROBE).iloc[0].to_dict())
                try:
                    db.query(engine, f"INSERT INTO {marker} VALUES (1) RETURNING id")
                except ReadOnlyViolation as err:
                    refused.append(str(err))
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(repr(err))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # several transactions of one connection too, and a write through the raw DBAPI connection
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for _ in range(3):
            assert raw.execute("SHOW transaction_read_only").fetchone()[0] == "on"
            raw.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            raw.execute(f"INSERT INTO {marker} VALUES (2)")
        raw.rollback()
    snap = statements.snapshot(engine, server="pooled")  # the real reads, behind the pooler
    engine.dispose()
    assert not failures
    assert len(seen) == 12 and len(refused) == 12
    assert {(row["ro"], row["st"], row["lt"]) for row in seen} == {("on", "7s", "3s")}
    assert len({row["pid"] for row in seen}) == 2  # both pooled server connections served perfkit
    assert len(snap) > 0
    assert admin.execute(f"SELECT count(*) FROM {marker}").fetchone()[0] == 0
    # nothing leaked onto the server connections: another client of the pooler is read-write,
    # with the server's own timeouts, whichever server connection it lands on
    with psycopg.connect(pgbouncer, autocommit=True, prepare_threshold=None) as other:
        for _ in range(6):
            row = other.execute("SELECT current_setting('transaction_read_only'), current_setting('statement_timeout'), "
                                "current_setting('default_transaction_read_only')").fetchone()
            assert row == ("off", "0", "off")
        other.execute(f"INSERT INTO {marker} VALUES (3)")


def test_no_session_state_on_a_direct_connection(sandbox):
    engine = db.connect(sandbox.dsn)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.rollback()
        raw.autocommit = True  # outside perfkit's transactions: the session itself is untouched
        assert raw.execute("SELECT current_setting('statement_timeout'), current_setting('default_transaction_read_only')"
                           ).fetchone() == ("0", "off")
        raw.autocommit = False
    engine.dispose()


def _silent_server():
    """A port that accepts connections and never answers (a server hung in its startup)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_the_dsns_own_connect_timeout_is_honoured(monkeypatch):
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with _silent_server() as sock:
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DatabaseUnreachable):
            db.connect(f"postgresql://perfkit@127.0.0.1:{port}/x?connect_timeout=1")
        elapsed = time.monotonic() - started
    assert elapsed < 5  # not perfkit's default of 10 s


def test_one_bounded_retry_reaches_a_server_that_comes_back(sandbox):
    port = _free_port()
    done = threading.Event()

    def late_proxy():
        time.sleep(0.6)  # the first attempt finds nothing listening
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(10)
            while not done.is_set():
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", sandbox.port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=late_proxy, daemon=True).start()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/perfkit"
    with pytest.raises(DatabaseUnreachable):
        db.connect(dsn)  # no retry: fails at once
    started = time.monotonic()
    engine = db.connect(dsn, retries=1, retry_backoff=1.0)
    assert time.monotonic() - started >= 0.9
    assert db.scalar(engine, "SELECT 1") == 1
    engine.dispose()
    done.set()
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable):  # bounded: one retry, then the error
        db.connect(f"postgresql://postgres@127.0.0.1:{_free_port()}/perfkit", retries=1, retry_backoff=0.2)
    assert time.monotonic() - started < 5


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_connection_the_server_dropped_is_replaced_before_the_next_query(sandbox, admin):
    """pool_pre_ping: after a server restart (here: the backend terminated), a notebook's next
    query gets a fresh connection instead of the error."""
    engine = db.connect(sandbox.dsn)
    first = db.scalar(engine, "SELECT pg_backend_pid()")
    assert admin.execute("SELECT pg_terminate_backend(%s)", (int(first),)).fetchone()[0] is True
    deadline = time.monotonic() + 5
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (int(first),)).fetchone()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = db.scalar(engine, "SELECT pg_backend_pid()")
    assert second != first
    engine.dispose()
